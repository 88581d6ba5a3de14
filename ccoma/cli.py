"""The ``ccoma`` command line. Each command calls one library function; no logic lives here.

Heavy imports happen inside the commands so that ``ccoma --help`` stays instant.
"""
from __future__ import annotations

import sys

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
        try:
            return super().invoke(ctx)
        except CcomaError as exc:
            click.echo(f"ccoma: error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ccoma")
def cli():
    """ccoma: continual-learning evaluation of cooperative MARL in changing SMAC-style worlds."""


def main(argv=None):
    import os

    # MLflow's INFO chatter (database migrations, registrations) is not for the terminal
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    try:
        cli.main(args=argv, prog_name="ccoma", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("ccoma: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
