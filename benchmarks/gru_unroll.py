"""The learners' GRU unroll: torch.gru against ccoma's fused C loop (``--fused-gru``), in the same run.

    python benchmarks/gru_unroll.py                       # the layer alone, then one update of qmix, vdn, coma
    python benchmarks/gru_unroll.py --algos qmix --reps 20 --out gru.json
    python benchmarks/gru_unroll.py --algos qmix,vdn --padding  # also the fused unroll computing the padding
    python benchmarks/gru_unroll.py --algos coma --critic       # also COMA's critic through autograd / by hand

On one torch thread (or ``--threads``), alternating the two unrolls call by call (so drift on a busy
machine hits both):

- the layer alone at the learners' shape (2s3z, a 32-episode batch: 160 sequences of 121 steps, 64
  units): forward without gradients (the target network's), and forward + backward;
- one learner update on a batch collected the way the harness collects it (32 compiled
  environments; the paper budget's batch: 32 sampled episodes for QMIX/VDN, the 8 newest for COMA),
  subnormals flushed as ``Rollout.run`` does; the learner's weights move between calls as in training.

Prints min and median milliseconds per call and the ratio of the medians (torch.gru / fused).

``--padding`` adds, for each update, the fused unroll without skipping the batch's padding (the
learners called as if they had no slot counts, QMIX's mixer on every slot: every slot computed, as
before session 27), against the fused unroll as the learners call it, alternating the same way.

``--critic`` adds, for COMA, its critic's steps through autograd (``critic_by_hand = False``, as
before session 28) against the steps by hand (the default), with torch.gru, alternating the same way;
and, with the fused unroll on in both arms, the by-hand steps one call each against the critic's walk
in C (``ccoma.algos.fused_critic``, what ``--fused-gru`` runs since session 31).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _alternate(fn, reps: int, arms: dict | None = None) -> dict:
    """Call ``fn()`` under each arm (name -> context manager factory; by default torch.gru, then the
    fused unroll), ``reps`` times each after one warm call, alternating; ms per call, and the ratio
    of the first arm's median to the second's."""
    from ccoma.algos import fused_gru

    arms = arms or {"torch_gru": lambda: fused_gru.use_fused(False), "fused": lambda: fused_gru.use_fused(True)}
    times = {name: [] for name in arms}
    for arm in arms.values():                    # one warm call each
        with arm():
            fn()
    for _ in range(reps):
        for name, arm in arms.items():
            with arm():
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) * 1e3)
    out = {name: {"min_ms": min(t), "median_ms": statistics.median(t)} for name, t in times.items()}
    first, second = arms
    out["ratio"] = out[first]["median_ms"] / out[second]["median_ms"]
    return out


@contextlib.contextmanager
def _padding_computed():
    """The fused unroll with the learners' slot counts withheld: every slot computed (QMIX's mixer too)."""
    import ccoma.algos.coma as coma_mod
    import ccoma.algos.mfq as mfq_mod
    import ccoma.algos.q_learner as q_mod
    from ccoma.algos import fused_gru

    mods = (q_mod, coma_mod, mfq_mod)
    real, live = q_mod.slots_used, q_mod.QLearner._live_slots
    for m in mods:
        m.slots_used = lambda filled: None
    q_mod.QLearner._live_slots = lambda self, mask, inputs: None
    try:
        with fused_gru.use_fused(True):
            yield
    finally:
        for m in mods:
            m.slots_used = real
        q_mod.QLearner._live_slots = live


def layer(reps: int) -> dict:
    import torch

    from ccoma.algos.fused_gru import gru_sequence

    g = torch.Generator().manual_seed(0)
    t, m, h = 121, 160, 64
    x = torch.randn(t, m, h, generator=g).requires_grad_()
    cell = torch.nn.GRUCell(h, h)
    ws = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    dy = torch.randn(t, m, h, generator=g)

    def forward():
        with torch.no_grad():
            gru_sequence(x, *ws)

    def forward_backward():
        torch.autograd.grad((gru_sequence(x, *ws) * dy).sum(), [x, *ws])

    return {"shape": [t, m, h], "forward_no_grad": _alternate(forward, reps),
            "forward_backward": _alternate(forward_backward, reps)}


@contextlib.contextmanager
def _critic_by_hand(learner, on: bool):
    before = learner.critic_by_hand
    learner.critic_by_hand = on
    try:
        yield
    finally:
        learner.critic_by_hand = before


@contextlib.contextmanager
def _critic_walk_in_c(on: bool):
    """The fused unroll on; COMA's critic walk in C (``on``) or its by-hand steps one call each."""
    from ccoma.algos import fused_critic, fused_gru

    real = fused_critic.runs_fused
    if not on:
        fused_critic.runs_fused = lambda x: False
    try:
        with fused_gru.use_fused(True):
            yield
    finally:
        fused_critic.runs_fused = real


def update(algo: str, reps: int, collect: int, padding: bool = False, critic: bool = False) -> dict:
    import torch

    from ccoma.algos import fused_gru, registry
    from ccoma.algos.base import flushed_denormals
    from ccoma.algos.networks import slots_used
    from ccoma.data.buffer import buffer_for
    from ccoma.data.rollout import Rollout
    from ccoma.sim.env import SimEnv

    torch.manual_seed(0)
    env = SimEnv.from_map("2s3z", n_envs=32, seed=0, compile=True)
    learner = registry.make(algo, env.get_env_info(), "cpu")
    buf = buffer_for(learner, env.n_agents, env.episode_limit, 5000, 32, "cpu")
    rollout = Rollout(env, learner, buf)
    rollout.run(collect, learn=False)
    cfg = learner.config
    batch = buf.latest(cfg.batch_size) if learner.on_policy else buf.sample(cfg.batch_size)

    def step():
        with flushed_denormals():
            learner.train_step(batch, rollout.t_env)

    filled = batch["filled"]
    out = {"algo": algo, "batch_episodes": int(filled.shape[0]), "slots": int(filled.shape[1]),
           "slots_used": float(slots_used(filled).sum() / filled.numel()), **_alternate(step, reps)}
    if padding:
        out["padding"] = _alternate(step, reps, {"fused_padded": _padding_computed,
                                                 "fused": lambda: fused_gru.use_fused(True)})
    if critic and algo == "coma":
        with fused_gru.use_fused(False):
            out["critic"] = _alternate(step, reps, {"autograd": lambda: _critic_by_hand(learner, False),
                                                    "by_hand": lambda: _critic_by_hand(learner, True)})
        out["critic_walk"] = _alternate(step, reps, {"by_hand": lambda: _critic_walk_in_c(False),
                                                     "c_walk": lambda: _critic_walk_in_c(True)})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algos", default="qmix,vdn,coma")
    p.add_argument("--reps", type=int, default=12)
    p.add_argument("--collect", type=int, default=20_000, help="env steps collected before the updates")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the paper job runs at 2)")
    p.add_argument("--padding", action="store_true", help="also: the fused unroll computing the padding")
    p.add_argument("--critic", action="store_true", help="also: COMA's critic steps through autograd / by hand")
    p.add_argument("--out", default="")
    args = p.parse_args(argv)
    import platform

    import torch

    from ccoma.algos import fused_gru

    torch.set_num_threads(args.threads)
    with fused_gru.use_fused(True):
        status = fused_gru.status()
    cpu = platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {cpu}, {args.threads} thread(s); fused: {status}")
    res = {"status": status, "torch": torch.__version__, "threads": args.threads, "layer": layer(args.reps),
           "updates": []}

    def show(name, r):
        a, b = r["torch_gru"], r["fused"]
        print(f"{name:28} torch.gru {a['min_ms']:7.1f} / {a['median_ms']:7.1f} ms   fused {b['min_ms']:7.1f} / "
              f"{b['median_ms']:7.1f} ms   {r['ratio']:.2f}x", flush=True)

    print("(min / median ms per call; ratio of medians)")
    show("layer forward, no grad", res["layer"]["forward_no_grad"])
    show("layer forward + backward", res["layer"]["forward_backward"])
    for algo in [a for a in args.algos.split(",") if a]:
        r = update(algo, args.reps, args.collect, args.padding, args.critic)
        res["updates"].append(r)
        show(f"{algo} update ({r['batch_episodes']} x {r['slots']})", r)
        if args.padding:
            a, b = r["padding"]["fused_padded"], r["padding"]["fused"]
            print(f"{'  padding computed / skipped':28} padded    {a['min_ms']:7.1f} / {a['median_ms']:7.1f} ms   "
                  f"skipped {b['min_ms']:7.1f} / {b['median_ms']:7.1f} ms   {r['padding']['ratio']:.2f}x "
                  f"({100 * r['slots_used']:.0f}% of the slots used)", flush=True)
        if "critic" in r:
            a, b = r["critic"]["autograd"], r["critic"]["by_hand"]
            print(f"{'  critic autograd / by hand':28} autograd  {a['min_ms']:7.1f} / {a['median_ms']:7.1f} ms   "
                  f"by hand {b['min_ms']:7.1f} / {b['median_ms']:7.1f} ms   {r['critic']['ratio']:.2f}x", flush=True)
            a, b = r["critic_walk"]["by_hand"], r["critic_walk"]["c_walk"]
            print(f"{'  fused: by hand / C walk':28} by hand   {a['min_ms']:7.1f} / {a['median_ms']:7.1f} ms   "
                  f"C walk  {b['min_ms']:7.1f} / {b['median_ms']:7.1f} ms   {r['critic_walk']['ratio']:.2f}x",
                  flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
