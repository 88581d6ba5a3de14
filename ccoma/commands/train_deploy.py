"""``ccoma train`` and ``ccoma deploy``: the two halves of ``evaluate`` for one learner and seed."""
from __future__ import annotations

import click

from ccoma.commands.evaluate import SEED, common_options, load_overrides


def _cfg(scenario, budget, train_steps, deploy_steps, config_file, tracking_uri, device, threads, fused_gru, backend):
    from ccoma.run_config import resolve

    return resolve(scenario, budget, train_steps=train_steps, deploy_steps=deploy_steps,
                   overrides=load_overrides(config_file), where=config_file or "config",
                   tracking_uri=tracking_uri, device=device, threads=threads, fused_gru=fused_gru, backend=backend,
                   report=False)


@click.command()
@common_options
@click.option("--algo", "-a", default="coma", show_default=True, help="Learner: coma, qmix, vdn, iql, mfq.")
@click.option("--seed", type=SEED, default=0, show_default=True)
def train(scenario, budget, train_steps, deploy_steps, config_file, tracking_uri, device, threads, fused_gru, backend,
          algo, seed):
    """Train one learner on a scenario's training stage; prints the checkpoint to deploy from."""
    from ccoma.experiment import single

    cfg = _cfg(scenario, budget, train_steps, deploy_steps, config_file, tracking_uri, device, threads, fused_gru,
               backend)
    out = single(cfg, algo, seed, "train")
    series = next(iter(out["methods"].values()))["series"]["win_rate"]
    click.echo(f"trained in {out['seconds']:.0f} s; final rolling win rate {series[-1] if series else 0:.2f}")
    click.echo(f"checkpoint: {out['checkpoint']}")


def check_trained(path: str, algo: str, cfg) -> None:
    """A policy folder or a trained checkpoint of ``algo`` that fits ``scenario``'s teams, verified
    (content hash, allowed network) before any run is created: a bad one logs nothing."""
    from pathlib import Path

    from ccoma import checkpoint
    from ccoma.algos import registry
    from ccoma.errors import CcomaError
    from ccoma.scenarios import load_scenario
    from ccoma.serving import read_policy_dir
    from ccoma.sim.env import SimEnv

    scenario = cfg.scenario
    scn = load_scenario(scenario)
    info = SimEnv(scn.map, 1, source=scn.source("train"), compile=False).get_env_info()  # the job's layout
    learner = registry.make(algo, info, "cpu", config=cfg.algo.get(algo))
    if Path(path).is_dir():
        spec, agent = read_policy_dir(path)
        have = (spec["obs_dim"], spec["n_actions"], spec["n_agents"])
        want = (info["obs_shape"], info["n_actions"], info["n_agents"])
        if have != want:
            raise CcomaError(f"--checkpoint {path}: a policy for obs {have[0]}, {have[1]} actions, {have[2]} agents "
                             f"does not fit scenario {scenario} (obs {want[0]}, {want[1]} actions, {want[2]} agents)")
        try:
            learner.networks()["agent"].load_state_dict(agent)
        except RuntimeError as exc:
            raise CcomaError(f"--checkpoint {path}: the policy does not fit {algo}'s agent network on scenario "
                             f"{scenario} ({' '.join(str(exc).split())[:120]})") from None
        return
    state = checkpoint.load(path)
    if state.get("algo") != algo:
        raise CcomaError(f"checkpoint {path} holds a '{state.get('algo')}' learner, not '{algo}' (--algo)")
    if not state.get("trained"):
        raise CcomaError(f"checkpoint {path} holds no finished training stage")
    try:
        learner.load_state_dict(state["trained"])
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise CcomaError(f"checkpoint {path} does not fit scenario {scenario} "
                         f"({' '.join(str(exc).split())[:120]})") from None


@click.command()
@common_options
@click.option("--checkpoint", "init_from", required=True,
              help="A ccoma checkpoint (from train or evaluate) or a policy directory (agent network only).")
@click.option("--algo", "-a", default="coma", show_default=True, help="The learner the checkpoint holds.")
@click.option("--mode", type=click.Choice(["frozen", "continual", "frozen-explore"]), default="continual",
              show_default=True, help="frozen: greedy, no learning; continual: the trainable set learns; "
              "frozen-explore: no learning, behaviour policy (the sampling control).")
@click.option("--seed", type=SEED, default=0, show_default=True)
def deploy(scenario, budget, train_steps, deploy_steps, config_file, tracking_uri, device, threads, fused_gru, backend,
           init_from, algo, mode, seed):
    """Deploy a trained model into a scenario's changing world, frozen or still learning."""
    from pathlib import Path

    from ccoma.errors import CcomaError
    from ccoma.experiment import single

    if not Path(init_from).exists():
        raise CcomaError(f"--checkpoint {init_from}: no such file or directory")
    cfg = _cfg(scenario, budget, train_steps, deploy_steps, config_file, tracking_uri, device, threads, fused_gru,
               backend)
    from ccoma.envs import check as check_backend

    check_backend(cfg.backend)  # a missing game first: one line pointing at `ccoma doctor`
    check_trained(init_from, algo, cfg)
    out = single(cfg, algo, seed, "deploy", mode=mode, init_from=init_from)
    for method, r in out["methods"].items():
        rates = r["series"]["win_rate"]
        click.echo(f"{method}: mean online win rate {sum(rates) / max(len(rates), 1):.2f}; "
                   + ", ".join(f"{k} {v:.3g}" for k, v in sorted(r["cl"].items())))
