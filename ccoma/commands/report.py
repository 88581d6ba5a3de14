"""``ccoma report``: figures, tables and the paper comparison from whatever MLflow holds."""
from __future__ import annotations

import click


@click.command()
@click.option("--scenario", "-s", "scenarios", multiple=True, required=True, metavar="NAME",
              help="Scenario to report on; repeat it to compare scenarios in one report.")
@click.option("--tracking-uri", default=None, metavar="URI",
              help="MLflow store or server (default: $MLFLOW_TRACKING_URI, else ./mlflow.db).")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "both"]), default="both", show_default=True,
              help="Markdown, a self-contained HTML page, or both.")
@click.option("--output", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: reports/<scenario>, or reports/<a>+<b> for several).")
@click.option("--no-log", is_flag=True, help="Do not log the report to the scenario's MLflow evaluate run.")
def report(scenarios, tracking_uri, fmt, output, no_log):
    """Rebuild the evaluation report of one or more scenarios from MLflow."""
    from analysis.report import build_report

    for path in build_report(scenarios, tracking_uri, output, fmt, log_to_mlflow=not no_log):
        click.echo(str(path))
