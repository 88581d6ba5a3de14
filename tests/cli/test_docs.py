"""Docs stay true to the code."""
import re
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
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pytest" in cmds[1] and "README.md" in ci
