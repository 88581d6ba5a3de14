"""A stand-in for the StarCraft II game (test-only): answers pysc2 controller calls with real protobufs.

It speaks the calls ``ccoma.envs.sc2.game`` makes (``create_game``, ``join_game``, ``game_info``,
``data_raw``, ``observe``, ``step``, ``actions``, ``debug``, ``quit``) and is driven by the built-in
simulator: units created with ``DebugCreateUnit`` become a ``ccoma.sim.engine.Battle``, raw commands
become the battle's orders, ``step(n)`` runs the simulator's physics and its sticky enemy AI for ``n``
game loops, and ``observe`` returns the battle as raw units (in reverse creation order, as the game
gives no order guarantee). The step that makes created units appear runs no physics, so a fresh
episode starts exactly where the simulator's starts.

Use: ``CCOMA_SC2_CONTROLLER=sc2_fake_controller:make_controller``; ``fail_at`` injects a failure.
"""
from __future__ import annotations

import torch
from s2clientprotocol import common_pb2, raw_pb2, sc2api_pb2

from ccoma.envs.sc2 import protocol
from ccoma.sim.engine import ATTACK, IDLE, MOVE, Battle, SimConfig, reset_envs, tick
from ccoma.sim.opponents import make_opponent
from ccoma.sim.units import UnitTable, load_units

N_DATA_UNITS = 2000
# sim: the physics; size: the map's. A controller raises on its own step() call number ``fail_at``.
KNOBS = {"sim": SimConfig(cooldown_jitter=False), "size": (32, 32)}
CONTROLLERS: list = []  # every controller made, for the tests to inspect


class FakeConnectionError(ConnectionError):
    """What pysc2 raises when the game's websocket dies."""


def make_controller(cfg, map_path):
    c = FakeController(cfg, map_path)
    CONTROLLERS.append(c)
    return c


class FakeController:
    def __init__(self, cfg, map_path):
        self.cfg, self.map_path = cfg, map_path
        self.names = tuple(n for n in load_units() if n in protocol.STANDARD_UNITS)
        ally, enemy = protocol.unit_ids(self.names, N_DATA_UNITS, cfg.ally_unit_ids)
        self.id_to_name = ({v: k for k, v in ally.items()}, {v: k for k, v in enemy.items()})
        self.table = UnitTable(self.names)
        self.requests: list[tuple[str, object]] = []
        self.pending: list[tuple[int, int, float, float]] = []  # (owner, type id, x, y) created, not yet there
        self.battle, self.tags, self.next_tag, self.quit_called = None, [], 1 << 32, False
        self.steps, self.fail_at = 0, None

    # ------------------------------------------------------------------------------ game setup
    def create_game(self, req):
        self.requests.append(("create_game", req))
        return sc2api_pb2.ResponseCreateGame()

    def join_game(self, req):
        self.requests.append(("join_game", req))
        return sc2api_pb2.ResponseJoinGame(player_id=1)

    def game_info(self):
        info = sc2api_pb2.ResponseGameInfo()
        info.start_raw.map_size.x, info.start_raw.map_size.y = KNOBS["size"]
        return info

    def data_raw(self):
        from s2clientprotocol import data_pb2

        return sc2api_pb2.ResponseData(units=[data_pb2.UnitTypeData(unit_id=i) for i in range(N_DATA_UNITS)])

    def quit(self):
        self.quit_called = True

    # ------------------------------------------------------------------------------- debug
    def debug(self, commands):
        self.requests.append(("debug", list(commands)))
        for c in commands:
            if c.HasField("create_unit"):
                u = c.create_unit
                assert u.quantity == 1
                self.pending.append((u.owner, u.unit_type, u.pos.x, u.pos.y))
            elif c.HasField("kill_unit"):
                dead = set(c.kill_unit.tag)
                if self.battle is not None:
                    for i, t in enumerate(self.tags):
                        if t in dead:
                            self.battle.alive[0, i] = False

    def _materialise(self) -> None:
        """Created units appear: a fresh battle, allies then enemies in creation order."""
        ally = [p for p in self.pending if p[0] == 1]
        enemy = [p for p in self.pending if p[0] == 2]
        units = ally + enemy
        names = [self.id_to_name[owner - 1][t] for owner, t, _, _ in units]
        b = Battle(1, len(ally), len(enemy), torch.device("cpu"))
        types = torch.tensor([[self.table.index[n] for n in names]])
        pos = torch.tensor([[[x, y] for _, _, x, y in units]], dtype=torch.float32)
        reset_envs(b, torch.tensor([0]), self.table.stats(), types, pos)
        self.battle, self.pending = b, []
        self.tags = [self.next_tag + 7 * k for k in range(len(units))]
        self.next_tag += 1000
        self.opponent = make_opponent(KNOBS["sim"].opponent, 1, len(enemy), torch.device("cpu"))
        self.opponent.reset(torch.tensor([0]))

    # ------------------------------------------------------------------------------ stepping
    def actions(self, req):
        self.requests.append(("actions", req))
        b = self.battle
        slot = {t: i for i, t in enumerate(self.tags)}
        b.shot_at = torch.full_like(b.shot_at, -1)
        for a in req.actions:
            c = a.action_raw.unit_command
            for tag in c.unit_tags:
                i = slot[tag]
                assert i < b.N, "a command for a unit the agents do not own"
                if c.ability_id == protocol.STOP:
                    b.order_kind[0, i] = IDLE
                elif c.ability_id == protocol.MOVE:
                    b.order_kind[0, i] = MOVE
                    b.order_point[0, i] = torch.tensor([c.target_world_space_pos.x, c.target_world_space_pos.y])
                elif c.ability_id == protocol.ATTACK:
                    b.order_kind[0, i] = ATTACK
                    b.order_target[0, i] = slot[c.target_unit_tag]
        b.order_kind[0, : b.N] = torch.where(b.alive[0, : b.N], b.order_kind[0, : b.N], IDLE)
        return sc2api_pb2.ResponseAction()

    def step(self, count=1):
        self.steps += 1
        if self.steps == self.fail_at:
            raise FakeConnectionError("Websocket timed out.")
        if self.pending:
            self._materialise()
            return sc2api_pb2.ResponseStep()
        b, cfg = self.battle, KNOBS["sim"]
        if b is None or not bool(b.alive.any()):
            return sc2api_pb2.ResponseStep()
        self.opponent.act(b)
        for sub in range(cfg.substeps):
            tick(b, cfg, count / cfg.substeps, KNOBS["size"], sub)
        b.t += 1
        return sc2api_pb2.ResponseStep()

    def observe(self):
        obs = sc2api_pb2.ResponseObservation()
        b = self.battle
        if b is None:
            return obs
        st = b.stats[0]
        from ccoma.sim.units import COL

        for i in reversed(range(b.U)):
            if not bool(b.alive[0, i]):
                continue
            owner = 1 if i < b.N else 2
            name = self.names[int(b.types[0, i])]
            ids = {v: k for k, v in self.id_to_name[owner - 1].items()}
            target = int(b.shot_at[0, i])
            obs.observation.raw_data.units.append(raw_pb2.Unit(
                tag=self.tags[i], unit_type=ids[name], owner=owner,
                pos=common_pb2.Point(x=float(b.pos[0, i, 0]), y=float(b.pos[0, i, 1]), z=0.0),
                health=float(b.hp[0, i]), health_max=float(st[i, COL["hp"]]), shield=float(b.shield[0, i]),
                shield_max=float(st[i, COL["shield"]]), weapon_cooldown=float(b.cooldown[0, i]),
                engaged_target_tag=self.tags[target] if target >= 0 else 0))
        return obs
