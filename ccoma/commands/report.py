"""``ccoma report``: figures, tables and the paper comparison from whatever MLflow holds, or the
greedy test results as marl-eval raw data (``--format marl-eval``)."""
from __future__ import annotations

import click


@click.command()
@click.option("--scenario", "-s", "scenarios", multiple=True, required=True, metavar="NAME",
              help="Scenario to report on; repeat it to compare scenarios in one report.")
@click.option("--tracking-uri", default=None, metavar="URI",
              help="MLflow store or server (default: $MLFLOW_TRACKING_URI, else ./mlflow.db).")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "both", "marl-eval"]), default="both",
              show_default=True,
              help="Markdown, a self-contained HTML page, or both; marl-eval: only marl_eval.json, the greedy "
                   "test results in marl-eval's raw-data schema (one task per scenario; not logged to MLflow).")
@click.option("--output", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: reports/<scenario>, or reports/<a>+<b> for several).")
@click.option("--no-log", is_flag=True, help="Do not log the report to the scenario's MLflow evaluate run.")
def report(scenarios, tracking_uri, fmt, output, no_log):
    """Rebuild the evaluation report of one or more scenarios from MLflow."""
    if fmt == "marl-eval":
        _marl_eval(list(dict.fromkeys(scenarios)), tracking_uri, output)
        return
    from analysis.report import build_report

    for path in build_report(scenarios, tracking_uri, output, fmt, log_to_mlflow=not no_log):
        click.echo(str(path))


def _marl_eval(scenarios: list[str], tracking_uri, output) -> None:
    from pathlib import Path

    from analysis import marl_eval
    from analysis.frame import load
    from ccoma.errors import CcomaError

    datas = load(scenarios, tracking_uri)
    if not marl_eval.to_marl_eval(datas):
        raise CcomaError(f"report --format marl-eval: no finished runs with a greedy test series "
                         f"(deploy/test/win_rate) in {', '.join(scenarios)}: nothing to export")
    out = Path(output) if output else Path("reports") / "+".join(scenarios)
    path, problems = marl_eval.write(datas, out / "marl_eval.json")
    for problem in problems:
        click.echo(f"warning: marl-eval: {problem}", err=True)
    click.echo(str(path))
