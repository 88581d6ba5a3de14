#!/bin/bash
# The 5M-step reproduction (docs/results/paper_dynamic_5m/README.md): the paper's protocol in full
# (5M training, 1M frozen and 1M continual deployment), the command a user runs with the paper budget's
# defaults: the paper's six methods and COMA-explore, seeds 0 1 2. Code at commit cdf6393 (worktree
# /work/wt/s36). Run it as is (it starts the grid), or with --resume to continue a killed run.
cd /work/runs/s36/repro5m
export PYTHONPATH=/work/wt/s36
exec python -c "from ccoma.cli import main; main()" evaluate --scenario paper_dynamic --budget paper --workers 2 \
  --tracking-uri sqlite:////work/runs/s36/repro5m/mlflow.db --run-dir /work/runs/s36/repro5m/ccoma_runs "$@"
