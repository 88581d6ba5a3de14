"""SMAC's package layout on ccoma's simulator: ``from ccoma.smac.env import MultiAgentEnv, StarCraft2Env``."""
