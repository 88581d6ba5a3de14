"""The backend seam: ``make(backend, ...)`` builds a :class:`~ccoma.envs.base.BatchedEnv` of either backend.

- ``sim``: the built-in batched simulator (:class:`ccoma.sim.env.SimEnv`), always available;
- ``sc2``: StarCraft II itself through ``pysc2-evolved`` (:class:`ccoma.envs.sc2.env.Sc2Env`); needs
  the ``sc2`` extra and the game (see ``ccoma doctor`` and docs/sc2.md).

Nothing here imports torch, pysc2 or protobuf at module level: ``ccoma --help`` stays instant and the
sim path never touches pysc2.
"""
from __future__ import annotations

import os

from ccoma.errors import CcomaError, ConfigError

BACKENDS = ("sim", "sc2")
DEFAULT_BACKEND = "sim"
SC2_PACKAGE = "pysc2-evolved"
# Test-only: "module:function" naming a factory ``f(config) -> controller`` that stands in for the game
# (see ccoma.envs.sc2.game). It also lets ``check`` pass without the game binary.
CONTROLLER_ENV = "CCOMA_SC2_CONTROLLER"


def package_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (without importing it), or None."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def describe(backend: str) -> str:
    """The label recorded in MLflow (tag ``ccoma.backend``, param ``backend``) and in reports."""
    if backend == "sim":
        from ccoma import SIM_NAME, SIM_VERSION

        return f"{SIM_NAME} {SIM_VERSION}"
    if backend == "sc2":
        return f"sc2 {SC2_PACKAGE} {package_version(SC2_PACKAGE) or '?'}"
    raise ConfigError("--backend", f"unknown backend '{backend}' (known: {', '.join(BACKENDS)})")


def backend_of(label: str) -> str:
    """The backend name (``sim`` or ``sc2``) of a label written by :func:`describe`."""
    from ccoma import SIM_NAME

    if not label or label.startswith(SIM_NAME) or label == "sim":
        return "sim"
    if label.split()[0] == "sc2":
        return "sc2"
    raise ConfigError("backend", f"unknown backend label '{label}'")


def check(backend: str) -> None:
    """Raise a one-line CcomaError (exit 2) when ``backend`` cannot run here; cheap, starts nothing."""
    describe(backend)  # unknown names
    if backend != "sc2":
        return
    import importlib.util

    if importlib.util.find_spec("pysc2_evolved") is None:
        raise CcomaError("--backend sc2: the StarCraft II client is not installed (pip install 'ccoma[sc2]'); "
                         "run `ccoma doctor` for the steps")
    if os.environ.get(CONTROLLER_ENV):
        return
    from ccoma.envs.sc2.install import find_game

    game = find_game()
    if game.binary is None:
        raise CcomaError(f"--backend sc2: StarCraft II was not found ({game.reason}); run `ccoma doctor` for the steps")


def _map_spec(map_or_scenario):
    """A MapSpec from a MapSpec, a Scenario (its map) or a map name/path."""
    if hasattr(map_or_scenario, "episode_limit") and hasattr(map_or_scenario, "sites"):
        return map_or_scenario
    if hasattr(map_or_scenario, "map") and hasattr(map_or_scenario, "phase_names"):
        return map_or_scenario.map
    from ccoma.sim.maps import load_map

    return load_map(map_or_scenario)


def make(backend: str, map_or_scenario, n_envs: int = 1, seed: int = 0, device="cpu", source=None,
         config=None, compile: bool = False, env_seeds=None, obs_options=None, reward_options=None):
    """A batched env of ``n_envs`` environments of ``backend`` on a map (or a scenario's map).

    ``source`` deals the episodes (default: the map's own rosters and spawns). ``config`` is a mapping of
    overrides (or the config object) of the backend: ``ccoma.sim.engine.SimConfig`` for ``sim``,
    ``ccoma.envs.sc2.config.Sc2Config`` for ``sc2``. ``compile`` only affects ``sim``. ``obs_options`` /
    ``reward_options`` (:class:`ccoma.sim.observe.ObsOptions`, :class:`ccoma.sim.reward.RewardOptions`;
    None = SMAC's defaults) are SMAC's observation and reward options, honoured alike by both backends.
    """
    from ccoma.config import build

    spec = _map_spec(map_or_scenario)
    if backend == "sim":
        from ccoma.sim.engine import SimConfig
        from ccoma.sim.env import SimEnv

        cfg = config if isinstance(config, SimConfig) else build(SimConfig, config or {}, "sim")
        return SimEnv(spec, n_envs, source=source, config=cfg, device=device, seed=seed, env_seeds=env_seeds,
                      compile=compile, obs_options=obs_options, reward_options=reward_options)
    if backend == "sc2":
        check("sc2")
        from ccoma.envs.sc2.config import Sc2Config
        from ccoma.envs.sc2.env import Sc2Env

        cfg = config if isinstance(config, Sc2Config) else build(Sc2Config, config or {}, "sc2")
        return Sc2Env(spec, n_envs, source=source, config=cfg, device=device, seed=seed, env_seeds=env_seeds,
                      obs_options=obs_options, reward_options=reward_options)
    describe(backend)  # raises: unknown backend
