"""The simulator and every learner on CUDA, checked against the CPU (for a GPU machine; not a test).

    python benchmarks/cuda_check.py                      # both parts, ~1-2 min on an H200
    python benchmarks/cuda_check.py --part sim --steps 600
    python benchmarks/cuda_check.py --device cpu         # the script itself, CPU against CPU (all equal)

``sim``: the same battles on both devices. Two environments of B battles each, one on the CPU (eager)
and one on ``--device`` (eager, then compiled as the harness's budgets run it), with the same seeds,
step through ``--steps`` agent steps with the same actions (uniform among the CPU side's available
actions, from a CPU generator), automatic resets included. The simulator's random numbers are a
function of (seed, episode, step, ...) on either device (``ccoma/sim/rng.py``) and episodes are dealt
from a CPU generator, so the two sides can differ only by floating-point rounding. Printed per case:
the first step at which a discrete outcome differs (available actions, ends, wins), the step until
which every observation agrees within 1e-3, the largest observation and reward differences before the
first discrete difference, and the episodes ended and won on each side. Rounding makes long runs
drift apart on any two builds (one shifted damage tick changes a health feature by ~0.3), so read
the figures against the same script's CPU-eager against CPU-compiled run (``--device cpu``). Cases:
the 2s3z map, and the ``shifting_spawn`` and ``shifting_composition`` scenarios' deployment sources
late in the stage (new spawns and new enemy types); compiled on 2s3z only unless ``--compile-all``
(each compilation of another map takes tens of seconds).

``learn``: every learner in the registry trains on ``--device`` through ``Rollout.run`` (the harness's
loop) with the harness's buffer (``buffer_for``), then deploys continually as a C- method does
(``ccoma.job.strategy.prepare``: trained weights, only the ``trainable`` set learning, with the EWC
anchor from a Fisher estimated on the device). Printed per learner: updates, whether every loss and
parameter is finite, and whether the deployment changed the trainable parameters and nothing else.
"""
from __future__ import annotations

import argparse
import sys
import time
import traceback

import torch


def _actions(avail: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    u = torch.rand(avail.shape, generator=gen)
    return torch.where(avail, u, -1.0).argmax(-1)


def sim_case(name: str, make_env, steps: int, device: str, compiled: bool) -> dict:
    cpu, dev = make_env("cpu", False), make_env(device, compiled)
    cpu.reset()
    dev.reset()
    gen = torch.Generator().manual_seed(0)
    first, obs_diff, rew_diff, ends, loose = None, 0.0, 0.0, 0, None
    wins = [0, 0]
    t0 = time.perf_counter()
    for t in range(steps):
        a_c, a_d = cpu.get_avail_actions(), dev.get_avail_actions().cpu()
        if not torch.equal(a_c, a_d):
            first = (t, "available actions")
            break
        d = (cpu.get_obs() - dev.get_obs().cpu()).abs().max().item()
        if loose is None and d > 1e-3:
            loose = t
        obs_diff = max(obs_diff, d)
        act = _actions(a_c, gen)
        o_c, o_d = cpu.step(act), dev.step(act.to(device))
        for field in ("terminated", "truncated", "won"):
            if not torch.equal(getattr(o_c, field), getattr(o_d, field).cpu()):
                first = (t, field)
                break
        if first:
            break
        rew_diff = max(rew_diff, (o_c.reward - o_d.reward.cpu()).abs().max().item())
        ends += int((o_c.terminated | o_c.truncated).sum())
        wins[0] += int(o_c.won.sum())
        wins[1] += int(o_d.won.sum())
    secs = time.perf_counter() - t0
    verdict = "same discrete outcomes" if first is None else f"first differs at step {first[0]} ({first[1]})"
    print(f"  {name:40} {'compiled' if compiled else 'eager':8} B={cpu.n_envs:<4} {steps} steps: {verdict}; "
          f"obs within 1e-3 {'throughout' if loose is None else f'until step {loose}'}, "
          f"max |obs diff| {obs_diff:.2e}, max |reward diff| {rew_diff:.2e}; {ends} episodes ended, "
          f"won {wins[0]} / {wins[1]} ({secs:.1f} s)", flush=True)
    return {"case": name, "compiled": compiled, "first_difference": first, "obs_within_1e-3_until": loose,
            "obs_diff": obs_diff, "reward_diff": rew_diff, "episodes": ends, "wins": wins}


def part_sim(args) -> bool:
    from ccoma.envs import make
    from ccoma.scenarios import load_scenario

    print(f"sim: CPU eager against {args.device}, same seeds and actions")

    def from_map(dev, compiled):
        return make("sim", "2s3z", args.batch, 0, dev, compile=compiled)

    def late_deploy(scenario_name):
        scenario = load_scenario(scenario_name)

        def build(dev, compiled):
            source = scenario.source("deploy", seed=0)
            source.set_step(10**9)          # late in the stage: the shifted spawns / unit types
            return make("sim", scenario.map, args.batch, 0, dev, source=source, compile=compiled)
        return build

    cases = [("2s3z", from_map), ("shifting_spawn, deployment (late)", late_deploy("shifting_spawn")),
             ("shifting_composition, deployment (late)", late_deploy("shifting_composition"))]
    ok = True
    for name, build in cases:
        for compiled in ((False, True) if args.compile_all or name == "2s3z" else (False,)):
            try:
                sim_case(name, build, args.steps, args.device, compiled)
            except Exception:
                ok = False
                print(f"  {name} {'compiled' if compiled else 'eager'}: FAILED\n{traceback.format_exc()}", flush=True)
    return ok


def learn_one(algo: str, args) -> bool:
    from ccoma.algos import registry
    from ccoma.continual import anchors
    from ccoma.data.buffer import buffer_for
    from ccoma.data.rollout import Rollout
    from ccoma.envs import make
    from ccoma.job import strategy
    from ccoma.job.spec import Stage
    from ccoma.run_config import ContinualConfig

    dev = args.device
    torch.manual_seed(0)
    env = make("sim", "2s3z", args.envs, 0, dev)
    learner = registry.make(algo, env.get_env_info(), dev)
    buf = buffer_for(learner, env.n_agents, env.episode_limit, 200, args.envs, dev)
    t0 = time.perf_counter()
    rollout = Rollout(env, learner, buf)
    stats = rollout.run(args.train_steps)
    train_s = time.perf_counter() - t0
    trained = {k: v.clone() if torch.is_tensor(v) else v for k, v in learner.state_dict().items()}
    finite = all(torch.isfinite(p).all() for net in learner.networks().values() for p in net.parameters())
    on_device = all(p.device.type == torch.device(dev).type for net in learner.networks().values()
                    for p in net.parameters())
    updates = learner.train_steps

    # continual deployment, as a C- method's: the trained weights, the trainable set, the EWC anchor
    cont = ContinualConfig(anchor="ewc")
    stage = Stage("deploy", "continual", args.deploy_steps)
    strategy.prepare(learner, stage, cont, trained)
    before = {f"{n}.{k}": p.detach().clone() for n, net in learner.networks().items()
              for k, p in net.named_parameters()}
    live = {f"{n}.{k}" for n, net in learner.networks().items() for k, p in net.named_parameters() if p.requires_grad}
    dep_env = make("sim", "2s3z", args.envs, 1, dev)
    dep_buf = buffer_for(learner, dep_env.n_agents, dep_env.episode_limit, 200, args.envs, dev)
    fill = Rollout(dep_env, learner, dep_buf, mode="explore")
    fill.run(args.envs * dep_env.episode_limit)      # a few episodes for the Fisher
    fisher = anchors.fisher_diagonal(learner, lambda: dep_buf.sample(min(len(dep_buf), 4)), 2)
    anchors.attach(learner, cont.anchor, cont.anchor_weight, fisher)
    updates_before = learner.train_steps
    Rollout(dep_env, learner, dep_buf, mode="explore").run(args.deploy_steps)
    after = {f"{n}.{k}": p.detach() for n, net in learner.networks().items() for k, p in net.named_parameters()}
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    frozen_moved = sorted(changed - live)
    finite = finite and all(torch.isfinite(v).all() for v in after.values())
    won = stats["won"].float().mean().item() if stats["won"].numel() else float("nan")
    ok = finite and on_device and updates > 0 and not frozen_moved and bool(changed) \
        and learner.train_steps > updates_before
    print(f"  {algo:5} train {args.train_steps} steps: {updates} updates, {train_s:.1f} s, "
          f"won {won:.2f} | continual: {learner.train_steps - updates_before} updates, "
          f"{len(changed)}/{len(live)} trainable tensors moved, frozen moved: {frozen_moved or 'none'} | "
          f"finite {finite}, on {dev}: {on_device} -> {'ok' if ok else 'FAILED'}", flush=True)
    return ok


def part_learn(args) -> bool:
    from ccoma.algos import registry

    print(f"learn: every learner on {args.device}, {args.envs} environments, then a continual deployment with EWC")
    ok = True
    for algo in registry.REGISTRY:
        try:
            ok = learn_one(algo, args) and ok
        except Exception:
            ok = False
            print(f"  {algo}: FAILED\n{traceback.format_exc()}", flush=True)
    return ok


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--part", default="sim,learn", help="comma list of sim, learn")
    p.add_argument("--batch", type=int, default=32, help="sim: battles per environment (32: the harness's)")
    p.add_argument("--compile-all", action="store_true", help="sim: compiled runs of every case, not 2s3z's alone")
    p.add_argument("--steps", type=int, default=300, help="sim: agent steps compared")
    p.add_argument("--envs", type=int, default=8, help="learn: environments")
    p.add_argument("--train-steps", type=int, default=6_000, help="learn: training env steps")
    p.add_argument("--deploy-steps", type=int, default=3_000, help="learn: continual deployment env steps")
    args = p.parse_args(argv)
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            p.error("--device cuda: torch sees no CUDA device")
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}")
    ok = True
    for part in args.part.split(","):
        ok = {"sim": part_sim, "learn": part_learn}[part](args) and ok
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
