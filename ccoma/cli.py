"""The ``ccoma`` command line. Each command calls one library function; no logic lives here.

Heavy imports happen inside the commands so that ``ccoma --help`` stays instant.
"""
from __future__ import annotations

import os
import signal
import sys
import threading

import click

from ccoma.errors import CcomaError


# command name -> "module:attribute"; modules are imported only when their command runs or --help lists it
COMMANDS = {
    "train": "ccoma.commands.train_deploy:train",
    "deploy": "ccoma.commands.train_deploy:deploy",
    "doctor": "ccoma.commands.doctor:doctor",
    "evaluate": "ccoma.commands.evaluate:evaluate",
    "maps": "ccoma.commands.maps:maps",
    "models": "ccoma.commands.models:models",
    "report": "ccoma.commands.report:report",
    "render": "ccoma.commands.render:render",
    "scenarios": "ccoma.commands.scenarios:scenarios",
}


class _Group(click.Group):
    """Lazily loaded subcommands; CcomaError (bad input) becomes one clear line and exit code 2."""

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx, name):
        if name in COMMANDS:
            import importlib

            module, attr = COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        before = _open_runs()   # runs the process had open before this command: not this command's to end
        try:
            return super().invoke(ctx)
        except CcomaError as exc:
            _close_runs(exc, before)
            if os.environ.get("CCOMA_DEBUG"):
                raise
            click.echo(f"ccoma: error: {_one_line(exc)}", err=True)
            ctx.exit(2)
        except OSError as exc:
            _close_runs(exc, before)
            if exc.filename is None or os.environ.get("CCOMA_DEBUG"):
                raise  # not about a file the user named: a bug, keep the traceback
            click.echo(f"ccoma: error: {exc.filename}: {exc.strerror or type(exc).__name__}", err=True)
            ctx.exit(2)
        except (Exception, KeyboardInterrupt) as exc:
            if not isinstance(exc, click.exceptions.Exit):
                _close_runs(exc, before)
            raise

    def main(self, args=None, prog_name=None, standalone_mode=True, **extra):
        """Click's own usage errors become one line too; Ctrl-C exits 130 and says how to resume."""
        argv = list(sys.argv[1:] if args is None else args)
        # MLflow's INFO chatter (database migrations, registrations) is not for the terminal
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _on_sigterm)  # a scheduler's or `kill`'s stop: as Ctrl-C
        try:
            rv = super().main(args=argv, prog_name=prog_name, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except click.UsageError as exc:
            where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
            click.echo(f"ccoma: error: {where}{_one_line(exc.format_message())}", err=True)
            code = 2
        except click.ClickException as exc:
            exc.show()
            code = exc.exit_code
        except click.Abort:  # click's name for a KeyboardInterrupt
            executors = sys.modules.get("ccoma.executors")
            if executors is not None:
                executors.stop_pools()  # if the interrupt arrived outside the pool's own loop
            click.echo("\nccoma: interrupted" + _resume_hint(argv), err=True)
            code = 130
        if standalone_mode:
            sys.exit(code)
        return code


def _on_sigterm(signum, frame) -> None:
    """SIGTERM to the command (a batch scheduler's stop, ``kill``) takes Ctrl-C's path: the pool's
    workers are stopped rather than orphaned, runs are marked interrupted, the exit says how to resume.
    A second SIGTERM ends the command outright."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt


def _open_runs() -> set[str]:
    guard = sys.modules.get("ccoma.store_guard")  # loaded with ccoma.tracking; absent = no run opened
    return set(guard.OPEN_RUNS) if guard is not None else set()


def _close_runs(exc: BaseException, before: set[str]) -> None:
    """No MLflow run outlives the command that opened it in RUNNING: the error ends the runs it opened,
    tagged (``before``: the runs already open when it started, e.g. a caller's in the same process)."""
    guard = sys.modules.get("ccoma.store_guard")
    if guard is not None:
        guard.fail_open_runs(exc, since=before)


def _one_line(exc) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 400 else text[:397] + "..."


def _resume_hint(argv: list[str]) -> str:
    """How to continue an interrupted evaluate (its jobs restart from their last checkpoints)."""
    if not argv or argv[0] != "evaluate":
        return ""
    import shlex

    again = argv if "--resume" in argv else [*argv, "--resume"]
    return "; every job keeps its last checkpoint. Continue with:\n  ccoma " + " ".join(map(shlex.quote, again))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ccoma")
def cli():
    """ccoma: continual-learning evaluation of cooperative MARL in changing SMAC-style worlds."""


def main(argv=None):
    cli.main(args=argv, prog_name="ccoma", standalone_mode=True)


if __name__ == "__main__":
    main()
