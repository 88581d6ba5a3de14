#!/bin/bash
# The published reproduction (docs/results/paper_dynamic.md): code at commit b78928d (worktree /work/wt/repro).
# Run it as is (it starts the grid), or with --resume to continue a killed run of the same configuration.
cd /work/runs/repro1m
export PYTHONPATH=/work/wt/repro
exec python -c "from ccoma.cli import main; main()" evaluate --scenario paper_dynamic --budget paper \
  --train-steps 1000000 -m c-coma -m coma -m qmix -m c-qmix -m vdn -m c-vdn \
  --seed 0 --seed 1 --seed 2 --seed 3 --seed 4 --workers 2 \
  --tracking-uri sqlite:////work/runs/repro1m/mlflow.db --run-dir /work/runs/repro1m/ccoma_runs "$@"
