"""Mean-field Q-learning (Yang et al. 2018, "Mean Field Multi-Agent Reinforcement Learning").

Each agent's Q takes its own observation history and the *mean action* of its neighbours: the
average one-hot action of the allies it can see. The joint action of many agents is summarised
by one A-sized vector, so the method scales to large teams (25m: 25 agents).

Neighbours are the allies whose "visible" bit is set in the agent's SMAC observation (the first
entry of each ally block), unless ``env_info`` gives ``ally_visible_index``. The mean action at
step t uses the neighbours' actions at t-1 (the current ones are not known when acting; Yang et
al. do the same). The loss, as ``train_step`` reads:
    a_bar_t     = mean over visible allies of onehot(u_{t-1})
    chosen_t    = Q(tau_t, a_bar_t)[u_t]                           per agent, on the team reward
    pi_{t+1}    = Boltzmann(Q(tau_{t+1}, a_bar_{t+1}) / temperature) over available actions
    v_MF(t+1)   = sum_u pi_{t+1}(u) Q^-(tau_{t+1}, a_bar_{t+1})[u]
    loss        = sum mask (chosen_t - r_t - gamma (1 - term_t) v_MF(t+1))^2 / sum mask
"""
from __future__ import annotations

import dataclasses

import torch

from ccoma.algos.base import Learner, LearnerConfig, frozen_copy, hard_update, linear_schedule, optimise, rmsprop
from ccoma.algos.networks import (RNNAgent, agent_input_dim, agent_inputs, masked_argmax, one_hot, safe_avail,
                                  shift_last_actions, slots_used)
from ccoma.config import doc
from ccoma.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class MFQConfig(LearnerConfig):
    """Mean-field Q with a Boltzmann policy."""

    temperature_start: float = doc("Boltzmann temperature at the start (higher = more random).", 1.0)
    temperature_finish: float = doc("Boltzmann temperature after annealing.", 0.05)
    temperature_anneal_steps: int = doc("Env steps over which the temperature anneals linearly.", 50_000)
    neighbours: str = doc("Whose actions form the mean field: 'sight' (allies visible in the agent's "
                          "observation) or 'all' (every other agent).", "sight")

    def __post_init__(self):
        if self.neighbours not in ("sight", "all"):
            raise ConfigError("mfq", f"field 'neighbours' must be 'sight' or 'all', got {self.neighbours!r}")


def ally_visible_index(env_info: dict) -> list[int] | None:
    """Observation indices of the N-1 ally "visible" bits, or None when the layout is unknown.

    SMAC's layout is move(4) | E enemy blocks | N-1 ally blocks | own block, where ally/enemy blocks
    have 5 + k features and the own block 1 + k (k = shield bit + type one-hot, the same for both
    sides here). k follows from obs_dim, so only n_enemies is needed beyond SMAC's env_info.
    """
    if "ally_visible_index" in env_info:
        return [int(i) for i in env_info["ally_visible_index"]]
    n, e, obs_dim = env_info["n_agents"], env_info.get("n_enemies"), env_info["obs_shape"]
    if e is None or n < 2:
        return None
    rest = obs_dim - 4 - 5 * (e + n - 1) - 1
    if rest < 0 or rest % (e + n) != 0:
        return None
    block = 5 + rest // (e + n)
    return [4 + e * block + m * block for m in range(n - 1)]


def others_index(n: int, device=None) -> torch.Tensor:
    """[N, N-1]: ally slot m of agent j is agent m + (m >= j) (SMAC orders allies by id, skipping j)."""
    m = torch.arange(n - 1, device=device)
    j = torch.arange(n, device=device)[:, None]
    return m[None, :] + (m[None, :] >= j).long()


def neighbour_mask(obs: torch.Tensor, visible_index: list[int] | None) -> torch.Tensor:
    """obs [..., N, O] -> [..., N, N] bool: k is a neighbour of j (never j itself)."""
    n = obs.shape[-2]
    if visible_index is None:  # no layout: everyone else
        return ~torch.eye(n, dtype=torch.bool, device=obs.device).expand(*obs.shape[:-2], n, n)
    visible = obs[..., visible_index] > 0                                       # [..., N, N-1]
    out = torch.zeros(*obs.shape[:-1], n, dtype=torch.bool, device=obs.device)
    return out.scatter(-1, others_index(n, obs.device).expand_as(visible), visible)


def mean_action(actions: torch.Tensor, neighbours: torch.Tensor, n_actions: int) -> torch.Tensor:
    """actions [..., N] (-1 = none), neighbours [..., N, N] bool -> mean one-hot [..., N, A]."""
    onehot = one_hot(actions, n_actions)                                        # [..., N, A]
    nb = neighbours.float()
    return (nb @ onehot) / nb.sum(-1, keepdim=True).clamp(min=1.0)


def boltzmann(q: torch.Tensor, avail: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(Q / temperature) over available actions. q/avail [..., A] -> [..., A]."""
    return torch.softmax((q / max(temperature, 1e-6)).masked_fill(~avail, float("-inf")), -1)


class MFQLearner(Learner):
    def __init__(self, config: MFQConfig, env_info: dict, device="cpu"):
        super().__init__(config, env_info, device)
        in_dim = agent_input_dim(self.obs_dim, self.n_actions, self.n_agents, extra=self.n_actions)
        self.agent = RNNAgent(in_dim, self.n_actions, config.hidden_dim).to(self.device)
        self.target_agent = frozen_copy(self.agent)
        self.params = list(self.agent.parameters())
        self.optimiser = rmsprop(self.params, config)
        self.visible_index = ally_visible_index(env_info) if config.neighbours == "sight" else None
        self.last_target_episode = 0

    def networks(self):
        return {"agent": self.agent}

    def temperature(self, t_env: int) -> float:
        c = self.config
        return linear_schedule(c.temperature_start, c.temperature_finish, c.temperature_anneal_steps, t_env)

    exploration = temperature

    def exploration_schedule(self) -> str:
        c = self.config
        return (f"Boltzmann temperature {c.temperature_start:g} -> {c.temperature_finish:g} over "
                f"{c.temperature_anneal_steps:,} env steps")

    def fisher_losses(self, batch, t_env):
        td, _, _ = self._td(batch, t_env)
        return {"agent": 0.5 * (td ** 2).sum((1, 2))}

    def policy_inputs(self) -> dict:
        """Served MFQ agents need the neighbours' mean action: rebuilt from obs and last actions."""
        return {"kind": "mean_field", "visible_index": self.visible_index}

    def _inputs(self, obs: torch.Tensor, last_actions: torch.Tensor) -> torch.Tensor:
        mf = mean_action(last_actions, neighbour_mask(obs, self.visible_index), self.n_actions)
        return agent_inputs(obs, last_actions, self.n_actions, extra=mf)

    @torch.no_grad()
    def act(self, obs, avail, last_actions, hidden, t_env, mode="explore"):
        """obs [B, N, O], avail [B, N, A] bool, last_actions [B, N], hidden [B, N, H] -> actions [B, N]."""
        self._check_mode(mode)
        q, hidden = self.agent(self._inputs(obs, last_actions), hidden)
        if mode == "greedy":
            return masked_argmax(q, avail), hidden
        pi = boltzmann(q, avail, self.temperature(t_env))
        return torch.multinomial(pi.reshape(-1, self.n_actions), 1).view(pi.shape[:-1]), hidden

    def _td(self, batch, t_env):
        """TD errors [B, T, N] (mask applied, targets fixed), the mask and the chosen Qs."""
        c = self.config
        obs, actions = batch["obs"], batch["actions"]                            # [B,T+1,N,O] [B,T+1,N]
        avail_next = safe_avail(batch["avail"][:, 1:])                           # [B, T, N, A]
        reward, terminated, mask = (batch[k][:, :-1].float().unsqueeze(-1) for k in ("reward", "terminated", "filled"))

        inputs = self._inputs(obs, shift_last_actions(actions))                  # [B, T+1, N, D]
        steps = slots_used(batch["filled"])      # later slots are padding, masked out below
        packing = self.agent.packing(inputs, steps)   # the same for the target network
        q = self.agent.unroll(inputs, steps, packing)                            # [B, T+1, N, A]
        chosen = q[:, :-1].gather(-1, actions[:, :-1, :, None]).squeeze(-1)      # [B, T, N]
        with torch.no_grad():
            target_q = self.target_agent.unroll(inputs, steps, packing)[:, 1:]   # [B, T, N, A]
            pi_next = boltzmann(q[:, 1:], avail_next, self.temperature(t_env))
            v_mf = (pi_next * target_q.masked_fill(~avail_next, 0.0)).sum(-1)    # [B, T, N]
            targets = reward + c.gamma * (1.0 - terminated) * v_mf
        mask = mask.expand_as(chosen)
        td = (chosen - targets) * mask
        return td, mask, chosen

    def train_step(self, batch, t_env, episode=None):
        c = self.config
        td, mask, chosen = self._td(batch, t_env)
        td_loss = (td ** 2).sum() / mask.sum().clamp(min=1.0)
        grad_norm = optimise(td_loss + self.regularization("agent"), self.optimiser, self.params, c.grad_norm_clip)

        self.train_steps += 1
        episodes = self._count_episodes(episode)
        if episodes - self.last_target_episode >= c.target_update_interval:
            hard_update(self.target_agent, self.agent)
            self.last_target_episode = episodes
        td, chosen, n = td.detach(), chosen.detach(), mask.sum().clamp(min=1.0)
        return {"loss": float(td_loss.detach()), "grad_norm": grad_norm, "td_error_abs": float(td.abs().sum() / n),
                "q_taken_mean": float((chosen * mask).sum() / n), "temperature": self.temperature(t_env)}

    def _modules(self):
        return {"agent": self.agent, "target_agent": self.target_agent}

    def _optimisers(self):
        return {"optimiser": self.optimiser}

    def _counters(self):
        return {**super()._counters(), "last_target_episode": self.last_target_episode}
