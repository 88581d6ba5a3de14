"""SMAC's ``smac.env`` module, served by the built-in simulator.

``from smac.env import MultiAgentEnv, StarCraft2Env`` becomes
``from ccoma.smac.env import MultiAgentEnv, StarCraft2Env``; nothing else changes.
"""
from ccoma.smac.env.multiagentenv import MultiAgentEnv
from ccoma.smac.env.starcraft2 import StarCraft2Env

__all__ = ["MultiAgentEnv", "StarCraft2Env"]
