"""What a job does not do again: greedy evaluations it has played with the same weights (looked up:
exactly what playing them gives; changed weights are played again), and the environments an
earlier job of its process built (reseeded: the same episodes a new one deals)."""
from __future__ import annotations

import torch

from ccoma.job import evaluation
from ccoma.job.envs import EnvPool
from ccoma.job.spec import Stage
from ccoma.job.state import StageState


def _setup(tmp_path, scenario_name="shifting_spawn"):
    from ccoma.algos import registry
    from ccoma.experiment import job_specs
    from ccoma.run_config import resolve
    from ccoma.scenarios import load_scenario

    cfg = resolve(scenario_name, "smoke", methods=("qmix",), tracking_uri=f"sqlite:///{tmp_path / 'm.db'}",
                  run_dir=str(tmp_path / "runs"), report=False)
    spec = job_specs(cfg, "k", {})[0]
    scenario = load_scenario(spec.scenario).rescaled(spec.budget.train_steps, spec.budget.deploy_steps)
    envs = EnvPool(spec, scenario)
    probe = envs.get(scenario.source("train", seed=0), 1, 0)
    torch.manual_seed(0)
    learner = registry.make("qmix", probe.get_env_info(), "cpu")
    return spec, scenario, envs, learner


def _evaluate(spec, scenario, learner, envs, cache, t):
    state = StageState(Stage("deploy", "frozen", spec.budget.deploy_steps))
    state.t = t
    evaluation.matrix_row(spec, scenario, learner, state, 8, envs, cache)
    evaluation.test_point(spec, scenario, learner, state, 8, envs, cache)
    return state.evals[0], (state.tests["win_rate"][0], state.tests["return"][0])


def test_cached_evaluations_equal_played_ones_and_new_weights_play_again(tmp_path):
    spec, scenario, envs, learner = _setup(tmp_path)
    cache = evaluation.EvalCache()
    played = _evaluate(spec, scenario, learner, envs, None, 1_200)
    first = _evaluate(spec, scenario, learner, envs, cache, 1_200)
    misses = cache.misses
    assert cache.hits == 0 and misses == len(scenario.deploy_phases) + 1
    again = _evaluate(spec, scenario, learner, envs, cache, 1_200)
    assert cache.hits == misses and cache.misses == misses     # nothing played the second time
    assert first == played and again == played
    assert any(v != 0 for v in played[0]["return"].values())   # real episodes were played

    # a later test point (another step, another index's episodes) is played; the matrix row is not
    _evaluate(spec, scenario, learner, envs, cache, 2_400)
    assert cache.misses == misses + 1

    # changed weights: everything is played again, and matches a cache-less evaluation
    with torch.no_grad():
        for p in learner.networks()["agent"].parameters():
            p.add_(0.05 * torch.randn_like(p))
    changed = _evaluate(spec, scenario, learner, envs, cache, 1_200)
    assert cache.misses == 2 * misses + 1
    assert changed == _evaluate(spec, scenario, learner, envs, None, 1_200)
    assert changed != played
    envs.close()


def test_a_later_job_reuses_the_simulators_environments_and_meets_the_same_episodes(tmp_path, monkeypatch):
    """A pool worker's next job takes the environments the last one handed back (no new compiled
    step), reseeded: it meets exactly the episodes a new environment would deal it."""
    from ccoma.job import envs as pool_mod

    monkeypatch.setattr(pool_mod, "_IDLE", {})
    spec, scenario, envs, learner = _setup(tmp_path)
    first = envs.get(scenario.source("train", seed=1), 8, 1)
    first.reset()
    for _ in range(7):
        first.step(torch.zeros(8, first.n_agents, dtype=torch.long))
    envs.close()

    later = EnvPool(spec, scenario)
    source = scenario.phase_source(scenario.deploy_phases[-1], seed=5)
    reused = later.get(source, 8, 5)
    assert reused is first
    new = pool_mod.make_env(spec, scenario, scenario.phase_source(scenario.deploy_phases[-1], seed=5), 8, 5)
    assert new is not reused
    g = torch.Generator().manual_seed(0)
    for env in (reused, new):
        env.reset()
    for _ in range(40):
        avail = new.get_avail_actions()
        assert torch.equal(reused.get_obs(), new.get_obs()) and torch.equal(reused.get_avail_actions(), avail)
        actions = torch.multinomial(avail.flatten(0, 1).float(), 1, generator=g).view(8, -1)
        a, b = reused.step(actions), new.step(actions)
        assert torch.equal(a.reward, b.reward) and torch.equal(a.terminated, b.terminated)

    # another size, or another scenario's map, is a new environment
    assert later.get(source, 4, 5) is not reused
    later.close()
    other = _setup(tmp_path, "2s3z")
    assert other[2].get(other[1].source("train", seed=0), 8, 0) is not reused
