"""How much faster could one job be? A lower bound on each learner update's time on this CPU.

    python benchmarks/learner_bound.py                      # coma, qmix, vdn on 2s3z, one thread
    python benchmarks/learner_bound.py --algos qmix --reps 20 --out bound.json

For one update of each learner, on a batch collected the way the harness collects it (2s3z, 32
environments, the paper budget's batch: 32 sampled episodes for QMIX/VDN, the 8 newest for COMA),
this measures on one torch thread:

- the update's time (min over ``--reps`` repeats, subnormals flushed as ``Rollout.run`` does);
- its floating-point work (``torch.utils.flop_counter``: the matrix products, forward and backward)
  and the rate it runs at;
- the machine's matrix-product rate: a large square ``mm`` (the best this core does) and products
  of the shapes the update uses (the GRU step's [160, 64] x [64, 192]);
- how many ATen operators the update dispatches, and what a trivial operator costs (a 40 x 64
  ``add``): the per-operator floor that no arithmetic saving removes.

A bound on the update is then ``flop / peak + operators x floor``: what the same computation would
cost if every product ran at the large-``mm`` rate and every other operator cost only dispatch. The
job's bound adds the measured acting + simulator time per env step (compiled, 32 environments) and
divides 10K env steps by it; printed against the job rate measured the ordinary way, it says the
largest speed-up any implementation of the same computation could reach on this core.

The learners unroll the GRU as the harness's jobs do: the fused C loop by default (``--no-fused-gru``:
torch.gru). The fused loop's products run in C, where the FLOP counter does not see them, so for the
value learners (QMIX, VDN, IQL) with the fused loop a second, measured floor is printed instead: the
update's own matrix products (the agents' fc1 and fc2 and the mixer's hypernetworks, forward for the
network and its target, backward) and the fused GRU's forward (twice) and backward, each run alone at
the update's shapes on the same batch, alternating with the update itself (min over ``--reps``). What
the update spends beyond that floor is every element-wise operator, the loss, the targets, the
optimiser and autograd; the job at the floor is the job with all of that free.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _alternating_min(fns: dict, reps: int) -> dict:
    """Min wall time of each function, called by turns ``reps`` times after one warm call each."""
    for fn in fns.values():
        fn()
    out = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            out[name].append(time.perf_counter() - t)
    return {name: min(v) for name, v in out.items()}


def _best(fn, reps: int) -> float:
    """Min wall time of ``fn()`` over ``reps`` calls (after one warm call), seconds."""
    return _alternating_min({"fn": fn}, reps)["fn"]


def mm_rate(m: int, k: int, n: int, reps: int = 20) -> float:
    """GFLOP/s of a float32 [m, k] x [k, n] product on this thread (the product repeated to ~10 ms)."""
    import torch

    a, b = torch.randn(m, k), torch.randn(k, n)
    inner = max(1, int(2e7 // (2 * m * k * n)))

    def go():
        for _ in range(inner):
            torch.mm(a, b)

    return 2 * m * k * n * inner / _best(go, reps) / 1e9


def op_floor(reps: int = 20) -> float:
    """Seconds per trivial ATen operator (an out-of-place add of two 40 x 64 tensors)."""
    import torch

    a, b = torch.randn(40, 64), torch.randn(40, 64)

    def go():
        for _ in range(1000):
            torch.add(a, b)

    return _best(go, reps) / 1000


def count_ops(fn) -> int:
    """ATen operators dispatched by ``fn()`` (every call that reaches the Python dispatch mode)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += 1
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return Count.n


def products_floor(learner, batch):
    """For a value learner with the fused unroll: a function running the update's matrix products and
    its fused GRU alone, at the update's shapes on ``batch`` (see the module's docstring), or None when
    the learner is not one (COMA) or the fused unroll does not run (torch.gru, no padding to skip)."""
    import torch

    from ccoma.algos.fused_gru import gru_packed
    from ccoma.algos.mixers import QMixer
    from ccoma.algos.networks import agent_inputs, shift_last_actions, slots_used

    agent, mixer = getattr(learner, "agent", None), getattr(learner, "mixer", None)
    if getattr(learner, "on_policy", False) or agent is None or not hasattr(agent, "packing"):
        return None
    inputs = agent_inputs(batch["obs"], shift_last_actions(batch["actions"]), learner.n_actions)
    packing = agent.packing(inputs, slots_used(batch["filled"]))
    if packing is None:
        return None
    _, rows, packed = packing
    packed = packed.contiguous()
    live = batch["filled"][:, :-1].reshape(-1).nonzero().squeeze(1)
    flat = batch["state"].reshape(-1, batch["state"].shape[-1])
    b, t1 = batch["state"].shape[:2]
    keep = (torch.arange(b)[:, None] * t1 + torch.arange(t1 - 1)[None, :]).reshape(-1)[live]
    states = (flat[keep].contiguous(), flat[keep + 1].contiguous())       # the mixer's and its target's rows
    w = lambda lin: (lin.weight.detach(), lin.bias.detach())               # noqa: E731
    fc1, fc2 = w(agent.fc1), w(agent.fc2)
    cell = [p.detach() for p in (agent.rnn.weight_ih, agent.rnn.weight_hh, agent.rnn.bias_ih, agent.rnn.bias_hh)]
    first = second = ()
    if isinstance(mixer, QMixer):   # hypernetworks: first layers read the state, second layers their hidden
        first = [w(mixer.hyper_w1[0]), w(mixer.hyper_w2[0]), w(mixer.hyper_b1), w(mixer.value[0])]
        second = [(w(mixer.hyper_w1[2]), 0), (w(mixer.hyper_w2[2]), 1), (w(mixer.value[2]), 3)]

    ones = {}            # output gradients, made once so that the floor times no allocation of them

    def grad_of(rows_, cols):
        return ones.setdefault((rows_, cols), torch.ones(rows_, cols))

    def run():
        x = torch.addmm(fc1[1], packed, fc1[0].t())                          # fc1, the network's
        x_target = torch.addmm(fc1[1], packed, fc1[0].t())                   # and its target's
        weights = [c.clone().requires_grad_() for c in cell]
        x.requires_grad_()
        hs = gru_packed(x, rows, *weights)
        with torch.no_grad():
            hs_target = gru_packed(x_target, rows, *cell)
        torch.addmm(fc2[1], hs.detach(), fc2[0].t())
        torch.addmm(fc2[1], hs_target, fc2[0].t())
        for s in states:                                                     # mixer and target mixer
            hidden = [torch.addmm(bias, s, weight.t()) for weight, bias in first]
            for (weight, bias), k in second:
                torch.addmm(bias, hidden[k], weight.t())
        s = states[0]
        for (weight, _), k in second:                                        # backward: dW and d hidden
            grad = grad_of(s.shape[0], weight.shape[0])
            torch.mm(grad.t(), hidden[k])
            torch.mm(grad, weight)
        for weight, _ in first:                                              # dW (states need no gradient)
            torch.mm(grad_of(s.shape[0], weight.shape[0]).t(), s)
        dq = grad_of(hs.shape[0], fc2[0].shape[0])
        torch.mm(dq.t(), hs.detach())                                        # fc2: dW, d hs
        hs.backward(torch.mm(dq, fc2[0]))                                    # the GRU's backward
        torch.mm(x.grad.t(), packed)                                         # fc1: dW

    return run


def measure(algo: str, args) -> dict:
    import torch

    from ccoma.algos import registry
    from ccoma.algos.base import flushed_denormals
    from ccoma.data.buffer import buffer_for
    from ccoma.data.rollout import Rollout
    from ccoma.sim.env import SimEnv
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(args.seed)
    env = SimEnv.from_map(args.map, n_envs=32, seed=args.seed, compile=True)
    learner = registry.make(algo, env.get_env_info(), "cpu")
    buf = buffer_for(learner, env.n_agents, env.episode_limit, 5000, 32, "cpu")
    rollout = Rollout(env, learner, buf)
    rollout.run(2_000, learn=False)                   # compile, warm
    t0, cpu0 = rollout.t_env, time.process_time()
    stats = rollout.run(args.collect, learn=False)    # acting + simulator + buffer writes, no updates
    act_cpu = (time.process_time() - cpu0) / (rollout.t_env - t0)
    episodes = int(stats["won"].numel())
    cfg = learner.config
    on_policy = learner.on_policy
    batch = buf.latest(cfg.batch_size) if on_policy else buf.sample(cfg.batch_size)
    # updates per env step: one per batch_size new episodes (COMA, on-policy) or per episodes_per_update
    per_update = cfg.batch_size if on_policy else cfg.episodes_per_update
    updates_per_step = episodes / (rollout.t_env - t0) / per_update

    def update():
        with flushed_denormals():
            learner.train_step(batch, rollout.t_env)

    with FlopCounterMode(display=False) as fc:
        update()
    flop = fc.get_total_flops()
    ops = count_ops(update)
    floor = products_floor(learner, batch)
    timed = {"update": update}
    if floor is not None:
        timed["floor"] = floor        # by turns with the update, so drift hits both
    times = _alternating_min(timed, args.reps)
    t_update, t_floor = times["update"], times.get("floor")
    return {"algo": algo, "batch_episodes": int(batch["filled"].shape[0]), "slots": int(batch["filled"].shape[1]),
            "update_ms": t_update * 1e3, "gflop": flop / 1e9, "gflops": flop / t_update / 1e9, "ops": ops,
            "floor_ms": None if t_floor is None else t_floor * 1e3,
            "act_us_per_step": act_cpu * 1e6, "updates_per_10k": updates_per_step * 1e4}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algos", default="coma,qmix,vdn")
    p.add_argument("--map", default="2s3z")
    p.add_argument("--collect", type=int, default=20_000, help="env steps collected (acting timed) before the update")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="")
    p.add_argument("--fused-gru", action=argparse.BooleanOptionalAction, default=True,
                   help="unroll the GRU with the fused C loop, as the harness's jobs do by default; "
                   "--no-fused-gru: torch.gru")
    args = p.parse_args(argv)
    import os
    import platform

    import torch

    from ccoma.algos import fused_gru

    fused_gru.set_fused(args.fused_gru)
    torch.set_num_threads(1)
    isa = torch.backends.cpu.get_cpu_capability()
    peak = mm_rate(1024, 1024, 1024)
    gru = mm_rate(160, 64, 192, reps=50)
    op_time = op_floor()
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, capability {isa}, 1 thread, "
          f"load {os.getloadavg()[0]:.2f}; GRU unroll: {fused_gru.status()}")
    print(f"mm 1024^3: {peak:.1f} GFLOP/s; mm [160,64]x[64,192] (a GRU step): {gru:.1f} GFLOP/s; "
          f"trivial operator: {op_time * 1e6:.2f} us")
    rows = []
    hdr = (f"{'algo':5} {'batch':>9} {'update ms':>9} {'GFLOP':>6} {'GFLOP/s':>7} {'ops':>6} "
           f"{'bound ms':>8} {'upd x':>6} {'job/s now':>9} {'job/s bound':>11} {'job x':>6}")
    print(hdr)
    floors = []
    # with the fused unroll the GRU's (and COMA's critic walk's) products run in C, out of the FLOP
    # counter's and the operator count's sight: the bound from them would be no bound, so it is not printed
    aten_only = not args.fused_gru
    for algo in args.algos.split(","):
        r = measure(algo, args)
        per_10k_now = r["act_us_per_step"] * 1e-2 + r["updates_per_10k"] * r["update_ms"] / 1e3
        r.update(peak_gflops=peak, gru_step_gflops=gru, op_floor_us=op_time * 1e6, isa=isa, fused_gru=args.fused_gru,
                 job_rate_now=1e4 / per_10k_now)
        if aten_only:
            bound = r["gflop"] / peak + r["ops"] * op_time            # seconds
            per_10k_bound = r["act_us_per_step"] * 1e-2 + r["updates_per_10k"] * bound
            r.update(bound_ms=bound * 1e3, job_rate_bound=1e4 / per_10k_bound)
            tail = (f"{bound * 1e3:>8.1f} {r['update_ms'] / 1e3 / bound:>5.1f}x {r['job_rate_now']:>9,.0f} "
                    f"{r['job_rate_bound']:>11,.0f} {per_10k_now / per_10k_bound:>5.2f}x")
        else:
            tail = f"{'-':>8} {'-':>6} {r['job_rate_now']:>9,.0f} {'-':>11} {'-':>6}"
        rows.append(r)
        print(f"{algo:5} {r['batch_episodes']:>3}x{r['slots']:<5} {r['update_ms']:>9.1f} {r['gflop']:>6.2f} "
              f"{r['gflops']:>7.1f} {r['ops']:>6} " + tail, flush=True)
        if r["floor_ms"] is not None:
            per_10k_floor = r["act_us_per_step"] * 1e-2 + r["updates_per_10k"] * r["floor_ms"] / 1e3
            r.update(job_rate_floor=1e4 / per_10k_floor)
            floors.append((algo, r["update_ms"], r["floor_ms"], r["job_rate_now"], r["job_rate_floor"],
                           per_10k_now / per_10k_floor))
    if aten_only:
        print("bound = GFLOP at the 1024^3 mm rate + operators x trivial-operator time; job/s = env steps per "
              "CPU-second of acting + simulator (measured) + updates (measured / bound)")
    else:
        print("GFLOP and ops: ATen's only; the fused loops' products run in C, unseen, so no FLOP bound is printed "
              "(--no-fused-gru prints it for torch.gru); job/s = env steps per CPU-second of acting + simulator + "
              "updates (measured)")
    if floors:
        print("\nmeasured floor: the update's own products and its fused GRU alone, at its shapes, on the same batch "
              "(alternating with the update, min of --reps); job/s floor: the job with the rest of the update free")
        print(f"{'algo':5} {'update ms':>9} {'floor ms':>8} {'floor/update':>12} {'job/s now':>9} {'job/s floor':>11} "
              f"{'job x':>6}")
        for algo, upd, fl, now, at_floor, gain in floors:
            print(f"{algo:5} {upd:>9.1f} {fl:>8.1f} {fl / upd:>12.2f} {now:>9,.0f} {at_floor:>11,.0f} {gain:>5.2f}x")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
