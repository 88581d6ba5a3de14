"""ccoma: a continual-learning evaluation harness for cooperative multi-agent RL.

Heavy libraries (torch, mlflow, pandas, seaborn, ray, avalanche) are imported lazily
inside the modules that need them, so ``import ccoma`` and ``ccoma --help`` stay instant.
"""

__version__ = "0.1.0"
SIM_NAME = "ccoma-sim"
SIM_VERSION = "1.0"
