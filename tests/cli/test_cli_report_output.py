"""``ccoma report --output``: ccoma writes only into folders it owns and never deletes a user's files."""
from click.testing import CliRunner

from ccoma.cli import cli


def report(*args):
    return CliRunner().invoke(cli, ["report", *args, "--no-log"])


def test_a_users_folder_is_refused_and_left_untouched(sqlite_store, tmp_path):
    user = tmp_path / "mine"
    for rel in ("figures/holiday.png", "renders/keep.gif", "notes.txt"):
        (user / rel).parent.mkdir(parents=True, exist_ok=True)
        (user / rel).write_text(rel)
    res = report("--scenario", "absent", "--output", str(user), "--tracking-uri", sqlite_store)
    assert res.exit_code == 2, res.output
    assert "did not write" in res.output and len(res.output.strip().splitlines()) == 1
    assert sorted(p.relative_to(user).as_posix() for p in user.rglob("*") if p.is_file()) == \
        ["figures/holiday.png", "notes.txt", "renders/keep.gif"]
    assert not list(tmp_path.glob(".mine.*"))  # no staging folder left behind


def test_an_owned_folder_is_replaced_whole(sqlite_store, tmp_path):
    out = tmp_path / "rep"
    assert report("--scenario", "absent", "--output", str(out), "--tracking-uri", sqlite_store).exit_code == 0
    assert (out / ".ccoma-report").is_file() and (out / "report.md").is_file()
    (out / "figures").mkdir()
    (out / "figures" / "stale.png").write_text("old picture")
    res = report("--scenario", "absent", "--output", str(out), "--tracking-uri", sqlite_store, "--format", "md")
    assert res.exit_code == 0, res.output
    assert not (out / "figures" / "stale.png").exists() and not (out / "report.html").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rep")]  # no staging or old copies


def test_a_file_as_output_and_a_path_scenario(sqlite_store, tmp_path):
    (tmp_path / "afile").write_text("x")
    res = report("--scenario", "absent", "--output", str(tmp_path / "afile"), "--tracking-uri", sqlite_store)
    assert res.exit_code == 2 and "is a file" in res.output and (tmp_path / "afile").read_text() == "x"
    # a scenario given as a path reports into reports/<file stem>, not into a path built from it
    res = report("--scenario", str(tmp_path / "sub" / "my scenario.yaml"), "--tracking-uri", sqlite_store)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "reports" / "my_scenario" / "report.md").is_file()
