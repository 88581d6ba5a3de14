"""The running state of one stage: counters, the online window, pending metric points, series.

Everything here goes into the checkpoint, pending points included: a kill between saving a
checkpoint and flushing its points to MLflow must not lose them.
"""
from __future__ import annotations

from collections import deque

from ccoma.job.spec import Stage

WINDOW = 30  # episodes in the online win rate (the paper's "30 episodes")


class StageState:
    def __init__(self, stage: Stage):
        self.stage = stage
        self.t = 0          # the stage's step: chunk ends, where its metric points are logged
        self.env_t = 0      # the env steps its rollout has taken (pymarl's t_env): t, or up to a batched step past
        self.window: deque = deque(maxlen=WINDOW)          # (won, return) of the last episodes
        self.points: list[tuple[str, float, int]] = []     # pending metric points
        self.series: dict[str, list] = {"steps": [], "win_rate": [], "return": []}   # online
        self.evals: list[dict] = []   # performance matrix rows {"step", "win_rate": {phase: v}, "return": {...}}
        self.tests: dict[str, list] = {"steps": [], "win_rate": [], "return": []}   # greedy test curve

    # names kept for the checkpoint format and for code that reads a stage's name/steps
    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def steps(self) -> int:
        return self.stage.steps

    def state(self) -> dict:
        return {"name": self.name, "steps": self.steps, "t": self.t, "env_t": self.env_t,
                "window": [list(w) for w in self.window],
                "series": self.series, "evals": self.evals, "tests": self.tests,
                "points": [list(p) for p in self.points]}

    def load(self, sd: dict) -> None:
        self.t = int(sd["t"])
        self.env_t = int(sd.get("env_t", sd["t"]))   # checkpoints before session 35: the counter was t
        self.window.clear()
        self.window.extend(tuple(w) for w in sd["window"])
        self.series, self.evals = sd["series"], sd["evals"]
        self.tests = sd.get("tests", {"steps": [], "win_rate": [], "return": []})
        self.points = [(str(k), float(v), int(s)) for k, v, s in sd.get("points", [])]

    def record_episodes(self, stats: dict) -> None:
        """Finished episodes' outcomes ([k] tensors "won", "return") into the online window."""
        for won, ret in zip(stats["won"].tolist(), stats["return"].tolist()):
            self.window.append((float(won), float(ret)))

    def log_online(self, losses: dict[str, list[float]]) -> None:
        """A point of the online (behaviour-policy) series, and the mean of each loss."""
        prefix = self.stage.prefix
        if self.window:
            win = sum(w for w, _ in self.window) / len(self.window)
            ret = sum(r for _, r in self.window) / len(self.window)
            self.points += [(f"{prefix}/win_rate", win, self.t), (f"{prefix}/return", ret, self.t)]
            self.series["steps"].append(self.t)
            self.series["win_rate"].append(win)
            self.series["return"].append(ret)
        for name, values in losses.items():
            if values:
                self.points.append((f"{prefix}/loss/{name}", sum(values) / len(values), self.t))
