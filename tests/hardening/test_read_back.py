"""Hardening, round 3: every file dba reads back is an input, read with bounds.

Each case of the issue, provoked for real: a result file that is a FIFO (it hung
`dba table`, `plot` and `reproduce`), a link to /dev/zero (23.6 GB read before
the kernel stopped it), a 10^7-deep nested list (RecursionError, exit 1), a
sparse file far over any result's size, a link out of the results folder, a
checkpoint that is a FIFO; and result files whose recipe names would put a
figure outside the figures folder. Every one is "unreadable: REASON" within
seconds: skipped by the tables and figures, redone by reproduce.
"""

from __future__ import annotations

import os
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dba_cli.cli import app
from dba_cli.errors import UnreadableFile
from dba_cli.files import load_json, read_bounded
from dba_cli.results.format import encode_result
from dba_cli.results.reading import MAX_RESULT_BYTES, read_result
from tests.hardening.test_names import HOSTILE, SAFE
from tests.test_recipes import TINY, write

runner = CliRunner()
EXAMPLES = int(os.environ.get("DBA_FUZZ_EXAMPLES", "150"))


@pytest.fixture
def trained(tmp_path):
    """A tiny recipe, trained: 4 real result files."""
    recipe = write(tmp_path, TINY)
    results = tmp_path / "results"
    outcome = runner.invoke(app, ["reproduce", recipe, "--results", str(results), "--device", "cpu"])
    assert outcome.exit_code == 0, outcome.output
    return recipe, results


def hostile_files(target, tmp_path) -> dict:
    """Replace `target` by each hostile kind of file in turn (a generator of (label, reason fragment))."""
    kinds = {
        "fifo": (lambda: os.mkfifo(target), "not a regular file (a FIFO)"),
        "dev-zero": (lambda: target.symlink_to("/dev/zero"), "a link to '/dev/zero', outside"),
        "deep": (lambda: target.write_text("[" * 10_000_000 + "]" * 10_000_000), "more than"),  # 20 MB, over the cap
        "deep-small": (lambda: target.write_text("[" * 100_000 + "]" * 100_000), "nested more than"),
        "sparse": (lambda: open(target, "wb").truncate(100 * 2**30), "more than the 4,194,304"),  # 100 GiB, 0 bytes used
        "outside": (lambda: target.symlink_to(tmp_path / "elsewhere.json"), "outside"),
    }
    return kinds


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "deep", "deep-small", "sparse", "outside"])
def test_a_hostile_result_file_is_unreadable_in_seconds_skipped_by_table_and_plot_and_redone(trained, tmp_path, kind):
    recipe, results = trained
    target = results / "tiny" / "adam" / "seed-1.json"
    (tmp_path / "elsewhere.json").write_text(target.read_text())  # a valid result, but outside the results folder
    target.unlink()
    make, reason = hostile_files(target, tmp_path)[kind]
    make()
    started = time.monotonic()
    with pytest.raises(UnreadableFile, match=re.escape(reason)):
        read_result(target, inside=results)
    table = runner.invoke(app, ["table", "--results", str(results)])
    plot = runner.invoke(app, ["plot", "--results", str(results)])
    assert time.monotonic() - started < 30
    for outcome in (table, plot):
        assert outcome.exit_code == 0, outcome.output
        assert f"skipped: {target}: unreadable: " in " ".join(outcome.output.split())
    redo = runner.invoke(app, ["reproduce", recipe, "--results", str(results), "--device", "cpu"])
    assert redo.exit_code == 0 and "1 run(s) done" in redo.output and "unreadable" in redo.output
    assert target.is_file() and not target.is_symlink() and read_result(target, inside=results)["seed"] == 1
    assert (tmp_path / "elsewhere.json").stat().st_size > 0  # the link's target was never written through


def test_the_bounded_reader_refuses_before_reading(tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as handle:
        handle.truncate(10 * 2**30)
    started = time.monotonic()
    with pytest.raises(UnreadableFile, match="10,737,418,240 bytes, more than the 1,024"):
        read_bounded(big, 1024)
    assert time.monotonic() - started < 1
    (tmp_path / "ok.json").write_text('{"a": [[1]]}')
    assert load_json(tmp_path / "ok.json", 1024) == {"a": [[1]]}
    with pytest.raises(UnreadableFile, match="nested more than 2 levels"):
        load_json(tmp_path / "ok.json", 1024, max_depth=2)
    assert MAX_RESULT_BYTES == 4 * 2**20


def test_a_checkpoint_that_is_a_fifo_is_ignored_and_the_run_starts_over(tmp_path):
    recipe = write(tmp_path, TINY)
    results = tmp_path / "results"
    checkpoint = results / "tiny" / "sgd" / "seed-0.ckpt"
    checkpoint.parent.mkdir(parents=True)
    os.mkfifo(checkpoint)
    outcome = runner.invoke(app, ["reproduce", recipe, "--results", str(results), "--device", "cpu", "--methods", "sgd"])
    assert outcome.exit_code == 0, outcome.output
    assert "2 run(s) done" in outcome.output
    assert not checkpoint.exists()  # dropped once the run's result was written


@pytest.mark.parametrize("name", ["/some/where/x", "../../../x", "..", "a/b", ".hidden", "-rf", "x" * 65])
def test_a_recipe_name_read_from_a_result_file_never_puts_a_figure_outside_the_figures_folder(trained, tmp_path, name):
    _, results = trained
    for path in (results / "tiny").rglob("seed-*.json"):
        document = read_result(path, inside=results)
        document["recipe"] = name  # a valid file, digest and all: only the name is hostile
        path.write_text(encode_result(document))
    before = {path for path in tmp_path.rglob("*")}
    outcome = runner.invoke(app, ["plot", "--results", str(results)])
    assert outcome.exit_code == 2 and "no result files" in outcome.output  # every one skipped
    assert "is not a usable name" in outcome.output
    assert {path for path in tmp_path.rglob("*")} - before <= {results / "figures"}
    assert not any(path.suffix in (".png", ".pdf") for path in tmp_path.rglob("*") if path not in before)
    assert not os.path.exists("/some/where/x-accuracy-vs-epoch.png")


def test_random_names_inside_result_files_stay_inside_for_plot_and_table(trained, tmp_path):
    """The property test of names that become paths, for names read from result files by `dba plot` and `dba table`."""
    _, results = trained
    source = sorted((results / "tiny").rglob("seed-*.json"))[0]
    template = read_result(source, inside=results)
    tried = []

    @settings(max_examples=min(EXAMPLES, 60), deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(name=st.one_of(st.text(max_size=40), st.sampled_from(HOSTILE + SAFE)), method=st.sampled_from(HOSTILE + SAFE))
    def check(name, method):
        tried.append(name)
        folder = tmp_path / "case" / "results"
        target = folder / "tiny" / "sgd" / "seed-0.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(encode_result({**template, "recipe": name, "method_name": method}))
        outside = tmp_path / "case"
        before = {path for path in outside.rglob("*")}
        for command in (["plot", "--results", str(folder)], ["table", "--results", str(folder)]):
            outcome = runner.invoke(app, command)
            assert outcome.exit_code in (0, 2), outcome.output
            assert "Traceback" not in outcome.output and "internal error" not in outcome.output
        written = {path for path in outside.rglob("*")} - before
        assert all(path.resolve().is_relative_to(folder.resolve()) for path in written), written

    check()
    assert len(tried) >= 20
