"""Which parameters should keep learning at deployment? The experiment behind the default trainable set.

Trains each learner once per seed on a scenario's training stage, then deploys the same trained
weights in the continual mode with several trainable sets (and frozen, for reference), and prints:

- the mean greedy test win rate before and after the shift (the harness's deploy/test curve: the same
  episodes for every set), and the online (behaviour-policy) win rate, labelled as such;
- the final greedy win rate on each deployment phase, on --eval-episodes episodes (known phases:
  retention; new phases: adaptation);
- the trainable parameter count.

    python benchmarks/continual_trainable.py --scenario shifting_spawn --algos coma --seeds 0,1,2 \\
        --train-steps 200000 --deploy-steps 150000 --eval-episodes 64 \\
        --out benchmarks/results/continual_trainable.csv

Everything is logged to MLflow (sqlite ./mlflow.db unless --tracking-uri) like any ccoma run.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import time
from pathlib import Path

SETS = {
    "frozen": None,
    "output": {"agent": ("fc2.*",), "critic": ("fc3.*",), "mixer": ("hyper_w2.2.*", "value.2.*")},
    "output+gru": {"agent": ("rnn.*", "fc2.*"), "critic": ("fc3.*",), "mixer": ("hyper_w2.2.*", "value.2.*")},
    "critic-only": {"critic": ("*",), "mixer": ("*",)},
    "all": {"agent": ("*",), "critic": ("*",), "mixer": ("*",)},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="shifting_spawn")
    ap.add_argument("--algos", default="coma,qmix")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--train-steps", type=int, default=200_000)
    ap.add_argument("--deploy-steps", type=int, default=200_000)
    ap.add_argument("--eval-episodes", type=int, default=64, help="greedy episodes per phase and per test point")
    ap.add_argument("--tracking-uri", default="")
    ap.add_argument("--out", default="benchmarks/results/continual_trainable.csv")
    args = ap.parse_args()

    from ccoma.experiment import single
    from ccoma.run_config import resolve

    base = resolve(args.scenario, "quick", train_steps=args.train_steps, deploy_steps=args.deploy_steps,
                   tracking_uri=args.tracking_uri, report=False)
    base = dataclasses.replace(base, budget=dataclasses.replace(base.budget, eval_episodes=args.eval_episodes,
                                                                test_episodes=args.eval_episodes))
    rows = []
    for algo in args.algos.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            t0 = time.time()
            trained = single(base, algo, seed, "train", echo=lambda *_: None)
            print(f"{algo} seed {seed}: trained in {time.time() - t0:.0f} s", flush=True)
            for name in args.sets.split(","):
                trainable = SETS[name]
                mode = "frozen" if trainable is None else "continual"
                cont = base.continual if trainable is None else dataclasses.replace(base.continual, trainable=trainable)
                cfg = dataclasses.replace(base, continual=cont)
                out = single(cfg, algo, seed, "deploy", mode=mode, init_from=trained["checkpoint"],
                             echo=lambda *_: None)
                res = next(iter(out["methods"].values()))
                rows.append(_row(algo, seed, name, res, cfg))
                rows[-1]["trainable_params"] = _trainable(algo, cfg, trainable)
                print("  " + ", ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _summary(rows)


def _row(algo, seed, name, res, cfg) -> dict:
    from ccoma.scenarios import load_scenario

    shift = load_scenario(cfg.scenario).rescaled(cfg.budget.train_steps, cfg.budget.deploy_steps).unseen_from
    steps, win = res["series"]["steps"], res["series"]["win_rate"]
    t_steps, t_win = res["test"]["steps"], res["test"]["win_rate"]
    final = res["evals"][-1]["win_rate"] if res["evals"] else {}
    row = {"algo": algo, "seed": seed, "set": name,
           "test_pre": _mean([w for s, w in zip(t_steps, t_win) if s <= shift]),
           "test_post": _mean([w for s, w in zip(t_steps, t_win) if s > shift]),
           "online_pre": _mean([w for s, w in zip(steps, win) if s <= shift]),
           "online_post": _mean([w for s, w in zip(steps, win) if s > shift])}
    row.update({f"final_eval_{k}": round(v, 3) for k, v in final.items()})
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}


def _trainable(algo, cfg, trainable) -> int:
    from ccoma.algos import registry
    from ccoma.continual.trainable import counts
    from ccoma.scenarios import load_scenario
    from ccoma.sim.env import SimEnv

    scn = load_scenario(cfg.scenario)
    info = SimEnv(scn.map, 1, source=scn.source("train"), compile=False).get_env_info()
    return sum(a for a, _ in counts(registry.make(algo, info).networks(), trainable).values())


def _mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def _summary(rows) -> None:
    import pandas as pd

    df = pd.DataFrame(rows)
    print("\nmean over seeds")
    print(df.drop(columns="seed").groupby(["algo", "set"], sort=False).mean().round(3).to_string())


if __name__ == "__main__":
    main()
