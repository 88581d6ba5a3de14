"""The enemy's built-in AI, kept apart from the physics.

An opponent reads the battle and writes the enemies' orders (``order_kind``, ``order_target``,
``order_point`` for units N..U-1) once per agent step. The default, :class:`StickyOpponent`,
behaves as the C-COMA paper (section 5.2) describes StarCraft II's AI: attack-move toward the
agents' spawn; acquire the first agent in sight (preferring one that is attacking it, else the
nearest); keep that target until it dies, chasing it when it leaves weapon range.
"""
from __future__ import annotations

import torch

from ccoma.errors import ConfigError
from ccoma.sim.engine import AMOVE, ATTACK, IDLE, MOVE, Battle


class Opponent:
    """Base class: subclasses implement :meth:`act`; :meth:`reset` clears per-episode memory."""

    def __init__(self, n_envs: int, n_enemies: int, device: torch.device):
        self.target = torch.full((n_envs, n_enemies), -1, dtype=torch.long, device=device)  # agent index or -1

    def reset(self, idx: torch.Tensor) -> None:
        self.target[idx] = -1

    def act(self, b: Battle) -> None:
        raise NotImplementedError

    def _candidates(self, b: Battle) -> tuple[torch.Tensor, torch.Tensor]:
        """Distance [B, E, N] from each enemy to each agent, and which agents each enemy can see."""
        N = b.N
        d = (b.pos[:, N:, None, :] - b.pos[:, None, :N, :]).norm(dim=-1)         # [B, E, N]
        sight = b.col("sight")[:, N:]
        visible = b.alive[:, None, :N] & b.alive[:, N:, None] & (d <= sight[..., None])
        return d, visible

    def _attacking_me(self, b: Battle) -> torch.Tensor:
        """[B, E, N]: agent n has an attack order on enemy e."""
        N = b.N
        e_idx = torch.arange(N, b.U, device=b.device)
        return (b.order_kind[:, None, :N] == ATTACK) & (b.order_target[:, None, :N] == e_idx[None, :, None])

    def _pick(self, b: Battle, d: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
        """Among allowed agents ``ok`` [B, E, N], prefer one attacking the enemy, then the nearest."""
        score = d - 1000.0 * self._attacking_me(b).float()
        score = torch.where(ok, score, torch.full_like(score, float("inf")))
        best, idx = score.min(dim=-1)
        return torch.where(torch.isfinite(best), idx, torch.full_like(idx, -1))

    def _write_orders(self, b: Battle) -> None:
        N = b.N
        has = self.target >= 0
        b.order_kind[:, N:] = torch.where(b.alive[:, N:], torch.where(has, ATTACK, AMOVE), IDLE)
        b.order_target[:, N:] = self.target.clamp(min=0)
        b.order_point[:, N:] = b.rally[:, None, :].expand(-1, b.E, -1)


class StickyOpponent(Opponent):
    """StarCraft II-like: keep the first target until it dies; chase it out of range."""

    def act(self, b: Battle) -> None:
        d, visible = self._candidates(b)
        cur = self.target.clamp(min=0)
        keep = (self.target >= 0) & torch.gather(b.alive[:, : b.N], 1, cur)
        new = self._pick(b, d, visible)
        self.target = torch.where(keep, self.target, new)
        self._write_orders(b)


class NearestOpponent(Opponent):
    """Re-targets every step: the attacker of this enemy if any, else the nearest agent in sight."""

    def act(self, b: Battle) -> None:
        d, visible = self._candidates(b)
        self.target = self._pick(b, d, visible)
        self._write_orders(b)


class HoldOpponent(Opponent):
    """Stands still and fires at whatever comes into weapon range (for tests and duels)."""

    def act(self, b: Battle) -> None:
        N = b.N
        b.order_kind[:, N:] = IDLE


class PassiveOpponent(Opponent):
    """Never fires and never moves: a target dummy for duels and damage checks."""

    def act(self, b: Battle) -> None:
        N = b.N
        b.order_kind[:, N:] = MOVE            # a unit under a move order never fires
        b.order_point[:, N:] = b.pos[:, N:]   # ... and it is already where it is going


OPPONENTS = {"sticky": StickyOpponent, "nearest": NearestOpponent, "hold": HoldOpponent,
             "passive": PassiveOpponent}


def make_opponent(name: str, n_envs: int, n_enemies: int, device: torch.device) -> Opponent:
    if name not in OPPONENTS:
        raise ConfigError("sim.opponent", f"unknown opponent '{name}' (known: {', '.join(OPPONENTS)})")
    return OPPONENTS[name](n_envs, n_enemies, device)
