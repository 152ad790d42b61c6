"""Hardening, writes: a finished result is never lost at its last step, and files are readable by others.

Each test reproduces a case a careless or hostile user hit, then checks the fix.
"""

import json
import os
import stat
import subprocess
import time

import pytest
from typer.testing import CliRunner

from dba_cli.cli import app
from dba_cli.files import write_text_atomic

from tests.test_recipes import TINY, write

runner = CliRunner()
QUICK_RUN = ["run", "--epochs", "2", "--hidden", "16", "--device", "cpu"]


def one_error_line(outcome) -> str:
    lines = [line for line in outcome.output.splitlines() if line.startswith("error:")]
    assert outcome.exit_code == 2 and len(lines) == 1, outcome.output
    assert "Traceback" not in outcome.output and "internal error" not in outcome.output
    return lines[0]


def test_output_in_a_missing_folder_is_an_error_before_training_and_creates_nothing(tmp_path):
    target = tmp_path / "nonexistent" / "dir" / "x.json"
    started = time.time()
    line = one_error_line(runner.invoke(app, QUICK_RUN + ["--epochs", "500", "--output", str(target)]))
    assert "does not exist" in line and "creates no folders" in line
    assert not (tmp_path / "nonexistent").exists()
    assert time.time() - started < 20  # before the 500 epochs, not after


def test_output_that_is_a_folder_is_an_error_before_training(tmp_path):
    line = one_error_line(runner.invoke(app, QUICK_RUN + ["--output", str(tmp_path)]))
    assert "is a folder, not a file" in line


def test_output_name_over_the_os_limit_is_an_error_before_training(tmp_path):
    line = one_error_line(runner.invoke(app, QUICK_RUN + ["--output", str(tmp_path / ("x" * 300 + ".json"))]))
    assert "--output" in line and "this filesystem allows 255" in line
    deep = "/".join(["d" * 200] * 40)
    line = one_error_line(runner.invoke(app, QUICK_RUN + ["--output", str(tmp_path / deep / "x.json")]))
    assert "longer than" in line


def test_output_on_a_read_only_filesystem_is_an_error_before_training(tmp_path):
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)]).returncode != 0:
        pytest.skip("needs mount (root)")
    try:
        line = one_error_line(runner.invoke(app, QUICK_RUN + ["--output", str(mount / "x.json")]))
        assert "Read-only file system" in line
    finally:
        subprocess.run(["umount", str(mount)])


def test_a_good_output_gets_the_result(tmp_path):
    target = tmp_path / "x.json"
    outcome = runner.invoke(app, QUICK_RUN + ["--output", str(target)])
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(target.read_text())["final_test_accuracy"] > 0


def test_written_files_follow_the_umask_not_0600(tmp_path):
    previous = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.md", "x")
        assert stat.S_IMODE((tmp_path / "a.md").stat().st_mode) == 0o644
        os.umask(0o002)
        write_text_atomic(tmp_path / "b.md", "x")
        assert stat.S_IMODE((tmp_path / "b.md").stat().st_mode) == 0o664
    finally:
        os.umask(previous)


def test_results_tables_and_figures_are_readable_by_others(tmp_path):
    previous = os.umask(0o022)
    try:
        results = tmp_path / "results"
        recipe = write(tmp_path, TINY)
        assert runner.invoke(app, ["reproduce", recipe, "--results", str(results), "--device", "cpu"]).exit_code == 0
        assert runner.invoke(app, ["table", "--results", str(results)]).exit_code == 0
        assert runner.invoke(app, ["plot", "--results", str(results)]).exit_code == 0
        files = [path for path in results.rglob("*") if path.is_file() and ".locks" not in path.parts]
        assert any(path.suffix == ".png" for path in files) and any(path.name == "paper-tables.md" for path in files)
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, path
    finally:
        os.umask(previous)


def test_a_results_path_that_is_a_file_says_so(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("I am a file")
    line = one_error_line(runner.invoke(app, ["reproduce", write(tmp_path, TINY), "--results", str(blocker)]))
    assert "is a file, not a folder" in line and "File exists" not in line
