"""Tables from results, against numbers computed by hand.

Most tests hand the tables result documents in memory, in the shape `results.finished_results`
yields them (history as per-epoch records), so they are free of the file format; the tests at
the end train a tiny recipe for real through the CLI and read its files back.
"""

import math
import warnings

import pandas as pd
import pytest
import yaml
from scipy import stats as scipy_stats
from typer.testing import CliRunner

from dba_cli.reports import paper_tables as tables
from dba_cli.cli import app
from dba_cli.recipes.loading import RECIPES_DIR_ENV
from dba_cli.results.reading import finished_results
from dba_cli.reports.paper_tables import build_tables

from tests.test_recipes import TINY

runner = CliRunner()


def result(recipe, name, role, method, seed, accuracies, seconds=1.0, val=None):
    history = [
        {"epoch": i + 1, "train_loss": 1.0, "test_loss": 1.0, "test_accuracy": a, "train_seconds": seconds,
         "eval_seconds": 0.1, "kept": None}
        for i, a in enumerate(accuracies)
    ]
    return {
        "recipe": recipe, "method_name": name, "role": role, "seed": seed, "status": "finished",
        "config": {"method": method, "batch_size": 50}, "history": history, "final_test_accuracy": accuracies[-1],
        "device": "cpu", "subset_size": 600, "final_val_accuracy": val,
    }


STORED: dict = {}  # results folder -> {(recipe, method, seed): document}


def save(results, document):
    STORED.setdefault(results, {})[(document["recipe"], document["method_name"], document["seed"])] = document


@pytest.fixture
def results(tmp_path, monkeypatch):
    """A results folder whose documents live in memory; the tables read them as they would read the files."""
    folder = tmp_path / "results"

    def stored(results_dir, pattern="*/*/seed-*.json"):
        for key in sorted(STORED.get(results_dir, {})):
            recipe, method, seed = key
            yield results_dir / recipe / method / f"seed-{seed}.json", STORED[results_dir][key]

    monkeypatch.setattr(tables, "finished_results", stored)
    for seed, (sgd, adam, dba) in enumerate([(80.0, 84.0, 90.0), (82.0, 86.0, 92.0)]):
        save(folder, result("mnist-1pct", "sgd", "baseline", "sgd", seed, [50.0, sgd]))
        save(folder, result("mnist-1pct", "adam", "baseline", "adam", seed, [50.0, adam]))
        save(folder, result("mnist-1pct", "dba", "chosen", "dba", seed, [50.0, dba]))
    # full MNIST: sgd reaches 97 at epoch 2 (seed 0) and 3 (seed 1); 98 only in seed 1 (epoch 4)
    save(folder, result("mnist-full", "sgd", "baseline", "sgd", 0, [95.0, 97.2, 97.5, 97.9], seconds=2.0))
    save(folder, result("mnist-full", "sgd", "baseline", "sgd", 1, [95.0, 96.0, 97.0, 98.1], seconds=3.0))
    yield folder
    STORED.pop(folder, None)


def test_data_scarce_table_matches_hand_computation(results):
    markdown, frame = build_tables(results)
    row = frame[(frame.recipe == "mnist-1pct") & (frame.method_name == "dba")].iloc[0]
    assert row.accuracy_mean == 91.0 and row.accuracy_std == pytest.approx(math.sqrt(2))
    # errors: sgd 19, adam 15, dba 9 -> reductions (19-9)/19 and (15-9)/15
    assert row.error_reduction_vs_sgd == pytest.approx(100 * 10 / 19)
    assert row.error_reduction_vs_adam == pytest.approx(40.0)
    assert row.paper_accuracy == 97.79 and row.ours_minus_paper == pytest.approx(91.0 - 97.79)
    sgd = frame[(frame.recipe == "mnist-1pct") & (frame.method_name == "sgd")].iloc[0]
    assert sgd.paper_accuracy == 87.87 and math.isnan(sgd.error_reduction_vs_sgd)
    assert "| dba | DBA, recipe's hand-chosen variant | 2 | 91.00 ± 1.41 | 90.00, 92.00 | 9.00 | 52.63% (paper 81.78)" in markdown
    assert "does not reach the paper's 97.79% (-6.79 points, n = 2)" in markdown
    assert "Headline" not in markdown  # no tuned rows, no paired headline


def test_tuned_dba_is_compared_with_the_tuned_baselines(results):
    for seed in (0, 1):
        save(results, result("mnist-1pct", "sgd-tuned", "tuned-baseline", "sgd", seed, [50.0, 88.0], val=87.0))
        save(results, result("mnist-1pct", "adam-tuned", "tuned-baseline", "adam", seed, [50.0, 90.0], val=89.0))
        save(results, result("mnist-1pct", "dba-tuned", "tuned", "dba", seed, [50.0, 94.0], val=93.0))
    markdown, frame = build_tables(results)
    tuned = frame[(frame.recipe == "mnist-1pct") & (frame.method_name == "dba-tuned")].iloc[0]
    # errors: tuned sgd 12, tuned adam 10, tuned dba 6 -> 50% and 40%, not against the untuned 19 and 15
    assert tuned.error_reduction_vs_sgd == pytest.approx(50.0)
    assert tuned.error_reduction_vs_adam == pytest.approx(40.0)
    untuned = frame[(frame.recipe == "mnist-1pct") & (frame.method_name == "dba")].iloc[0]
    assert untuned.error_reduction_vs_sgd == pytest.approx(100 * 10 / 19)
    assert "| dba-tuned | DBA, tuned on validation | 2 |" in markdown
    # The same 4-point difference on both seeds: a zero-width interval at +4, and no p-value (no spread to test
    # against), so no verdict. adam-tuned is the comparator: the higher validation accuracy.
    assert "| dba-tuned | adam-tuned (comparator) | 2 | 0, 1 | +4.00 | [+4.00, +4.00] | [+4.00, +4.00] | – | – | no difference shown | 40.00% |" in markdown
    assert "| dba-tuned | sgd-tuned | 2 | 0, 1 | +6.00 |" in markdown  # every tuned baseline has its row


def test_paired_headline_by_hand_on_the_seeds_both_methods_have(results):
    # sgd-tuned (3 seeds) mean 89; adam-tuned (4 seeds) mean 91. The comparator is chosen on validation accuracy:
    # adam-tuned's validation mean (85) beats sgd-tuned's (86 - 2 = 84), whatever their test accuracies.
    # (3 epochs: not all runs train the recipe's 2 smoke epochs, so they are held to the full seed counts.)
    for seed, accuracy in enumerate([88.0, 89.0, 90.0]):
        save(results, result("mnist-1pct", "sgd-tuned", "tuned-baseline", "sgd", seed, [50.0, 60.0, accuracy], val=84.0))
    for seed, accuracy in enumerate([90.0, 91.0, 92.0, 91.0]):
        save(results, result("mnist-1pct", "adam-tuned", "tuned-baseline", "adam", seed, [50.0, 60.0, accuracy], val=85.0))
    for seed, accuracy in enumerate([90.5, 90.5, 93.0, 92.0, 95.0]):  # seed 4 has no partner
        save(results, result("mnist-1pct", "dba-tuned", "tuned", "dba", seed, [50.0, 60.0, accuracy], val=85.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        markdown, frame = build_tables(results)
    # Pairs on seeds 0-3: d = 0.5, -0.5, 1.0, 1.0; mean 0.5; squared deviations 0 + 1 + 0.25 + 0.25 = 1.5,
    # variance 1.5 / 3 = 0.5, standard error sqrt(0.5 / 4) = 0.353553; t(3 df) = 3.182 -> ±1.125.
    row = frame[(frame.recipe == "mnist-1pct") & (frame.method_name == "dba-tuned")].iloc[0]
    assert row.paired_baseline == "adam-tuned" and row.paired_n == 4 and row.paired_seeds == "0 1 2 3"
    assert row.paired_differences == "0.50 -0.50 1.00 1.00"
    assert row.paired_dba_accuracy == "90.50 90.50 93.00 92.00" and row.paired_baseline_accuracy == "90.00 91.00 92.00 91.00"
    assert row.paired_mean_difference == pytest.approx(0.5)
    assert row.paired_t_low == pytest.approx(0.5 - 3.182 * 0.353553, abs=1e-3)
    assert row.paired_t_high == pytest.approx(0.5 + 3.182 * 0.353553, abs=1e-3)
    assert row.paired_bootstrap_low >= -0.5 and row.paired_bootstrap_high <= 1.0  # means of resampled pairs
    # t = 0.5 / 0.353553 = 1.414 on 3 df: two-sided p = 0.2522 (scipy); the family is dba-tuned against both
    # tuned baselines, so Holm multiplies the smaller p by 2 and the larger by 1 (and keeps them monotone).
    against_sgd = scipy_stats.ttest_rel([90.5, 90.5, 93.0], [88.0, 89.0, 90.0]).pvalue
    against_adam = scipy_stats.ttest_rel([90.5, 90.5, 93.0, 92.0], [90.0, 91.0, 92.0, 91.0]).pvalue
    assert row.paired_p == pytest.approx(against_adam) and against_adam == pytest.approx(0.2522, abs=1e-4)
    smaller, larger = sorted([against_sgd, against_adam])
    expected = {smaller: min(1.0, 2 * smaller), larger: max(min(1.0, 2 * smaller), larger)}
    assert row.paired_p_holm == pytest.approx(expected[against_adam])
    assert row.paired_verdict == ("no difference shown" if expected[against_adam] >= 0.05 else "DBA better")
    # error reduction (means over all seeds): adam-tuned error 9, dba-tuned mean 92.2 -> error 7.8 -> 13.33%
    assert "| dba-tuned | adam-tuned (comparator) | 4 | 0–3 | +0.50 | [-0.63, +1.63] |" in markdown
    assert "| 13.33% |" in markdown
    assert "an improvement larger than 1.63 points, or a loss larger than 0.63, is ruled out at 95%" in markdown
    assert "imply an improvement of +9.92 points (97.79% against an implied 87.87%), which the interval rules out" in markdown
    # The recipe runs the tuned methods on 10 seeds, the others on 5: each is held to its own count.
    said = [str(w.message) for w in caught]
    assert any("method 'dba-tuned' has 5 of 10 seeds" in m for m in said)
    assert any("method 'adam-tuned' has 4 of 10 seeds" in m for m in said)
    assert any("method 'sgd' has 2 of 5 seeds" in m for m in said)


def glance_rows(markdown):
    """The at-a-glance table's rows as lists of cells."""
    glance = markdown.split("## At a glance", 1)[1].split("\n## ", 1)[0]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in glance.splitlines()
            if line.startswith("| mnist-")]


def test_verdict_words_follow_holm_over_every_comparison_of_the_table(results):
    # Two recipes, each with tuned DBA against two tuned baselines: a family of 4 tests, constructed so that
    # one raw p-value is below 0.05 but its Holm-adjusted one is not.
    dba_1pct = [90.0, 91.0, 92.0, 93.0, 94.0]
    dba_10 = [80.0, 81.0, 82.0, 83.0, 84.0]
    planted = {  # (recipe, baseline) -> (dba per seed, differences dba - baseline per seed)
        ("mnist-1pct", "sgd-tuned"): (dba_1pct, [5.0, 4.9, 5.1, 5.0, 4.95]),            # far better: tiny p
        ("mnist-1pct", "adam-tuned"): (dba_1pct, [1.0, 0.2, 1.4, 0.6, 0.3]),            # t = 3.13: p = 0.035
        ("mnist-10-per-class", "sgd-tuned"): (dba_10, [-5.0, -5.1, -4.9, -5.0, -5.05]),  # far worse: tiny p
        ("mnist-10-per-class", "adam-tuned"): (dba_10, [0.5, -0.5, 1.0, -1.0, 0.2]),     # nothing
    }
    for (recipe, baseline), (dba, differences) in planted.items():
        method = baseline.removesuffix("-tuned")
        for seed, (a, d) in enumerate(zip(dba, differences)):
            save(results, result(recipe, baseline, "tuned-baseline", method, seed, [50.0, round(a - d, 2)],
                                 val=80.0 if method == "adam" else 70.0))
            save(results, result(recipe, "dba-tuned", "tuned", "dba", seed, [50.0, a], val=75.0))
    raw = {key: scipy_stats.ttest_rel(dba, [round(a - d, 2) for a, d in zip(dba, differences)]).pvalue
           for key, (dba, differences) in planted.items()}
    assert 0.025 < raw["mnist-1pct", "adam-tuned"] < 0.05  # significant alone ...
    order = sorted(raw, key=raw.get)  # Holm by hand: the i-th smallest times (4 - i), kept monotone, at most 1
    adjusted, running = {}, 0.0
    for i, key in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * raw[key]))
        adjusted[key] = running
    assert adjusted["mnist-1pct", "adam-tuned"] >= 0.05  # ... but not once corrected for the 4 tests

    markdown, frame = build_tables(results)
    rows = {(row[0], row[6].split()[0]): row for row in glance_rows(markdown)}
    assert set(rows) == set(planted)
    expected = {("mnist-1pct", "sgd-tuned"): "**DBA better**", ("mnist-1pct", "adam-tuned"): "no difference shown",
                ("mnist-10-per-class", "sgd-tuned"): "**DBA worse**", ("mnist-10-per-class", "adam-tuned"): "no difference shown"}
    for key, row in rows.items():
        p, p_holm, verdict = row[9], row[10], row[11]
        assert float(p) == pytest.approx(raw[key], abs=6e-4) or p == "<0.001"
        assert float(p_holm) == pytest.approx(adjusted[key], abs=6e-4) or p_holm == "<0.001"
        assert verdict == expected[key], (key, row)
    assert "(4 comparisons)" in markdown
    # The comparator (higher validation accuracy: adam-tuned) carries the same verdict in the headline and the CSV.
    assert "**dba-tuned − adam-tuned** (n = 5 pairs): no difference shown" in markdown
    csv = frame[(frame.recipe == "mnist-1pct") & (frame.method_name == "dba-tuned")].iloc[0]
    assert csv.paired_baseline == "adam-tuned" and csv.paired_p_holm == pytest.approx(adjusted["mnist-1pct", "adam-tuned"])


def test_full_mnist_time_to_target_matches_hand_computation(results):
    markdown, frame = build_tables(results)
    row = frame[frame.recipe == "mnist-full"].iloc[0]
    assert row.epochs_to_97 == 2.5  # epochs 2 and 3
    assert row.seconds_to_97 == pytest.approx((2 * 2.0 + 3 * 3.0) / 2)
    assert row.epochs_to_98 == 4 and row.reached_98 == "1/2"
    assert "4.0 (1/2 reached)" in markdown
    # final 97.9 and 98.1: 98.00 ± 0.14; 8 and 12 s over 4 epochs: 2.50 s/epoch; 98% only in seed 1, after 12 s
    assert "| sgd | baseline, untuned | 2 | 98.00 ± 0.14 | 2.50 | 2.5 | 6.5 | 4.0 (1/2 reached) | 12.0 (1/2 reached) |" in markdown


def test_diverged_runs_show_as_such(results):
    document = result("mnist-1pct", "sgd", "baseline", "sgd", 2, [50.0, 9.8])
    document["diverged_at_epoch"] = 2
    save(results, document)
    markdown, frame = build_tables(results)
    row = frame[(frame.recipe == "mnist-1pct") & (frame.method_name == "sgd")].iloc[0]
    assert row.diverged == 1 and row.n == 3
    assert "(1/3 diverged)" in markdown


# --- real runs of a tiny recipe, through the CLI ---

TUNED_TINY = TINY + """\
  sgd-tuned: {role: tuned-baseline, method: sgd, lr: 0.1, validation_size: 100}
  adam-tuned: {role: tuned-baseline, method: adam, lr: 0.001, seeds: 3, validation_size: 100}
  dba-tuned: {role: tuned, method: dba, lr: 0.1, seeds: 3, validation_size: 100, dba: {metric: variance, direction: minimize, min_size: 5}}
"""


def test_real_runs_give_paired_rows_per_method_warnings_and_skip_damaged_files(tmp_path, monkeypatch):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "tiny.yaml").write_text(TUNED_TINY)
    monkeypatch.setenv(RECIPES_DIR_ENV, str(recipes))
    results = tmp_path / "results"
    common = ["--results", str(results), "--device", "cpu"]
    # --seeds 2 for all: enough for sgd-tuned (the recipe's 2), short of adam-tuned's and dba-tuned's own 3.
    first = runner.invoke(app, ["reproduce", "tiny", "--methods", "sgd,sgd-tuned,adam-tuned,dba-tuned", "--seeds", "2", *common])
    assert first.exit_code == 0 and "8 run(s) done" in first.output, first.output
    (results / "tiny" / "sgd" / "seed-7.json").write_text('{"status": "finished", "conf')
    outcome = runner.invoke(app, ["table", "--results", str(results)])
    assert outcome.exit_code == 0, outcome.output
    assert "seed-7.json" in outcome.output and "warning" in outcome.output
    flat = " ".join(outcome.output.split())
    assert "method 'dba-tuned' has 2 of 3 seeds" in flat and "method 'adam-tuned' has 2 of 3 seeds" in flat
    assert "method 'adam' has 0 of 2 seeds" in flat and "'sgd-tuned' has" not in flat  # 2 of 2
    markdown = (results / "paper-tables.md").read_text()
    assert "| sgd | baseline, untuned | 2 |" in markdown and "| adam-tuned | baseline, tuned on validation | 2 |" in markdown
    # The headline pairs dba-tuned with the tuned baseline of higher validation accuracy on seeds 0 and 1,
    # checked against scipy.
    accuracy = {(d["method_name"], d["seed"]): d["final_test_accuracy"] for _, d in finished_results(results)}
    validation = {(d["method_name"], d["seed"]): d.get("final_val_accuracy") for _, d in finished_results(results)}
    best = max(("sgd-tuned", "adam-tuned"), key=lambda m: (sum(v for (n, _), v in validation.items() if n == m)
               / sum(1 for (n, _) in validation if n == m), m == "sgd-tuned"))  # a tie goes to the first listed
    dba = [accuracy["dba-tuned", seed] for seed in (0, 1)]
    base = [accuracy[best, seed] for seed in (0, 1)]
    row = pd.read_csv(results / "paper-tables.csv").set_index("method_name").loc["dba-tuned"]
    assert row.paired_baseline == best and row.paired_n == 2 and row.paired_seeds == "0 1"
    assert row.paired_mean_difference == pytest.approx((dba[0] - base[0] + dba[1] - base[1]) / 2, abs=1e-4)
    if dba[0] - base[0] != dba[1] - base[1]:  # (equal differences: zero width, and scipy gives NaN)
        reference = scipy_stats.ttest_rel(dba, base).confidence_interval(0.95)
        assert (row.paired_t_low, row.paired_t_high) == pytest.approx((reference.low, reference.high), abs=1e-4)
    assert f"| dba-tuned | {best} (comparator) | 2 | 0, 1 |" in markdown
    # The at-a-glance table above the sections repeats the headline with the same numbers.
    glance = markdown.split("## At a glance", 1)[1].split("\n## ", 1)[0]
    assert f"| tiny | mnist | MLP, width " in glance
    assert f"| 2 | {sum(dba) / 2:.2f} | {best} {sum(base) / 2:.2f} (comparator) | {row.paired_mean_difference:+.2f} |" in glance


def test_per_method_seeds_plan_runs_and_are_validated(tmp_path):
    from dba_cli.errors import ConfigError
    from dba_cli.recipes.loading import load_recipe

    path = tmp_path / "tiny.yaml"
    path.write_text(TUNED_TINY)
    recipe = load_recipe(str(path))
    counts = {}
    for run in recipe.runs():
        counts[run.method_name] = counts.get(run.method_name, 0) + 1
    assert counts == {"sgd": 2, "adam": 2, "sgd-tuned": 2, "adam-tuned": 3, "dba-tuned": 3}
    assert {run.config.seed for run in recipe.runs(methods=["dba-tuned"])} == {0, 1, 2}
    assert len(recipe.runs(seeds=1)) == 5 and len(recipe.runs(smoke=True)) == 5  # --seeds and --smoke win
    assert "seeds" not in recipe.runs(methods=["adam-tuned"])[0].config.model_dump()  # not part of a run
    bad = yaml.safe_load(TUNED_TINY)
    bad["methods"]["adam-tuned"]["seeds"] = 0
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match=r"methods\.adam-tuned\.seeds"):
        load_recipe(str(path))
