"""The tracking package is the only importer of mlflow, and its mlflow-free half stays mlflow-free."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_only_the_tracking_package_imports_mlflow():
    pattern = re.compile(r"^\s*(import mlflow|from mlflow[\s.])", flags=re.M)
    importers = {str(p.relative_to(ROOT)) for d in ("ccoma", "analysis") for p in (ROOT / d).rglob("*.py")
                 if pattern.search(p.read_text())}
    assert "ccoma/tracking/store.py" in importers  # the pattern does see an import
    assert {f for f in importers if not f.startswith("ccoma/tracking/")} == set()


def test_schema_and_public_names_without_mlflow():
    code = ("import sys\nfrom ccoma.tracking import schema, experiment_name, model_name\n"
            "assert 'mlflow' not in sys.modules, 'schema imported mlflow'\n"
            "print(experiment_name('a'), model_name('a', 'qmix'))\n"
            "from ccoma.tracking import Tracker, ModelRegistry, RunReader, load_frame, PolicyModel\n"
            "assert 'mlflow' in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ccoma/a", "ccoma-a-qmix"]
