"""``ccoma doctor``: which backends can run here, the StarCraft II install, the CPU, CUDA, and the MLflow store.

Exit 0 when the backend asked for (``--backend``, default the default backend ``sim``) works here,
1 when it does not. The checks start no game and create no MLflow run.
"""
from __future__ import annotations

import platform
import sys

import click


def _sim() -> tuple[bool, str]:
    """Build and step one simulated battle: the default backend works end to end."""
    try:
        import torch

        from ccoma.envs import describe, make

        env = make("sim", "2s3z", 1, seed=0)
        env.reset()
        env.step(env.get_avail_actions().float().argmax(-1))
        return True, f"{describe('sim')} (torch {torch.__version__})"
    except Exception as exc:  # noqa: BLE001 - doctor reports whatever is broken
        return False, f"broken: {type(exc).__name__}: {exc}"


def _sc2() -> tuple[bool, list[str]]:
    """The client packages and the game: (usable, report lines)."""
    from ccoma.envs.factory import SC2_PACKAGE, package_version
    from ccoma.envs.sc2.install import FLAT_MAP, INSTALL_STEPS, find_game

    client = package_version(SC2_PACKAGE)
    proto = package_version("pys2clientprotocol") or package_version("s2clientprotocol")
    game = find_game()
    lines = [f"client      {SC2_PACKAGE} {client}" if client else f"client      {SC2_PACKAGE} not installed",
             f"protocol    s2clientprotocol {proto}" if proto else "protocol    s2clientprotocol not installed"]
    if game.root is None:
        lines.append(f"game        not found ({game.reason})")
    else:
        lines.append(f"game        {game.root} (versions: {', '.join(game.versions) or 'none'})")
        lines.append(f"binary      {game.binary or 'missing: ' + game.reason}")
        maps = "missing" if game.maps_dir is None else f"{game.maps_dir}"
        lines.append(f"maps        {maps}; SMACv2's {FLAT_MAP}: {'found' if game.flat_map else 'missing'}")
    usable = bool(client and proto and game.binary and game.flat_map)
    if not usable:
        lines += ["to install it:", *INSTALL_STEPS.splitlines()]
    return usable, lines


def _cuda() -> str:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return f"available: {names} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    return f"not available (torch {torch.__version__}, {build}); --device cpu"


def _fused(module, works: str, instead: str) -> str:
    """Whether ``--fused-gru`` can run ``module``'s C code here (builds it into the cache if need be):
    ``works``, or ``instead`` and what would run."""
    from ccoma.algos import fused_gru

    with fused_gru.use_fused(True):
        status = module.status()
    if status.startswith("fused"):
        return f"--fused-gru: {works} works here (built in ccoma's cache)"
    return f"--fused-gru: {instead} {status}"


def _gru() -> str:
    from ccoma.algos import fused_gru

    return _fused(fused_gru, "the fused C unroll", "not available here, it would run")


def _critic() -> str:
    from ccoma.algos import fused_critic

    return _fused(fused_critic, "COMA's critic walk in C", "COMA's critic walk would run")


def _cpu() -> str:
    """The CPU's instruction set as torch sees it, and the code the compiled simulator step gets for it."""
    try:
        import torch

        from ccoma.sim import env as sim_env
    except ImportError as exc:
        return f"unknown ({exc})"
    opts = sim_env.COMPILE_OPTIONS
    isa = sim_env.vector_isa(opts)
    code = f"{isa} vector code" if isa else "scalar loops"
    return (f"{platform.machine()}, torch kernels {torch.backends.cpu.get_cpu_capability()}; compiled simulator "
            f"step: {code} (cpp.simdlen {opts.get('cpp.simdlen', 'auto')})")


def _mlflow(tracking_uri: str | None) -> tuple[bool, str]:
    from pathlib import Path

    from ccoma.errors import CcomaError
    from ccoma.tracking.schema import probe, resolve_uri

    uri = resolve_uri(tracking_uri)
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        folder = path.parent
        import os

        ok = folder.is_dir() and os.access(folder, os.W_OK)
        state = "exists" if path.exists() else "will be created"
        return ok, f"{uri} (local sqlite store, {state}; folder {'writable' if ok else 'NOT writable'})"
    try:
        probe(uri)
    except CcomaError as exc:
        return False, str(exc)
    if uri.startswith(("http://", "https://")):
        return True, f"{uri} (server answers)"
    return True, f"{uri} (not probed: only sqlite and http(s) stores are checked)"


@click.command()
@click.option("--backend", type=click.Choice(["sim", "sc2"]), default="sim", show_default=True,
              help="The backend that must work for exit code 0.")
@click.option("--tracking-uri", default=None, metavar="URI",
              help="MLflow store or server to check (default: $MLFLOW_TRACKING_URI, else ./mlflow.db).")
def doctor(backend, tracking_uri):
    """Check this machine: usable backends and versions, the StarCraft II game and maps (with the steps to
    install them), the CPU, CUDA, the fused GRU unroll and COMA's critic walk in C (--fused-gru), and the MLflow tracking store.
    Exits 0 when BACKEND (default sim) works."""
    from ccoma import __version__

    click.echo(f"ccoma {__version__} (python {platform.python_version()}, {platform.system()})")
    sim_ok, sim_line = _sim()
    sc2_ok, sc2_lines = _sc2()
    click.echo("backends")
    click.echo(f"  sim  {'usable ' if sim_ok else 'BROKEN '}  {sim_line}  [default]")
    if sc2_ok:
        from ccoma.envs import describe

        click.echo(f"  sc2  usable   {describe('sc2')} (StarCraft II found; see the checks below)")
    else:
        click.echo("  sc2  missing  StarCraft II or its client is not installed (details below)")
    click.echo("StarCraft II")
    for line in sc2_lines:
        click.echo(f"  {line}")
    click.echo(f"CPU     {_cpu()}")
    click.echo(f"CUDA    {_cuda()}")
    click.echo(f"GRU     {_gru()}")
    click.echo(f"critic  {_critic()}")
    mlflow_ok, mlflow_line = _mlflow(tracking_uri)
    click.echo(f"MLflow  {'reachable' if mlflow_ok else 'UNREACHABLE'}: {mlflow_line}")
    works = sim_ok if backend == "sim" else sc2_ok
    click.echo(f"verdict: backend {backend} {'works' if works else 'does NOT work'} here")
    sys.exit(0 if works else 1)
