"""What a deployment leaves behind: battle pictures, the served policy and its registration."""
from __future__ import annotations

from pathlib import Path

import torch

from ccoma.job.state import StageState
from ccoma.seeds import seed_for


def greedy_policy(learner, n_agents: int, batch: int = 1):
    """A stateful greedy policy ``(obs [B,N,O], avail [B,N,A]) -> actions [B,N]`` over a learner."""
    memory: dict = {}

    @torch.no_grad()
    def policy(obs, avail):
        h = memory.get("h", learner.init_hidden(batch))
        last = memory.get("last", torch.full((batch, n_agents), -1, dtype=torch.long, device=learner.device))
        actions, memory["h"] = learner.act(obs.to(learner.device), avail.to(learner.device), last, h, 0, "greedy")
        memory["last"] = actions
        return actions

    return policy


def render(spec, scenario, learner, state: StageState, when: str, out_root: Path, run, envs) -> None:
    """One greedy battle on the last deployment phase, as a GIF and a few frames (Figs. 6-7), played
    in an environment of ``envs``, the job's pool of short-lived environments."""
    if spec.budget.render_steps <= 0:
        return
    from ccoma.sim.render import record_episode, render_frames, write_gif

    rng = torch.get_rng_state()
    phase = scenario.deploy_phases[-1]
    seed = seed_for(spec.seed, "render")
    env = envs.get(scenario.phase_source(phase, seed=seed), 1, seed)
    method = spec.methods[state.stage.mode]
    frames = record_episode(env, greedy_policy(learner, env.n_agents), max_steps=spec.budget.render_steps,
                            label=f"{method} {when} adaptation ({phase}, deployment step {state.t:,})")
    out = out_root / "renders" / when
    write_gif(frames, out / f"{when}_adaptation.gif", every=2)
    for png in render_frames(frames, out, every=max(1, len(frames) // 2)):
        png.rename(png.with_name(f"{when}_adaptation_{png.stem}.png"))  # names the report orders by
    run.log_artifact(out, "renders")
    torch.set_rng_state(rng)


def register(spec, scenario, learner, env_info: dict, state: StageState, out_root: Path, tracker, run) -> None:
    """Save the deployed agent network as a policy directory and register it (once per run)."""
    from ccoma.serving import save_policy

    if run.tags.get("ccoma.registered"):
        return
    method = spec.methods[state.stage.mode]
    rates = state.tests["win_rate"]  # greedy test win rate: every method measured the same way
    win = sum(rates) / len(rates) if rates else 0.0
    policy_dir = out_root / f"policy-{method}"
    save_policy(learner.networks()["agent"], policy_dir, obs_dim=env_info["obs_shape"],
                n_agents=env_info["n_agents"], algo=spec.algo, inputs=learner.policy_inputs())
    version = tracker.registry.register(run, scenario=scenario.name, method=method, policy_dir=policy_dir,
                                     deploy_win_rate=win, seed=spec.seed)
    run.set_tags({"ccoma.registered": str(version), "ccoma.deploy_win_rate": f"{win:.6f}"})
