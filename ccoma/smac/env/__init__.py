"""SMAC's ``smac.env`` module, served by the built-in simulator."""
from ccoma.sim.env import StarCraft2Env

__all__ = ["StarCraft2Env"]
