"""`dba converge`: time to a validation target with every method tuned for it, on a tiny real recipe."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from dba_cli.cli import app
from dba_cli.reports.converge_report import censored_median, median_steps_text
from dba_cli.reports.stats import sign_test
from dba_cli.results.quantities import reach, steps_per_epoch
from dba_cli.studies.candidates import choose
from dba_cli.studies.converge import fastest_baseline, rank_for, reported_runs, score, tuning_runs
from dba_cli.studies.converge import grid as candidates
from dba_cli.recipes.loading import load_recipe
from dba_cli.recipes.protocol import declaration
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
  targets: [TARGET_LOW, 99.9]
  epochs: 4
  top: 2
  families:
    sgd: {method: [sgd], step: [{momentum: 0.0, lr: 0.1}, {momentum: 0.9, lr: 0.01}]}
    adam: {method: [adam], step: [{lr: 0.001, weight_decay: 0.0}, {lr: 0.003, weight_decay: 0.0001}]}
    dba: {method: [dba], step: [{lr: 0.1, momentum: 0.0}, {lr: 0.2, momentum: 0.5}],
          dba: [{metric: variance, direction: minimize, min_size: 5}]}
"""
# The seeds, the validation split and the budget are the protocol declaration's (tests/small-protocol.yaml:
# tuning seeds 100-101, reported seeds 1000-1001, a 200-image holdout, 4 settings per family = each family's
# 2 own settings x the shared batch sizes [10, 5]). Each family's two settings differ in two keys at once, so no
# numeric line has two values and the edge rule (tested in test_confirmatory.py) adds no runs here.


REPORTED = (1000, 1001)  # the small declaration's reported seeds


def tiny(tmp_path, low: float = 20.0) -> str:
    return write(tmp_path, TINY.replace("TARGET_LOW", str(low)), "tinyconv.yaml")


def test_the_grid_gives_every_family_the_same_budget(tmp_path, small_protocol):
    recipe = load_recipe(tiny(tmp_path))
    grid = candidates(recipe)
    assert [c.family for c in grid] == ["sgd"] * 4 + ["adam"] * 4 + ["dba"] * 4
    sgd = [(c.method.momentum, c.method.batch_size) for c in grid if c.family == "sgd"]
    assert sgd == [(0.0, 10), (0.0, 5), (0.9, 10), (0.9, 5)]  # the shared batch-size axis last
    assert recipe.convergence.budget_text() == "4 / 4 / 4 settings per family (sgd, adam, dba); tuning seeds 100–101"
    runs = tuning_runs(recipe)
    assert {r.config.seed for r in runs} == {100, 101} and {r.config.epochs for r in runs} == {4}
    assert len(runs) == 3 * 4 * 2
    assert all(r.evaluated_epochs == (1, 2, 3, 4) for r in runs)  # every epoch: a time to target needs each one
    assert all(r.config.validation_size == 200 for r in runs)  # the declaration's holdout: time to target is on it
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


def test_a_median_that_depends_on_a_censored_run_is_printed_as_a_lower_bound():
    # 10 steps per epoch, budget 4 epochs: a run that never reaches 90% counts as 5 epochs, 50 steps.
    def run(reached_at: int | None):
        history = [{"epoch": e, "train_seconds": 1.0, "val_accuracy": 95.0 if reached_at and e >= reached_at else 50.0}
                   for e in range(1, 5)]
        return {"subset_size": 100, "config": {"batch_size": 10}, "history": history}

    def text(*epochs):
        return median_steps_text([run(e) for e in epochs], 90.0, 4)

    assert text(1, 2, 3) == "20"  # all reached: exact
    assert text(1, 2, None) == "20"  # the censored run lies above the middle: still exact
    assert text(1, 2, 3, None) == "25"  # (20 + 30) / 2, the censored run above both middle ones
    assert text(1, 2, None, None) == "≥ 35"  # (20 + 50) / 2: its true value is (20 + more than 50) / 2
    assert text(1, None, None) == "≥ 50"  # the median is itself a censored run
    assert text(None, None) == "not reached in 4 epochs"
    assert censored_median([20.0, None, None, 30.0], 50.0) == (40.0, True)


def test_converge_tunes_reports_and_says_when_a_target_is_never_reached(tmp_path, small_protocol):
    recipe_file = tiny(tmp_path)
    results = tmp_path / "r"
    outcome = CliRunner().invoke(app, ["converge", recipe_file, "--results", str(results), "--jobs", "1"])
    assert outcome.exit_code == 0, outcome.output
    assert "no reported run reached 99.9% validation accuracy within 4 epochs" in outcome.output
    report = (results / "convergence/tinyconv.md").read_text()
    assert f"digest `{declaration().digest}`" in report  # the declaration its verdicts follow
    assert report.count("not reached within 4 epochs") == 3  # one per tuned method, in the 99.9% column
    tuning = (results / "convergence/tinyconv-tuning.md").read_text()
    assert tuning.count("**chosen**") == 3 and "4 / 4 / 4 settings per family" in tuning
    recipe = load_recipe(recipe_file)
    # Each family's best two settings ran on the reported seeds (top: 2).
    documents = {}
    for family in ("sgd", "adam", "dba"):
        for name in (f"{family}-tuned", f"{family}-top2"):
            for seed in REPORTED:
                documents[name, seed] = read_result(results / f"convergence/tinyconv/{name}/seed-{seed}.json")
                assert documents[name, seed]["config"]["validation_size"] == 200
    assert all(d["history"][-1]["epoch"] == 4 for d in documents.values())
    # The headline is censored and paired: a run that never reached the target counts as 5 epochs (budget + 1).
    assert "| 99.9% |" in report and "counts as reaching it at 5 epochs" in report
    line = next(line for line in report.splitlines() if line.startswith("| 99.9% |"))
    assert "| 2 | 0/2 | 0/2 | not reached in 4 epochs | not reached in 4 epochs | 0 / 0 / 2 |" in line  # all tied
    assert line.rstrip().endswith("| no difference shown |")
    scored = score(recipe, results)
    fastest = fastest_baseline(recipe, choose(scored))
    assert f"| 20% | {fastest}-tuned |" in report
    per_epoch = steps_per_epoch(documents["dba-tuned", 1000])
    censored = lambda d: reach(d, 20.0).steps if reach(d, 20.0) else 5 * per_epoch  # noqa: E731
    test = sign_test([censored(documents["dba-tuned", s]) for s in REPORTED],
                     [censored(documents[f"{fastest}-tuned", s]) for s in REPORTED], lower_is_better=True)
    line = next(line for line in report.splitlines() if line.startswith("| 20% |"))
    assert f"| {test.wins_a} / {test.wins_b} / {test.ties} |" in line and "sign test" in report
    assert len(reported_runs(recipe, scored)) == 3 * 2 * len(REPORTED)
    # A rerun trains nothing new.
    again = CliRunner().invoke(app, ["converge", recipe_file, "--results", str(results), "--jobs", "1"])
    assert again.exit_code == 0 and "already finished" in again.output


@pytest.mark.parametrize("bad", ["120.0", "-1.0"])
def test_a_target_outside_0_to_100_is_a_recipe_error_naming_the_field(tmp_path, bad, small_protocol):
    result = CliRunner().invoke(app, ["converge", tiny(tmp_path, low=float(bad)), "--results", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert "convergence.targets.0" in result.output
    assert not (tmp_path / "r").exists()


def test_a_recipe_without_a_convergence_section_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["converge", "mnist-1pct", "--results", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "has no `convergence:` section" in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("retired", ["seeds: 1", "first_seed: 100", "reported_seeds: 3", "validation_size: 300", "budget: 2"])
def test_a_setting_the_declaration_now_fixes_is_a_one_line_recipe_error(tmp_path, retired, small_protocol):
    # The protocol deliberately took these out of `convergence:` (dba_cli/protocol.yaml fixes them for every recipe).
    text = TINY.replace("TARGET_LOW", "20.0").replace("  epochs: 4\n", f"  epochs: 4\n  {retired}\n")
    result = CliRunner().invoke(app, ["converge", write(tmp_path, text, "tinyconv.yaml"), "--results", str(tmp_path / "r")])
    key = retired.split(":")[0]
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert f"{key}: is no longer a recipe setting" in result.output and f"drop `{key}`" in result.output
    assert not (tmp_path / "r").exists()
