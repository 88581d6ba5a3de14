"""SMAC's observation, state and available actions, computed for all environments at once.

Feature layout with SMAC's default options (obs_all_health, obs_own_health, state_last_action on;
the rest off; see :class:`ObsOptions` for each option's effect, as in SMAC's ``StarCraft2Env``):

    obs   = move(4) [| pathing(8)] [| height(9)]
            | enemies E x [can-attack, dist, dx, dy, (health, shield), type bits]
            | allies (N-1) x [visible, dist, dx, dy, (health, shield), type bits, (last action A)]
            | own [(health, shield), type bits] [| timestep]
    state = allies N x [health, cooldown, x, y, (shield), type bits]
            | enemies E x [health, x, y, (shield), type bits] [| last actions N x A] [| timestep]
            (or, with obs_instead_of_state, the N observations concatenated)

Distances and offsets are divided by the sight range (9); state positions are relative to the
arena centre and divided by the arena size. A dead agent observes zeros (the timestep excepted).

Type bits and shields come from the :class:`Layout`. ccoma's own layout (maps without a ``smac:``
block, scenario families): one bit per type of the environment's vocabulary, left out when the
vocabulary has a single type, and a shield entry for both sides when any type has shields. SMAC's
layout (a map's ``smac:`` block): ``unit_type_bits`` bits whose order differs per side (SMAC's
``get_unit_type_id``), and a shield entry only for a Protoss side.
"""
from __future__ import annotations

import dataclasses

import torch

from ccoma.sim import mechanics
from ccoma.sim.engine import Battle
from ccoma.sim.units import COL

N_PATHING, N_HEIGHT = 8, 9
FLAT_HEIGHT = 0.5  # terrain height of a flat arena (the game's value is map data we do not have)


@dataclasses.dataclass(frozen=True)
class ObsOptions:
    """SMAC's observation and state options (same names and defaults as SMAC's constructor)."""

    obs_all_health: bool = True          # health (and shield) of every unit in sight
    obs_own_health: bool = True          # own health (and shield); implied by obs_all_health
    obs_last_action: bool = False        # each visible ally's last action, one-hot
    obs_pathing_grid: bool = False       # 8 pathability bits around the agent
    obs_terrain_height: bool = False     # 9 terrain heights around and under the agent
    obs_timestep_number: bool = False    # episode step / episode limit, last
    obs_instead_of_state: bool = False   # the state is the agents' observations concatenated
    state_last_action: bool = True       # all agents' last actions, one-hot
    state_timestep_number: bool = False  # episode step / episode limit, last

    @property
    def own_health(self) -> bool:
        return self.obs_all_health or self.obs_own_health


@dataclasses.dataclass(frozen=True)
class Layout:
    """Feature sizes; fixed for an environment whatever the episode's composition.

    ``ally_bits``/``enemy_bits`` map each vocabulary index to the type bit it sets on that side
    (-1: none); empty means the identity (bit i for vocabulary type i).
    """

    n_agents: int
    n_enemies: int
    n_types: int          # number of unit-type bits (0: no type one-hot)
    ally_shield: bool
    enemy_shield: bool
    ally_bits: tuple[int, ...] = ()
    enemy_bits: tuple[int, ...] = ()
    opts: ObsOptions = ObsOptions()

    @property
    def n_actions(self) -> int:
        return 6 + self.n_enemies

    @property
    def move_feats(self) -> int:
        return 4 + N_PATHING * self.opts.obs_pathing_grid + N_HEIGHT * self.opts.obs_terrain_height

    @property
    def enemy_feats(self) -> int:
        return 4 + self.n_types + (1 + self.enemy_shield) * self.opts.obs_all_health

    @property
    def ally_feats(self) -> int:
        o = self.opts
        return 4 + self.n_types + (1 + self.ally_shield) * o.obs_all_health + self.n_actions * o.obs_last_action

    @property
    def own_feats(self) -> int:
        o = self.opts
        return self.n_types + (1 + self.ally_shield) * o.own_health + o.obs_timestep_number

    @property
    def obs_dim(self) -> int:
        return (self.move_feats + self.n_enemies * self.enemy_feats + (self.n_agents - 1) * self.ally_feats
                + self.own_feats)

    @property
    def state_dim(self) -> int:
        o = self.opts
        if o.obs_instead_of_state:
            return self.obs_dim * self.n_agents
        ally = 4 + self.ally_shield + self.n_types
        enemy = 3 + self.enemy_shield + self.n_types
        return (self.n_agents * ally + self.n_enemies * enemy + self.n_agents * self.n_actions * o.state_last_action
                + o.state_timestep_number)


def _others(n: int, device) -> torch.Tensor:
    """[n, n-1] indices of the other agents, in order, for each agent."""
    idx = torch.arange(n, device=device)
    full = idx[None, :].expand(n, n)
    mask = idx[None, :] != idx[:, None]
    return full[mask].reshape(n, n - 1)


def _bit_table(bits: tuple[int, ...], n_types: int, device) -> torch.Tensor:
    """[V, n_types] rows of type bits per vocabulary index (a zero row for -1)."""
    table = torch.zeros(len(bits), n_types, device=device)
    for v, bit in enumerate(bits):
        if bit >= 0:
            table[v, bit] = 1.0
    return table


class Observer:
    """Computes obs, state and avail for a :class:`Battle` (or a subset of its environments)."""

    def __init__(self, layout: Layout, arena: tuple[float, float], sight: float, shoot: float, device,
                 move_amount: float = 2.0, episode_limit: int = 1):
        self.L = layout
        self.arena = torch.tensor(arena, dtype=torch.float32, device=device)
        self.sight, self.shoot = sight, shoot
        self.others = _others(layout.n_agents, device)
        self.episode_limit = episode_limit
        # SMAC probes half a move away to decide whether a move is available
        m = move_amount / 2
        self.probe = torch.tensor([[0.0, m], [0.0, -m], [m, 0.0], [-m, 0.0]], device=device)
        ma = float(move_amount)
        self.around = torch.tensor([[0, 2 * ma], [0, -2 * ma], [2 * ma, 0], [-2 * ma, 0], [ma, ma], [-ma, -ma],
                                    [ma, -ma], [-ma, ma], [0, 0]], device=device)  # SMAC's surrounding points
        self.tables = None
        if layout.n_types and (layout.ally_bits or layout.enemy_bits):
            self.tables = (_bit_table(layout.ally_bits, layout.n_types, device),
                           _bit_table(layout.enemy_bits, layout.n_types, device))
        self.mech = None  # set by SimEnv: a ccoma.sim.mechanics.Mechanics (healers' bits, terrain)

    def _type_bits(self, types: torch.Tensor) -> torch.Tensor:  # [k, U] -> [k, U, n_types]
        N = self.L.n_agents
        if self.L.n_types == 0:
            return types.new_zeros(*types.shape, 0, dtype=torch.float32)
        if self.tables is None:
            return torch.nn.functional.one_hot(types, self.L.n_types).float()
        return torch.cat([self.tables[0][types[:, :N]], self.tables[1][types[:, N:]]], dim=1)

    def _inside(self, p: torch.Tensor) -> torch.Tensor:  # [..., 2] -> [...] bool
        return ((p >= 0) & (p < self.arena)).all(-1)

    def avail(self, b: Battle, idx=slice(None)) -> torch.Tensor:
        """[k, N, A] bool: SMAC's available actions."""
        N = self.L.n_agents
        pos, alive = b.pos[idx], b.alive[idx]
        a_pos, a_alive = pos[:, :N], alive[:, :N]
        d = (pos[:, None, N:] - a_pos[:, :, None]).norm(dim=-1)               # [k, N, E]
        can_attack = a_alive[..., None] & alive[:, None, N:] & (d <= self.shoot)
        probe = a_pos[:, :, None, :] + self.probe                               # [k, N, 4, 2]
        can_move = ((probe >= 0) & (probe <= self.arena)).all(-1) & a_alive[..., None]
        if self.mech is not None and self.mech.terrain is not None:  # SMAC: the pathing grid at the probe
            can_move = can_move & mechanics.passable(self.mech, probe)
        if self.mech is not None and self.mech.heal:  # a medivac's attack bits name allies (SMAC)
            can_attack = mechanics.heal_avail(b, self.shoot, idx)
        noop = ~a_alive
        return torch.cat([noop[..., None], a_alive[..., None], can_move, can_attack], dim=-1)

    def _terrain(self, a_pos: torch.Tensor) -> list[torch.Tensor]:
        """Pathing (8) and height (9) features around each agent [k, N, 2], per the options.

        The arena is SMAC's playable area: a point in it is pathable and has a flat height; a point
        outside is not pathable (as the game's grid beyond the playable area) and has height 1 (SMAC's
        out-of-bounds value).
        """
        pts = a_pos.floor()[:, :, None, :] + self.around                      # [k, N, 9, 2]
        inside = self._inside(pts)
        out = []
        if self.L.opts.obs_pathing_grid:
            pathable = inside
            mech = getattr(self, "mech", None)  # impassable terrain, when the map has some
            if mech is not None and getattr(mech, "terrain", None) is not None:
                from ccoma.sim.mechanics import passable
                pathable = inside & passable(mech, pts)
            out.append(pathable[..., :N_PATHING].float())
        if self.L.opts.obs_terrain_height:
            out.append(torch.where(inside, FLAT_HEIGHT, 1.0))
        return out

    def obs(self, b: Battle, avail: torch.Tensor, idx=slice(None), last_actions: torch.Tensor | None = None
            ) -> torch.Tensor:
        """[k, N, obs_dim] float32; ``last_actions`` [k, N] (-1: none) is needed for obs_last_action."""
        L, o = self.L, self.L.opts
        N = L.n_agents
        pos, alive, types = b.pos[idx], b.alive[idx], b.types[idx]
        stats = b.stats[idx]
        health = b.hp[idx] / stats[..., COL["hp"]]
        shield = b.shield[idx] / stats[..., COL["shield"]].clamp(min=1e-6)
        bits = self._type_bits(types)                                             # [k, U, T]
        a_pos, a_alive = pos[:, :N], alive[:, :N]

        def unit_feats(first, rel, which, with_shield: bool, visible, extra=None) -> torch.Tensor:
            dist = rel.norm(dim=-1, keepdim=True)
            parts = [first[..., None], dist / self.sight, rel / self.sight]
            if o.obs_all_health:
                parts.append(_pick(health, which)[..., None])
                if with_shield:
                    parts.append(_pick(shield, which)[..., None])
            parts.append(_pick(bits, which))
            if extra is not None:
                parts.append(extra)
            lead = rel.shape[:-1]
            parts = [p.expand(*lead, p.shape[-1]) for p in parts]
            return torch.cat(parts, dim=-1) * visible[..., None]

        # enemies: [k, N, E, F]
        rel_e = pos[:, None, N:] - a_pos[:, :, None]
        vis_e = a_alive[..., None] & alive[:, None, N:] & (rel_e.norm(dim=-1) < self.sight)
        enemy = unit_feats(avail[..., 6:].float(), rel_e, slice(N, None), L.enemy_shield, vis_e)
        # allies: [k, N, N-1, F], the others of each agent in order
        oth = self.others
        rel_a = a_pos[:, oth] - a_pos[:, :, None]
        vis_a = a_alive[..., None] & a_alive[:, oth] & (rel_a.norm(dim=-1) < self.sight)
        last = None
        if o.obs_last_action:
            last = _one_hot_actions(last_actions, L.n_actions)[:, oth]            # [k, N, N-1, A]
        ally = unit_feats(vis_a.float(), rel_a, oth, L.ally_shield, vis_a, last)
        own = []
        if o.own_health:
            own.append(health[:, :N, None])
            if L.ally_shield:
                own.append(shield[:, :N, None])
        own.append(bits[:, :N])
        k = pos.shape[0]
        parts = [avail[..., 2:6].float()] + self._terrain(a_pos)
        parts += [enemy.reshape(k, N, -1), ally.reshape(k, N, -1)] + own
        out = torch.cat(parts, dim=-1) * a_alive[..., None]
        if o.obs_timestep_number:  # SMAC appends it after zeroing a dead agent's features
            t = (b.t[idx].float() / self.episode_limit)[:, None, None].expand(k, N, 1)
            out = torch.cat([out, t], dim=-1)
        return out

    def state(self, b: Battle, last_actions: torch.Tensor, idx=slice(None), obs: torch.Tensor | None = None
              ) -> torch.Tensor:
        """[k, state_dim] float32; ``obs`` [k, N, obs_dim] is needed for obs_instead_of_state."""
        L, o = self.L, self.L.opts
        if o.obs_instead_of_state:
            return obs.reshape(obs.shape[0], -1)
        N = L.n_agents
        pos, alive, stats = b.pos[idx], b.alive[idx], b.stats[idx]
        health = b.hp[idx] / stats[..., COL["hp"]]
        shield = b.shield[idx] / stats[..., COL["shield"]].clamp(min=1e-6)
        xy = (pos - self.arena / 2) / self.arena
        bits = self._type_bits(b.types[idx])
        cd = b.cooldown[idx] / stats[..., COL["cooldown_norm"]]
        if self.mech is not None and self.mech.heal:  # SMAC: a medivac's slot holds its energy / 200
            cd = torch.where(stats[..., COL["heal"]] > 0, b.energy[idx] / stats[..., COL["cooldown_norm"]], cd)
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
        parts = [ally_t.reshape(k, -1), enemy_t.reshape(k, -1)]
        if o.state_last_action:
            parts.append(_one_hot_actions(last_actions, L.n_actions).reshape(k, -1))
        if o.state_timestep_number:
            parts.append((b.t[idx].float() / self.episode_limit)[:, None])
        return torch.cat(parts, dim=-1)


def _one_hot_actions(last_actions: torch.Tensor, n_actions: int) -> torch.Tensor:
    """[k, N] action ids (-1: none yet) -> [k, N, A] one-hot (a zero row for -1, as in SMAC)."""
    acts = torch.arange(n_actions, device=last_actions.device)
    return (last_actions[..., None] == acts).float()


def _pick(x: torch.Tensor, which) -> torch.Tensor:
    """Select units for the enemy block (a slice) or the ally block (an [N, N-1] index)."""
    if isinstance(which, slice):
        return x[:, None, which]
    return x[:, which]
