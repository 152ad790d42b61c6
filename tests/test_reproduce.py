"""dba reproduce end to end on a tiny recipe: result files, skip on rerun, conflicts, damage."""

import json

from typer.testing import CliRunner

from dba_cli.cli import app
from dba_cli.recipes.loading import load_recipe
from dba_cli.run.execute import Reporter, execute_runs
from dba_cli.run.plan import make_plan
from dba_cli.results.reading import read_result
from tests.test_recipes import TINY, write

runner = CliRunner()


def test_reproduce_writes_one_complete_result_per_run_and_skips_on_rerun(tmp_path):
    recipe = write(tmp_path, TINY)
    results = tmp_path / "results"
    first = runner.invoke(app, ["reproduce", recipe, "--results", str(results), "--device", "cpu"])
    assert first.exit_code == 0, first.output
    files = sorted(results.glob("tiny/*/seed-*.json"))
    assert [f.relative_to(results).as_posix() for f in files] == [
        "tiny/adam/seed-0.json", "tiny/adam/seed-1.json", "tiny/sgd/seed-0.json", "tiny/sgd/seed-1.json"
    ]
    assert "subset_indices" not in json.loads(files[0].read_text())  # schema 2: the seed reproduces them
    document = read_result(files[0])
    assert document["status"] == "finished" and document["recipe"] == "tiny" and document["seed"] == 0
    assert document["config"]["method"] == "adam" and document["config"]["epochs"] == 2
    assert document["config"]["hidden"] == [32] and document["config"]["batch_size"] == 10
    assert document["subset_size"] == 50 and len(document["subset_hash"]) == 16
    assert [epoch["epoch"] for epoch in document["history"]] == [1, 2]
    assert all(epoch["train_seconds"] > 0 and epoch["eval_seconds"] > 0 for epoch in document["history"])
    assert document["versions"]["torch"] and document["device"] == "cpu"
    assert document["final_test_accuracy"] == document["history"][-1]["test_accuracy"]
    assert not list(results.rglob("*.tmp"))
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = runner.invoke(app, ["reproduce", recipe, "--results", str(results), "--device", "cpu"])
    assert again.exit_code == 0 and "0 run(s) done, 4 already finished" in again.output
    assert [f.stat().st_mtime_ns for f in files] == mtimes


def test_other_config_is_not_overwritten_without_overwrite(tmp_path):
    recipe = write(tmp_path, TINY)
    results = tmp_path / "results"
    args = ["reproduce", recipe, "--results", str(results), "--device", "cpu", "--methods", "sgd", "--seeds", "1"]
    assert runner.invoke(app, args).exit_code == 0
    conflict = runner.invoke(app, [*args, "--epochs", "3"])
    assert conflict.exit_code == 2 and "differs in: epochs" in conflict.output and "--overwrite" in conflict.output
    replaced = runner.invoke(app, [*args, "--epochs", "3", "--overwrite"])
    assert replaced.exit_code == 0
    assert json.loads((results / "tiny/sgd/seed-0.json").read_text())["config"]["epochs"] == 3


def test_damaged_result_is_reported_and_redone(tmp_path, mnist):
    recipe = load_recipe(write(tmp_path, TINY))
    runs = recipe.runs(methods=["sgd"], seeds=1)
    results = tmp_path / "results"
    execute_runs(runs, results)
    damaged = results / "tiny/sgd/seed-0.json"
    damaged.write_text(damaged.read_text()[:100])  # truncated, as by a crash without atomic writes
    plan = make_plan(runs, results)
    assert list(plan.damaged) == [damaged] and plan.todo == runs and "not valid JSON" in plan.damaged[damaged]
    execute_runs(runs, results)
    assert json.loads(damaged.read_text())["status"] == "finished"


def test_interrupt_keeps_finished_runs_and_writes_no_partial_file(tmp_path, mnist):
    import torch

    recipe = load_recipe(write(tmp_path, TINY))
    runs = recipe.runs(methods=["sgd"], seeds=2)
    results = tmp_path / "results"

    class CtrlCInSecondRun(Reporter):
        def epoch_done(self, planned, record):
            if planned.config.seed == 1:
                raise KeyboardInterrupt

    try:
        execute_runs(runs, results, reporter=CtrlCInSecondRun())
    except KeyboardInterrupt:
        pass
    assert [p.name for p in sorted(results.rglob("*.json"))] == ["seed-0.json"]
    assert not list(results.rglob("*.tmp"))
    plan = execute_runs(runs, results)
    assert [p.config.seed for p in plan.skipped] == [0] and [p.config.seed for p in plan.todo] == [1]


def test_a_newcomer_is_told_the_results_are_current_and_how_to_train_them_again(tmp_path):
    args = ["reproduce", write(tmp_path, TINY), "--results", str(tmp_path / "r"), "--device", "cpu"]
    assert runner.invoke(app, args).exit_code == 0
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "0 run(s) done, 4 already finished" in again.output
    assert "nothing was trained" in again.output and "--results ANOTHER_FOLDER" in again.output and "--overwrite" in again.output
    before = (tmp_path / "r" / "tiny" / "sgd" / "seed-0.json").stat().st_mtime_ns
    retrained = runner.invoke(app, [*args, "--overwrite"])
    assert retrained.exit_code == 0 and "4 run(s) done, 0 already finished" in retrained.output
    assert (tmp_path / "r" / "tiny" / "sgd" / "seed-0.json").stat().st_mtime_ns > before
