"""``ccoma doctor``: backends, the StarCraft II install (found or with its install steps), the CPU, CUDA, MLflow."""
import platform

import pytest
from click.testing import CliRunner

from ccoma.cli import cli


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def invoke(*args, sc2path):
        monkeypatch.setenv("SC2PATH", str(sc2path))
        return CliRunner().invoke(cli, ["doctor", *args])
    return invoke


def test_doctor_without_the_game(run, tmp_path):
    res = run(sc2path=tmp_path / "nothing")
    assert res.exit_code == 0, res.output  # the default backend (sim) works
    assert "sim  usable" in res.output and "sc2  missing" in res.output
    assert f"no game folder at SC2PATH={tmp_path / 'nothing'}" in res.output
    assert "to install it:" in res.output and "SMAC_Maps.zip" in res.output and "pip install 'ccoma[sc2]'" in res.output
    assert "CUDA " in res.output and f"sqlite:///{tmp_path / 'mlflow.db'}" in res.output
    from ccoma.sim import env as sim_env  # the compiled step's code, as its options make it

    isa = sim_env.vector_isa()
    assert f"compiled simulator step: {isa + ' vector code' if isa else 'scalar loops'}" in res.output
    assert "backend sim works" in res.output
    from ccoma.algos import fused_gru

    has_cc = fused_gru.c_compiler()[1] is not None
    assert ("GRU     --fused-gru: the fused C unroll works here" in res.output) == has_cc, res.output
    assert ("critic  --fused-gru: COMA's critic walk in C works here" in res.output) == has_cc, res.output
    res = run("--backend", "sc2", sc2path=tmp_path / "nothing")
    assert res.exit_code == 1 and "backend sc2 does NOT work" in res.output


@pytest.mark.skipif(platform.system() != "Linux", reason="the layout below is the Linux one")
def test_doctor_finds_an_installed_game(run, tmp_path):
    pytest.importorskip("pysc2_evolved")
    root = tmp_path / "StarCraftII"
    binary = root / "Versions" / "Base75689" / "SC2_x64"
    binary.parent.mkdir(parents=True)
    binary.write_bytes(b"")
    res = run("--backend", "sc2", sc2path=root)
    assert res.exit_code == 1 and "no executable game binary" in res.output
    binary.chmod(0o755)
    res = run("--backend", "sc2", sc2path=root)
    assert res.exit_code == 1 and "binary      " + str(binary) in res.output and "32x32_flat.SC2Map: missing" in res.output
    flat = root / "Maps" / "SMAC_Maps" / "32x32_flat.SC2Map"
    flat.parent.mkdir(parents=True)
    flat.write_bytes(b"")
    res = run("--backend", "sc2", sc2path=root)
    assert res.exit_code == 0, res.output
    assert "sc2  usable   sc2 pysc2-evolved 1.1.1" in res.output and "to install it:" not in res.output


def test_doctor_reports_an_unreachable_server(run, tmp_path):
    res = run("--tracking-uri", "http://127.0.0.1:9", sc2path=tmp_path)
    assert res.exit_code == 0 and "MLflow  UNREACHABLE: MLflow server http://127.0.0.1:9 is unreachable" in res.output
