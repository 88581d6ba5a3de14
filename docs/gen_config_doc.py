"""Regenerate docs/config.md from the config dataclasses: python docs/gen_config_doc.py"""
import dataclasses
from pathlib import Path

from ccoma.config import describe
from ccoma.envs.sc2.config import Sc2Config
from ccoma.run_config import Budget, ContinualConfig, RunConfig
from ccoma.sim.engine import SimConfig


def cell(value) -> str:
    if dataclasses.is_dataclass(value):  # a nested config: its own table follows
        return f"a `{type(value).__name__}` (below)"
    return f"`{value!r}`"


def table(cls) -> str:
    rows = [f"| `{n}` | {d} | {cell(v)} |" for n, d, v in describe(cls)]
    return "| field | meaning | default |\n|---|---|---|\n" + "\n".join(rows)


def main() -> str:
    text = ["# Configuration", "",
            "`ccoma evaluate --config run.yaml` overrides any field below; an unknown key is an error.",
            "Nested sections: `budget:` (a Budget, on top of `--budget`), `continual:`, `sim:` (SimConfig),",
            "`algo: {qmix: {lr: 0.001}}` (each learner's own config, see ccoma/algos).", "",
            "    methods: [c-coma, coma]", "    seeds: [0, 1, 2]", "    budget: {n_envs: 16, eval_episodes: 64}",
            "    continual: {anchor: l2, anchor_weight: 5.0}", "    sim: {substeps: 4}", "",
            "With `backend: sc2` (StarCraft II, docs/sc2.md) the `sim:` section holds Sc2Config overrides instead.",
            ""]
    for cls in (RunConfig, Budget, ContinualConfig, SimConfig, Sc2Config):
        text += [f"## {cls.__name__}", "", (cls.__doc__ or "").strip(), "", table(cls), ""]
    return "\n".join(text)


if __name__ == "__main__":
    Path(__file__).with_name("config.md").write_text(main())
