"""Tuning, ablation and protocol diagnostics, on a tiny recipe with real MNIST runs."""

import math

import pytest
import yaml
from typer.testing import CliRunner

from dba_cli.studies.ablate import ablation_runs, variants
from dba_cli.cli import app
from dba_cli.studies.protocol import default_runs
from dba_cli.recipes.loading import load_recipe
from dba_cli.recipes.recipe import make_method
from dba_cli.results.reading import read_result, stored_results
from dba_cli.studies.tune import candidate_runs, grid as candidates, recipe_differences, tuned_runs

from tests.test_recipes import TINY, write

pytestmark = pytest.mark.slow  # grids through the CLI: `make test` runs them, `make test-fast` leaves them out

runner = CliRunner()

TUNED = TINY + """\
tune:
  validation_size: 200
  seeds: 3
  first_seed: 100
  budget: 4
  top: 2
  families:
    sgd: {method: [sgd], lr: [0.01, 1.0], step: [{momentum: 0.0}, {momentum: 0.9, nesterov: true}]}
    adam: {lr: [0.0001, 0.01], decay: [{method: adam}, {method: adamw, weight_decay: 0.1}]}
    dba:
      method: [dba]
      optimizer: [{base: sgd, lr: 0.1}, {base: adam, lr: 0.001}]
      dba: [{metric: variance, direction: minimize, min_size: 5}, {metric: snr, direction: maximize, min_size: 5}]
ablation:
  seeds: 1
  validation_size: 200
  metric: [variance, cosine]
  direction: [minimize, maximize]
  min_size: [1, 5]
  reduction: [mean]
  base: [sgd, adam]
"""


def test_every_family_gets_the_same_budget_of_settings(tmp_path):
    recipe = load_recipe(write(tmp_path, TUNED))
    grid = candidates(recipe)
    count = {family: sum(c.family == family for c in grid) for family in ("sgd", "adam", "dba")}
    assert count == {"sgd": 4, "adam": 4, "dba": 4} and recipe.tune.budget == 4
    assert recipe.tune.budget_text() == "4 / 4 / 4 settings per family (sgd, adam, dba); tuning seeds 100–102"
    configs = {c.label: recipe.config_for(c.method, 0) for c in grid}
    assert configs["lr-1-mom-0.9-nesterov"].nesterov and configs["lr-0.01-adamw-wd-0.1"].method == "adamw"
    assert configs["adam-lr-0.001-snr-maximize-min5-mean"].base == "adam"
    runs = candidate_runs(recipe)
    assert len(runs) == 12 * 3 and {run.config.seed for run in runs} == {100, 101, 102}
    assert all(run.config.validation_size == 200 for run in runs)
    assert all(run.key.startswith("tune/tiny/") and run.evaluated_epochs == (run.config.epochs,) for run in runs)


@pytest.mark.parametrize("family, change, listed", [
    ("sgd", "lr: [0.01, 1.0]", "lr: [0.01, 0.1, 1.0]"),
    ("dba", "optimizer: [{base: sgd, lr: 0.1}, {base: adam, lr: 0.001}]", "optimizer: [{base: sgd, lr: 0.1}]"),
])
def test_a_recipe_whose_families_get_unequal_budgets_is_refused(tmp_path, family, change, listed):
    text = TUNED.replace(change, listed)
    for command in ("tune", "converge", "reproduce"):
        outcome = runner.invoke(app, [command, write(tmp_path, text), "--results", str(tmp_path / "r")])
        lines = [line for line in outcome.output.splitlines() if line.strip()]
        assert outcome.exit_code == 2 and len(lines) == 1, outcome.output
        assert "tune.budget: the families' grids differ from the budget of 4 settings each" in lines[0]
        sizes = {"sgd": "sgd 6, adam 4, dba 4", "dba": "sgd 4, adam 4, dba 2"}[family]
        assert f"({sizes})" in lines[0]
    assert not (tmp_path / "r").exists()


def test_tune_chooses_by_validation_and_its_yaml_reproduces_the_reruns(tmp_path):
    path = write(tmp_path, TUNED)
    results = tmp_path / "results"
    outcome = runner.invoke(app, ["tune", path, "--results", str(results), "--device", "cpu"])
    assert outcome.exit_code == 0, outcome.output
    # The choice is the candidate with the best mean final validation accuracy over the 3 tuning seeds, from the files.
    validation: dict[tuple[str, str], list[float]] = {}
    configs = {}
    for candidate in sorted((results / "tune" / "tiny").glob("*/*/seed-*.json")):
        if candidate.parent.parent.name in ("reruns", "top"):
            continue
        document = read_result(candidate)
        key = (candidate.parent.parent.name, candidate.parent.name)
        validation.setdefault(key, []).append(document["final_val_accuracy"])
        configs[key] = document["config"]
    assert all(len(values) == 3 for values in validation.values()) and len(validation) == 12
    chosen = yaml.safe_load((results / "tune" / "tiny" / "chosen.yaml").read_text())
    assert set(chosen) == {"sgd-tuned", "adam-tuned", "dba-tuned"}
    for family in ("sgd", "adam", "dba"):
        mine = {label: values for (f, label), values in validation.items() if f == family}
        best = max(mine, key=lambda label: (round(sum(mine[label]) / 3, 6), min(mine[label]), -list(mine).index(label)))
        assert chosen[f"{family}-tuned"]["lr"] == configs[family, best]["lr"], family
    # The recipe has no tuned methods yet: the reruns go to the tune folder, never into the recipe's results.
    assert len(list((results / "tune" / "tiny" / "reruns").rglob("seed-*.json"))) == 6
    # Each family's runner-up ran on the reported seeds too (top: 2), evaluated at the end only.
    runner_ups = sorted((results / "tune" / "tiny" / "top").rglob("seed-*.json"))
    assert len(runner_ups) == 6 and {path.parent.name for path in runner_ups} == {"sgd-top2", "adam-top2", "dba-top2"}
    assert not (results / "tiny").exists()
    report = (results / "tune" / "tiny.md").read_text()
    assert "| dba-tuned | DBA over " in report and "not run yet" not in report
    assert "Budget: 4 / 4 / 4 settings per family (sgd, adam, dba); tuning seeds 100–102" in report
    assert "Range over these 4 pairs" in report  # DBA's best 2 against the comparator's best 2
    rerun = read_result(results / "tune" / "tiny" / "reruns" / "tiny" / "dba-tuned" / "seed-1.json")
    assert all(epoch["test_accuracy"] is not None for epoch in rerun["history"])  # evaluated every epoch
    assert rerun["config"]["validation_size"] == 200 and rerun["role"] == "tuned"
    # Pasted into the recipe, the choice is the recipe's: tune and reproduce share one set of runs.
    pasted = yaml.safe_load(TUNED)
    pasted["methods"].update(chosen)
    write(tmp_path, yaml.safe_dump(pasted), "pasted.yaml")
    retune = runner.invoke(app, ["tune", str(tmp_path / "pasted.yaml"), "--results", str(results), "--device", "cpu"])
    assert retune.exit_code == 0 and "note:" not in retune.output, retune.output
    again = runner.invoke(
        app, ["reproduce", str(tmp_path / "pasted.yaml"), "--methods", "sgd-tuned,adam-tuned,dba-tuned",
              "--results", str(results), "--device", "cpu"],
    )
    assert again.exit_code == 0, again.output
    assert "0 run(s) done, 6 already finished" in again.output
    assert read_result(results / "tiny" / "dba-tuned" / "seed-1.json")["config"] == rerun["config"]
    # Every row of the at-a-glance table, not only the comparator's, gives its sensitivity: the mean paired
    # difference for each pair of DBA's and that baseline's 2 best settings (4 pairs), recomputed here from the files.
    table = runner.invoke(app, ["table", "--results", str(results)])
    assert table.exit_code == 0, table.output
    glance = [line for line in (results / "paper-tables.md").read_text().splitlines() if line.startswith("| tiny |")]
    assert len(glance) == 2, glance

    def accuracies(folder):  # by seed: the recipe's 2 reported seeds
        return [read_result(folder / f"seed-{seed}.json")["final_test_accuracy"] for seed in range(2)]

    top = results / "tune" / "tiny" / "top" / "tiny"
    dba = [accuracies(results / "tiny" / "dba-tuned"), accuracies(top / "dba-top2")]
    for row in glance:
        family = "sgd" if "| sgd-tuned " in row else "adam"
        base = [accuracies(results / "tiny" / f"{family}-tuned"), accuracies(top / f"{family}-top2")]
        means = [sum(a - b for a, b in zip(d, b_)) / 2 for d in dba for b_ in base]
        assert row.rstrip(" |").endswith(f"{min(means):+.2f} to {max(means):+.2f} (4 pairs)"), (family, row, means)


def test_ablation_runs_the_full_grid_and_ranks_by_validation(tmp_path):
    path = write(tmp_path, TUNED)
    recipe = load_recipe(path)
    assert len(variants(recipe)) == 2 * 2 * 2 * 1 * 2 == len(ablation_runs(recipe))
    results = tmp_path / "results"
    outcome = runner.invoke(app, ["ablate", path, "--results", str(results), "--device", "cpu"])
    assert outcome.exit_code == 0, outcome.output
    table = (results / "ablation.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 16
    validation = [float(row.split("|")[9]) for row in rows]
    assert validation == sorted(validation, reverse=True)
    kept = [row.split("|")[11] for row in rows]
    assert all("0:" in cell and "2:" in cell for cell in kept)  # both Linear layers report a kept size


def test_protocol_needs_tuned_methods_and_labels_diagnostics(tmp_path):
    path = write(tmp_path, TINY)
    outcome = runner.invoke(app, ["protocol", path, "--results", str(tmp_path / "r"), "--device", "cpu"])
    assert outcome.exit_code == 2 and "dba tune" in outcome.output
    tuned = TINY.replace("seeds: 2\n", "seeds: 2\nprotocol: {methods: [sgd, adam], seeds: 2, widths: [16]}\n")
    path = write(tmp_path, tuned, "tuned.yaml")
    outcome = runner.invoke(app, ["protocol", path, "--results", str(tmp_path / "r"), "--device", "cpu"])
    assert outcome.exit_code == 0, outcome.output
    table = (tmp_path / "r" / "protocol.md").read_text()
    assert "| ours: fixed stratified subset, final epoch, width 32 | **result** |" in table
    for label in ("best epoch selected on the test set", "fresh subset drawn every epoch", "uniform", "hidden width 16"):
        assert f"| {label}" in table or label in table
    assert table.count("diagnostic, not a result") == 4
    assert "not run" not in table
    # The best-on-test row can only be at least the final-epoch row.
    ours = [line for line in table.splitlines() if line.startswith("| ours")][0].split("|")
    best = [line for line in table.splitlines() if line.startswith("| best epoch")][0].split("|")
    for column in (3, 4):
        assert float(best[column].split()[0]) >= float(ours[column].split()[0]) - 1e-9
    assert not math.isnan(float(ours[3].split()[0]))
    # "DBA − comparator" needs a DBA method: without one it stays a dash.
    assert ours[5].strip() == "–"


def test_protocol_gap_is_the_paired_difference_with_its_t_interval(tmp_path):
    """The result row's last cell: mean per-seed difference to the better baseline and its 95% t interval, by hand."""
    tuned = TINY.replace("seeds: 2\n", "seeds: 2\nprotocol: {methods: [sgd, dba], seeds: 2, widths: [16]}\n") + (
        "  dba: {role: chosen, method: dba, lr: 0.1, dba: {metric: variance, direction: minimize, min_size: 5}}\n"
    )
    path = write(tmp_path, tuned, "tuned.yaml")
    outcome = runner.invoke(app, ["protocol", path, "--results", str(tmp_path / "r"), "--device", "cpu"])
    assert outcome.exit_code == 0, outcome.output
    recipe = load_recipe(path)
    planned = default_runs(recipe)
    stored = stored_results(tmp_path / "r", [p.key for p in planned])
    final = {(p.method_name, p.config.seed): stored[p.key]["final_test_accuracy"] for p in planned}
    d = [final["dba", seed] - final["sgd", seed] for seed in (0, 1)]  # sgd is the only baseline: the comparator
    mean = (d[0] + d[1]) / 2
    half = 12.706 * abs(d[0] - d[1]) / 2  # t(1 df) x sd / sqrt(2), and the sd of two values is |a - b| / sqrt(2)
    table = (tmp_path / "r" / "protocol.md").read_text()
    ours = [line for line in table.splitlines() if line.startswith("| ours")][0].split("|")
    gap = ours[5].strip()
    assert gap.startswith(f"{mean:+.2f} [")
    low, high = (float(x) for x in gap[gap.index("[") + 1 : -1].split(", "))
    assert low == pytest.approx(mean - half, abs=0.006) and high == pytest.approx(mean + half, abs=0.006)


def test_per_method_seeds_do_not_make_the_tuned_setting_a_different_one(tmp_path):
    """A recipe's `seeds: 3` on sgd-tuned changes how many seeds it runs, not which setting tuning matches."""
    pasted = yaml.safe_load(TUNED)
    pasted["methods"]["sgd-tuned"] = {"role": "tuned-baseline", "method": "sgd", "lr": 0.1, "validation_size": 200, "seeds": 3}
    recipe = load_recipe(write(tmp_path, yaml.safe_dump(pasted), "pasted.yaml"))
    chosen = {"sgd-tuned": make_method("tuned-baseline", method="sgd", lr=0.1, validation_size=200)}
    assert recipe_differences(recipe, chosen) == []
    runs = tuned_runs(recipe, chosen)
    assert [run.key for run in runs] == [f"tiny/sgd-tuned/seed-{seed}.json" for seed in range(3)]  # the recipe's own runs
    other = {"sgd-tuned": make_method("tuned-baseline", method="sgd", lr=1.0, validation_size=200)}
    assert recipe_differences(recipe, other) == ["recipe tiny's sgd-tuned differ from the settings tuning chose"]
    assert {run.key.rsplit("/", 1)[0] for run in tuned_runs(recipe, other)} == {"tune/tiny/reruns/tiny/sgd-tuned"}
    assert len(tuned_runs(recipe, other)) == 3 and len(tuned_runs(recipe, other, seeds=1)) == 1


def test_a_recipe_without_a_tune_section_says_how_to_add_one(tmp_path):
    outcome = runner.invoke(app, ["tune", write(tmp_path, TINY), "--results", str(tmp_path / "r")])
    assert outcome.exit_code == 2
    assert "no `tune:` section" in outcome.output


@pytest.mark.parametrize("bad, message", [
    ("families: {sgd: {lr: [0.1, 0.2]}}", "tune.budget: Field required"),
    ("{budget: 2, families: {sgd: {step: [0.1, 0.2]}}}", "sgd.step is not a run setting"),
    ("{budget: 2, families: {sgd: {lr: [0.1, -0.2]}}}", "(tune family sgd, setting {'lr': -0.2}): lr: Input should be greater than 0"),
    ("{budget: 2, families: {sgd: {step: [{momentm: 0.9}, {momentum: 0.5}]}}}", "momentm: unknown key; did you mean 'momentum'?"),
    ("{budget: 2, seeds: 2, families: {sgd: {lr: [0.1, 0.2]}}}", "tune.seeds: Input should be greater than or equal to 3"),
])
def test_bad_tune_sections_name_the_field(tmp_path, bad, message):
    text = TINY + ("tune:\n  " + bad if not bad.startswith("{") else "tune: " + bad) + "\n"
    outcome = runner.invoke(app, ["tune", write(tmp_path, text), "--results", str(tmp_path / "r")])
    assert outcome.exit_code == 2 and message in " ".join(outcome.output.split()), outcome.output


def test_dba_table_rebuilds_every_report_from_the_result_files(tmp_path, monkeypatch):
    """Reports are built from result files only: deleted, `dba table` writes them again, byte for byte."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    write(folder, TUNED + "protocol: {methods: [sgd, adam], seeds: 1, widths: []}\n", "tiny.yaml")
    monkeypatch.setenv("DBA_RECIPES_DIR", str(folder))
    results = tmp_path / "results"
    common = ["--results", str(results), "--device", "cpu"]
    for command in (["tune", "tiny"], ["protocol", "tiny"], ["ablate", "tiny", "--seeds", "1"]):
        outcome = runner.invoke(app, [*command, *common])
        assert outcome.exit_code == 0, outcome.output
    reports = [results / "tune" / "tiny.md", results / "ablation.md", results / "protocol.md"]
    before = {path: path.read_bytes() for path in reports}
    for path in reports:
        path.unlink()
    outcome = runner.invoke(app, ["table", "--results", str(results)])
    assert outcome.exit_code == 0, outcome.output
    assert {path: path.read_bytes() for path in reports} == before
    assert (results / "paper-tables.md").exists()
