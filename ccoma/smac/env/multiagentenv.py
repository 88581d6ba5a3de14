"""SMAC's abstract ``MultiAgentEnv``: the method names pymarl-style runners call.

Code that subclasses or type-checks against ``smac.env.MultiAgentEnv`` works with ccoma's
``StarCraft2Env``, which derives from this class.
"""
from __future__ import annotations


class MultiAgentEnv:
    """The interface of a cooperative multi-agent environment with a global state (SMAC's)."""

    n_agents: int
    episode_limit: int

    def step(self, actions):
        """Apply one action per agent; return ``(reward, terminated, info)``."""
        raise NotImplementedError

    def get_obs(self):
        """Every agent's observation, as a list."""
        raise NotImplementedError

    def get_obs_agent(self, agent_id):
        """One agent's observation."""
        raise NotImplementedError

    def get_obs_size(self):
        """Length of one observation."""
        raise NotImplementedError

    def get_state(self):
        """The global state."""
        raise NotImplementedError

    def get_state_size(self):
        """Length of the global state."""
        raise NotImplementedError

    def get_avail_actions(self):
        """Every agent's available-action mask, as a list."""
        raise NotImplementedError

    def get_avail_agent_actions(self, agent_id):
        """One agent's available-action mask."""
        raise NotImplementedError

    def get_total_actions(self):
        """Number of actions an agent has (available or not)."""
        raise NotImplementedError

    def reset(self):
        """Start an episode; return the first observations and state."""
        raise NotImplementedError

    def render(self):
        raise NotImplementedError

    def close(self):
        raise NotImplementedError

    def seed(self):
        raise NotImplementedError

    def save_replay(self):
        raise NotImplementedError

    def get_env_info(self) -> dict:
        """The five sizes a runner builds its buffers from."""
        return {"state_shape": self.get_state_size(), "obs_shape": self.get_obs_size(),
                "n_actions": self.get_total_actions(), "n_agents": self.n_agents,
                "episode_limit": self.episode_limit}
