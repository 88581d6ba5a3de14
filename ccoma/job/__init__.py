"""One job of the grid: train one learner with one seed, then deploy it in each requested mode.

    spec.py        JobSpec (plain data for a worker), the typed Stage, the job's folders
    state.py       the checkpointed running state of a stage (online window, pending points, series)
    strategy.py    the continual strategy: what learns, how the agents act, the anchor
    evaluation.py  greedy evaluations: the performance matrix
    summary.py     continual-learning metrics at the end of a deployment
    artifacts.py   battle pictures, the served policy and its registration
    runner.py      the run loop with checkpoints and exact resume; ``run_job`` for workers
"""
from ccoma.job.runner import Job, run_job
from ccoma.job.spec import DEPLOY_MODES, JobSpec, Stage, job_dir, progress_file, stages, total_steps

__all__ = ["DEPLOY_MODES", "Job", "JobSpec", "Stage", "job_dir", "progress_file", "run_job", "stages", "total_steps"]
