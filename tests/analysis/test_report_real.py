"""The report of a real smoke-budget run: frame content, figures, HTML, renders (see conftest.smoke_evaluate)."""
import re

import pytest

from test_report import FIGURES, _check_png

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
# the smoke run's default methods: the paper's six and the COMA-explore control
METHODS = {"c-coma", "coma", "qmix", "vdn", "c-qmix", "c-vdn", "coma-explore"}
REAL_FIGURES = list(FIGURES)


def test_frame_of_a_real_run(smoke_evaluate):
    from analysis import frame as fr

    data = fr.load(["shifting_spawn"], smoke_evaluate.uri)["shifting_spawn"]
    assert data.has_experiment and data.unseen_from == 600  # 200K of 1M, rescaled to 3,000 steps
    df = data.metrics if hasattr(data, "metrics") else data.frame
    assert set(df.method.unique()) == METHODS
    assert set(df.seed.astype(int).unique()) == {0, 1}
    win = df[df.key == "deploy/win_rate"]
    assert win.step.max() == 3000 and win.value.between(0, 1).all()
    assert set(win["mode"]) == {"frozen", "continual", "frozen-explore"}
    assert (df.key == fr.TEST_KEY).any()  # the greedy test series, the report's headline
    evals = df[df.key.str.startswith("eval/")]
    assert set(evals.phase.dropna()) >= {"known_sites", "new_sites"}


def test_report_of_a_real_run(smoke_evaluate):
    out = smoke_evaluate.root / "reports" / "shifting_spawn"
    md_path, html_path = out / "report.md", out / "report.html"
    assert md_path.exists() and html_path.exists(), smoke_evaluate.stdout
    for name in REAL_FIGURES:
        _check_png(out / "figures" / "shifting_spawn" / f"{name}.png")
    md, page = md_path.read_text(), html_path.read_text()
    for name in REAL_FIGURES:
        assert f"figures/shifting_spawn/{name}.png" in md
    embedded = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(embedded) >= len(REAL_FIGURES) + 2  # figures + before/after adaptation frames
    for text in ("not StarCraft II", "ccoma-sim 1.0", "t_env", "before adaptation", "after adaptation"):
        assert text in md, text
    for method in ("C-COMA", "C-QMIX", "C-VDN", "COMA", "QMIX", "VDN"):
        assert method in md


def test_champions_serve_actions(smoke_evaluate):
    from smoke_checks import check_store, predict_champion

    check_store(smoke_evaluate.uri, sorted(METHODS))
    predict_champion(smoke_evaluate.uri, "ccoma-shifting_spawn-c-coma")
    predict_champion(smoke_evaluate.uri, "ccoma-shifting_spawn-qmix")
