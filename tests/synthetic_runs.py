"""Realistic-looking ``evaluate`` runs logged through ccoma.tracking, for report tests.

The curves follow the paper's reported shape (everything drops at the shift; continual methods
recover, C-COMA to about 0.6, C-QMIX near 0.1, C-VDN flat), with per-seed noise and per-seed step
jitter (parallel environments make logging steps differ a little between runs).

They log the harness's data contract (issues 9 and 10): per child run the greedy test series
``deploy/test/win_rate|return`` (51 points, the same steps for every method of a seed, binomial over
32 episodes), the online behaviour-policy series ``deploy/win_rate|return`` (lower for COMA-family
methods that sample: C-COMA and the control ``coma-explore``, mode ``frozen-explore``), the
greedy performance matrix ``eval/<phase>/*``, ``cl/*`` from ccoma.continual.metrics, and params
``method``, ``mode``, ``seed``, ``algo``, ``params.trainable[.<network>]``, ``params.total``,
``exploration``. Optional from-scratch ``reference`` runs log ``eval/<unseen phase>/win_rate``.
"""
from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np

# method -> (algo, mode, pre-shift greedy win rate, post-shift floor, final level after recovery)
SHAPES = {
    "c-coma": ("coma", "continual", 0.80, 0.20, 0.70),
    "coma-explore": ("coma", "frozen-explore", 0.78, 0.18, 0.18),
    "coma": ("coma", "frozen", 0.78, 0.18, 0.18),
    "qmix": ("qmix", "frozen", 0.85, 0.12, 0.12),
    "vdn": ("vdn", "frozen", 0.70, 0.08, 0.08),
    "c-qmix": ("qmix", "continual", 0.82, 0.05, 0.10),
    "c-vdn": ("vdn", "continual", 0.68, 0.08, 0.08),
}
PHASES = ("seen_mix", "unseen_spawn")
# The behaviour policy's cost on the online series: COMA samples from its policy (with an
# exploration floor), QMIX/VDN act epsilon-greedily at a small epsilon (issue 9: 0.55 greedy vs 0.03
# sampled for COMA; QMIX loses almost nothing).
SAMPLING_COST = {"coma": 0.5, "qmix": 0.97, "vdn": 0.97}
EXPLORATION = {"coma": "eps-floor 0.5->0.01 over 100K steps; deployment level 0.01",
               "qmix": "eps-greedy 1.0->0.05 over 50K steps; deployment level 0.05",
               "vdn": "eps-greedy 1.0->0.05 over 50K steps; deployment level 0.05"}
TOTAL = {"coma": 31_755, "qmix": 41_221, "vdn": 26_777}
TRAINABLE = {"c-coma": {"agent": 396, "critic": 1_738}, "c-qmix": {"agent": 396, "mixer": 14_048},
             "c-vdn": {"agent": 715}}
TEST_EPISODES = 32


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


def _curve(shape, steps, unseen_from, rng, noise=0.03):
    """Win rate along deployment: flat, a drop after the shift, exponential recovery."""
    _, _, pre, floor, final = shape
    after = np.clip((steps - unseen_from) / 40_000.0, 0.0, 1.0)           # the drop takes ~40K steps
    recov = 1.0 - np.exp(-np.clip(steps - unseen_from - 40_000, 0, None) / 150_000.0)
    level = pre + (floor - pre) * after + (final - floor) * recov
    return np.clip(level + rng.normal(0, noise, steps.shape), 0.0, 1.0)


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


def _open_run(tracker, parent, method, algo, mode, seed, params):
    from ccoma.errors import CcomaError

    try:
        return tracker.method_run(parent, method=method, algo=algo, mode=mode, seed=seed, params=params)
    except CcomaError:  # a tracking that predates modes frozen-explore/reference: tag the mode after
        run = tracker.method_run(parent, method=method, algo=algo, mode="frozen", seed=seed, params=params)
        run.set_tags({"ccoma.mode": mode})
        return run


def _params(config, method, algo, mode, seed):
    trainable = TRAINABLE.get(method, {}) if mode == "continual" else {}
    flat = {"method": method, "mode": mode, "seed": seed, "algo": algo, "learner.lr": 0.0005,
            "params.trainable": sum(trainable.values()), "params.total": TOTAL[algo],
            "exploration": EXPLORATION[algo]}
    flat.update({f"params.trainable.{net}": n for net, n in trainable.items()})
    return {**config, **flat}


def _greedy_points(shape, algo, seed, steps, unseen_from, rng):
    """Greedy test win rates ``[K]``: binomial over 32 episodes around the curve; the point at step 0
    is shared by every method of one algorithm and seed (same weights, greedy, same episodes)."""
    level = _curve(shape, steps, unseen_from, rng, noise=0.0)
    wins = rng.binomial(TEST_EPISODES, level) / TEST_EPISODES
    first = np.random.default_rng(10_000 * seed + sum(map(ord, algo)))
    wins[0] = first.binomial(TEST_EPISODES, shape[2]) / TEST_EPISODES
    return wins


def _log_child(tracker, parent, method, seed, config, status, tmp):
    algo, mode, *_ = shape = SHAPES[method]
    unseen_from, deploy_steps = config["protocol"]["unseen_from"], config["budget"]["deploy_steps"]
    train_steps = config["budget"]["train_steps"]
    rng = np.random.default_rng(1000 * seed + sum(map(ord, method)))
    run = _open_run(tracker, parent, method, algo, mode, seed, _params(config, method, algo, mode, seed))
    t_steps = np.arange(1, 51) * (train_steps // 50) + seed * 13
    t_win = np.clip(shape[2] * (1 - np.exp(-t_steps / (train_steps / 4))) + rng.normal(0, 0.03, 50), 0, 1)
    d_steps = np.arange(0, deploy_steps + 1, deploy_steps // 100) + seed * 37
    d_steps[0] = 0
    g_steps = np.arange(0, deploy_steps + 1, deploy_steps // 50)   # the same test points for every method
    full = status == "finished"
    end, g_end = (len(d_steps), len(g_steps)) if full else (len(d_steps) // 2, len(g_steps) // 2)
    cost = SAMPLING_COST[algo] if mode in ("continual", "frozen-explore") else 1.0
    d_win = (cost * _curve(shape, d_steps, unseen_from, rng))[:end]
    g_win = _greedy_points(shape, algo, seed, g_steps, unseen_from, rng)[:g_end]
    points = [("train/win_rate", w, s) for w, s in zip(t_win, t_steps)]
    points += [("train/return", 20 * w + 2, s) for w, s in zip(t_win, t_steps)]
    points += [("train/loss/td", 1.0 / (1 + s / 1e5), s) for s in t_steps]
    points += [("deploy/win_rate", w, s) for w, s in zip(d_win, d_steps[:end])]
    points += [("deploy/return", 18 * w + 3 + rng.normal(0, 0.5), s) for w, s in zip(d_win, d_steps[:end])]
    points += [("deploy/test/win_rate", w, s) for w, s in zip(g_win, g_steps)]
    points += [("deploy/test/return", 18 * w + 3 + rng.normal(0, 0.3), s) for w, s in zip(g_win, g_steps)]
    if mode == "continual":
        points += [("deploy/loss/critic", 0.5 + rng.random(), s) for s in d_steps[1:end]]
    evals = []
    for k, step in enumerate(range(0, deploy_steps + 1, deploy_steps // 5)[: 6 if full else 3]):
        seen = float(np.interp(step, d_steps, _curve(shape, d_steps, unseen_from, rng)))
        unseen = float(np.clip(shape[3] + (shape[4] - shape[3]) * k / 5 + rng.normal(0, 0.03), 0, 1))
        evals.append((step, [seen, unseen]))
        points += [(f"eval/{PHASES[0]}/win_rate", seen, step), (f"eval/{PHASES[1]}/win_rate", unseen, step),
                   (f"eval/{PHASES[0]}/return", 20 * seen, step), (f"eval/{PHASES[1]}/return", 20 * unseen, step)]
    run.log_series(points)
    if not full:
        run.finish(status)
        return run
    _log_cl(run, evals, g_steps, g_win, unseen_from, deploy_steps, int(max(d_steps[-1], g_steps[-1])))
    if method == "c-coma" and seed == 0:
        renders = Path(tmp) / f"renders-{seed}"
        renders.mkdir(parents=True, exist_ok=True)
        (renders / "before_adaptation.png").write_bytes(_png_frame("before adaptation", (200, 40, 40)))
        (renders / "after_adaptation.png").write_bytes(_png_frame("after adaptation", (220, 120, 20)))
        run.log_artifact(renders, "renders")
    run.finish("finished")
    return run


def _log_cl(run, evals, g_steps, g_win, unseen_from, deploy_steps, last):
    """What the harness logs at the end: every cl/ metric from the greedy matrix and test series."""
    from ccoma.continual.metrics import continual_metrics

    windows = {PHASES[0]: (0, unseen_from), PHASES[1]: (unseen_from, deploy_steps)}
    cl = continual_metrics([m for _, m in evals], [s for s, _ in evals], list(PHASES), windows,
                           g_steps.tolist(), g_win.tolist(), {"unseen": unseen_from})
    run.log_series((f"cl/{k}", v, last) for k, v in cl.items())
    run.set_tags({"ccoma.recovered.unseen": str(bool(cl.get("recovered/unseen"))).lower()})


def _log_reference(tracker, parent, algo, seed, config, phase, length):
    """A from-scratch learner trained only on ``phase`` for ``length`` steps (mode ``reference``):
    its greedy win rate on the phase, ``eval/<phase>/win_rate``, with step = its own env steps."""
    rng = np.random.default_rng(77 + seed)
    params = {**config, "method": f"{algo}-reference", "mode": "reference", "seed": seed, "algo": algo,
              "reference.phase": phase, "params.total": TOTAL[algo], "params.trainable": TOTAL[algo],
              "exploration": EXPLORATION[algo]}
    run = _open_run(tracker, parent, f"{algo}-reference", algo, "reference", seed, params)
    steps = np.arange(0, length + 1, length // 20)
    win = np.clip(0.5 * (1 - np.exp(-steps / (length / 3))) + rng.normal(0, 0.02, len(steps)), 0, 1)
    run.log_series([(f"eval/{phase}/win_rate", w, s) for w, s in zip(win, steps)])
    run.finish("finished")
    return run


def log_evaluate(uri: str, scenario: str = "shifting_spawn", methods=tuple(SHAPES), seeds=(0, 1),
                 unseen_from: int = 200_000, deploy_steps: int = 1_000_000, train_steps: int = 2_000_000,
                 failed: tuple = (), run_key: str = "synthetic", reference: bool = False) -> LoggedRuns:
    """Log one evaluate; (method, seed) pairs in ``failed`` end halfway with status failed.
    ``reference``: also log from-scratch COMA references on the unseen phase (``--reference``)."""
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
        for seed in seeds if reference else ():
            ids[("coma-reference", seed)] = _log_reference(tracker, parent, "coma", seed, config, PHASES[1],
                                                           deploy_steps - unseen_from).run_id
    parent.finish("finished")
    return LoggedRuns(uri, scenario, tuple(methods), tuple(seeds), unseen_from, deploy_steps,
                      parent.run_id, ids)
