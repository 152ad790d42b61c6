"""Tables from results, against numbers computed by hand.

Most tests hand the tables result documents in memory, in the shape `results.finished_results`
yields them (history as per-epoch records), so they are free of the file format; the tests at
the end train a tiny recipe for real through the CLI and read its files back.
"""

import math
import shutil
import tempfile
import warnings
from pathlib import Path

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

from dba_cli.recipes.loading import load_recipe
from dba_cli.recipes.protocol import declaration
from dba_cli.studies import tune
from tests.recipe_copies import with_tuned_rows
from tests.test_confirmatory import save as save_file
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
        "device": "cpu", "subset_size": 600, "final_val_accuracy": val, "protocol": declaration().digest,
    }


def plant_tuning(results, recipe_name, best, families=("sgd", "adam", "dba")):
    """A packaged recipe's tuning runs on disk, as `dba tune` leaves them, with family `best` ranking first.

    The comparator is fixed on these (reports/headline.py), never on the reported runs the tests plant in memory.
    Rounds, as `dba tune` trains them: the edge rule adds candidates where a family's best is at an end.
    Only `families` are planted (the comparator needs the baselines'; the peers' would only cost time).
    """
    key = (recipe_name, best, declaration().digest, families)
    if key not in PLANTED:  # made once per session, copied into each test's folder
        folder = PLANTED[key] = Path(tempfile.mkdtemp(prefix="planted-tuning-"))
        recipe = tune.with_families(load_recipe(recipe_name), families)  # the planted families' runs, planned sooner
        for _ in range(declaration().edge.max_extensions + 1):
            for planned in tune.candidate_runs(recipe, results_dir=folder):
                family = planned.method_name.split("/")[0]
                if not (folder / planned.key).exists():
                    save_file(folder, planned, 90.0 if family == best else 80.0, 50.0)
    shutil.copytree(PLANTED[key], results, dirs_exist_ok=True)


PLANTED: dict = {}


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
    plant_tuning(results, "mnist-1pct", "adam")
    for seed in (1000, 1001):  # the declaration's reported seeds
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
    # The same 4-point difference on both seeds: a zero-width interval at +4, no t p-value (no spread to test
    # against), so no verdict; the sign-flip p of 2 equal differences is 2/4. adam-tuned is the comparator: its
    # family ranks first on the tuning runs (planted above), whatever the reported runs hold. It is the primary
    # comparison (the declaration names mnist-1pct); sgd-tuned's row is secondary.
    assert ("| dba-tuned | adam-tuned (comparator) | 2 | 1000, 1001 | +4.00 | [+4.00, +4.00] | 0.500 | – | – | 1.000 | primary "
            "| no difference shown | 40.00% |") in markdown
    assert "| dba-tuned | sgd-tuned | 2 | 1000, 1001 | +6.00 | [+6.00, +6.00] | 0.500 | – | – | 1.000 | secondary |" in markdown


def test_paired_headline_by_hand_on_the_seeds_both_methods_have(results, tmp_path, monkeypatch):
    with_tuned_rows(tmp_path, monkeypatch, "mnist-1pct", """\
  sgd-tuned: {role: tuned-baseline, method: sgd, lr: 0.3}
  adam-tuned: {role: tuned-baseline, method: adam, lr: 0.01}
  dba-tuned: {role: tuned, method: dba, base: sgd, lr: 0.1, dba: {metric: variance, direction: minimize, min_size: 12}}
""")
    # sgd-tuned (3 seeds) mean 89; adam-tuned (4 seeds) mean 91. The comparator is fixed on the tuning runs: adam's
    # family ranks first there (planted), whatever the reported runs' test or validation accuracies.
    plant_tuning(results, "mnist-1pct", "adam")
    # (3 epochs: not all runs train the recipe's 2 smoke epochs, so they are held to the full seed counts.)
    for seed, accuracy in enumerate([88.0, 89.0, 90.0], start=1000):  # the declaration's reported seeds
        save(results, result("mnist-1pct", "sgd-tuned", "tuned-baseline", "sgd", seed, [50.0, 60.0, accuracy], val=84.0))
    for seed, accuracy in enumerate([90.0, 91.0, 92.0, 91.0], start=1000):
        save(results, result("mnist-1pct", "adam-tuned", "tuned-baseline", "adam", seed, [50.0, 60.0, accuracy], val=85.0))
    for seed, accuracy in enumerate([90.5, 90.5, 93.0, 92.0, 95.0], start=1000):  # seed 1004 has no partner
        save(results, result("mnist-1pct", "dba-tuned", "tuned", "dba", seed, [50.0, 60.0, accuracy], val=85.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        markdown, frame = build_tables(results)
    # Pairs on seeds 1000-1003: d = 0.5, -0.5, 1.0, 1.0; mean 0.5; squared deviations 0 + 1 + 0.25 + 0.25 = 1.5,
    # variance 1.5 / 3 = 0.5, standard error sqrt(0.5 / 4) = 0.353553; t(3 df) = 3.182 -> ±1.125.
    row = frame[(frame.recipe == "mnist-1pct") & (frame.method_name == "dba-tuned")].iloc[0]
    assert row.paired_baseline == "adam-tuned" and row.paired_n == 4 and row.paired_seeds == "1000 1001 1002 1003"
    assert row.paired_differences == "0.50 -0.50 1.00 1.00"
    assert row.paired_dba_accuracy == "90.50 90.50 93.00 92.00" and row.paired_baseline_accuracy == "90.00 91.00 92.00 91.00"
    assert row.paired_mean_difference == pytest.approx(0.5)
    assert row.paired_t_low == pytest.approx(0.5 - 3.182 * 0.353553, abs=1e-3)
    assert row.paired_t_high == pytest.approx(0.5 + 3.182 * 0.353553, abs=1e-3)
    # Sign flips of d = 0.5, -0.5, 1.0, 1.0: of the 16, those with |sum| >= 2 are (+,-,+,+) and (-,+,-,-), and
    # (+,+,+,+), (-,-,-,-) with |sum| 3, and (-,-,+,+), (+,+,-,-) with |sum| 2: 6 of 16.
    assert row.paired_p_permutation == pytest.approx(6 / 16)
    # t = 0.5 / 0.353553 = 1.414 on 3 df: two-sided p = 0.2522 (scipy). It is the only primary comparison here
    # (the comparator on mnist-1pct): Holm over a family of one leaves it as it is.
    against_adam = scipy_stats.ttest_rel([90.5, 90.5, 93.0, 92.0], [90.0, 91.0, 92.0, 91.0]).pvalue
    assert row.paired_p == pytest.approx(against_adam) and against_adam == pytest.approx(0.2522, abs=1e-4)
    assert row.paired_p_holm == pytest.approx(against_adam) and row.paired_family == "primary"
    assert row.paired_verdict == "no difference shown"
    # error reduction (means over all seeds): adam-tuned error 9, dba-tuned mean 92.2 -> error 7.8 -> 13.33%
    assert "| dba-tuned | adam-tuned (comparator) | 4 | 1000–1003 | +0.50 | [-0.63, +1.63] |" in markdown
    assert "| 13.33% |" in markdown
    assert "an improvement larger than 1.63 points, or a loss larger than 0.63, is ruled out at 95%" in markdown
    # The paper's implied improvement, +9.92 points, tested one-sided: mean 0.5, t = (0.5 - 9.92) / 0.353553 on 3 df.
    claim = scipy_stats.ttest_1samp([0.5, -0.5, 1.0, 1.0], 9.92, alternative="less").pvalue
    assert row.paired_p_claim == pytest.approx(claim) and claim < 0.05
    assert "imply an improvement of +9.92 points (97.79% against an implied 87.87%); the one-sided test" in markdown
    assert ": rejected." in markdown
    # The tuned methods run the declaration's 20 reported seeds, the others the recipe's 5: each is held to its count.
    said = [str(w.message) for w in caught]
    assert any("method 'dba-tuned' has 5 of 20 seeds" in m for m in said)
    assert any("method 'adam-tuned' has 4 of 20 seeds" in m for m in said)
    assert any("method 'sgd' has 2 of 5 seeds" in m for m in said)


def glance_rows(markdown):
    """The at-a-glance table's rows as lists of cells."""
    glance = markdown.split("## At a glance", 1)[1].split("\n## ", 1)[0]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in glance.splitlines()
            if line.startswith(("| primary |", "| secondary |"))]


def holm_by_hand(raw: dict) -> dict:
    """Holm's step-down adjustment: the i-th smallest of m p-values times (m - i), kept monotone, at most 1."""
    order = sorted(raw, key=raw.get)
    adjusted, running = {}, 0.0
    for i, key in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * raw[key]))
        adjusted[key] = running
    return adjusted


def tost_by_hand(differences: list[float], margin: float = 1.0) -> float:
    below = scipy_stats.ttest_1samp(differences, -margin, alternative="greater").pvalue
    above = scipy_stats.ttest_1samp(differences, margin, alternative="less").pvalue
    return max(below, above)


def test_verdict_words_follow_holm_within_the_primary_and_the_secondary_family(results):
    # Two recipes the declaration names as primary, each with tuned DBA against two tuned baselines; adam is each
    # recipe's comparator (fixed on planted tuning runs), so its rows are the primary family and sgd's the secondary.
    plant_tuning(results, "mnist-1pct", "adam")
    plant_tuning(results, "mnist-10-per-class", "adam")
    dba_1pct = [90.0, 91.0, 92.0, 93.0, 94.0]
    dba_10 = [80.0, 81.0, 82.0, 83.0, 84.0]
    planted = {  # (recipe, baseline) -> (dba per seed, differences dba - baseline per seed)
        ("mnist-1pct", "sgd-tuned"): (dba_1pct, [5.0, 4.9, 5.1, 5.0, 4.95]),            # far better: tiny p
        ("mnist-1pct", "adam-tuned"): (dba_1pct, [1.0, 0.2, 1.4, 0.6, 0.3]),            # t = 3.13: p = 0.035
        ("mnist-10-per-class", "sgd-tuned"): (dba_10, [-5.0, -5.1, -4.9, -5.0, -5.05]),  # far worse: tiny p
        ("mnist-10-per-class", "adam-tuned"): (dba_10, [0.1, -0.1, 0.05, -0.05, 0.0]),  # nothing, tightly: equivalent
    }
    for (recipe, baseline), (dba, differences) in planted.items():
        method = baseline.removesuffix("-tuned")
        for seed, (a, d) in enumerate(zip(dba, differences), start=1000):
            save(results, result(recipe, baseline, "tuned-baseline", method, seed, [50.0, round(a - d, 2)], val=70.0))
            save(results, result(recipe, "dba-tuned", "tuned", "dba", seed, [50.0, a], val=75.0))
    pairs = {key: (dba, [round(a - d, 2) for a, d in zip(dba, differences)]) for key, (dba, differences) in planted.items()}
    raw = {key: scipy_stats.ttest_rel(a, b).pvalue for key, (a, b) in pairs.items()}
    tost = {key: tost_by_hand([x - y for x, y in zip(a, b)]) for key, (a, b) in pairs.items()}
    primary = [key for key in planted if key[1] == "adam-tuned"]
    secondary = [key for key in planted if key[1] == "sgd-tuned"]
    adjusted = {**holm_by_hand({k: raw[k] for k in primary}), **holm_by_hand({k: raw[k] for k in secondary})}
    tost_adjusted = {**holm_by_hand({k: tost[k] for k in primary}), **holm_by_hand({k: tost[k] for k in secondary})}
    assert 0.025 < raw["mnist-1pct", "adam-tuned"] < 0.05 <= adjusted["mnist-1pct", "adam-tuned"]  # alone, not in 2
    assert tost_adjusted["mnist-10-per-class", "adam-tuned"] < 0.05 <= tost_adjusted["mnist-1pct", "adam-tuned"]

    markdown, frame = build_tables(results)
    rows = {(row[1], row[6].split()[0]): row for row in glance_rows(markdown)}
    assert set(rows) == set(planted)
    expected = {("mnist-1pct", "sgd-tuned"): "**DBA better**", ("mnist-1pct", "adam-tuned"): "no difference shown",
                ("mnist-10-per-class", "sgd-tuned"): "**DBA worse**",
                ("mnist-10-per-class", "adam-tuned"): "**equivalent within ±1**"}
    for key, row in rows.items():
        family, p, p_holm, tost_holm, verdict = row[0], row[9], row[11], row[12], row[14]
        assert family == ("primary" if key in primary else "secondary")
        assert float(p) == pytest.approx(raw[key], abs=6e-4) or p == "<0.001"
        assert float(p_holm) == pytest.approx(adjusted[key], abs=6e-4) or p_holm == "<0.001"
        assert float(tost_holm) == pytest.approx(tost_adjusted[key], abs=6e-4) or tost_holm == "<0.001"
        assert verdict == expected[key], (key, row)
    assert "The **primary** family is the paper's claims as the declaration names them (2 tests" in markdown
    # The comparator carries the same verdict in the headline and the CSV.
    assert "**dba-tuned − adam-tuned** (primary, n = 5 pairs): no difference shown" in markdown
    csv = frame[(frame.recipe == "mnist-1pct") & (frame.method_name == "dba-tuned")].iloc[0]
    assert csv.paired_baseline == "adam-tuned" and csv.paired_p_holm == pytest.approx(adjusted["mnist-1pct", "adam-tuned"])
    assert csv.paired_family == "primary" and csv.protocol == declaration().digest


def test_the_peers_are_secondary_rows_and_never_the_comparator_even_when_one_tunes_best(results):
    plant_tuning(results, "mnist-1pct", "ordered", families=("sgd", "adam", "dba", "ordered"))  # ordered ranks first
    for seed in range(1000, 1005):
        save(results, result("mnist-1pct", "sgd-tuned", "tuned-baseline", "sgd", seed, [50.0, 88.0 + seed % 2], val=70.0))
        save(results, result("mnist-1pct", "adam-tuned", "tuned-baseline", "adam", seed, [50.0, 89.0 + seed % 3], val=70.0))
        save(results, result("mnist-1pct", "dba-tuned", "tuned", "dba", seed, [50.0, 90.0 + seed % 2], val=75.0))
        save(results, result("mnist-1pct", "ordered-tuned", "tuned-peer", "ordered", seed, [50.0, 91.0 + seed % 3], val=80.0))
    markdown, _ = build_tables(results)
    rows = {row[6].split()[0]: row for row in glance_rows(markdown) if row[1] == "mnist-1pct"}
    assert set(rows) == {"sgd-tuned", "adam-tuned", "ordered-tuned"}
    assert "(comparator)" not in rows["ordered-tuned"][6] and rows["ordered-tuned"][0] == "secondary"
    assert rows["ordered-tuned"][7] == f"{(90.4 - 92.2):+.2f}"  # DBA (90, 91, 90, 91, 90) - ordered (92, 93, 91, 92, 93)
    assert "(comparator)" in rows["sgd-tuned"][6] or "(comparator)" in rows["adam-tuned"][6]


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
    assert "method 'adam' has 0 of 2 seeds" in flat and "method 'sgd-tuned' has 2 of 20 seeds" in flat
    markdown = (results / "paper-tables.md").read_text()
    assert "| sgd | baseline, untuned | 2 |" in markdown and "| adam-tuned | baseline, tuned on validation | 2 |" in markdown
    # The tuned methods ran the declaration's reported seeds 1000 and 1001 (the untuned ones 0 and 1). The recipe has
    # no `tune:` section, so no comparator can be fixed on tuning runs: every row is secondary, none "(comparator)",
    # and each pairs dba-tuned with one tuned baseline on the seeds both have, checked against scipy.
    accuracy = {(d["method_name"], d["seed"]): d["final_test_accuracy"] for _, d in finished_results(results)}
    assert {seed for (name, seed) in accuracy if name.endswith("-tuned")} == {1000, 1001}
    glance = markdown.split("## At a glance", 1)[1].split("\n## ", 1)[0]
    assert "(comparator)" not in glance and "| primary |" not in glance
    dba = [accuracy["dba-tuned", seed] for seed in (1000, 1001)]
    for base_name in ("sgd-tuned", "adam-tuned"):
        base = [accuracy[base_name, seed] for seed in (1000, 1001)]
        mean = (dba[0] - base[0] + dba[1] - base[1]) / 2
        assert (f"| secondary | tiny | mnist | MLP, width 32 | 2 | {sum(dba) / 2:.2f} | {base_name} {sum(base) / 2:.2f} "
                f"| {mean:+.2f} |") in glance
        if dba[0] - base[0] != dba[1] - base[1]:  # (equal differences: zero width, and scipy gives NaN)
            reference = scipy_stats.ttest_rel(dba, base).confidence_interval(0.95)
            assert f"[{reference.low:+.2f}, {reference.high:+.2f}]" in glance


def test_per_method_seeds_plan_runs_and_are_validated(tmp_path):
    from dba_cli.errors import ConfigError
    from dba_cli.recipes.loading import load_recipe

    path = tmp_path / "tiny.yaml"
    path.write_text(TUNED_TINY)
    recipe = load_recipe(str(path))
    counts = {}
    for run in recipe.runs():
        counts[run.method_name] = counts.get(run.method_name, 0) + 1
    # Tuned methods run the declaration's reported seeds (all 20, or the first `seeds:` of them), the others 0..N-1.
    assert counts == {"sgd": 2, "adam": 2, "sgd-tuned": 20, "adam-tuned": 3, "dba-tuned": 3}
    assert {run.config.seed for run in recipe.runs(methods=["dba-tuned"])} == {1000, 1001, 1002}
    assert len(recipe.runs(seeds=1)) == 5 and len(recipe.runs(smoke=True)) == 5  # --seeds and --smoke win
    assert "seeds" not in recipe.runs(methods=["adam-tuned"])[0].config.model_dump()  # not part of a run
    bad = yaml.safe_load(TUNED_TINY)
    bad["methods"]["adam-tuned"]["seeds"] = 0
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match=r"methods\.adam-tuned\.seeds"):
        load_recipe(str(path))
