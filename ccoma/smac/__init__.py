"""A stand-in for SMAC's package layout: ``from ccoma.smac.env import StarCraft2Env``."""
