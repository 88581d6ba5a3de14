"""Where jobs run: a local process pool by default, or Ray for users who outgrow one machine.

Both take a list of :class:`ccoma.job.JobSpec` and yield ``(spec, result or exception)`` as jobs
finish. A failed job does not stop the others; the caller records what is missing. With ``poll``
seconds they also yield ``(None, None)`` whenever that long passes with no job finishing, so the
caller can refresh a progress display.

Ctrl-C. The terminal sends SIGINT to the whole process group; pool workers ignore it and the
command decides. The first Ctrl-C cancels the jobs not yet started and sends each running worker
SIGTERM: its job stops where it is (its state is its last checkpoint, whose metric points are
flushed again on ``--resume``), marks its runs interrupted and exits; a worker still alive after
``GRACE_S`` seconds is killed. A second Ctrl-C kills every worker and the command at once.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Iterator

from ccoma.errors import CcomaError


GRACE_S = 5.0          # how long a stopped worker may take to mark its runs interrupted
_IN_POOL_WORKER = False
_ACTIVE_POOLS: list = []


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the worker outright
    raise KeyboardInterrupt


def _worker_init() -> None:
    global _IN_POOL_WORKER
    _IN_POOL_WORKER = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command handles Ctrl-C (see the module docstring)
    signal.signal(signal.SIGTERM, _on_sigterm)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import torch

    torch.set_num_threads(1)


def _run_job(spec):
    """Run one job; whatever runs it opened and left open when it fails are marked FAILED (or
    KILLED) with the reason, e.g. when the job fails while it sets up, before its own handler."""
    from ccoma import store_guard
    from ccoma.job import run_job

    before = set(store_guard.OPEN_RUNS)
    try:
        return run_job(spec)
    except BaseException as exc:
        store_guard.fail_open_runs(exc, since=before)
        if _IN_POOL_WORKER and isinstance(exc, KeyboardInterrupt):
            os._exit(130)  # stopped: take no further job from the pool's queue
        raise


def stop_pools() -> None:
    """Stop every running local pool (first Ctrl-C); a second SIGINT meanwhile kills all at once."""
    procs = [p for pool in _ACTIVE_POOLS for p in list((pool._processes or {}).values())]

    def kill_now(signum, frame):
        for p in procs:
            p.kill()
        os._exit(130)

    try:
        signal.signal(signal.SIGINT, kill_now)
    except ValueError:
        pass  # not the main thread: no second-Ctrl-C shortcut
    for pool in list(_ACTIVE_POOLS):
        pool.shutdown(wait=False, cancel_futures=True)
        _ACTIVE_POOLS.remove(pool)
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + GRACE_S
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()


def run_local(specs: list, workers: int = 0, poll: float | None = None) -> Iterator[tuple[object, object]]:
    """Run jobs in a pool of ``workers`` processes (0 = CPU count); with one worker, in-process
    (then there is nothing to poll: the job reports its progress through ccoma.progress hooks)."""
    n = min(len(specs), workers or os.cpu_count() or 1)
    if workers == 1 or (not workers and n <= 1):
        for spec in specs:
            try:
                yield spec, _run_job(spec)
            except Exception as exc:  # noqa: BLE001 - reported per job
                yield spec, exc
        return
    pool = ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn"), initializer=_worker_init)
    _ACTIVE_POOLS.append(pool)
    try:
        futures = {pool.submit(_run_job, s): s for s in specs}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=poll, return_when=FIRST_COMPLETED)
            if not done:
                yield None, None
            for fut in done:
                try:
                    yield futures[fut], fut.result()
                except Exception as exc:  # noqa: BLE001 - reported per job
                    yield futures[fut], exc
    except BaseException:  # Ctrl-C, or the caller stopped early
        stop_pools()
        raise
    if pool in _ACTIVE_POOLS:
        _ACTIVE_POOLS.remove(pool)
    pool.shutdown(wait=True)


def run_ray(specs: list, address: str = "", poll: float | None = None) -> Iterator[tuple[object, object]]:
    """Run each job as a Ray task (one CPU each); ``address`` '' starts a local runtime."""
    try:
        import ray
    except ImportError:
        raise CcomaError("executor 'ray' needs Ray: pip install 'ccoma[ray]'") from None
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    started_here = not ray.is_initialized()
    if started_here:
        _init_ray(ray, address)
    remote = ray.remote(num_cpus=1, max_retries=0)(_run_job)
    try:
        refs = {remote.options(num_cpus=max(1, getattr(s, "threads", 1)),  # a job's learner threads
                               runtime_env={"env_vars": {"MLFLOW_DISABLE_TELEMETRY": "true"}}).remote(s): s
                for s in specs}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=poll)
            if not done:
                yield None, None
                continue
            ref = done[0]
            try:
                yield refs[ref], ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - reported per job
                cause = getattr(exc, "cause", None) or exc
                yield refs[ref], cause
    finally:
        if started_here:
            ray.shutdown()


def _init_ray(ray, address: str) -> None:
    """Connect to the cluster at ``address`` ('' starts a local runtime); the failures a user can cause
    become one line naming the real reason, anything else is a bug and keeps its traceback."""
    where = address or "local"
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, TimeoutError) as exc:   # nothing (or no Ray) answers there
        raise CcomaError(f"cannot reach Ray at '{where}': {_first_line(exc)}") from None
    except ValueError as exc:                         # ray.init refused the address or an option
        raise CcomaError(f"--ray-address '{where}': {_first_line(exc)}") from None
    except (ray.exceptions.RaySystemError, OSError) as exc:  # the local runtime could not start
        raise CcomaError(f"cannot start Ray ({where}): {type(exc).__name__}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def check(executor: str, address: str = "", timeout: float = 3.0) -> None:
    """Fail fast, before anything is logged, on an unknown executor or an unreachable Ray cluster."""
    if executor not in ("local", "ray"):
        raise CcomaError(f"--executor: unknown executor '{executor}' (known: local, ray)")
    if executor != "ray":
        return
    try:
        import ray  # noqa: F401
    except ImportError:
        raise CcomaError("executor 'ray' needs Ray: pip install 'ccoma[ray]'") from None
    if not address or address == "auto":
        return
    import socket

    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise CcomaError(f"--ray-address: expected host:port, got '{address}'")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise CcomaError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc})") from None


def longest_first(specs: list) -> list:
    """The jobs in the order to start them: most env steps first, otherwise as given. A pool that
    starts the longest jobs last leaves its other workers idle at the end (longest-processing-time-first
    scheduling); a COMA job, with its extra frozen-explore deployment, runs ~4/3 as many steps as a
    QMIX or VDN job. Only the order changes: each job computes the same with any order or worker count."""
    from ccoma.job.spec import total_steps

    return sorted(specs, key=lambda s: -total_steps(s))


def run(specs: list, executor: str = "local", workers: int = 0, address: str = "", poll: float | None = None):
    specs = longest_first(specs)
    if executor == "local":
        return run_local(specs, workers, poll)
    if executor == "ray":
        return run_ray(specs, address, poll)
    raise CcomaError(f"--executor: unknown executor '{executor}' (known: local, ray)")
