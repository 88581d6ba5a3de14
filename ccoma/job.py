"""One job of the grid: train one learner with one seed, then deploy it in each requested mode.

Stages run in order: ``train`` (everything learns), then ``deploy/frozen`` and/or
``deploy/continual`` (each starts from the trained weights). A stage runs in chunks of
``steps / log_points`` env steps; after each chunk the online metrics are recorded. At
``checkpoints`` evenly spaced chunk boundaries the job (1) resets every environment (running
episodes are dropped: the barrier is part of the protocol, so resumed and uninterrupted runs see
the same episodes), (2) saves a checkpoint, pending metric points included, (3) flushes those
points to MLflow. A killed job restarts from its last checkpoint and flushes the points saved in it
(a kill between saving and flushing loses none); points it logged after that are logged again with
the same steps and values and skipped by the tracker, so no point is lost or duplicated.
"""
from __future__ import annotations

import dataclasses
import time
from collections import deque
from pathlib import Path

import torch

from ccoma import checkpoint as ckpt
from ccoma.continual import anchors
from ccoma.continual.trainable import apply_trainable, set_all
from ccoma.run_config import Budget, ContinualConfig

WINDOW = 30  # episodes in the online win rate (the paper's "30 episodes")


@dataclasses.dataclass
class JobSpec:
    """Everything a worker process needs; plain data so it pickles to a pool or to Ray."""

    scenario: str
    algo: str
    seed: int
    methods: dict            # mode -> method name
    budget: Budget
    continual: ContinualConfig
    algo_overrides: dict
    sim: dict
    device: str
    tracking_uri: str
    run_key: str
    budget_name: str
    backend: str
    params: dict
    run_dir: str
    parent_run_id: str = ""     # the evaluate/train/deploy parent run this job logs under
    stages: tuple = ()          # () = train, then a deployment per requested mode; ("train",) = train only
    init_from: str = ""         # deploy from this trained checkpoint (or policy directory) instead of training


def job_dir(spec: JobSpec) -> Path:
    """Where a job keeps its checkpoint, progress, pictures and policies."""
    return Path(spec.run_dir) / spec.run_key / f"{spec.algo}-seed{spec.seed}"


def progress_file(spec: JobSpec) -> Path:
    """Where a job reports its env steps done (ccoma.progress)."""
    return job_dir(spec) / "progress.json"


def stage_plan(spec: JobSpec) -> list[tuple[str, int]]:
    """The stages a job runs, in order, with their env steps."""
    b = spec.budget
    plan = [("train", b.train_steps)] + [(f"deploy/{mode}", b.deploy_steps)
                                         for mode in ("frozen", "continual") if mode in spec.methods]
    if spec.stages:
        plan = [p for p in plan if p[0] in spec.stages]
    if spec.init_from:
        plan = [p for p in plan if p[0] != "train"]
    return plan


class Stage:
    """The running state of one stage; everything in it is checkpointed."""

    def __init__(self, name: str, steps: int):
        self.name, self.steps, self.t = name, steps, 0
        self.window: deque = deque(maxlen=WINDOW)   # (won, return) of the last episodes
        self.points: list[tuple[str, float, int]] = []   # pending metric points
        self.series: dict[str, list] = {"steps": [], "win_rate": [], "return": []}
        self.evals: list[dict] = []                  # {"step": s, "win_rate": {phase: v}, "return": {...}}

    def state(self) -> dict:
        # pending points go in too: a kill between saving and flushing must not lose them
        return {"name": self.name, "steps": self.steps, "t": self.t, "window": [list(w) for w in self.window],
                "series": self.series, "evals": self.evals, "points": [list(p) for p in self.points]}

    def load(self, sd: dict) -> None:
        self.t = int(sd["t"])
        self.window.extend(tuple(w) for w in sd["window"])
        self.series, self.evals = sd["series"], sd["evals"]
        self.points = [(str(k), float(v), int(s)) for k, v, s in sd.get("points", [])]


def _make_env(spec: JobSpec, scenario, source, n_envs: int, seed: int, compile: bool | None = None):
    from ccoma.envs import backend_of, make

    return make(backend_of(spec.backend), scenario.map, n_envs, seed, spec.device, source=source, config=spec.sim,
                compile=spec.budget.compile if compile is None else compile)


def _record_episodes(stage: Stage, stats: dict) -> None:
    for won, ret in zip(stats["won"].tolist(), stats["return"].tolist()):
        stage.window.append((float(won), float(ret)))


def _log_online(stage: Stage, prefix: str, losses: dict[str, list[float]]) -> None:
    if stage.window:
        win = sum(w for w, _ in stage.window) / len(stage.window)
        ret = sum(r for _, r in stage.window) / len(stage.window)
        stage.points += [(f"{prefix}/win_rate", win, stage.t), (f"{prefix}/return", ret, stage.t)]
        stage.series["steps"].append(stage.t)
        stage.series["win_rate"].append(win)
        stage.series["return"].append(ret)
    for name, values in losses.items():
        if values:
            stage.points.append((f"{prefix}/loss/{name}", sum(values) / len(values), stage.t))


class Job:
    def __init__(self, spec: JobSpec):
        from ccoma.algos import registry
        from ccoma.scenarios import load_scenario
        from ccoma.tracking import Tracker

        torch.set_num_threads(1)
        torch.manual_seed(spec.seed)
        self.spec = spec
        b = spec.budget
        self.scenario = load_scenario(spec.scenario).rescaled(b.train_steps, b.deploy_steps)
        self.dir = job_dir(spec)
        self.ckpt_path = self.dir / "checkpoint.pt"
        self.tracker = Tracker(spec.tracking_uri or None)
        if spec.parent_run_id:
            from ccoma.tracking import Run

            self.parent = Run(self.tracker, self.tracker.client.get_run(spec.parent_run_id), resumed=True)
        else:
            self.parent = self.tracker.evaluate_run(spec.scenario, spec.run_key, backend=spec.backend,
                                                    budget=spec.budget_name)
        self.runs = {mode: self.tracker.method_run(self.parent, method=m, algo=spec.algo, mode=mode, seed=spec.seed,
                                                   params=dict(spec.params, method=m, mode=mode, seed=spec.seed))
                     for mode, m in spec.methods.items()}
        probe = _make_env(spec, self.scenario, self.scenario.source("train", seed=spec.seed), 1, spec.seed,
                          compile=False)
        self.env_info = probe.get_env_info()
        self.learner = registry.make(spec.algo, self.env_info, spec.device, config=spec.algo_overrides.get(spec.algo))
        self.stages = [Stage(name, steps) for name, steps in stage_plan(spec)]
        self.trained = self._initial_weights(spec.init_from) if spec.init_from else None
        self.stage_index = 0

    def _initial_weights(self, path: str) -> dict:
        """Trained weights from a ccoma checkpoint, or the agent network of a policy directory
        (other networks - critic, mixer - then start fresh)."""
        from ccoma.errors import CcomaError

        p = Path(path)
        if p.is_dir():
            agent = torch.load(p / "agent.pt", map_location="cpu", weights_only=True)
            self.learner.networks()["agent"].load_state_dict(agent)
            return self.learner.state_dict()
        state = ckpt.load(p)
        if state.get("algo") != self.spec.algo:
            raise CcomaError(f"checkpoint {p} holds a '{state.get('algo')}' learner, not '{self.spec.algo}' (--algo)")
        if not state.get("trained"):
            raise CcomaError(f"checkpoint {p} holds no finished training stage")
        return state["trained"]

    # ------------------------------------------------------------------------------ plumbing
    def _flush(self, stage: Stage) -> None:
        if not stage.points:
            return
        if stage.name == "train":
            for run in self.runs.values():
                run.log_series(stage.points)
        else:
            self.runs[stage.name.split("/")[1]].log_series(stage.points)
        stage.points = []

    def _progress(self) -> None:
        from ccoma import progress

        done = sum(s.steps for s in self.stages[: self.stage_index]) + self.stages[self.stage_index].t
        progress.report(progress_file(self.spec), done, sum(s.steps for s in self.stages))

    def _save(self, stage: Stage, rng: dict, buffer) -> None:
        state = {"format": "ccoma-checkpoint-1", "algo": self.spec.algo, "stage_index": self.stage_index, "stage": stage.state(),
                 "learner": self.learner.state_dict(), "rng": rng,
                 "buffer": ckpt.buffer_state(buffer) if buffer is not None else {},
                 "trained": self.trained or {}, "done": [s.state() for s in self.stages[: self.stage_index]]}
        ckpt.save(state, self.ckpt_path)

    def resume(self) -> dict | None:
        if not self.ckpt_path.exists():
            return None
        state = ckpt.load(self.ckpt_path)
        if state.get("algo") != self.spec.algo:
            from ccoma.errors import CcomaError

            raise CcomaError(f"checkpoint {self.ckpt_path} holds a '{state.get('algo')}' learner, not '{self.spec.algo}'")
        self.stage_index = int(state["stage_index"])
        self.trained = state["trained"] or None
        for s, sd in zip(self.stages, state["done"]):
            s.load(sd)
        return state

    # --------------------------------------------------------------------------------- stages
    def run(self) -> dict:
        state = self.resume()
        while self.stage_index < len(self.stages):
            stage = self.stages[self.stage_index]
            if state is not None and state["stage"]["name"] == stage.name:
                stage.load(state["stage"])
            self._run_stage(stage, state if state is not None and state["stage"]["name"] == stage.name else None)
            state = None
            self.stage_index += 1
        return self._finish()

    def _setup_stage(self, stage: Stage):
        from ccoma.data.buffer import EpisodeBuffer

        spec, learner = self.spec, self.learner
        if stage.name == "train":
            set_all(learner.networks(), True)
            mode, learn, offset = "explore", True, 0
        else:
            learner.load_state_dict(self.trained)
            learner.clear_regularizers()
            continual = stage.name.endswith("continual")
            if continual:
                apply_trainable(learner.networks(), spec.continual.trainable)
            else:
                set_all(learner.networks(), False)
            mode = "explore" if continual and spec.continual.explore else "greedy"
            learn, offset = continual, spec.budget.train_steps
        buffer = None
        if learn:
            buffer = EpisodeBuffer(learner.scheme(), self.env_info["n_agents"], self.env_info["episode_limit"],
                                   spec.budget.buffer_size, spec.device)
        kind = "train" if stage.name == "train" else "deploy"
        source = self.scenario.source(kind, seed=spec.seed)
        env_seed = spec.seed * 1000 + (kind == "deploy")  # frozen and continual meet the same worlds
        env = _make_env(spec, self.scenario, source, spec.budget.n_envs, env_seed)
        return env, source, buffer, mode, learn, offset

    def _run_stage(self, stage: Stage, state: dict | None) -> None:
        from ccoma.data.rollout import Rollout

        spec = self.spec
        env, source, buffer, mode, learn, offset = self._setup_stage(stage)
        if stage.name.endswith("continual") and spec.continual.anchor != "none":
            self._anchor()  # toward the trained weights, on a fresh start and on resume alike
        if state is not None:
            self.learner.load_state_dict(state["learner"])
        rollout = Rollout(env, self.learner, buffer, mode=mode)
        if state is not None:
            if buffer is not None and state["buffer"]:
                ckpt.load_buffer_state(buffer, state["buffer"])
            # the random state from just before the barrier's reset: this reset deals the same
            # episodes the uninterrupted run dealt after its checkpoint
            ckpt.load_rng_state(env, state["rng"])
            source.set_step(stage.t)
            rollout.reset()
            self._flush(stage)  # points saved with the checkpoint; the tracker skips those it holds
        chunk = max(spec.budget.n_envs, stage.steps // spec.budget.log_points)
        n_chunks = -(-stage.steps // chunk)
        ckpt_every = max(1, n_chunks // spec.budget.checkpoints)
        eval_every = max(1, n_chunks // spec.budget.eval_points)
        if stage.name != "train" and not stage.evals:
            self._evaluate(stage)
            if stage.name.endswith("continual"):
                self._render(stage, "before")
        while stage.t < stage.steps:
            i = stage.t // chunk
            source.set_step(stage.t)
            rollout.t_env = offset + stage.t
            losses: dict[str, list[float]] = {}

            def on_train(info, t_env):
                for k, v in info.items():
                    losses.setdefault(k, []).append(float(v))

            stats = rollout.run(chunk, learn=learn, on_train=on_train)
            stage.t = min(stage.steps, (i + 1) * chunk)
            self._progress()
            _record_episodes(stage, stats)
            _log_online(stage, stage.name.split("/")[0], losses)
            if stage.name != "train" and ((i + 1) % eval_every == 0 or stage.t >= stage.steps):
                self._evaluate(stage)
            if (i + 1) % ckpt_every == 0 or stage.t >= stage.steps:
                rng = ckpt.rng_state(env)  # a resume restores this, then resets as we do now
                source.set_step(stage.t)
                rollout.reset()
                if stage.t >= stage.steps and stage.name == "train":
                    self.trained = self.learner.state_dict()
                self._save(stage, rng, buffer)
                self._flush(stage)
        if stage.name != "train":
            if stage.name.endswith("continual"):
                self._render(stage, "after")
            self._register(stage)

    def _anchor(self) -> None:
        spec = self.spec
        fisher = None
        if spec.continual.anchor == "ewc":
            # the Fisher of the trained weights on fresh training-distribution episodes
            from ccoma.data.buffer import EpisodeBuffer
            from ccoma.data.rollout import Rollout

            env = _make_env(spec, self.scenario, self.scenario.source("train", seed=spec.seed + 7), spec.budget.n_envs,
                            spec.seed + 7, compile=False)
            need = self.learner.config.batch_size
            buf = EpisodeBuffer(self.learner.scheme(), self.env_info["n_agents"], self.env_info["episode_limit"],
                                need * 2, spec.device)
            roll = Rollout(env, self.learner, buf, mode="greedy")
            while len(buf) < need:
                roll.step()
            fisher = anchors.fisher_diagonal(self.learner, lambda: buf.sample(need), spec.continual.fisher_batches)
        anchors.attach(self.learner, spec.continual.anchor, spec.continual.anchor_weight, fisher)

    def _evaluate(self, stage: Stage) -> None:
        """Greedy win rate and return on every deployment phase: one row of the performance matrix."""
        from ccoma.data.rollout import evaluate

        spec = self.spec
        row = {"step": stage.t, "win_rate": {}, "return": {}}
        n = spec.budget.eval_episodes
        rng = torch.get_rng_state()
        for phase in self.scenario.deploy_phases:
            src = self.scenario.phase_source(phase, seed=10_000 + spec.seed)
            env = _make_env(spec, self.scenario, src, min(n, 16), 10_000 + spec.seed, compile=False)  # short: eager
            stats = evaluate(env, self.learner, n)
            row["win_rate"][phase] = float(stats["won"].float().mean()) if stats["won"].numel() else 0.0
            row["return"][phase] = float(stats["return"].mean()) if stats["return"].numel() else 0.0
            stage.points += [(f"eval/{phase}/win_rate", row["win_rate"][phase], stage.t),
                             (f"eval/{phase}/return", row["return"][phase], stage.t)]
        torch.set_rng_state(rng)  # evaluation never shifts the training streams
        stage.evals.append(row)

    def _render(self, stage: Stage, when: str) -> None:
        """One greedy battle on the last deployment phase, as a GIF and a few frames (Figs. 6-7)."""
        spec = self.spec
        if spec.budget.render_steps <= 0:
            return
        from ccoma.sim.render import record_episode, render_frames, write_gif

        rng = torch.get_rng_state()
        phase = self.scenario.deploy_phases[-1]
        seed = 20_000 + spec.seed
        env = _make_env(spec, self.scenario, self.scenario.phase_source(phase, seed=seed), 1, seed, compile=False)
        learner, memory = self.learner, {}

        @torch.no_grad()
        def policy(obs, avail):
            h = memory.get("h", learner.init_hidden(1))
            last = memory.get("last", torch.full((1, env.n_agents), -1, dtype=torch.long, device=learner.device))
            actions, memory["h"] = learner.act(obs.to(learner.device), avail.to(learner.device), last, h, 0, "greedy")
            memory["last"] = actions
            return actions

        method = spec.methods[stage.name.split("/")[1]]
        frames = record_episode(env, policy, max_steps=spec.budget.render_steps,
                                label=f"{method} {when} adaptation ({phase}, deployment step {stage.t:,})")
        out = self.dir / "renders" / when
        write_gif(frames, out / f"{when}_adaptation.gif", every=2)
        for png in render_frames(frames, out, every=max(1, len(frames) // 2)):
            png.rename(png.with_name(f"{when}_adaptation_{png.stem}.png"))  # names the report orders by
        self.runs[stage.name.split("/")[1]].log_artifact(out, "renders")
        torch.set_rng_state(rng)

    # --------------------------------------------------------------------------------- finish
    def _register(self, stage: Stage) -> None:
        """Register the deployed model (weights at the end of this deployment) once."""
        from ccoma.serving import save_policy

        mode = stage.name.split("/")[1]
        run = self.runs[mode]
        if run.tags.get("ccoma.registered"):
            return
        method = self.spec.methods[mode]
        rates = stage.series["win_rate"]
        win = sum(rates) / len(rates) if rates else 0.0
        policy_dir = self.dir / f"policy-{method}"
        save_policy(self.learner.networks()["agent"], policy_dir, obs_dim=self.env_info["obs_shape"],
                    n_agents=self.env_info["n_agents"], algo=self.spec.algo)
        version = self.tracker.register_model(run, scenario=self.scenario.name, method=method,
                                              policy_dir=policy_dir, deploy_win_rate=win, seed=self.spec.seed)
        run.set_tags({"ccoma.registered": str(version), "ccoma.deploy_win_rate": f"{win:.6f}"})

    def _finish(self) -> dict:
        from ccoma.continual.metrics import cl_metrics, recovery_steps

        out = {"algo": self.spec.algo, "seed": self.spec.seed, "methods": {}, "checkpoint": str(self.ckpt_path)}
        shifts = self._shifts()
        if [s.name for s in self.stages] == ["train"]:
            for mode, run in self.runs.items():
                run.finish("finished")
                out["methods"][self.spec.methods[mode]] = {"run_id": run.run_id, "mode": "train",
                                                           "series": self.stages[0].series, "evals": [], "cl": {}}
            return out
        for stage in [s for s in self.stages if s.name != "train"]:
            mode = stage.name.split("/")[1]
            method, run = self.spec.methods[mode], self.runs[mode]
            phases = list(self.scenario.deploy_phases)
            steps = [e["step"] for e in stage.evals]
            matrix = [[e["win_rate"][p] for p in phases] for e in stage.evals]
            cl = cl_metrics(matrix, steps, phases, self._windows(phases))
            tags = {}
            for name, at in shifts.items():
                rec, level = recovery_steps(stage.series["steps"], stage.series["win_rate"], at,
                                            window=max(1, at))
                cl[f"pre_shift_win_rate/{name}"] = level
                if rec is None:
                    tags[f"ccoma.recovered.{name}"] = "false"
                else:
                    cl[f"recovery_steps/{name}"] = rec
            last = stage.steps
            run.log_series([(f"cl/{k}", v, last) for k, v in cl.items() if v == v])
            if tags:
                run.set_tags(tags)
            run.finish("finished")
            out["methods"][method] = {"run_id": run.run_id, "mode": mode, "series": stage.series,
                                      "evals": stage.evals, "cl": cl}
        return out

    def _shifts(self) -> dict[str, int]:
        """Deployment steps where the world changes: unseen_from, and every later phase boundary."""
        at = {}
        unseen = self.scenario.unseen_from
        if unseen:
            at["unseen"] = int(unseen)
        for i, b in enumerate(self.scenario.boundaries("deploy")):
            if 0 < b < self.spec.budget.deploy_steps and b not in at.values():
                at[f"boundary{i}"] = int(b)
        return at

    def _windows(self, phases: list[str]) -> dict[str, tuple[int, int]]:
        """Where each deployment phase is first active: (first step, end of that stretch)."""
        windows = {}
        for seg in self.scenario.segments("deploy"):
            w = [max(a, b) for a, b in zip(seg.w_start, seg.w_end)]
            for i, name in enumerate(self.scenario.phase_names):
                if name in phases and w[i] > 0 and name not in windows:
                    windows[name] = (seg.start, seg.end)
        return windows


def run_job(spec: JobSpec) -> dict:
    """Entry point for a worker: run (or resume) the job and return its results."""
    started = time.time()
    job = Job(spec)
    try:
        result = job.run()
    except KeyboardInterrupt:
        for run in job.runs.values():
            run.finish("interrupted")
        raise
    except Exception:
        for run in job.runs.values():
            run.finish("failed")
        raise
    result["seconds"] = time.time() - started
    return result
