"""`dba converge`: time to a validation target with every method tuned for it, on a tiny real recipe."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from dba_cli.cli import app
from dba_cli.reports.stats import signed_rank
from dba_cli.results.quantities import reach, steps_per_epoch
from dba_cli.studies.candidates import choose
from dba_cli.studies.converge import fastest_baseline, rank_for, reported_runs, score, tuning_runs
from dba_cli.studies.converge import grid as candidates
from dba_cli.recipes.loading import load_recipe
from dba_cli.results.reading import read_result
from tests.test_recipes import write

pytestmark = pytest.mark.slow  # grids through the CLI: `make test` runs them, `make test-fast` leaves them out

TINY = """\
name: tinyconv
data: 5-per-class
model: {hidden: [16]}
training: {epochs: 3, batch_size: 10}
seeds: 2
methods:
  sgd: {method: sgd, lr: 0.1}
convergence:
  validation_size: 300
  targets: [TARGET_LOW, 99.9]
  epochs: 4
  reported_seeds: 3
  seeds: 1
  first_seed: 100
  budget: 2
  top: 2
  families:
    sgd: {method: [sgd], step: [{momentum: 0.0, lr: 0.1}, {momentum: 0.9, lr: 0.01}]}
    adam: {lr: [0.001, 0.003]}
    dba: {method: [dba], lr: [0.1, 0.2], dba: [{metric: variance, direction: minimize, min_size: 5}]}
"""


def tiny(tmp_path, low: float = 20.0) -> str:
    return write(tmp_path, TINY.replace("TARGET_LOW", str(low)), "tinyconv.yaml")


def test_the_grid_gives_every_family_the_same_budget(tmp_path):
    recipe = load_recipe(tiny(tmp_path))
    grid = candidates(recipe)
    assert [c.family for c in grid] == ["sgd"] * 2 + ["adam"] * 2 + ["dba"] * 2
    assert [c.method.momentum for c in grid if c.family == "sgd"] == [0.0, 0.9]
    assert recipe.convergence.budget_text() == "2 / 2 / 2 settings per family (sgd, adam, dba); tuning seeds 100"
    runs = tuning_runs(recipe)
    assert {r.config.seed for r in runs} == {100} and {r.config.epochs for r in runs} == {4}
    assert all(r.evaluated_epochs == (1, 2, 3, 4) for r in runs)  # every epoch: a time to target needs each one
    assert all(r.config.validation_size == 300 for r in runs)
    assert runs[0].key.startswith("convergence/tuning/tinyconv/sgd/")


def test_ranking_counts_a_run_that_never_reaches_the_target_as_slowest():
    def document(val_by_epoch, final):
        history = [{"epoch": i + 1, "train_seconds": 1.0, "val_accuracy": v} for i, v in enumerate(val_by_epoch)]
        return {"subset_size": 100, "config": {"batch_size": 10}, "history": history, "final_val_accuracy": final}

    fast = [document([50, 91, 92], 92), document([60, 92, 93], 93)]
    slow = [document([50, 60, 91], 91), document([50, 60, 91], 91)]
    never = [document([95, 80, 85], 85), document([50, 60, 70], 70)]  # one run reaches 90 at epoch 1, one never
    targets = [90.0]
    assert reach(fast[0], 90.0).steps == 20 and reach(fast[0], 90.0).seconds == 2.0
    assert reach(never[1], 90.0) is None
    rank_key = rank_for(targets)
    keys = {name: rank_key(docs) for name, docs in {"fast": fast, "slow": slow, "never": never}.items()}
    assert keys["fast"][0] == 20 and keys["slow"][0] == 30
    assert keys["never"][0] == math.inf  # the median of 10 steps and "never" (infinity)
    assert sorted(keys, key=keys.get) == ["fast", "slow", "never"]
    # Ties on the target are broken by the final validation accuracy.
    assert rank_key(fast) < rank_key([document([50, 91, 92], 50)] * 2)


def test_converge_tunes_reports_and_says_when_a_target_is_never_reached(tmp_path):
    recipe_file = tiny(tmp_path)
    results = tmp_path / "r"
    outcome = CliRunner().invoke(app, ["converge", recipe_file, "--results", str(results), "--jobs", "1"])
    assert outcome.exit_code == 0, outcome.output
    assert "no reported run reached 99.9% validation accuracy within 4 epochs" in outcome.output
    report = (results / "convergence/tinyconv.md").read_text()
    assert report.count("not reached within 4 epochs") == 3  # one per tuned method, in the 99.9% column
    tuning = (results / "convergence/tinyconv-tuning.md").read_text()
    assert tuning.count("**chosen**") == 3 and "2 / 2 / 2 settings per family" in tuning
    recipe = load_recipe(recipe_file)
    # Each family's best two settings ran on the reported seeds (top: 2).
    documents = {}
    for family in ("sgd", "adam", "dba"):
        for name in (f"{family}-tuned", f"{family}-top2"):
            for seed in range(3):
                documents[name, seed] = read_result(results / f"convergence/tinyconv/{name}/seed-{seed}.json")
                assert documents[name, seed]["config"]["validation_size"] == 300
    assert all(d["history"][-1]["epoch"] == 4 for d in documents.values())
    # The headline is censored and paired: a run that never reached the target counts as 5 epochs (budget + 1).
    assert "| 99.9% |" in report and "counts as reaching it at 5 epochs" in report
    line = next(line for line in report.splitlines() if line.startswith("| 99.9% |"))
    assert "| 3 | 0/3 | 0/3 | +0 |" in line and line.rstrip().endswith("| no difference shown |")
    scored = score(recipe, results)
    fastest = fastest_baseline(recipe, choose(scored))
    assert f"| 20% | {fastest}-tuned |" in report
    per_epoch = steps_per_epoch(documents["dba-tuned", 0])
    censored = lambda d: reach(d, 20.0).steps if reach(d, 20.0) else 5 * per_epoch  # noqa: E731
    test = signed_rank([censored(documents["dba-tuned", s]) for s in range(3)],
                       [censored(documents[f"{fastest}-tuned", s]) for s in range(3)])
    assert f"| {test.median:+.0f} |" in next(line for line in report.splitlines() if line.startswith("| 20% |"))
    assert len(reported_runs(recipe, scored)) == 3 * 2 * 3
    # A rerun trains nothing new.
    again = CliRunner().invoke(app, ["converge", recipe_file, "--results", str(results), "--jobs", "1"])
    assert again.exit_code == 0 and "already finished" in again.output


@pytest.mark.parametrize("bad", ["120.0", "-1.0"])
def test_a_target_outside_0_to_100_is_a_recipe_error_naming_the_field(tmp_path, bad):
    result = CliRunner().invoke(app, ["converge", tiny(tmp_path, low=float(bad)), "--results", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert "convergence.targets.0" in result.output
    assert not (tmp_path / "r").exists()


def test_a_recipe_without_a_convergence_section_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["converge", "mnist-1pct", "--results", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "has no `convergence:` section" in result.output and len(result.output.strip().splitlines()) == 1
