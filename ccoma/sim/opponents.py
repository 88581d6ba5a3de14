"""The enemy's built-in AI, kept apart from the physics.

An opponent reads the battle and writes the enemies' orders (``order_kind``, ``order_target``,
``order_point`` for units N..U-1) once per agent step. The default, :class:`StickyOpponent`,
behaves as the C-COMA paper (section 5.2) describes StarCraft II's AI: attack-move toward the
agents' spawn; acquire the first agent in sight (preferring one that is attacking it, else the
nearest); keep that target until it dies, chasing it when it leaves weapon range.

Units with special mechanics (switched on by the environment's static :class:`Mechanics` flags, so
other maps pay nothing) get StarCraft II's behaviour for them: a baneling runs at the nearest agent
it sees (it re-targets every step: its attack is one explosion); a medivac heals the nearest damaged
ally it sees, else follows the nearest fighting ally; a static building (spine crawler) only targets
agents inside its weapon range, keeping one while it stays there; and no unit targets an agent its
weapon cannot reach (ground weapons against a medivac).
"""
from __future__ import annotations

import torch

from ccoma.errors import ConfigError
from ccoma.sim import mechanics
from ccoma.sim.engine import AMOVE, ATTACK, IDLE, MOVE, Battle, rows_writer
from ccoma.sim.mechanics import HEAL, NONE, Mechanics


class Opponent:
    """Base class: subclasses implement :meth:`act`; :meth:`reset` clears per-episode memory."""

    def __init__(self, n_envs: int, n_enemies: int, device: torch.device, mech: Mechanics = NONE):
        self.target = torch.full((n_envs, n_enemies), -1, dtype=torch.long, device=device)  # agent index or -1
        self.mech = mech

    def reset(self, idx: torch.Tensor) -> None:
        self.reset_with(rows_writer(idx))

    def reset_with(self, put) -> None:
        """Clear the memory of the battles ``put`` writes (``ccoma.sim.engine.rows_writer`` / ``where_writer``)."""
        self.target = put(self.target, -1)

    def act(self, b: Battle) -> None:
        raise NotImplementedError

    def _candidates(self, b: Battle) -> tuple[torch.Tensor, torch.Tensor]:
        """Distance [B, E, N] from each enemy to each agent, and which agents each enemy can see."""
        N = b.N
        d = (b.pos[:, N:, None, :] - b.pos[:, None, :N, :]).norm(dim=-1)         # [B, E, N]
        sight = b.col("sight")[:, N:]
        visible = b.alive[:, None, :N] & b.alive[:, N:, None] & (d <= sight[..., None])
        if self.mech.air:
            visible = visible & mechanics.reach(b)[:, N:, :N]
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
        if self.mech.heal:
            _medivac_orders(b)


def _special_targets(opp: Opponent, b: Battle, d: torch.Tensor, visible: torch.Tensor) -> None:
    """Banelings take the nearest agent every step; static buildings only targets in weapon range."""
    N = b.N
    if opp.mech.suicide:
        nearest = torch.where(visible, d, torch.full_like(d, float("inf"))).min(-1)
        bane = b.col("suicide")[:, N:] > 0
        opp.target = torch.where(bane, torch.where(torch.isfinite(nearest.values), nearest.indices, -1), opp.target)
    if opp.mech.static:
        r = b.col("radius")
        edge = d - r[:, N:, None] - r[:, None, :N]
        in_range = visible & (edge <= b.col("range")[:, N:, None])
        fixed = b.col("speed")[:, N:] == 0
        cur = opp.target.clamp(min=0)
        keep = (opp.target >= 0) & torch.gather(in_range, 2, cur[..., None]).squeeze(-1)
        best = torch.where(in_range, d, torch.full_like(d, float("inf"))).min(-1)
        new = torch.where(torch.isfinite(best.values), best.indices, -1)
        opp.target = torch.where(fixed & ~keep, new, opp.target)


def _medivac_orders(b: Battle) -> None:
    """Enemy healers: heal the nearest damaged ally in sight, else follow the nearest fighting ally."""
    N = b.N
    pos = b.pos[:, N:]
    d = (pos[:, :, None, :] - pos[:, None, :, :]).norm(dim=-1)                 # [B, E, E]
    ok = mechanics.heal_targets_ok(b)[:, N:, N:]
    damaged = ok & ((b.hp < b.col("hp"))[:, None, N:]) & (d <= b.col("sight")[:, N:, None])
    best = torch.where(damaged, d, torch.full_like(d, float("inf"))).min(-1)
    friend = mechanics.fighting(b)[:, None, N:].expand_as(d)
    follow = torch.where(friend, d, torch.full_like(d, float("inf"))).min(-1)
    healer = b.alive[:, N:] & (b.col("heal")[:, N:] > 0)
    heal_now = healer & torch.isfinite(best.values)
    follow_now = healer & ~heal_now & torch.isfinite(follow.values)
    kind = b.order_kind[:, N:]
    kind = torch.where(heal_now, HEAL, torch.where(follow_now, MOVE, kind))
    b.order_kind[:, N:] = kind
    b.order_target[:, N:] = torch.where(heal_now, N + best.indices, b.order_target[:, N:])
    mate = torch.gather(pos, 1, follow.indices[..., None].expand(-1, -1, 2))
    b.order_point[:, N:] = torch.where(follow_now[..., None], mate, b.order_point[:, N:])


class StickyOpponent(Opponent):
    """StarCraft II-like: keep the first target until it dies; chase it out of range."""

    def act(self, b: Battle) -> None:
        d, visible = self._candidates(b)
        cur = self.target.clamp(min=0)
        keep = (self.target >= 0) & torch.gather(b.alive[:, : b.N], 1, cur)
        new = self._pick(b, d, visible)
        self.target = torch.where(keep, self.target, new)
        _special_targets(self, b, d, visible)
        self._write_orders(b)


class NearestOpponent(Opponent):
    """Re-targets every step: the attacker of this enemy if any, else the nearest agent in sight."""

    def act(self, b: Battle) -> None:
        d, visible = self._candidates(b)
        self.target = self._pick(b, d, visible)
        _special_targets(self, b, d, visible)
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


def make_opponent(name: str, n_envs: int, n_enemies: int, device: torch.device,
                  mech: Mechanics = NONE) -> Opponent:
    if name not in OPPONENTS:
        raise ConfigError("sim.opponent", f"unknown opponent '{name}' (known: {', '.join(OPPONENTS)})")
    return OPPONENTS[name](n_envs, n_enemies, device, mech)
