"""Environment backends behind one batched interface (see :mod:`ccoma.envs.base`)."""
