"""Step-level progress: what jobs report and what the bar adds up."""
import json

from ccoma import progress


def test_report_and_read(tmp_path):
    path = tmp_path / "job" / "progress.json"
    assert progress.read(path) == 0                      # not started yet
    progress.report(path, 1500, 6000)
    assert json.loads(path.read_text()) == {"done": 1500, "total": 6000}
    assert progress.read(path) == 1500
    path.write_text("{broken")                           # never fails the command that reads it
    assert progress.read(path) == 0


def test_bar_adds_partial_and_finished_jobs(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    with progress.StepBar({a: 1000, b: 3000}, interval=3600) as bar:   # refreshed by hand here
        assert bar.shown == 0
        progress.report(b, 500, 3000)
        bar.refresh()
        assert bar.shown == 500
        progress.report(a, 5000, 1000)                   # never more than a job's total
        bar.refresh()
        assert bar.shown == 1500
        bar.finish(b)                                    # a finished (or failed) job counts in full
        assert bar.shown == 4000
    assert not bar._thread.is_alive()                    # the refresher stops with the bar


def test_bar_moves_while_the_command_is_busy(tmp_path):
    # an in-process job blocks the command; the bar's own thread still sees its file
    a = tmp_path / "a.json"
    with progress.StepBar({a: 1000}, interval=0.01) as bar:
        progress.report(a, 700, 1000)
        for _ in range(100_000):
            if bar.shown == 700:
                break
            bar._thread.join(0.01)
        assert bar.shown == 700
