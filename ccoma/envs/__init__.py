"""Environment backends behind one batched interface (see :mod:`ccoma.envs.base`).

``make(backend, map_or_scenario, n_envs, seed, device, source=..., config=..., compile=...)`` builds
one; ``backend`` is ``"sim"`` (the built-in simulator) or ``"sc2"`` (StarCraft II, see docs/sc2.md).
"""
from ccoma.envs.factory import BACKENDS, DEFAULT_BACKEND, backend_of, check, describe, make

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "backend_of", "check", "describe", "make"]
