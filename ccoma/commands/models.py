"""``ccoma models list|promote``: the registered policies (``ccoma-<scenario>-<method>``)."""
from __future__ import annotations

import click

_URI = click.option("--tracking-uri", default=None, metavar="URI",
                    help="MLflow store or server (default: $MLFLOW_TRACKING_URI, else ./mlflow.db).")


@click.group()
def models():
    """Registered deployed policies (MLflow model registry)."""


@models.command("list")
@click.option("--scenario", "-s", default=None, help="Only this scenario's models.")
@_URI
def list_(scenario, tracking_uri):
    """Every version, its aliases and its deployment win rate."""
    from ccoma.tracking import list_models

    rows = list_models(scenario, tracking_uri)
    if not rows:
        click.echo("no registered ccoma models" + (f" for scenario {scenario}" if scenario else ""))
        return
    width = max(len(r["name"]) for r in rows)
    click.echo(f"{'name':<{width}}  version  win_rate  seed  aliases")
    for r in rows:
        rate = "-" if r["deploy_win_rate"] != r["deploy_win_rate"] else f"{r['deploy_win_rate']:.3f}"
        click.echo(f"{r['name']:<{width}}  {r['version']:>7}  {rate:>8}  {r['seed'] or '-':>4}  "
                   f"{','.join(r['aliases']) or '-'}")


@models.command()
@click.argument("name")
@click.argument("version", type=int)
@click.option("--alias", default="champion", show_default=True, help="Alias to point at VERSION.")
@_URI
def promote(name, version, alias, tracking_uri):
    """Point ALIAS of model NAME at VERSION (e.g. make a version the champion)."""
    from ccoma.tracking import promote as promote_

    promote_(name, version, alias, tracking_uri)
    click.echo(f"{name}@{alias} -> version {version}")
