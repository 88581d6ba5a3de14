"""Property-based fuzzing of scenario, map and unit files and of command-line options (hypothesis).

Each example is a shipped file with a few hostile edits (NaN, inf, huge or negative numbers, a list
where a name goes, a mapping where a number goes, mixed-type keys, quotes, deep nesting, a deleted
or unknown key), or hostile bytes (binary, UTF-16, alias bombs, duplicate keys). It is checked in
process through the real CLI (click's CliRunner) and must end in exit 0, or exit 2 with one line
naming the file, never a traceback, within a memory bound (tracemalloc) and an alarm-clock bound.
"""
import copy
import itertools
import signal
import tracemalloc
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccoma.cli import cli

ROOT = Path(__file__).resolve().parents[2]
BASES = {
    "scenario": yaml.safe_load((ROOT / "scenarios" / "shifting_spawn.yaml").read_text()),
    "map": yaml.safe_load((ROOT / "maps" / "3m.yaml").read_text()),
    "units": yaml.safe_load((ROOT / "maps" / "units.yaml").read_text()),
}
MAX_PEAK_BYTES = 200 << 20  # an alias bomb or a runaway error message would go far beyond
ALARM_S = 60                # a hung parse fails the example instead of the whole suite
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_NAMES = itertools.count()  # a fresh file name per example: load_units caches by path

hostile = st.one_of(
    st.sampled_from([float("nan"), float("inf"), -float("inf"), -5, 0, 10 ** 30, -1e-9, "1e400", ".nan",
                     "it's", "a/b", "", None, True, [], {}, [[["x"]]], {1: "a", "b": 2}, {"x": {"y": None}},
                     "x" * 5000, "200K", "5M", 1.5, 3]),
    st.integers(), st.floats(), st.text(max_size=20),
    st.lists(st.sampled_from(["east", "north", "marine", "known_sites", 1, None]), max_size=3),
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated(draw, kind):
    doc = copy.deepcopy(BASES[kind])
    paths = [p for p in _paths(doc) if p]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            action = draw(st.sampled_from(["replace", "replace", "delete", "unknown key"]))
            if action == "replace":
                parent[path[-1]] = draw(hostile)
            elif action == "delete":
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent[draw(st.sampled_from(["bogus", 7, "spread"]))] = draw(hostile)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced that part
    return yaml.safe_dump(doc, allow_unicode=True).encode()


def _raw_bombs(kind):
    base = yaml.safe_dump(BASES[kind]).encode()
    laughs = b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n".encode() for p, c in zip("abcdefgh", "bcdefghi"))
    return st.sampled_from([
        base.decode().encode("utf-16"), b"\x00\x01\x02binary" * 50, b"\xff\xfe\xfd not utf-8",
        laughs + base, b"[" * 3000 + b"]" * 3000, b"a: " + b"{b: " * 200 + b"1" + b"}" * 200,
        base + base.splitlines(keepends=True)[0], b"- just\n- a list\n", b"", b"name: [unclosed",
        base.replace(b"\n", b"\r\n"), b"\xef\xbb\xbf" + base,
    ])


def _check(args, path):
    """Run the CLI in-process under the bounds; return (exit code, output)."""
    def timeout(signum, frame):
        raise AssertionError(f"ccoma {' '.join(args)} ran over {ALARM_S} s")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(ALARM_S)
    tracemalloc.start()
    try:
        res = CliRunner().invoke(cli, args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    out = res.output
    assert peak < MAX_PEAK_BYTES, f"{peak >> 20} MiB peak for {path.read_bytes()[:200]!r}"
    assert res.exit_code in (0, 2), f"exit {res.exit_code}: {out[-500:]} {res.exc_info}\n{path.read_bytes()[:300]!r}"
    assert "Traceback" not in out
    if res.exit_code == 2:
        lines = [ln for ln in out.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("ccoma: error: "), out
        assert str(path) in lines[0], lines[0]
        assert len(lines[0]) < 600, lines[0]  # a short excerpt of a value, never the value
    return res.exit_code, out


@pytest.fixture(scope="module")
def where(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _write(where: Path, data: bytes, kind: str) -> Path:
    path = where / f"{kind}{next(_NAMES)}.yaml"
    path.write_bytes(data)
    return path


ARGS = {
    "scenario": lambda p: ["scenarios", "show", str(p)],
    "map": lambda p: ["maps", "check", str(p)],
    "units": lambda p: ["maps", "check", "3m", "--units", str(p)],
}


@SETTINGS
@given(data=st.one_of(mutated("scenario"), _raw_bombs("scenario")))
def test_fuzz_scenario_files(where, data):
    path = _write(where, data, "scenario")
    _check(ARGS["scenario"](path), path)


@SETTINGS
@given(data=st.one_of(mutated("map"), _raw_bombs("map")))
def test_fuzz_map_files(where, data):
    path = _write(where, data, "map")
    _check(ARGS["map"](path), path)


@SETTINGS
@given(data=st.one_of(mutated("units"), _raw_bombs("units")))
def test_fuzz_unit_files(where, data):
    path = _write(where, data, "units")
    _check(ARGS["units"](path), path)


option_value = st.one_of(st.integers(-10 ** 25, 10 ** 25).map(str), st.sampled_from(
    ["nan", "inf", "-inf", "-5", "0", "1", "2.5", "1e400", "", "x", "'", "99999999999999999999"]))


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(train=option_value, deploy=option_value)
def test_fuzz_cli_options(train, deploy):
    """Options reach the code only valid; anything else is one line naming the option."""
    res = CliRunner().invoke(cli, ["scenarios", "show", "3s5z", "--train-steps", train, "--deploy-steps", deploy])
    assert res.exit_code in (0, 2) and "Traceback" not in res.output, res.output
    if res.exit_code == 2:
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and ("--train-steps" in lines[0] or "--deploy-steps" in lines[0]), res.output
    else:
        assert int(train) >= 1 and int(deploy) >= 1


# ---- the issue's cases, one by one: each must name the file and the field ------------------------
def _edit(kind, path, value):
    doc = copy.deepcopy(BASES[kind])
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return yaml.safe_dump(doc).encode()


SCN_MIX = {"schedule": {"train": [{"phase": "known_sites"}],
                        "deploy": [{"mix": {"known_sites": float("nan"), "new_sites": 1.0}}]}}
CASES = {
    "train_steps .inf": ("scenario", _edit("scenario", ("protocol", "train_steps"), float("inf")),
                         "protocol.train_steps"),
    "train_steps .nan": ("scenario", _edit("scenario", ("protocol", "train_steps"), float("nan")),
                         "protocol.train_steps"),
    "train_steps 1e400": ("scenario", _edit("scenario", ("protocol", "train_steps"), "1e400"), "protocol.train_steps"),
    "agent_site list": ("scenario", _edit("scenario", ("phases", "known_sites", "start_positions", "agent_site"),
                                          ["west"]), "agent_site"),
    "phase list": ("scenario", _edit("scenario", ("schedule", "train", 0, "phase"), ["known_sites"]), "phase"),
    "drift.from list": ("scenario", _edit("scenario", ("schedule", "deploy", 1),
                                          {"from": 200000, "drift": {"from": ["known_sites"], "to": "new_sites"}}),
                        "drift.from"),
    "NaN site weights": ("scenario", _edit("scenario", ("phases", "known_sites", "start_positions", "weights"),
                                           [float("nan"), 0.5, 0.5]), "weights"),
    "NaN mix": ("scenario", yaml.safe_dump({**BASES["scenario"], **SCN_MIX}).encode(), "mix"),
    "NaN spread": ("scenario", _edit("scenario", ("phases", "known_sites", "start_positions", "spread"),
                                     float("nan")), "spread"),
    "name mapping": ("scenario", _edit("scenario", ("name",), {"a": 1}), "'name'"),
    "name with /": ("scenario", _edit("scenario", ("name",), "a/b"), "'name'"),
    "name with quote": ("scenario", _edit("scenario", ("name",), "it's"), "'name'"),
    "duplicate key": ("scenario", yaml.safe_dump(BASES["scenario"]).encode() + b"map: 3m\n", "duplicate key"),
    "mixed-type keys": ("map", _edit("map", ("spawn_sites", 5), {"center": [1, 1]}), "spawn_sites"),
    "map units list": ("map", _edit("map", ("agents", "units"), [["marine"], "marine", "marine"]), "agents.units"),
    "map spawn list": ("map", _edit("map", ("agents", "spawn"), ["west"]), "agents.spawn"),
    "infinite arena": ("map", _edit("map", ("size",), [float("inf"), 32]), "size"),
    "huge arena": ("map", _edit("map", ("size",), [1e12, 32]), "size"),
    "both teams at one site": ("map", _edit("map", ("enemies", "spawn"), "west"), "enemies.spawn"),
    "NaN hp": ("units", _edit("units", ("marine", "hp"), float("nan")), "marine.hp"),
    "inf cooldown": ("units", _edit("units", ("marine", "cooldown"), float("inf")), "marine.cooldown"),
    "NaN bonus": ("units", _edit("units", ("stalker", "bonus"), {"armored": float("nan")}), "stalker.bonus"),
    "UTF-16": ("scenario", yaml.safe_dump(BASES["scenario"]).encode("utf-16"), "UTF-16"),
    "not UTF-8": ("map", b"name: \xff\xfe\xfa\n", "UTF-8"),
    "binary": ("units", b"\x00\x01\x02" * 100, "binary"),
    "3000 deep": ("scenario", b"[" * 3000 + b"]" * 3000, "nested"),
    "billion laughs": ("scenario", b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n".encode() for p, c in zip("abcdefgh", "bcdefghi"))
        + b"protocol: *i\n", "values"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_issue_case(where, case):
    kind, data, needle = CASES[case]
    path = _write(where, data, kind)
    code, out = _check(ARGS[kind](path), path)
    assert code == 2 and needle in out, out
