"""Does a learner's curve depend on where the episodes come from? learn_static's loop on a map's own
episodes (``SimEnv.from_map``) or on a scenario's training source, side by side.

    python benchmarks/learn_source.py map qmix 0                 # the map's own formation (2s3z)
    python benchmarks/learn_source.py 2s3z qmix 0                # the 2s3z scenario's training source
    python benchmarks/learn_source.py path/to/scenario.yaml qmix 0
    python benchmarks/learn_source.py map qmix 0 out.csv         # also the curve as learn_static.py's CSV rows
    python benchmarks/learn_source.py 2s3z coma 0 out.csv reset  # every env reset after each test, as a job's
                                                                 # checkpoint barriers do (also: save, both)

The same learner, replay (the paper budget's 5,000 episodes), ``Rollout`` and greedy ``evaluate`` as
``benchmarks/learn_static.py``, 32 compiled environments, one thread, ``--fused-gru``'s unroll, 1M
steps; a greedy test of 32 episodes every 50K steps on a separate environment of the same source.
Session 34 used it to tell the harness from the task: the 2s3z scenario's random lattice formations
were harder than the map's own (docs/throughput.md, *Learning, shown through the harness*).
"""
import csv
import sys

import torch

from ccoma import checkpoint as ckpt
from ccoma.algos import fused_gru, registry
from ccoma.allocator import keep_freed_memory
from ccoma.data.buffer import buffer_for
from ccoma.data.rollout import Rollout, evaluate
from ccoma.scenarios import load_scenario
from ccoma.sim.env import SimEnv


def main(argv) -> int:
    source, algo, seed = argv[0], argv[1], int(argv[2])
    barrier = argv[4] if len(argv) > 4 else "none"   # after every test, as a job's 20 barriers per 1M do
    if barrier not in ("none", "reset", "save", "both"):
        raise SystemExit(f"barrier should be none, reset, save or both, got {barrier!r}")
    keep_freed_memory()
    torch.set_num_threads(1)
    fused_gru.set_fused(True)
    torch.manual_seed(seed)
    if source == "map":
        env = SimEnv.from_map("2s3z", n_envs=32, seed=seed, compile=True)
        ev = SimEnv.from_map("2s3z", n_envs=32, seed=10_000 + seed)
    else:
        scn = load_scenario(source)
        env = SimEnv(scn.map, 32, source=scn.source("train", seed=seed), seed=seed, compile=True)
        ev = SimEnv(scn.map, 32, source=scn.source("train", seed=10_000 + seed), seed=10_000 + seed)
    learner = registry.make(algo, env.get_env_info(), "cpu")
    rollout = Rollout(env, learner, buffer_for(learner, env.n_agents, env.episode_limit, 5000, 32, "cpu"))
    curve = []
    while rollout.t_env < 1_000_000:
        rollout.run(50_000)
        curve.append(float(evaluate(ev, learner, 32)["won"].float().mean()))
        print(source, algo, seed, rollout.t_env, f"{curve[-1]:.2f}", flush=True)
        if barrier in ("reset", "both"):   # what a job's checkpoint barrier does to the run: every env restarts
            rollout.reset()
        if barrier in ("save", "both"):    # and what it reads: the learner's and the buffer's state
            learner.state_dict()
            ckpt.buffer_state(rollout.buffer)
    print("CURVE", source, algo, seed, " ".join(f"{w:.2f}" for w in curve))
    if len(argv) > 3:   # the test steps as the harness counts them (50K, 100K, ...): learning_check --against
        with open(argv[3], "w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["algo", "seed", "source", "t_env", "eval_win_rate"])
            out.writerows([algo, seed, source, 50_000 * (i + 1), f"{w:.4f}"] for i, w in enumerate(curve))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
