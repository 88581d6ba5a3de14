"""The StarCraft II backend: B game instances behind the batched env contract (``ccoma.envs.base``).

Built SMACv2-style: an empty map, every episode's units created with debug commands where the
episode spec puts them, raw observations turned into SMAC's features by the simulator's own
observation builder. Modules: ``config`` (Sc2Config), ``install`` (finding the game and its maps),
``protocol`` (s2clientprotocol messages), ``game`` (one instance and its restarts), ``env`` (Sc2Env).
pysc2 and protobuf are imported only when a game is built.
"""
