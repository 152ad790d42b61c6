"""Hardening, thread count: explicit, recorded in every result, and part of what "identical" means."""

import json

import torch
from typer.testing import CliRunner

from dba_cli.cli import app

from tests.test_recipes import TINY, write

runner = CliRunner()


def test_runs_use_one_thread_by_default_and_record_it(tmp_path):
    torch.set_num_threads(2)  # whatever the process had before, the command sets its own
    results = tmp_path / "results"
    outcome = runner.invoke(app, ["reproduce", write(tmp_path, TINY), "--results", str(results), "--device", "cpu"])
    assert outcome.exit_code == 0, outcome.output
    documents = [json.loads(path.read_text()) for path in results.rglob("seed-*.json")]
    assert documents and all(document["threads"] == 1 for document in documents)
    assert torch.get_num_threads() == 1


def test_dba_run_records_its_threads_and_says_them(tmp_path):
    target = tmp_path / "x.json"
    outcome = runner.invoke(app, ["run", "--epochs", "1", "--hidden", "16", "--device", "cpu", "--threads", "2",
                                  "--output", str(target)])
    assert outcome.exit_code == 0, outcome.output
    assert "2 threads" in outcome.output and json.loads(target.read_text())["threads"] == 2


def test_a_result_made_with_another_thread_count_is_not_taken_as_this_run(tmp_path):
    recipe, results = write(tmp_path, TINY), tmp_path / "results"
    assert runner.invoke(app, ["reproduce", recipe, "--results", str(results), "--threads", "1"]).exit_code == 0
    again = runner.invoke(app, ["reproduce", recipe, "--results", str(results), "--threads", "2"])
    assert again.exit_code == 2 and "threads (1, now 2)" in again.output and "--threads" in again.output
    same = runner.invoke(app, ["reproduce", recipe, "--results", str(results), "--threads", "1"])
    assert same.exit_code == 0 and "0 run(s) done, 4 already finished" in same.output


def test_zero_threads_is_a_usage_error():
    outcome = runner.invoke(app, ["run", "--threads", "0"])
    assert outcome.exit_code == 2 and "--threads" in outcome.output
