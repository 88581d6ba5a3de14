"""IQL, VDN and QMIX: one recurrent Q-learner; the methods differ only in the mixer.

Loss (pymarl's q_learner), for a batch of padded episodes, read top to bottom in ``train_step``:
    Q_a(tau_t, u)            agent utilities from the GRU agent, unrolled over whole episodes
    chosen_t = mix(Q_a(tau_t, u_t^a), s_t)                      (IQL: per agent, no mixing)
    u*_{t+1} = argmax_u Q_a(tau_{t+1}, u) over available u     (double Q: the online net picks)
    y_t      = r_t + gamma * (1 - terminated_t) * mix^-(Q^-_a(tau_{t+1}, u*_{t+1}), s_{t+1})
    loss     = sum_t mask_t (chosen_t - y_t)^2 / sum_t mask_t  (+ the harness's regularisers)
A truncated episode (time limit) is not terminated, so it bootstraps from its final slot.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from ccoma.algos.base import Learner, LearnerConfig, frozen_copy, hard_update, linear_schedule, optimise, rmsprop
from ccoma.algos.fused_gru import runs_fused
from ccoma.algos.mixers import make_mixer
from ccoma.algos.networks import (RNNAgent, agent_input_dim, agent_inputs, masked_argmax, random_available,
                                  safe_avail, same_frozen_trunk, shift_last_actions, slots_used, unpack_rows)
from ccoma.config import doc


@dataclasses.dataclass(frozen=True)
class QConfig(LearnerConfig):
    """Value-based learners: epsilon-greedy exploration and double-Q targets."""

    MIXER: ClassVar[str] = "none"
    epsilon_start: float = doc("Epsilon-greedy: initial exploration rate.", 1.0)
    epsilon_finish: float = doc("Epsilon-greedy: final exploration rate (C-COMA paper: 0.05).", 0.05)
    epsilon_anneal_steps: int = doc("Env steps over which epsilon anneals linearly (paper: 50K).", 50_000)
    double_q: bool = doc("Double-Q targets: the online network picks u*, the target network values it.", True)


@dataclasses.dataclass(frozen=True)
class IQLConfig(QConfig):
    """Independent Q-learning: every agent learns its own utility from the team reward."""

    MIXER: ClassVar[str] = "none"


@dataclasses.dataclass(frozen=True)
class VDNConfig(QConfig):
    """VDN: Q_tot is the sum of agent utilities."""

    MIXER: ClassVar[str] = "vdn"


@dataclasses.dataclass(frozen=True)
class QMIXConfig(QConfig):
    """QMIX: Q_tot is a monotonic, state-conditioned mix of agent utilities."""

    MIXER: ClassVar[str] = "qmix"
    mixing_embed_dim: int = doc("Width of the mixing network's hidden layer.", 32)
    hypernet_dim: int = doc("Hidden width of the hypernetworks that produce the mixing weights.", 64)


class QLearner(Learner):
    """The shared value learner; ``config.MIXER`` picks none / vdn / qmix."""

    def __init__(self, config: QConfig, env_info: dict, device="cpu"):
        super().__init__(config, env_info, device)
        in_dim = agent_input_dim(self.obs_dim, self.n_actions, self.n_agents)
        self.agent = RNNAgent(in_dim, self.n_actions, config.hidden_dim).to(self.device)
        self.mixer = make_mixer(config.MIXER, self.n_agents, self.state_dim,
                                getattr(config, "mixing_embed_dim", 32), getattr(config, "hypernet_dim", 64))
        if self.mixer is not None:
            self.mixer.to(self.device)
        self.target_agent = frozen_copy(self.agent)
        self.target_mixer = frozen_copy(self.mixer) if self.mixer is not None else None
        self.params = [p for net in self.networks().values() for p in net.parameters()]
        self.optimiser = rmsprop(self.params, config)
        self.last_target_episode = 0

    def networks(self):
        nets = {"agent": self.agent}
        if self.mixer is not None and any(True for _ in self.mixer.parameters()):
            nets["mixer"] = self.mixer
        return nets

    def epsilon(self, t_env: int) -> float:
        c = self.config
        return linear_schedule(c.epsilon_start, c.epsilon_finish, c.epsilon_anneal_steps, t_env)

    exploration = epsilon

    def exploration_schedule(self) -> str:
        c = self.config
        return f"epsilon-greedy {c.epsilon_start:g} -> {c.epsilon_finish:g} over {c.epsilon_anneal_steps:,} env steps"

    def fisher_losses(self, batch, t_env):
        """Per episode 1/2 sum_t td_t^2 (targets fixed): the same loss trains the agents and the mixer."""
        td, _, _, _ = self._td(batch)
        per_episode = 0.5 * (td ** 2).flatten(1).sum(1)                         # [B]
        return {name: per_episode for name in self.networks()}

    @torch.no_grad()
    def act(self, obs, avail, last_actions, hidden, t_env, mode="explore"):
        """obs [B, N, O], avail [B, N, A] bool, last_actions [B, N], hidden [B, N, H] -> actions [B, N]."""
        self._check_mode(mode)
        q, hidden = self.agent(agent_inputs(obs, last_actions, self.n_actions), hidden)
        actions = masked_argmax(q, avail)
        if mode == "explore":
            explore = torch.rand(actions.shape, device=actions.device) < self.epsilon(t_env)
            actions = torch.where(explore, random_available(avail), actions)
        return actions, hidden

    def _mix(self, mixer, qs: torch.Tensor, states: torch.Tensor, live: torch.Tensor | None = None) -> torch.Tensor:
        """qs [B, T, N], states [B, T, S] -> [B, T]. ``live`` [P] (the filled slots, b * T + t): the mixer
        runs on those rows only, and the padding's Q_tot is 0 (masked out of the loss either way)."""
        if mixer is None:
            return qs
        if live is None:
            return mixer(qs, states)
        b, t = qs.shape[:2]
        y = mixer(qs.reshape(b * t, -1).index_select(0, live), states.reshape(b * t, -1).index_select(0, live))
        return unpack_rows(y, live, b * t).view(b, t)

    def _live_slots(self, mask: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor | None:
        """With the fused unroll (``--fused-gru``, which skips the agents' padding) a mixer with weights
        (QMIX's hypernetworks: ~30% of an update over the whole batch) skips it too: the filled slots of
        ``mask`` [B, T] as flat indices, or None when it runs on every slot (no padding, the default)."""
        if "mixer" not in self.networks() or not runs_fused(inputs):
            return None
        flat = mask.reshape(-1)
        if bool(flat.all()):
            return None
        return flat.nonzero().squeeze(1)

    def _td(self, batch):
        """TD errors and their mask: ``td`` [B, T] (IQL: [B, T, N]) = mask * (chosen - y), targets fixed."""
        c = self.config
        obs, state, actions = batch["obs"], batch["state"], batch["actions"]   # [B,T+1,N,O] [B,T+1,S] [B,T+1,N]
        avail_next = safe_avail(batch["avail"][:, 1:])                           # [B, T, N, A]
        reward = batch["reward"][:, :-1]                                         # [B, T]
        terminated = batch["terminated"][:, :-1].float()
        mask = batch["filled"][:, :-1].float()

        inputs = agent_inputs(obs, shift_last_actions(actions), self.n_actions)  # [B, T+1, N, D]
        steps = slots_used(batch["filled"])      # later slots are padding, masked out below
        packing = self.agent.packing(inputs, steps)   # the same for the target network
        if same_frozen_trunk(self.agent, self.target_agent):   # continual, output layer only: one trunk
            hs = self.agent.trunk_rows(inputs, steps, packing)
            q = self.agent.head(*hs, inputs.shape)                               # [B, T+1, N, A]
        else:
            hs, q = None, self.agent.unroll(inputs, steps, packing)
        chosen = q[:, :-1].gather(-1, actions[:, :-1, :, None]).squeeze(-1)      # [B, T, N]
        with torch.no_grad():
            target_q = (self.target_agent.unroll(inputs, steps, packing) if hs is None
                        else self.target_agent.head(*hs, inputs.shape))[:, 1:]
            if c.double_q:
                best = masked_argmax(q[:, 1:].detach(), avail_next)
                target_max = target_q.gather(-1, best[..., None]).squeeze(-1)
            else:
                target_max = target_q.masked_fill(~avail_next, float("-inf")).max(-1).values

        live = self._live_slots(mask, inputs)
        chosen = self._mix(self.mixer, chosen, state[:, :-1], live)             # [B, T] or [B, T, N]
        with torch.no_grad():
            target_max = self._mix(self.target_mixer, target_max, state[:, 1:], live)
        if self.mixer is None:  # IQL: every agent regresses on the team reward
            reward, terminated, mask = (x.unsqueeze(-1).expand_as(chosen) for x in (reward, terminated, mask))
        targets = reward + c.gamma * (1.0 - terminated) * target_max
        td = (chosen - targets.detach()) * mask
        return td, mask, chosen, targets

    def train_step(self, batch, t_env, episode=None):
        c = self.config
        td, mask, chosen, targets = self._td(batch)
        td_loss = (td ** 2).sum() / mask.sum().clamp(min=1.0)
        loss = td_loss + self.regularization(*self.networks())
        grad_norm = optimise(loss, self.optimiser, self.params, c.grad_norm_clip)

        self.train_steps += 1
        episodes = self._count_episodes(episode)
        if episodes - self.last_target_episode >= c.target_update_interval:
            self.update_targets()
            self.last_target_episode = episodes
        td, chosen, n = td.detach(), chosen.detach(), mask.sum().clamp(min=1.0)
        return {"loss": float(td_loss.detach()), "grad_norm": grad_norm, "td_error_abs": float(td.abs().sum() / n),
                "q_taken_mean": float((chosen * mask).sum() / n), "target_mean": float((targets * mask).sum() / n),
                "epsilon": self.epsilon(t_env)}

    def update_targets(self) -> None:
        hard_update(self.target_agent, self.agent)
        if self.mixer is not None:
            hard_update(self.target_mixer, self.mixer)

    def _modules(self):
        mods = {"agent": self.agent, "target_agent": self.target_agent}
        if self.mixer is not None:
            mods.update(mixer=self.mixer, target_mixer=self.target_mixer)
        return mods

    def _optimisers(self):
        return {"optimiser": self.optimiser}

    def _counters(self):
        return {**super()._counters(), "last_target_episode": self.last_target_episode}

    @torch.no_grad()
    def q_tot(self, obs, actions, state, t: int, joint_actions: torch.Tensor) -> torch.Tensor:
        """Q_tot at slot ``t`` of given histories for several joint actions (diagnostics).

        obs [B, T+1, N, O], actions [B, T+1, N] (the history up to t), state [B, T+1, S];
        joint_actions [J, N] -> [B, J]. IQL sums the utilities.
        """
        q = self.agent.unroll(agent_inputs(obs, shift_last_actions(actions), self.n_actions))[:, t]  # [B, N, A]
        b, j = q.shape[0], joint_actions.shape[0]
        picked = q[:, None].expand(b, j, -1, -1).gather(
            -1, joint_actions[None, :, :, None].expand(b, -1, -1, 1)).squeeze(-1)          # [B, J, N]
        if self.mixer is None:
            return picked.sum(-1)
        return self.mixer(picked, state[:, t, None].expand(b, j, -1))
