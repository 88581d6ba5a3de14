"""SMAC's observation, state and available actions, computed for all environments at once.

Feature layout (SMAC defaults: obs_all_health, obs_own_health, state_last_action on; obs_last_action,
obs_pathing_grid, obs_terrain_height, state_timestep_number off):

    obs   = move(4) | enemies E x [can-attack, dist, dx, dy, health, (shield), type one-hot]
                    | allies (N-1) x [visible, dist, dx, dy, health, (shield), type one-hot]
                    | own [health, (shield), type one-hot]
    state = allies N x [health, cooldown, x, y, (shield), type one-hot]
            | enemies E x [health, x, y, (shield), type one-hot] | last actions N x A

Distances and offsets are divided by the sight range (9); state positions are relative to the
arena centre and divided by the arena size. The type one-hot covers the environment's unit
vocabulary and is left out when the vocabulary has a single type (as SMAC does); the shield entry
is present for a side when any type that side can field has shields. A dead agent observes zeros.
"""
from __future__ import annotations

import dataclasses

import torch

from ccoma.sim import mechanics
from ccoma.sim.engine import Battle
from ccoma.sim.units import COL


@dataclasses.dataclass(frozen=True)
class Layout:
    """Feature sizes; fixed for an environment whatever the episode's composition."""

    n_agents: int
    n_enemies: int
    n_types: int          # size of the unit-type one-hot (0 when the vocabulary has one type)
    ally_shield: bool
    enemy_shield: bool

    @property
    def n_actions(self) -> int:
        return 6 + self.n_enemies

    @property
    def enemy_feats(self) -> int:
        return 5 + self.enemy_shield + self.n_types

    @property
    def ally_feats(self) -> int:
        return 5 + self.ally_shield + self.n_types

    @property
    def own_feats(self) -> int:
        return 1 + self.ally_shield + self.n_types

    @property
    def obs_dim(self) -> int:
        return 4 + self.n_enemies * self.enemy_feats + (self.n_agents - 1) * self.ally_feats + self.own_feats

    @property
    def state_dim(self) -> int:
        ally = 4 + self.ally_shield + self.n_types
        enemy = 3 + self.enemy_shield + self.n_types
        return self.n_agents * ally + self.n_enemies * enemy + self.n_agents * self.n_actions


def _others(n: int, device) -> torch.Tensor:
    """[n, n-1] indices of the other agents, in order, for each agent."""
    idx = torch.arange(n, device=device)
    full = idx[None, :].expand(n, n)
    mask = idx[None, :] != idx[:, None]
    return full[mask].reshape(n, n - 1)


class Observer:
    """Computes obs, state and avail for a :class:`Battle` (or a subset of its environments)."""

    def __init__(self, layout: Layout, arena: tuple[float, float], sight: float, shoot: float, device):
        self.L = layout
        self.arena = torch.tensor(arena, dtype=torch.float32, device=device)
        self.sight, self.shoot = sight, shoot
        self.others = _others(layout.n_agents, device)
        self.mech = None  # set by SimEnv: a ccoma.sim.mechanics.Mechanics (healers' bits, terrain)

    def _type_bits(self, types: torch.Tensor) -> torch.Tensor:  # [..., U] -> [..., U, n_types]
        if self.L.n_types == 0:
            return types.new_zeros(*types.shape, 0, dtype=torch.float32)
        return torch.nn.functional.one_hot(types, self.L.n_types).float()

    def avail(self, b: Battle, idx=slice(None)) -> torch.Tensor:
        """[k, N, A] bool: SMAC's available actions."""
        N = self.L.n_agents
        pos, alive = b.pos[idx], b.alive[idx]
        a_pos, a_alive = pos[:, :N], alive[:, :N]
        d = (pos[:, None, N:] - a_pos[:, :, None]).norm(dim=-1)               # [k, N, E]
        can_attack = a_alive[..., None] & alive[:, None, N:] & (d <= self.shoot)
        step = torch.tensor([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]], device=pos.device)
        probe = a_pos[:, :, None, :] + step                                     # [k, N, 4, 2]
        can_move = ((probe >= 0) & (probe <= self.arena)).all(-1) & a_alive[..., None]
        if self.mech is not None and self.mech.terrain is not None:  # SMAC: the pathing grid at the probe
            can_move = can_move & mechanics.passable(self.mech, probe)
        if self.mech is not None and self.mech.heal:  # a medivac's attack bits name allies (SMAC)
            can_attack = mechanics.heal_avail(b, self.shoot, idx)
        noop = ~a_alive
        return torch.cat([noop[..., None], a_alive[..., None], can_move, can_attack], dim=-1)

    def obs(self, b: Battle, avail: torch.Tensor, idx=slice(None)) -> torch.Tensor:
        """[k, N, obs_dim] float32."""
        L = self.L
        N = L.n_agents
        pos, alive, types = b.pos[idx], b.alive[idx], b.types[idx]
        stats = b.stats[idx]
        health = b.hp[idx] / stats[..., COL["hp"]]
        shield = b.shield[idx] / stats[..., COL["shield"]].clamp(min=1e-6)
        bits = self._type_bits(types)                                             # [k, U, T]
        a_pos, a_alive = pos[:, :N], alive[:, :N]

        def unit_feats(first: torch.Tensor, rel: torch.Tensor, which: slice | torch.Tensor, with_shield: bool,
                       visible: torch.Tensor) -> torch.Tensor:
            dist = rel.norm(dim=-1, keepdim=True)
            parts = [first[..., None], dist / self.sight, rel / self.sight, _pick(health, which)[..., None]]
            if with_shield:
                parts.append(_pick(shield, which)[..., None])
            parts.append(_pick(bits, which))
            lead = rel.shape[:-1]
            parts = [p.expand(*lead, p.shape[-1]) for p in parts]
            return torch.cat(parts, dim=-1) * visible[..., None]

        # enemies: [k, N, E, F]
        rel_e = pos[:, None, N:] - a_pos[:, :, None]
        vis_e = a_alive[..., None] & alive[:, None, N:] & (rel_e.norm(dim=-1) < self.sight)
        enemy = unit_feats(avail[..., 6:].float(), rel_e, slice(N, None), L.enemy_shield, vis_e)
        # allies: [k, N, N-1, F], the others of each agent in order
        o = self.others
        rel_a = a_pos[:, o] - a_pos[:, :, None]
        vis_a = a_alive[..., None] & a_alive[:, o] & (rel_a.norm(dim=-1) < self.sight)
        ally = unit_feats(vis_a.float(), rel_a, o, L.ally_shield, vis_a)
        own = [health[:, :N, None]]
        if L.ally_shield:
            own.append(shield[:, :N, None])
        own.append(bits[:, :N])
        move = avail[..., 2:6].float()
        k = pos.shape[0]
        out = torch.cat([move, enemy.reshape(k, N, -1), ally.reshape(k, N, -1), torch.cat(own, -1)], dim=-1)
        return out * a_alive[..., None]

    def state(self, b: Battle, last_actions: torch.Tensor, idx=slice(None)) -> torch.Tensor:
        """[k, state_dim] float32."""
        L = self.L
        N = L.n_agents
        pos, alive, stats = b.pos[idx], b.alive[idx], b.stats[idx]
        health = b.hp[idx] / stats[..., COL["hp"]]
        shield = b.shield[idx] / stats[..., COL["shield"]].clamp(min=1e-6)
        xy = (pos - self.arena / 2) / self.arena
        bits = self._type_bits(b.types[idx])
        cd = b.cooldown[idx] / stats[..., COL["cooldown_norm"]]
        ally = [health[:, :N, None], cd[:, :N, None], xy[:, :N]]
        if L.ally_shield:
            ally.append(shield[:, :N, None])
        ally.append(bits[:, :N])
        enemy = [health[:, N:, None], xy[:, N:]]
        if L.enemy_shield:
            enemy.append(shield[:, N:, None])
        enemy.append(bits[:, N:])
        ally_t = torch.cat(ally, -1) * alive[:, :N, None]
        enemy_t = torch.cat(enemy, -1) * alive[:, N:, None]
        k = pos.shape[0]
        acts = torch.arange(L.n_actions, device=last_actions.device)
        last = (last_actions[..., None] == acts).float().reshape(k, -1)  # -1 (none yet) -> zero row
        return torch.cat([ally_t.reshape(k, -1), enemy_t.reshape(k, -1), last], dim=-1)


def _pick(x: torch.Tensor, which) -> torch.Tensor:
    """Select units for the enemy block (a slice) or the ally block (an [N, N-1] index)."""
    if isinstance(which, slice):
        return x[:, None, which]
    return x[:, which]
