"""One StarCraft II instance: start it, create an episode's units, step it, and restart it when it dies.

The controller is pysc2's ``RemoteController`` (``create_game``, ``join_game``, ``game_info``,
``data_raw``, ``observe``, ``step``, ``actions``, ``debug``, ``quit``). Tests replace the game with a
stand-in that answers the same calls: the environment variable ``CCOMA_SC2_CONTROLLER=module:function``
(test-only) names a function ``f(config: Sc2Config, map_path: str) -> controller`` used instead of
launching the binary.
"""
from __future__ import annotations

import importlib
import os

import numpy as np

from ccoma.envs.factory import CONTROLLER_ENV
from ccoma.envs.sc2 import protocol
from ccoma.envs.sc2.config import Sc2Config
from ccoma.errors import CcomaError


class GameFailure(RuntimeError):
    """The game did not answer, answered an error, or did not do what was asked (units never appeared)."""


def _launch_real(cfg: Sc2Config, map_path: str):
    """Start the binary through pysc2's run config; returns (controller, process)."""
    from pysc2_evolved import run_configs

    run_config = run_configs.get(version=cfg.game_version or None)
    proc = run_config.start(want_rgb=False, timeout_seconds=cfg.timeout_s)
    return proc.controller, proc, run_config


def controller_factory():
    """The test-only stand-in named by ``$CCOMA_SC2_CONTROLLER``, or None for the real game."""
    name = os.environ.get(CONTROLLER_ENV)
    if not name:
        return None
    module, _, attr = name.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise CcomaError(f"{CONTROLLER_ENV}={name}: cannot load the controller factory ({exc})") from None


class Sc2Game:
    """One game instance with the slots (unit tags) of its current episode."""

    def __init__(self, cfg: Sc2Config, map_path: str, ally_race: str, enemy_race: str, seed: int):
        self.cfg, self.map_path, self.seed = cfg, map_path, seed
        self.races = (protocol.RACES[ally_race], protocol.RACES[enemy_race])
        self.controller = self.proc = None
        self.obs = None
        self.n_data_units = 0
        self.map_size = (0.0, 0.0)
        self.restarts = 0

    # ------------------------------------------------------------------------------ lifecycle
    def launch(self) -> None:
        """Start (or restart) the game: create it, join as player 1 against the built-in AI, observe."""
        self.close()
        _, _, _, sc2api = protocol.pb()
        fake = controller_factory()
        try:
            if fake is not None:
                self.controller, run_config = fake(self.cfg, self.map_path), None
                map_data = b""
            else:
                self.controller, self.proc, run_config = _launch_real(self.cfg, self.map_path)
                try:
                    map_data = run_config.map_data(self.map_path)
                except ValueError as exc:  # a missing map is not transient: no restart will find it
                    self.close()
                    raise CcomaError(f"sc2: {exc}; run `ccoma doctor` for the steps to install the maps") from None
            create = sc2api.RequestCreateGame(local_map=sc2api.LocalMap(map_path=self.map_path, map_data=map_data),
                                              realtime=False, random_seed=self.seed)
            create.player_setup.add(type=sc2api.Participant)
            create.player_setup.add(type=sc2api.Computer, race=self.races[1], difficulty=self.cfg.difficulty)
            self.controller.create_game(create)
            self.controller.join_game(sc2api.RequestJoinGame(
                race=self.races[0], options=sc2api.InterfaceOptions(raw=True, score=False)))
            info = self.controller.game_info()
            self.map_size = (float(info.start_raw.map_size.x), float(info.start_raw.map_size.y))
            self.n_data_units = len(self.controller.data_raw().units)
            self.obs = self.controller.observe()
        except CcomaError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the game or its socket raised
            self.close()
            raise GameFailure(f"StarCraft II did not start: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Quit the game and end its process; never raises (the process may already be gone)."""
        for thing, method in ((self.controller, "quit"), (self.proc, "close")):
            if thing is not None:
                try:
                    getattr(thing, method)()
                except Exception:  # noqa: BLE001 - a dead game cannot be quit politely
                    pass
        self.controller = self.proc = None

    def restart(self) -> None:
        self.restarts += 1
        self.launch()

    # ------------------------------------------------------------------------------- episodes
    def _units(self):
        return self.obs.observation.raw_data.units

    def _advance(self, loops: int) -> None:
        self.controller.step(loops)
        self.obs = self.controller.observe()
        if self.obs.player_result:  # the map ended the game: it cannot host further episodes
            raise GameFailure("the game ended (player_result set); SMAC maps never end by themselves")

    def spawn(self, ally_types: list[int], enemy_types: list[int], ally_pos: np.ndarray,
              enemy_pos: np.ndarray) -> np.ndarray:
        """Remove every unit, create this episode's, and return their tags [N + E] in slot order."""
        try:
            return self._spawn(ally_types, enemy_types, ally_pos, enemy_pos)
        except GameFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the game or its socket raised
            raise GameFailure(f"{type(exc).__name__}: {exc}") from exc

    def _spawn(self, ally_types, enemy_types, ally_pos, enemy_pos) -> np.ndarray:
        tags = [u.tag for u in self._units()]
        if tags:
            self.controller.debug([protocol.kill_command(tags)])
        waited = 0
        while len(self._units()) and waited < self.cfg.spawn_wait_loops:
            self._advance(2)
            waited += 2
        if len(self._units()):
            raise GameFailure("units killed with DebugKillUnit did not vanish")
        cmds = protocol.create_commands(ally_types, 1, ally_pos) + protocol.create_commands(enemy_types, 2, enemy_pos)
        self.controller.debug(cmds)
        for _ in range(self.cfg.spawn_wait_loops):
            self._advance(1)
            ally = protocol.match_slots(self._units(), 1, ally_types, ally_pos)
            enemy = protocol.match_slots(self._units(), 2, enemy_types, enemy_pos)
            if ally is not None and enemy is not None:
                return np.concatenate([ally, enemy])
        raise GameFailure("units created with DebugCreateUnit did not appear")

    def step(self, request) -> None:
        """Send the agents' commands and advance ``step_mul`` game loops."""
        self.controller.actions(request)
        self._advance(self.cfg.step_mul)
