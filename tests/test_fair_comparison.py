"""Tuning, ablation and protocol diagnostics, on a tiny recipe with real MNIST runs."""

import math

import pytest
import yaml
from typer.testing import CliRunner

from dba_cli.studies.ablate import ablation_runs, variants
from dba_cli.cli import app
from dba_cli.studies.protocol import default_runs
from dba_cli.recipes.loading import load_recipe
from dba_cli.recipes.protocol import declaration
from dba_cli.recipes.recipe import make_method
from dba_cli.results.reading import read_result, stored_results
from dba_cli.studies.tune import candidate_runs, grid as candidates, recipe_differences, tuned_runs

from tests.test_confirmatory import save
from tests.test_recipes import TINY, write

# Grids through the CLI: `make test` runs them, `make test-fast` leaves them out. Every test runs under the small
# declaration (tests/small-protocol.yaml): tuning seeds 100-101, design seed 500, reported seeds 1000-1001, two folds
# inside the subset, and a budget of 4 settings per family = 2 own settings x the shared batch sizes [10, 5].
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("small_protocol")]

runner = CliRunner()
REPORTED = (1000, 1001)  # the small declaration's reported seeds: every tuned method's paired runs

# Each family's two own settings differ in more than one key at once (mapping axes), so that no numeric line holds
# two values: the edge rule (tested with constructed runs in test_confirmatory.py) adds no training here.
TUNED = TINY + """\
tune:
  top: 2
  families:
    sgd: {method: [sgd], step: [{lr: 0.01, momentum: 0.0}, {lr: 1.0, momentum: 0.9, nesterov: true}]}
    adam: {decay: [{method: adam, lr: 0.0001}, {method: adamw, lr: 0.01, weight_decay: 0.1}]}
    dba:
      method: [dba]
      optimizer: [{base: sgd, lr: 0.1}, {base: adam, lr: 0.001}]
      dba: [{metric: snr, direction: maximize, min_size: 5}]
ablation:
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
    assert recipe.tune.budget_text() == "4 / 4 / 4 settings per family (sgd, adam, dba); tuning seeds 100–101"
    configs = {c.label: recipe.config_for(c.method, 0) for c in grid}
    assert configs["lr-1-mom-0.9-nesterov-bs-5"].nesterov and configs["adamw-lr-0.01-wd-0.1-bs-10"].method == "adamw"
    assert configs["adam-lr-0.001-bs-5"].base == "adam" and configs["adam-lr-0.001-bs-5"].batch_size == 5
    assert {c.method.batch_size for c in grid if c.family == "dba"} == {10, 5}  # the declaration's shared axis
    runs = candidate_runs(recipe)
    assert len(runs) == 12 * 2 and {run.config.seed for run in runs} == {100, 101}
    # A data-scarce recipe validates on folds of its own subset (tuning seed j: fold j mod 2), never a held-out split.
    assert {(run.config.seed, run.config.folds, run.config.fold) for run in runs} == {(100, 2, 0), (101, 2, 1)}
    assert all(run.config.validation_size == 0 for run in runs)
    assert all(run.key.startswith("tune/tiny/") and run.evaluated_epochs == (run.config.epochs,) for run in runs)


@pytest.mark.parametrize("family, change, listed", [
    ("sgd", "step: [{lr: 0.01, momentum: 0.0}, ", "step: [{lr: 0.01, momentum: 0.0}, {lr: 0.1, momentum: 0.5}, "),
    ("dba", "optimizer: [{base: sgd, lr: 0.1}, {base: adam, lr: 0.001}]", "optimizer: [{base: sgd, lr: 0.1}]"),
])
def test_a_recipe_whose_families_get_unequal_budgets_is_refused(tmp_path, family, change, listed):
    text = TUNED.replace(change, listed)
    assert text != TUNED
    for command in ("tune", "converge", "reproduce"):
        outcome = runner.invoke(app, [command, write(tmp_path, text), "--results", str(tmp_path / "r")])
        lines = [line for line in outcome.output.splitlines() if line.strip()]
        assert outcome.exit_code == 2 and len(lines) == 1, outcome.output
        # The budget is the declaration's now (4), counted with its shared batch-size axis (2 values).
        assert "tune.families: the families' grids differ from the declared budget of 4 settings each" in lines[0]
        sizes = {"sgd": "sgd 6, adam 4, dba 4", "dba": "sgd 4, adam 4, dba 2"}[family]
        assert f"({sizes}, the shared axes' 2 combinations included)" in lines[0]
    assert not (tmp_path / "r").exists()


def robust(values: list[float]) -> tuple:
    """The declaration's ranking of two tuning runs, by hand: mean - 1 sd (of two values: |a - b| / sqrt(2)), then the worst."""
    a, b = values
    return (round((a + b) / 2 - abs(a - b) / math.sqrt(2), 6), min(values))


def test_tune_chooses_by_validation_and_its_yaml_reproduces_the_reruns(tmp_path, monkeypatch):
    path = write(tmp_path, TUNED)
    results = tmp_path / "results"
    outcome = runner.invoke(app, ["tune", path, "--results", str(results), "--device", "cpu"])
    assert outcome.exit_code == 0, outcome.output
    # The choice is the candidate with the best mean - 1 sd of final validation accuracy over the 2 tuning seeds (the
    # declaration's ranking; it was the mean before), then the higher worst run, then grid order; from the files.
    validation: dict[str, dict[str, list[float]]] = {}  # family -> label -> by tuning seed, in grid order
    configs = {}
    for candidate in candidates(load_recipe(path)):
        folder = results / "tune" / "tiny" / candidate.family / candidate.label
        documents = [read_result(folder / f"seed-{seed}.json") for seed in (100, 101)]
        validation.setdefault(candidate.family, {})[candidate.label] = [d["final_val_accuracy"] for d in documents]
        configs[candidate.family, candidate.label] = documents[0]["config"]
        assert [(d["config"]["folds"], d["config"].get("fold", 0)) for d in documents] == [(2, 0), (2, 1)]  # subset folds
    assert sum(len(labels) for labels in validation.values()) == 12
    chosen = yaml.safe_load((results / "tune" / "tiny" / "chosen.yaml").read_text())
    assert set(chosen) == {"sgd-tuned", "adam-tuned", "dba-tuned"}
    best = {}
    for family, mine in validation.items():
        order = list(mine)
        best[family] = max(mine, key=lambda label: (*robust(mine[label]), -order.index(label)))
        for setting in ("lr", "batch_size"):
            assert chosen[f"{family}-tuned"][setting] == configs[family, best[family]][setting], (family, setting)
    # The recipe has no tuned methods yet: the reruns go to the tune folder, never into the recipe's results.
    assert len(list((results / "tune" / "tiny" / "reruns").rglob("seed-*.json"))) == 6
    # Each family's runner-up ran on the reported seeds too (top: 2), evaluated at the end only.
    runner_ups = sorted((results / "tune" / "tiny" / "top").rglob("seed-*.json"))
    assert len(runner_ups) == 6 and {path.parent.name for path in runner_ups} == {"sgd-top2", "adam-top2", "dba-top2"}
    assert {path.name for path in runner_ups} == {f"seed-{seed}.json" for seed in REPORTED}
    assert not (results / "tiny").exists()
    report = (results / "tune" / "tiny.md").read_text()
    assert "| dba-tuned | DBA over " in report and "not run yet" not in report
    assert "Budget: 4 / 4 / 4 settings per family (sgd, adam, dba); tuning seeds 100–101" in report
    assert "Range over these 4 pairs" in report  # DBA's best 2 against the comparator's best 2
    rerun = read_result(results / "tune" / "tiny" / "reruns" / "tiny" / "dba-tuned" / "seed-1001.json")
    assert all(epoch["test_accuracy"] is not None for epoch in rerun["history"])  # evaluated every epoch
    # A data-scarce recipe's reruns train on the whole subset: no validation split, no fold held out.
    assert rerun["config"].get("validation_size", 0) == 0 and "folds" not in rerun["config"] and rerun["role"] == "tuned"
    assert rerun["protocol"] == declaration().digest
    # Pasted into the recipe, the choice is the recipe's: tune and reproduce share one set of runs. The recipe goes
    # where `dba table` finds it (DBA_RECIPES_DIR): the comparator is fixed on its tuning runs, so the report needs it.
    pasted = yaml.safe_load(TUNED)
    pasted["methods"].update(chosen)
    folder = tmp_path / "recipes"
    folder.mkdir()
    recipe_file = write(folder, yaml.safe_dump(pasted), "tiny.yaml")
    retune = runner.invoke(app, ["tune", recipe_file, "--results", str(results), "--device", "cpu"])
    assert retune.exit_code == 0 and "note:" not in retune.output, retune.output
    again = runner.invoke(
        app, ["reproduce", recipe_file, "--methods", "sgd-tuned,adam-tuned,dba-tuned",
              "--results", str(results), "--device", "cpu"],
    )
    assert again.exit_code == 0, again.output
    assert "0 run(s) done, 6 already finished" in again.output
    assert read_result(results / "tiny" / "dba-tuned" / "seed-1001.json")["config"] == rerun["config"]
    # Every row of the at-a-glance table, not only the comparator's, gives its sensitivity: the mean paired
    # difference for each pair of DBA's and that baseline's 2 best settings (4 pairs), recomputed here from the files.
    monkeypatch.setenv("DBA_RECIPES_DIR", str(folder))
    table = runner.invoke(app, ["table", "--results", str(results)])
    assert table.exit_code == 0, table.output
    glance = [line for line in (results / "paper-tables.md").read_text().splitlines() if line.startswith("| ")
              and "| tiny |" in line[:20]]
    assert len(glance) == 2, glance
    # The comparator: the baseline family whose chosen setting ranks best on the tuning runs (sgd first on a tie).
    # The small declaration names `tiny` a primary hypothesis: that row is primary, the other secondary.
    comparator = max(("sgd", "adam"), key=lambda f: (*robust(validation[f][best[f]]), f == "sgd"))
    assert [row.split("|")[1].strip() for row in glance] == ["primary", "secondary"]
    assert f"| {comparator}-tuned " in glance[0] and "(comparator)" in glance[0] and "(comparator)" not in glance[1]

    def accuracies(folder):  # by seed: the declaration's 2 reported seeds
        return [read_result(folder / f"seed-{seed}.json")["final_test_accuracy"] for seed in REPORTED]

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
    # The diagnostics train on the declaration's design seeds (here 500 alone): `protocol:` no longer sets seeds.
    tuned = TINY.replace("seeds: 2\n", "seeds: 2\nprotocol: {methods: [sgd, adam], widths: [16]}\n")
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


@pytest.fixture
def two_design_seeds(tmp_path, monkeypatch, small_protocol):
    """The small declaration with design seeds 500-501: a paired interval needs two seeds."""
    path = tmp_path / "two-design-seeds.yaml"
    path.write_text(small_protocol.read_text().replace("design: {first: 500, count: 1}", "design: {first: 500, count: 2}"))
    monkeypatch.setenv("DBA_PROTOCOL", str(path))
    assert list(declaration().seeds.design.seeds) == [500, 501]


def test_protocol_gap_is_the_paired_difference_with_its_t_interval(tmp_path, two_design_seeds):
    """The result row's last cell: mean per-seed difference to the comparator and its 95% t interval, by hand."""
    tuned = TUNED.replace("seeds: 2\n", "seeds: 2\nprotocol: {methods: [sgd-tuned, dba-tuned], widths: [16]}\n").replace(
        "methods:\n", "methods:\n"
        "  sgd-tuned: {role: tuned-baseline, method: sgd, lr: 0.1}\n"
        "  dba-tuned: {role: tuned, method: dba, lr: 0.1, dba: {metric: variance, direction: minimize, min_size: 5}}\n", 1,
    )
    path = write(tmp_path, tuned, "tuned.yaml")
    recipe = load_recipe(path)
    results = tmp_path / "r"
    # The comparator is fixed on the tuning runs now (never on a reported or design seed): constructed tuning runs
    # (no training) in which every sgd candidate validates better than every adam one make it sgd-tuned.
    for planned in candidate_runs(recipe, results_dir=results):
        save(results, planned, 90.0 if planned.method_name.startswith("sgd/") else 80.0, 50.0)
    assert candidate_runs(recipe, results_dir=results) == candidate_runs(recipe)  # no numeric line: the edge rule adds none
    outcome = runner.invoke(app, ["protocol", path, "--results", str(results), "--device", "cpu"])
    assert outcome.exit_code == 0, outcome.output
    planned = default_runs(recipe)
    stored = stored_results(results, [p.key for p in planned])
    final = {(p.method_name, p.config.seed): stored[p.key]["final_test_accuracy"] for p in planned}
    # Our protocol's row trains the recipe's methods on the design seeds (never a reported seed): runs `<method>/ours`.
    d = [final["dba-tuned/ours", seed] - final["sgd-tuned/ours", seed] for seed in (500, 501)]
    mean = (d[0] + d[1]) / 2
    half = 12.706 * abs(d[0] - d[1]) / 2  # t(1 df) x sd / sqrt(2), and the sd of two values is |a - b| / sqrt(2)
    table = (results / "protocol.md").read_text()
    assert "comparator (sgd-tuned" in table
    ours = [line for line in table.splitlines() if line.startswith("| ours")][0].split("|")
    gap = ours[5].strip()
    assert gap.startswith(f"{mean:+.2f} [")
    low, high = (float(x) for x in gap[gap.index("[") + 1 : -1].split(", "))
    assert low == pytest.approx(mean - half, abs=0.006) and high == pytest.approx(mean + half, abs=0.006)


def pasted_with_own_seeds(tmp_path, seeds: int):
    """TUNED with sgd-tuned pasted in, running `seeds` of the declaration's reported seeds (its own `seeds:`)."""
    pasted = yaml.safe_load(TUNED)
    # A data-scarce recipe's tuned methods carry no validation split (they train on the whole subset).
    pasted["methods"]["sgd-tuned"] = {"role": "tuned-baseline", "method": "sgd", "lr": 0.1, "seeds": seeds}
    return load_recipe(write(tmp_path, yaml.safe_dump(pasted), "pasted.yaml"))


def test_per_method_seeds_do_not_make_the_tuned_setting_a_different_one(tmp_path):
    """A recipe's `seeds: 1` on sgd-tuned changes how many seeds it runs, not which setting tuning matches."""
    recipe = pasted_with_own_seeds(tmp_path, 1)
    chosen = {"sgd-tuned": make_method("tuned-baseline", method="sgd", lr=0.1)}
    assert recipe_differences(recipe, chosen) == []
    assert {run.key.rsplit("/", 1)[0] for run in tuned_runs(recipe, chosen)} == {"tiny/sgd-tuned"}  # the recipe's own runs
    assert [run.config.seed for run in recipe.runs(methods=["sgd-tuned"])] == [1000]  # the first of the reported seeds
    other = {"sgd-tuned": make_method("tuned-baseline", method="sgd", lr=1.0)}
    assert recipe_differences(recipe, other) == ["recipe tiny's sgd-tuned differ from the settings tuning chose"]
    assert {run.key.rsplit("/", 1)[0] for run in tuned_runs(recipe, other)} == {"tune/tiny/reruns/tiny/sgd-tuned"}
    assert [run.config.seed for run in tuned_runs(recipe, other, seeds=1)] == [1000]


def test_the_tuned_reruns_are_the_seeds_the_recipe_plans_for_that_method(tmp_path):
    """`dba tune` trains, for a pasted method, exactly the runs `dba reproduce` and the paper tables count."""
    recipe = pasted_with_own_seeds(tmp_path, 1)
    chosen = {"sgd-tuned": make_method("tuned-baseline", method="sgd", lr=0.1)}
    assert [run.key for run in tuned_runs(recipe, chosen)] == [run.key for run in recipe.runs(methods=["sgd-tuned"])]


def test_a_recipe_without_a_tune_section_says_how_to_add_one(tmp_path):
    outcome = runner.invoke(app, ["tune", write(tmp_path, TINY), "--results", str(tmp_path / "r")])
    assert outcome.exit_code == 2
    assert "no `tune:` section" in outcome.output


@pytest.mark.parametrize("bad, message", [
    ("families: {sgd: {lr: [0.1]}}", "the families' grids differ from the declared budget of 4 settings each (sgd 2,"),
    ("{families: {sgd: {step: [0.1, 0.2]}}}", "sgd.step is not a run setting"),
    ("{families: {sgd: {lr: [0.1, -0.2]}}}",
     "(tune family sgd, setting {'lr': -0.2, 'batch_size': 10}): lr: Input should be greater than 0"),
    ("{families: {sgd: {step: [{momentm: 0.9}, {momentum: 0.5}]}}}", "momentm: unknown key; did you mean 'momentum'?"),
    # The declaration fixes these now: a recipe that still sets them is told where they went.
    ("{seeds: 3, families: {sgd: {lr: [0.1, 0.2]}}}", "seeds: is no longer a recipe setting of `tune` or `convergence:`"),
    ("{families: {sgd: {lr: [0.1, 0.2], batch_size: [10, 5]}}}", "sgd.batch_size sets a shared axis (batch_size)"),
    ("{families: {sgd: {step: [{lr: 0.1, batch_size: 10}, {lr: 0.2}]}}}", "sgd.step sets a shared axis (batch_size)"),
])
def test_bad_tune_sections_name_the_field(tmp_path, bad, message):
    text = TINY + ("tune:\n  " + bad if not bad.startswith("{") else "tune: " + bad) + "\n"
    outcome = runner.invoke(app, ["tune", write(tmp_path, text), "--results", str(tmp_path / "r")])
    assert outcome.exit_code == 2 and message in " ".join(outcome.output.split()), outcome.output


def test_dba_table_rebuilds_every_report_from_the_result_files(tmp_path, monkeypatch):
    """Reports are built from result files only: deleted, `dba table` writes them again, byte for byte."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    write(folder, TUNED + "protocol: {methods: [sgd, adam], widths: []}\n", "tiny.yaml")
    monkeypatch.setenv("DBA_RECIPES_DIR", str(folder))
    results = tmp_path / "results"
    common = ["--results", str(results), "--device", "cpu"]
    # `dba table` needs paper-table runs, and the protocol's rows no longer are the recipe's runs (they train on the
    # design seeds): one untuned method's two runs give the paper tables a row (first: the ablation report quotes them).
    studies = (["reproduce", "tiny", "--methods", "sgd"], ["tune", "tiny"], ["protocol", "tiny"],
               ["ablate", "tiny", "--seeds", "1"])
    for command in studies:
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
