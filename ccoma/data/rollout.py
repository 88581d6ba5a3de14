"""Batched rollouts: step a :class:`~ccoma.envs.base.BatchedEnv` with a learner's policy.

Environments finish at different times, so each keeps its own time index; every step writes one
slot per environment with a tensor scatter, and when an environment's episode ends its row (with
the final obs/state/avail from ``StepOut`` in the slot after the last step, which is what a
truncated episode bootstraps from) is pushed into the buffer and the row is cleared.

Step counting: ``t_env`` counts environment steps summed over the batch (pymarl's convention):
one batched step of B environments adds B.
"""
from __future__ import annotations

import torch

from ccoma.data.buffer import EpisodeBuffer, allocate

STAT_KEYS = ("won", "return", "length", "phase", "unseen")


def empty_stats(device=None) -> dict[str, torch.Tensor]:
    return {"won": torch.zeros(0, dtype=torch.bool, device=device), "return": torch.zeros(0, device=device),
            "length": torch.zeros(0, dtype=torch.int64, device=device),
            "phase": torch.zeros(0, dtype=torch.int64, device=device),
            "unseen": torch.zeros(0, dtype=torch.bool, device=device)}


def cat_stats(parts: list[dict]) -> dict[str, torch.Tensor]:
    """Concatenate per-step finished-episode stats (each a dict of [k] tensors)."""
    if not parts:
        return empty_stats()
    return {k: torch.cat([p[k] for p in parts]) for k in STAT_KEYS}


class Rollout:
    """Keeps B episodes running across calls and writes finished ones into ``buffer``."""

    def __init__(self, env, learner, buffer: EpisodeBuffer | None = None, mode: str = "explore", threads: int = 1):
        self.env, self.learner, self.buffer, self.mode = env, learner, buffer, mode
        self.threads = threads  # torch threads for learner updates (acting stays on the caller's count)
        self.n_envs, self.n_agents = env.n_envs, env.n_agents
        self.device = torch.device(env.device)
        self.scheme = learner.scheme()
        self.t_env = 0        # env steps summed over the batch
        self.schedule_t: int | None = None   # fixed exploration step (deployment); None: follow t_env
        self.episodes = 0     # finished episodes
        self._rows = torch.arange(self.n_envs, device=self.device)
        self.store = allocate(self.scheme, self.n_envs, env.episode_limit + 1, self.n_agents, self.device)
        self.reset()

    def reset(self) -> None:
        """Start every environment afresh (running episodes are dropped, not stored)."""
        self.env.reset()
        for v in self.store.values():
            v.zero_()
        self.t = torch.zeros(self.n_envs, dtype=torch.int64, device=self.device)
        self.hidden = self.learner.init_hidden(self.n_envs)
        self.last_actions = torch.full((self.n_envs, self.n_agents), -1, dtype=torch.int64,
                                       device=self.learner.device)
        self._obs, self._state, self._avail = self.env.get_obs(), self.env.get_state(), self.env.get_avail_actions()
        self.pending = 0  # finished episodes not yet paid for by an update (dropped episodes owe nothing)
        self.finished = None  # [k] rows whose episode finished (and counts) in the last step

    @property
    def schedule_step(self) -> int:
        """The step the learner's exploration schedule is read at."""
        return self.t_env if self.schedule_t is None else self.schedule_t

    def _write(self, rows: torch.Tensor, t: torch.Tensor, values: dict) -> None:
        for name, value in values.items():
            if name in self.store:
                self.store[name][rows, t] = value.to(self.store[name].dtype)

    def step(self) -> dict[str, torch.Tensor]:
        """One batched step; returns the stats of episodes that finished in it ([k] each)."""
        learner = self.learner
        obs, avail = learner.to_device(self._obs), learner.to_device(self._avail)
        actions, self.hidden = learner.act(obs, avail, self.last_actions, self.hidden, self.schedule_step, self.mode)
        env_actions = actions.to(self.device)
        if self.buffer is not None:
            self._write(self._rows, self.t, {"obs": self._obs, "state": self._state,
                                             "avail": self._avail, "actions": env_actions})
        out = self.env.step(env_actions)
        done = out.done
        if self.buffer is not None:
            self._write(self._rows, self.t, {"reward": out.reward, "terminated": out.terminated,
                                             "filled": torch.ones_like(done)})
        self.t = self.t + 1
        self.t_env += self.n_envs
        self.last_actions = actions.clone()  # reset rows are edited in place below
        stats = None
        self.finished = None
        if bool(done.any()):
            stats = self._finish(done, out)
        self._obs, self._state, self._avail = self.env.get_obs(), self.env.get_state(), self.env.get_avail_actions()
        return stats if stats is not None else empty_stats(self.device)

    def _finish(self, done: torch.Tensor, out) -> dict[str, torch.Tensor]:
        """Close the episodes of ``done`` envs: final slot, push to the buffer, reset their rows."""
        rows = done.nonzero().squeeze(1)
        dropped = getattr(out, "dropped", None)
        kept = rows if dropped is None else rows[~dropped[rows]]  # cut short by a backend failure: not data
        self.finished = kept
        if self.buffer is not None and kept.numel():
            # The final (pre-reset) observation goes in the slot after the last step.
            self._write(kept, self.t[kept], {"obs": out.obs[kept], "state": out.state[kept],
                                             "avail": out.avail[kept]})
            # rows are zeroed at reset and after every episode, so all after the final slot is zero
            self.buffer.insert({k: v[kept] for k, v in self.store.items()}, zero_padded=True)
        if self.buffer is not None:
            for v in self.store.values():
                v[rows] = 0
        self.t[rows] = 0
        learner_rows = rows.to(self.learner.device)
        self.hidden[learner_rows] = 0
        self.last_actions[learner_rows] = -1
        self.episodes += int(kept.numel())
        return {"won": out.won[kept], "return": out.episode_return[kept], "length": out.episode_length[kept],
                "phase": out.phase[kept], "unseen": out.unseen[kept]}

    def collect(self, n_steps: int) -> dict[str, torch.Tensor]:
        """Run ``n_steps`` batched steps (n_steps * B env steps); stats of finished episodes."""
        return cat_stats([self.step() for _ in range(n_steps)])

    def run(self, env_steps: int, learn: bool = True, batch_size: int | None = None,
            episodes_per_update: int | None = None, on_train=None) -> dict[str, torch.Tensor]:
        """Collect at least ``env_steps`` env steps, training as the learner's data regime says.

        Replay learners train every ``episodes_per_update`` finished episodes on ``batch_size`` episodes
        sampled from the buffer. On-policy learners (``learner.on_policy``) train once at least
        ``batch_size`` new episodes are in, on exactly the episodes finished since their last update.
        Defaults come from the learner's config. ``on_train(info, t_env)`` sees every update's losses.
        Finished episodes not yet used for an update carry over to the next call (``reset`` clears
        them). The episode count handed to the learner (for episode-based target updates) is the
        learner's own tally of episodes paid for by updates, so it is part of the learner's state and
        continues across stages and checkpoint resumes.
        """
        from ccoma.algos.base import flushed_denormals, update_threads

        cfg = self.learner.config
        batch_size = batch_size or cfg.batch_size
        per_update = episodes_per_update or cfg.episodes_per_update
        on_policy = getattr(self.learner, "on_policy", False)
        parts, target = [], self.t_env + env_steps
        while self.t_env < target:
            stats = self.step()
            if stats["won"].numel():
                parts.append(stats)
                self.pending += stats["won"].numel()
            while learn and self.buffer is not None:
                if on_policy:  # every episode since the last update, once; nothing older
                    if self.pending < batch_size:
                        break
                    used, self.pending = min(self.pending, len(self.buffer)), 0
                    batch = self.buffer.latest(used, device=self.learner.device)
                else:
                    if self.pending < per_update or not self.buffer.can_sample(batch_size):
                        break
                    used, self.pending = per_update, self.pending - per_update
                    batch = self.buffer.sample(batch_size, device=self.learner.device)
                episode = self.learner.episodes_seen + used
                # subnormals in optimiser state are slow on x86; updates may use more threads than acting
                with flushed_denormals(), update_threads(self.threads):
                    info = self.learner.train_step(batch, self.schedule_step, episode=episode)
                if on_train is not None:
                    on_train(info, self.t_env)
        return cat_stats(parts)


def evaluate(env, learner, n_episodes: int, mode: str = "greedy") -> dict[str, torch.Tensor]:
    """Play ``n_episodes`` episodes with the greedy policy (no buffer writes, no learning).

    Each environment contributes its first ``ceil(n / B)`` episodes, so short episodes are not
    over-represented; ``env`` is reset first (use a separate env from the training one).
    """
    rollout = Rollout(env, learner, buffer=None, mode=mode)
    per_env = -(-n_episodes // env.n_envs)
    count = torch.zeros(env.n_envs, dtype=torch.int64, device=rollout.device)
    parts = []
    with torch.no_grad():
        while bool((count < per_env).any()):
            stats = rollout.step()
            done_rows = rollout.finished  # just finished (dropped episodes left out), in stats' order
            if done_rows is not None and done_rows.numel():
                keep = count[done_rows] < per_env
                parts.append({k: v[keep] for k, v in stats.items()})
                count[done_rows] += 1
    stats = cat_stats(parts)
    return {k: v[:n_episodes] for k, v in stats.items()}
