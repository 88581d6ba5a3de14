"""Docs stay true to the code."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_config_doc_is_generated_from_the_code():
    sys.path.insert(0, str(ROOT / "docs"))
    from gen_config_doc import main

    assert (ROOT / "docs" / "config.md").read_text() == main(), "run: python docs/gen_config_doc.py"


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    readme = (ROOT / "README.md").read_text()
    cmds = re.findall(r"^    (pip install .*)$", readme, flags=re.M)
    assert "ccoma evaluate" in cmds[0] and "pytest" in cmds[1]
    assert readme.index(cmds[0]) < 600  # at the top
    # .ci/run's own extraction line, run as it is, finds exactly README's test command
    ci = (ROOT / ".ci" / "run").read_text()
    extract = re.search(r"^TEST_CMD=\$\((.*)\)$", ci, flags=re.M).group(1)
    got = subprocess.run(["bash", "-c", extract], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert got.strip() == cmds[1] and 'bash -c "$TEST_CMD"' in ci


def test_config_doc_shows_every_default_including_factories():
    from ccoma.config import describe
    from ccoma.run_config import Budget, ContinualConfig, RunConfig
    from ccoma.sim.engine import SimConfig

    for cls in (RunConfig, Budget, ContinualConfig, SimConfig):
        built = cls()
        for name, _, default in describe(cls):
            assert default == getattr(built, name), f"{cls.__name__}.{name}"
