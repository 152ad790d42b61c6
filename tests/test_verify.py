"""dba verify end to end: a tiny recipe's committed results retrained and compared, a hand-perturbed one caught."""

import json
import shutil
import tempfile

import pytest
from typer.testing import CliRunner

from dba_cli.cli import app
from dba_cli.reports.verification import compare, selected
from dba_cli.results.reading import finished_results, read_result
from tests.test_recipes import write

runner = CliRunner()

TINY_DBA = """\
name: tinyverify
data: 5-per-class
model: {hidden: [16]}
training: {epochs: 3, batch_size: 10}
seeds: 2
methods:
  sgd: {method: sgd, lr: 0.1}
  adam: {method: adam, lr: 0.001}
  dba: {method: dba, base: sgd, lr: 0.1, dba: {metric: variance, direction: minimize, min_size: 5}}
"""


@pytest.fixture(scope="module")
def committed(tmp_path_factory):
    """A recipe and its 'committed' results (3 methods x 2 seeds), made once by dba reproduce."""
    root = tmp_path_factory.mktemp("committed")
    recipe = write(root, TINY_DBA)
    results = root / "results"
    made = runner.invoke(app, ["reproduce", recipe, "--results", str(results), "--device", "cpu", "--threads", "1"])
    assert made.exit_code == 0, made.output
    return recipe, results


def snapshot(folder):
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_verify_retrains_one_run_per_method_and_passes(committed, tmp_path):
    recipe, results = committed
    before = snapshot(results)
    scratch = tmp_path / "scratch"
    result = runner.invoke(app, ["verify", recipe, "--results", str(results), "--scratch", str(scratch), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "retraining 3 of its 6 committed run(s)" in result.output
    for run in ("sgd/seed-0", "adam/seed-0", "dba/seed-0"):
        assert run in result.output
    assert "PASS: 3 of 3 retrained run(s) of tinyverify (of 6 committed) within tolerance" in result.output
    assert "OUTSIDE" not in result.output and "across code versions" not in result.output
    assert sorted(p.relative_to(scratch).as_posix() for p in scratch.rglob("seed-*.json")) == [
        "tinyverify/adam/seed-0.json", "tinyverify/dba/seed-0.json", "tinyverify/sgd/seed-0.json"
    ]
    assert snapshot(results) == before  # the committed folder is never written to
    # The retrained DBA run has kept sizes, compared with the committed ones: same code, same thread count.
    comparison = compare("tinyverify/dba/seed-0.json", read_result(results / "tinyverify/dba/seed-0.json"),
                         read_result(scratch / "tinyverify/dba/seed-0.json"))
    assert comparison.kept_difference is not None and comparison.accuracy_difference == 0
    assert comparison.same_code and not comparison.problems


def test_verify_runs_spread_over_methods_in_a_temporary_folder_it_removes(committed, tmp_path, monkeypatch):
    recipe, results = committed
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))  # where mkdtemp puts the scratch folder
    result = runner.invoke(app, ["verify", recipe, "--results", str(results), "--runs", "4", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "retraining 4 of its 6 committed run(s)" in result.output and "PASS: 4 of 4" in result.output
    assert "sgd/seed-1" in result.output and "adam/seed-1" not in result.output  # every seed 0 first, then recipe order
    assert list(temporary.iterdir()) == []


def test_selection_covers_every_method_before_a_second_seed(committed):
    _, results = committed
    documents = {p.relative_to(results).as_posix(): d for p, d in finished_results(results, "tinyverify/*/seed-*.json")}
    assert selected(documents, None, ["sgd", "adam", "dba"]) == [
        "tinyverify/sgd/seed-0.json", "tinyverify/adam/seed-0.json", "tinyverify/dba/seed-0.json",
        "tinyverify/sgd/seed-1.json", "tinyverify/adam/seed-1.json", "tinyverify/dba/seed-1.json",
    ]
    assert selected(documents, 2, ["dba"]) == ["tinyverify/dba/seed-0.json", "tinyverify/adam/seed-0.json"]


def perturb(path, points, loss_factor):
    """A hand edit of a committed file: final accuracy (and the last evaluation, kept consistent) and the first loss."""
    document = json.loads(path.read_text())
    document["final_test_accuracy"] = round(document["final_test_accuracy"] + points, 2)
    document["history"]["evaluated"]["test_accuracy"][-1] = document["final_test_accuracy"]
    document["history"]["train_loss"][0] *= loss_factor
    path.write_text(json.dumps(document))


def test_verify_fails_on_a_committed_file_outside_the_tolerance(committed, tmp_path):
    recipe, original = committed
    results = tmp_path / "results"
    shutil.copytree(original, results)
    perturb(results / "tinyverify/sgd/seed-0.json", points=1.0, loss_factor=1.05)
    scratch = tmp_path / "scratch"
    args = ["verify", recipe, "--results", str(results), "--scratch", str(scratch), "--device", "cpu", "--methods", "sgd"]
    result = runner.invoke(app, [*args, "--loss-tolerance", "0.01"])
    assert result.exit_code == 1, result.output
    assert "OUTSIDE" in result.output and "FAIL: 0 of 1 retrained run(s)" in result.output
    assert ("outside: tinyverify/sgd/seed-0.json: final accuracy differs by -1.00 points; "
            "loss history differs by up to 0.048 (relative)") in result.output
    assert "1 committed run(s) were edited by hand" in result.output  # its digest no longer matches
    retrained = scratch / "tinyverify/sgd/seed-0.json"
    mtime = retrained.stat().st_mtime_ns
    looser = runner.invoke(app, [*args, "--tolerance", "1.5"])  # the loss history is then reported, not judged
    assert looser.exit_code == 0, looser.output
    assert "PASS: 1 of 1" in looser.output and "loss history reported, not judged" in looser.output
    assert retrained.stat().st_mtime_ns == mtime  # a run this code finished in --scratch is reused, not retrained


def test_verify_user_errors_are_one_line_exit_2(committed, tmp_path):
    recipe, results = committed
    cases = [
        (["--results", str(tmp_path / "none")], "no committed results for recipe tinyverify"),
        (["--results", str(results), "--scratch", str(results / "scratch")], "is inside the committed results folder"),
        (["--results", str(results), "--runs", "2", "--all"], "--runs and --all"),
        (["--results", str(results), "--methods", "sgd,rmsprop"], "--methods: rmsprop has no committed runs"),
    ]
    for extra, message in cases:
        result = runner.invoke(app, ["verify", recipe, *extra, "--device", "cpu"])
        assert result.exit_code == 2, (extra, result.output)
        assert message in result.output and "Traceback" not in result.output
    assert not (results / "scratch").exists()
