"""Help, `recipes list` and `table` answer fast: nothing they run imports torch or numba.

Loading torch costs seconds; a command that only prints help or reads files
should not pay for it. Each check runs in a fresh interpreter (this test
process has torch loaded already) through the real entry point,
`dba_cli.cli:main`, and reports which heavy modules ended up imported. Wall
times are not asserted: the machines that run the tests are shared and noisy,
the set of imported modules is what decides the time and is exact.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from dba_cli.cli import app

HEAVY = ("torch", "numba")
REPO_RESULTS = Path(__file__).resolve().parent.parent / "results"

# Runs each command line through `main` in one fresh process, then writes the exit codes and the heavy modules loaded.
PROBE = """
import json, sys
from dba_cli.cli import main

report, heavy, command_lines = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
codes = []
for argv in command_lines:
    sys.argv = ["dba", *argv]
    try:
        main()
    except SystemExit as stop:
        codes.append(stop.code or 0)
    else:
        codes.append(0)
with open(report, "w") as out:
    json.dump({"codes": codes, "loaded": [name for name in heavy if name in sys.modules]}, out)
"""


def probe(tmp_path: Path, command_lines: list[list[str]]) -> dict:
    """Exit codes of the command lines and the heavy modules loaded, from a fresh interpreter."""
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(report), json.dumps(HEAVY), json.dumps(command_lines)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert done.returncode == 0 and report.exists(), done.stderr[-3000:]
    return json.loads(report.read_text())


def command_paths() -> list[list[str]]:
    """Every group and command of the app as its words: [], ['run'], ['recipes'], ['recipes', 'list'], ..."""

    def walk(command, path: list[str]):
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(app), []))


def test_the_command_tree_is_what_the_probe_covers():
    paths = command_paths()
    assert ["run"] in paths and ["recipes", "list"] in paths and ["bench", "step"] in paths and ["table"] in paths
    assert len(paths) >= 15


def test_importing_the_cli_loads_neither_torch_nor_numba(tmp_path):
    assert probe(tmp_path, [])["loaded"] == []


def test_the_help_of_every_command_loads_neither_torch_nor_numba(tmp_path):
    paths = command_paths()
    alone = [[], ["recipes"]]  # `dba` and `dba recipes` alone show their help too
    outcome = probe(tmp_path, [[*path, "--help"] for path in paths] + alone)
    assert outcome["codes"] == [0] * len(paths) + [2, 2]
    assert outcome["loaded"] == []


def test_recipes_list_and_an_empty_table_load_neither_torch_nor_numba(tmp_path):
    outcome = probe(tmp_path, [["recipes", "list"], ["recipes", "show", "mnist-1pct"], ["table", "--results", str(tmp_path / "none")]])
    assert outcome["codes"] == [0, 0, 2]  # no result files: a one-line error after reports/paper_tables.py was imported
    assert outcome["loaded"] == []


def test_a_table_of_real_results_loads_neither_torch_nor_numba(tmp_path):
    source = REPO_RESULTS / "mnist-10-per-class"
    if not any(source.glob("*/seed-*.json")):
        pytest.skip("the repository's results/mnist-10-per-class holds no result files")
    shutil.copytree(source, tmp_path / "results" / source.name)
    outcome = probe(tmp_path, [["table", "--results", str(tmp_path / "results"), "--recipes", source.name]])
    assert outcome["codes"] == [0]
    assert outcome["loaded"] == []
