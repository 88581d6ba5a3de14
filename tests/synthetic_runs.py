"""Realistic-looking ``evaluate`` runs logged through ccoma.tracking, for report tests.

The curves follow the paper's reported shape (everything drops at the shift; continual methods
recover, C-COMA to about 0.6, C-QMIX near 0.1, C-VDN flat), with per-seed noise and per-seed step
jitter (parallel environments make logging steps differ a little between runs). A stand-in for a
real smoke-budget ``ccoma evaluate`` until the harness exists.
"""
from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np

# method -> (algo, mode, pre-shift win rate, post-shift floor, final level after recovery)
SHAPES = {
    "c-coma": ("coma", "continual", 0.80, 0.20, 0.60),
    "coma": ("coma", "frozen", 0.78, 0.18, 0.18),
    "qmix": ("qmix", "frozen", 0.85, 0.12, 0.12),
    "vdn": ("vdn", "frozen", 0.70, 0.08, 0.08),
    "c-qmix": ("qmix", "continual", 0.82, 0.05, 0.10),
    "c-vdn": ("vdn", "continual", 0.68, 0.08, 0.08),
}
PHASES = ("seen_mix", "unseen_spawn")


@dataclasses.dataclass
class LoggedRuns:
    uri: str
    scenario: str
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    unseen_from: int
    deploy_steps: int
    parent_run_id: str
    run_ids: dict  # (method, seed) -> run id


def _curve(shape, steps, unseen_from, rng):
    """Rolling win rate along deployment: flat, a drop after the shift, exponential recovery."""
    _, _, pre, floor, final = shape
    after = np.clip((steps - unseen_from) / 40_000.0, 0.0, 1.0)           # the drop takes ~40K steps
    recov = 1.0 - np.exp(-np.clip(steps - unseen_from - 40_000, 0, None) / 150_000.0)
    level = pre + (floor - pre) * after + (final - floor) * recov
    return np.clip(level + rng.normal(0, 0.03, steps.shape), 0.0, 1.0)


def _png_frame(label: str, color: tuple[int, int, int]) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (320, 240), (235, 230, 215))
    draw = ImageDraw.Draw(img)
    for i in range(5):
        draw.ellipse([40 + 18 * i, 100, 54 + 18 * i, 114], fill=(30, 90, 200))
        draw.ellipse([240 - 18 * (i % 3), 60 + 20 * i, 254 - 18 * (i % 3), 74 + 20 * i], fill=color)
    draw.text((10, 10), label, fill=(0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _log_child(tracker, parent, method, seed, config, status, tmp):
    algo, mode, *_ = shape = SHAPES[method]
    unseen_from, deploy_steps = config["protocol"]["unseen_from"], config["budget"]["deploy_steps"]
    train_steps = config["budget"]["train_steps"]
    rng = np.random.default_rng(1000 * seed + sum(map(ord, method)))
    params = {**config, "method": method, "algo": {"name": algo, "lr": 0.0005}, "seed": seed}
    run = tracker.method_run(parent, method=method, algo=algo, mode=mode, seed=seed, params=params)
    t_steps = np.arange(1, 51) * (train_steps // 50) + seed * 13
    t_win = np.clip(shape[2] * (1 - np.exp(-t_steps / (train_steps / 4))) + rng.normal(0, 0.03, 50), 0, 1)
    d_steps = np.arange(0, deploy_steps + 1, deploy_steps // 100) + seed * 37
    d_steps[0] = 0
    end = len(d_steps) if status == "finished" else len(d_steps) // 2  # crashed runs stop halfway
    d_win = _curve(shape, d_steps, unseen_from, rng)[:end]
    points = [("train/win_rate", w, s) for w, s in zip(t_win, t_steps)]
    points += [("train/return", 20 * w + 2, s) for w, s in zip(t_win, t_steps)]
    points += [("train/loss/td", 1.0 / (1 + s / 1e5), s) for s in t_steps]
    points += [("deploy/win_rate", w, s) for w, s in zip(d_win, d_steps[:end])]
    points += [("deploy/return", 18 * w + 3 + rng.normal(0, 0.5), s) for w, s in zip(d_win, d_steps[:end])]
    if mode == "continual":
        points += [("deploy/loss/critic", 0.5 + rng.random(), s) for s in d_steps[1:end]]
    for k, step in enumerate(range(0, deploy_steps + 1, deploy_steps // 5)[: 6 if end == len(d_steps) else 3]):
        seen = float(np.interp(step, d_steps, _curve(shape, d_steps, unseen_from, rng)))
        unseen = float(np.clip(shape[3] + (shape[4] - shape[3]) * k / 5 + rng.normal(0, 0.03), 0, 1))
        points += [(f"eval/{PHASES[0]}/win_rate", seen, step), (f"eval/{PHASES[1]}/win_rate", unseen, step),
                   (f"eval/{PHASES[0]}/return", 20 * seen, step), (f"eval/{PHASES[1]}/return", 20 * unseen, step)]
    run.log_series(points)
    if status != "finished":
        run.finish(status)
        return run
    last = int(d_steps[-1])
    cl = {"cl/avg_performance": float(d_win[-10:].mean()), "cl/bwt": -abs(rng.normal(0.1, 0.05)),
          "cl/forward_transfer": rng.normal(0.0, 0.05),
          f"cl/forgetting/{PHASES[0]}": abs(shape[2] - shape[4]) + rng.normal(0, 0.02)}
    recovered = shape[4] - shape[3] > 0.05
    if recovered:
        cl["cl/recovery_steps/unseen"] = float(150_000 * (1 + 0.2 * rng.standard_normal()))
    run.log_metrics(cl, last)
    run.set_tags({"ccoma.recovered.unseen": str(recovered).lower()})
    if method == "c-coma" and seed == 0:
        renders = Path(tmp) / f"renders-{seed}"
        renders.mkdir(parents=True, exist_ok=True)
        (renders / "before_adaptation.png").write_bytes(_png_frame("before adaptation", (200, 40, 40)))
        (renders / "after_adaptation.png").write_bytes(_png_frame("after adaptation", (220, 120, 20)))
        run.log_artifact(renders, "renders")
    run.finish("finished")
    return run


def log_evaluate(uri: str, scenario: str = "shifting_spawn", methods=tuple(SHAPES), seeds=(0, 1),
                 unseen_from: int = 200_000, deploy_steps: int = 1_000_000, train_steps: int = 2_000_000,
                 failed: tuple = (), run_key: str = "synthetic") -> LoggedRuns:
    """Log one evaluate; (method, seed) pairs in ``failed`` end halfway with status failed."""
    import tempfile

    from ccoma.tracking import Tracker

    tracker = Tracker(uri)
    config = {"scenario": scenario, "protocol": {"unseen_from": unseen_from},
              "budget": {"name": "synthetic", "train_steps": train_steps, "deploy_steps": deploy_steps},
              "env": {"n_envs": 8}}
    parent = tracker.evaluate_run(scenario, run_key, backend="ccoma-sim 1.0", budget="synthetic", params=config)
    ids = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in methods:
            for seed in seeds:
                status = "failed" if (method, seed) in failed else "finished"
                ids[(method, seed)] = _log_child(tracker, parent, method, seed, config, status, tmp).run_id
    parent.finish("finished")
    return LoggedRuns(uri, scenario, tuple(methods), tuple(seeds), unseen_from, deploy_steps,
                      parent.run_id, ids)
