"""The pool starts the longest jobs first (longest-processing-time-first): the order a grid's jobs
are started in changes the command's wall-clock, never what a job computes."""
from ccoma import executors
from ccoma.experiment import job_specs
from ccoma.job import total_steps
from ccoma.run_config import resolve


def _specs(methods):
    cfg = resolve("shifting_spawn", "quick", methods=methods, seeds=(0, 1))
    return job_specs(cfg, "key", {})


def test_jobs_with_more_env_steps_start_first_and_ties_keep_their_order():
    specs = _specs(("qmix", "c-qmix", "vdn", "c-vdn", "coma", "c-coma", "coma-explore"))
    given = [(s.algo, s.seed) for s in specs]
    ordered = executors.longest_first(specs)
    steps = [total_steps(s) for s in ordered]
    assert steps == sorted(steps, reverse=True)
    # the COMA jobs run three deployments (frozen, continual, frozen-explore), the others two
    assert [(s.algo, s.seed) for s in ordered[:2]] == [("coma", 0), ("coma", 1)]
    b = specs[0].budget
    assert steps[0] == b.train_steps + 3 * b.deploy_steps and steps[-1] == b.train_steps + 2 * b.deploy_steps
    rest = [(s.algo, s.seed) for s in ordered[2:]]
    assert rest == [g for g in given if g[0] != "coma"]   # equal lengths: as given
    assert sorted(map(id, ordered)) == sorted(map(id, specs))   # the same jobs, none dropped or copied


def test_equal_jobs_keep_the_grid_order():
    specs = _specs(("qmix", "c-qmix", "vdn", "c-vdn"))
    assert executors.longest_first(specs) == specs
