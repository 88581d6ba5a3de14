"""The job's run loop: stages in order, in chunks, with checkpoints and exact resume.

A stage runs in chunks of ``steps / log_points`` env steps; after each chunk the online metrics are
recorded. The rollout counts the env steps it takes (pymarl's ``t_env``, which the exploration
schedule reads) and each chunk runs from wherever the last one stopped to the chunk's end, so a
chunk's last batched step may pass its end by less than one batched step and the next chunk is that
much shorter: a stage takes its budget to within one batched step, and its metric points sit at the
chunks' ends. At ``checkpoints`` evenly spaced chunk boundaries the job (1) resets every environment
(running episodes are dropped: the barrier is part of the protocol, so resumed and uninterrupted runs
see the same episodes), (2) saves a checkpoint, pending metric points included, (3) flushes those
points to MLflow. A killed job restarts from its last checkpoint and flushes the points saved in it
(a kill between saving and flushing loses none); points it logged after that are logged again with
the same steps and values and skipped by the tracker, so no point is lost or duplicated.
"""
from __future__ import annotations

import time

import torch

from ccoma import checkpoint as ckpt
from ccoma.allocator import keep_freed_memory
from ccoma.algos import fused_critic, fused_gru
from ccoma.envs.factory import backend_of
from ccoma.job import artifacts, evaluation, strategy, summary
from ccoma.job.envs import EnvPool
from ccoma.job.spec import JobSpec, job_dir, progress_file, stages
from ccoma.job.state import StageState
from ccoma.job.weights import FINAL_LEVEL, trained_weights
from ccoma.seeds import seed_for


def chunking(steps: int, budget) -> tuple[int, int]:
    """A stage of ``steps`` env steps in chunks: (chunk length, number of chunks)."""
    chunk = max(budget.n_envs, steps // budget.log_points)
    return chunk, -(-steps // chunk)


def barrier_ends(steps: int, budget) -> list[int]:
    """The stage steps at which a job's checkpoint barriers are: the ends of every ``n_chunks //
    checkpoints``-th chunk and of the last (``benchmarks/job_vs_loop.py`` and the tests replay them)."""
    chunk, n_chunks = chunking(steps, budget)
    every = max(1, n_chunks // budget.checkpoints)
    return [min(steps, (i + 1) * chunk) for i in range(n_chunks) if (i + 1) % every == 0 or i == n_chunks - 1]


class Job:
    def __init__(self, spec: JobSpec):
        from ccoma.algos import registry
        from ccoma.scenarios import load_scenario
        from ccoma.tracking import Tracker

        keep_freed_memory()   # glibc: no fresh pages per update (ccoma/allocator.py)
        torch.set_num_threads(1)
        torch.manual_seed(seed_for(spec.seed, "torch"))
        self.spec = spec
        b = spec.budget
        self.scenario = load_scenario(spec.scenario).rescaled(b.train_steps, b.deploy_steps)
        self.dir = job_dir(spec)
        self.ckpt_path = self.dir / "checkpoint.pt"
        self.writer = ckpt.Writer()   # checkpoints are written in the background, one at a time
        self.tracker = Tracker(spec.tracking_uri or None)
        if spec.parent_run_id:
            self.parent = self.tracker.open_run(spec.parent_run_id)
        else:
            from ccoma.scenarios import scenario_id

            self.parent = self.tracker.evaluate_run(scenario_id(spec.scenario), spec.run_key, backend=spec.backend,
                                                    budget=spec.budget_name)
        self.runs = {mode: self.tracker.method_run(self.parent, method=m, algo=spec.algo, mode=mode, seed=spec.seed,
                                                   params=dict(spec.params, method=m, mode=mode, seed=spec.seed))
                     for mode, m in spec.methods.items()}
        self.envs = EnvPool(spec, self.scenario)  # probe, evaluation, pictures: built once, reseeded per use
        # the stages' environment: one, reseeded for each stage (a compiled step traced once, sc2 games
        # launched once); a pool of its own because evaluations run in the middle of a stage
        self.stage_envs = EnvPool(spec, self.scenario)
        # greedy evaluations already played with the same weights (frozen deployments repeat them)
        self.eval_cache = evaluation.EvalCache() if backend_of(spec.backend) == "sim" else None
        probe = self.envs.get(self.scenario.source("train", seed=spec.seed), 1, spec.seed)
        self.env_info = probe.get_env_info()
        self.learner = registry.make(spec.algo, self.env_info, spec.device, config=spec.algo_overrides.get(spec.algo))
        self.initial = self.learner.state_dict()   # untrained weights: a from-scratch reference starts here
        self.states = [StageState(s) for s in stages(spec)]
        # the trained weights, and the exploration-schedule step at which training ended
        self.trained, self.trained_t = trained_weights(spec.init_from, self.learner, spec.algo) if spec.init_from \
            else (None, 0)
        self.stage_index = 0
        train_only = all(s.stage.is_train for s in self.states)
        for mode, run in self.runs.items():  # each method's parameter budget and exploration (the report prints them)
            run.log_params(strategy.method_params(self.learner, "train" if train_only else mode, spec,
                                                  self.trained_t or b.train_steps))

    # ------------------------------------------------------------------------------ plumbing
    def _run_of(self, state: StageState):
        return None if state.stage.is_train else self.runs[state.stage.mode]

    def _flush(self, stage: StageState) -> None:
        if not stage.points:
            return
        run = self._run_of(stage)
        for r in (self.runs.values() if run is None else [run]):   # training points go to every method's run
            r.log_series(stage.points)
        stage.points = []

    def _progress(self) -> None:
        from ccoma import progress

        done = sum(s.steps for s in self.states[: self.stage_index]) + self.states[self.stage_index].t
        progress.report(progress_file(self.spec), done, sum(s.steps for s in self.states))

    def _save(self, stage: StageState, rng: dict, buffer, wait: bool) -> None:
        """Checkpoint the job: a snapshot now, written in the background (``wait``: on disk on return).

        The snapshot is what ``save`` wrote synchronously before: the learner's state is cloned, the
        buffer packed into new tensors, the stages' lists copied; the job goes on training while
        the writer hashes and writes it (1-3 s at the paper budget's 5000-episode replay). The
        previous checkpoint is on disk before the next snapshot is taken: one replay copy at a time."""
        self.writer.wait()
        state = {"format": "ccoma-checkpoint-1", "algo": self.spec.algo, "stage_index": self.stage_index,
                 "stage": ckpt.snapshot(stage.state()), "learner": self.learner.state_dict(), "rng": rng,
                 "buffer": ckpt.buffer_state(buffer) if buffer is not None else {},
                 "trained": self.trained or {}, "trained_t": self.trained_t,
                 "done": ckpt.snapshot([s.state() for s in self.states[: self.stage_index]])}
        self.writer.submit(state, self.ckpt_path)
        if wait:
            self.writer.wait()

    def resume(self) -> dict | None:
        if not self.ckpt_path.exists():
            return None
        state = ckpt.load(self.ckpt_path)
        if state.get("algo") != self.spec.algo:
            from ccoma.errors import CcomaError

            raise CcomaError(f"checkpoint {self.ckpt_path} holds a '{state.get('algo')}' learner, not '{self.spec.algo}'")
        self.stage_index = int(state["stage_index"])
        self.trained = state["trained"] or None
        self.trained_t = int(state.get("trained_t", FINAL_LEVEL if self.trained else 0))
        for s, sd in zip(self.states, state["done"]):
            s.load(sd)
        return state

    # --------------------------------------------------------------------------------- stages
    def run(self) -> dict:
        saved = self.resume()
        try:
            while self.stage_index < len(self.states):
                stage = self.states[self.stage_index]
                mine = saved if saved is not None and saved["stage"]["name"] == stage.name else None
                if mine is not None:
                    stage.load(mine["stage"])
                self._run_stage(stage, mine)
                saved = None
                self.stage_index += 1
        except BaseException:
            self._close(failing=True)
            raise
        self._close(failing=False)
        return self._finish()

    def _close(self, failing: bool) -> None:
        """End the games and finish writing the checkpoint in flight, however the job ends; a write
        error is the job's error unless the job is already failing with another."""
        self.envs.close()  # sc2: end the evaluation and stage games
        self.stage_envs.close()
        try:
            self.writer.wait()
        except Exception:
            if not failing:
                raise
        if not failing:
            ckpt.discard_spare(self.ckpt_path)   # no checkpoint follows: the file kept for the next goes

    def _buffer(self):
        """The learner's data regime: on-policy learners see only new episodes; replay ones the budget's."""
        from ccoma.data.buffer import buffer_for

        b = self.spec.budget
        return buffer_for(self.learner, self.env_info["n_agents"], self.env_info["episode_limit"], b.buffer_size,
                          b.n_envs, self.spec.device)

    def _run_stage(self, stage: StageState, saved: dict | None) -> None:
        from ccoma.data.rollout import Rollout

        spec, s = self.spec, stage.stage
        strategy.prepare(self.learner, s, spec.continual, self.trained, self.initial)
        act = strategy.acting(s, spec.continual, self.trained_t)
        buffer = self._buffer() if act.learn else None
        kind = "train" if s.is_train else "deploy"
        if s.is_reference:  # only the unseen phase, from its first step
            source = self.scenario.phase_source(spec.reference[0], seed=seed_for(spec.seed, "deploy_env"))
        else:
            source = self.scenario.source(kind, seed=spec.seed)
        env = self.stage_envs.get(source, spec.budget.n_envs, seed_for(spec.seed, f"{kind}_env"),
                                  compile=spec.budget.compile)
        if s.mode == "continual":
            # on a fresh start and a resume alike, toward the trained weights
            strategy.anchor(self.learner, spec.continual, self.trained_t,
                            lambda: strategy.fisher_sampler(spec, self.scenario, self.learner, self.env_info,
                                                            self.trained_t, self.envs))
        if saved is not None:
            self.learner.load_state_dict(saved["learner"])
        rollout = Rollout(env, self.learner, buffer, mode=act.mode, threads=spec.threads)
        rollout.schedule_t = act.schedule_t
        rollout.t_env = stage.env_t      # 0, or where a resumed stage's rollout stood at its checkpoint
        if saved is not None:
            if buffer is not None and saved["buffer"]:
                ckpt.load_buffer_state(buffer, saved["buffer"])
            # the random state from just before the barrier's reset: this reset deals the same
            # episodes the uninterrupted run dealt after its checkpoint
            ckpt.load_rng_state(env, saved["rng"])
            source.set_step(stage.t)
            rollout.reset()
            self._flush(stage)  # points saved with the checkpoint; the tracker skips those it holds
        self._loop(stage, env, source, rollout, buffer, act)
        if not s.is_train and not s.is_reference:
            if s.mode == "continual":
                self._render(stage, "after")
            artifacts.register(spec, self.scenario, self.learner, self.env_info, stage, self.dir, self.tracker,
                               self.runs[s.mode])

    def _loop(self, stage: StageState, env, source, rollout, buffer, act) -> None:
        b, s = self.spec.budget, stage.stage
        chunk, n_chunks = chunking(stage.steps, b)
        barriers = set(barrier_ends(stage.steps, b))
        eval_every = max(1, n_chunks // b.eval_points)
        # the test curve: a deployment's follows its schedule; training's (optional) is the learning curve
        tests = (not s.is_train and not s.is_reference) or (s.is_train and b.train_test_points > 0)
        test_every = max(1, n_chunks // max(1, b.train_test_points if s.is_train else b.test_points))
        if not s.is_train and not stage.evals:
            self._evaluate(stage, row=True, test=tests)
            if s.mode == "continual":
                self._render(stage, "before")
        while stage.t < stage.steps:
            i = stage.t // chunk
            source.set_step(stage.t)
            end = min(stage.steps, (i + 1) * chunk)
            losses: dict[str, list[float]] = {}

            def on_train(info, t_env):
                for k, v in info.items():
                    losses.setdefault(k, []).append(float(v))

            stats = rollout.run(max(0, end - rollout.t_env), learn=act.learn, on_train=on_train)
            stage.t, stage.env_t = end, rollout.t_env
            self._progress()
            stage.record_episodes(stats)
            stage.log_online(losses)
            for key, value in getattr(env, "stats", {}).items():  # sc2: games restarted, episodes dropped
                stage.points.append((f"{s.prefix}/env/{key}", float(value), stage.t))
            last = stage.t >= stage.steps
            self._evaluate(stage, row=not s.is_train and ((i + 1) % eval_every == 0 or last),
                           test=tests and ((i + 1) % test_every == 0 or last))
            if end in barriers:
                rng = ckpt.rng_state(env)  # a resume restores this, then resets as we do now
                source.set_step(stage.t)
                rollout.reset()
                if last and s.is_train:
                    self.trained, self.trained_t = self.learner.state_dict(), stage.steps
                self._save(stage, rng, buffer, wait=last)   # a stage ends with its checkpoint on disk
                self._flush(stage)

    def _evaluate(self, stage: StageState, row: bool, test: bool) -> None:
        """A performance-matrix row and/or a test point, at the stage's current step."""
        b = self.spec.budget
        if row:
            evaluation.matrix_row(self.spec, self.scenario, self.learner, stage, b.eval_episodes, self.envs,
                                  self.eval_cache)
        if test:   # training's weights change every update: nothing to look up in the cache
            train = stage.stage.is_train
            evaluation.test_point(self.spec, self.scenario, self.learner, stage, b.test_episodes, self.envs,
                                  None if train else self.eval_cache, kind="train" if train else "deploy")

    def _render(self, stage: StageState, when: str) -> None:
        artifacts.render(self.spec, self.scenario, self.learner, stage, when, self.dir, self.runs[stage.stage.mode],
                         self.envs)

    # --------------------------------------------------------------------------------- finish
    def _finish(self) -> dict:
        out = {"algo": self.spec.algo, "seed": self.spec.seed, "checkpoint": str(self.ckpt_path)}
        out["methods"] = summary.finish_runs(self.spec, self.scenario, self.states, self.runs)
        return out


def run_job(spec: JobSpec) -> dict:
    """Entry point for a worker: run (or resume) the job and return its results."""
    started = time.time()
    with fused_gru.use_fused(spec.fused_gru):   # this job's unroll; the process's setting comes back after
        job = Job(spec)
        try:
            # which unroll ran (off, or a machine without a C compiler: torch.gru)
            tags = {"ccoma.gru_unroll": fused_gru.status()}
            if spec.algo == "coma":             # and how COMA's critic walked (in C, or step by step)
                tags["ccoma.critic_walk"] = fused_critic.status()
            for run in job.runs.values():
                run.set_tags(tags)
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
