"""The confirmatory protocol: one declaration, its seed ranges, its rules, and what a stale declaration means.

Constructed result files (no training): tuning runs, reported runs and
ablation runs written where the studies plan them, then read back by the
studies and reports exactly as `dba tune` and `dba table` do.
"""

from pathlib import Path

import pytest

from dba_cli.errors import ConfigError
from dba_cli.recipes.loading import load_recipe
from dba_cli.recipes.protocol import Declaration, declaration
from dba_cli.reports.headline import current, tuning_comparator
from dba_cli.results.format import encode_result
from dba_cli.results.quantities import failed
from dba_cli.run.plan import Currency
from dba_cli.studies import ablate, protocol, tune
from dba_cli.studies.candidates import choose
from dba_cli.training.code_version import source_hash
from tests.synthetic_results import complete
from tests.test_recipes import TINY, write

TUNED = TINY + """\
tune:
  top: 2
  families:
    sgd: {method: [sgd], lr: [0.03, 0.1]}
    adam: {method: [adam], lr: [0.001, 0.003]}
    dba:
      method: [dba]
      optimizer: [{base: sgd, lr: 0.1}, {base: sgd, lr: 0.3}]
ablation:
  validation_size: 200
  metric: [variance]
  direction: [minimize]
  min_size: [1]
  reduction: [mean]
  base: [sgd]
protocol: {methods: [sgd-tuned, adam-tuned, dba-tuned], widths: []}
"""
TUNED_METHODS = """\
  sgd-tuned: {role: tuned-baseline, method: sgd, lr: 0.1}
  adam-tuned: {role: tuned-baseline, method: adam, lr: 0.003}
  dba-tuned: {role: tuned, method: dba, base: sgd, lr: 0.3}
"""


def save(results: Path, planned, validation: float | None, test: float, loss: float = 0.5, digest: str | None = "current"):
    """A finished result for a planned run, with these accuracies, written where the plan looks for it."""
    config = planned.config
    epochs = config.epochs
    history = [{"epoch": e, "train_loss": loss, "test_loss": 0.3 if e == epochs else None,
                "test_accuracy": test if e == epochs else None, "train_seconds": 0.01, "eval_seconds": 0.0,
                "val_loss": None if validation is None or e < epochs else 0.3,
                "val_accuracy": validation if e == epochs else None}
               for e in range(1, epochs + 1)]
    if config.method == "dba":
        for record in history:
            record["kept"] = {"0": {"mean": 5.0, "min": 5, "max": 5}}
    document = complete({
        "recipe": planned.recipe, "method_name": planned.method_name, "role": planned.role, "seed": config.seed,
        "config": config.to_dict(), "history": history, "final_test_accuracy": test, "final_val_accuracy": validation,
        "validation_hash": "0123456789abcdef" if validation is not None else None,
    })
    document["code"]["hash"] = source_hash()  # made by this code: only the declaration can make it stale
    if digest != "current":
        document["protocol"] = digest
    path = results / planned.key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(encode_result(document))


def tuning_accuracy(planned) -> float:
    """Constructed validation accuracies: Adam's lr 0.003 best of all baselines, each family's top lr best in it."""
    lr = planned.config.lr
    return {"sgd": 80.0 + lr, "adam": 85.0 + 100 * lr, "dba": 82.0 + lr}[planned.method_name.split("/")[0]] \
        + 0.1 * (planned.config.seed - 100)


@pytest.fixture
def tuned_recipe(tmp_path, small_protocol):
    return load_recipe(write(tmp_path, TUNED.replace("methods:\n", "methods:\n" + TUNED_METHODS)))


def test_the_packaged_declaration_is_valid_and_its_seed_ranges_disjoint():
    found = declaration()
    assert [found.seeds.tuning.count, found.seeds.reported.first, found.seeds.reported.count] == [5, 1000, 20]
    assert found.primary("mnist-1pct", "test_accuracy") and found.primary("mnist-full", "steps_to_target")
    assert not found.primary("fashion-1pct", "test_accuracy")
    assert len(found.digest) == 16 and found.digest == declaration().digest
    values = found.model_dump()
    values["seeds"]["design"] = {"first": 1010, "count": 3}  # inside the reported range
    with pytest.raises(ValueError, match="the design and reported seed ranges overlap"):
        Declaration(**values)


def test_another_declaration_file_is_another_digest_and_a_bad_one_names_its_field(tmp_path, monkeypatch, small_protocol):
    small = declaration()
    monkeypatch.delenv("DBA_PROTOCOL")
    assert declaration().digest != small.digest
    bad = tmp_path / "bad.yaml"
    bad.write_text(small_protocol.read_text().replace("budget: 4", "budget: many"))
    monkeypatch.setenv("DBA_PROTOCOL", str(bad))
    with pytest.raises(ConfigError, match="budget"):
        declaration()


def test_every_study_draws_its_seeds_from_its_own_range(tuned_recipe):
    ranges = declaration().seeds
    assert {run.config.seed for run in tune.candidate_runs(tuned_recipe)} == set(ranges.tuning.seeds)
    assert {run.config.seed for run in ablate.ablation_runs(tuned_recipe)} == set(ranges.design.seeds)
    diagnostics = protocol.default_runs(tuned_recipe) + protocol.protocol_runs(tuned_recipe)
    assert {run.config.seed for run in diagnostics} == set(ranges.design.seeds)
    reported = {run.config.seed for run in tuned_recipe.runs() if run.role in ("tuned", "tuned-baseline")}
    assert reported == set(ranges.reported.seeds) == {1000, 1001}
    assert {run.config.seed for run in tuned_recipe.runs(methods=["sgd", "adam"])} == {0, 1}  # untuned rows: 0..N-1


def test_tuning_validates_on_folds_of_the_subset_and_the_reruns_see_no_other_image(tuned_recipe):
    runs = tune.candidate_runs(tuned_recipe)
    assert {(run.config.seed, run.config.folds, run.config.fold) for run in runs} == {(100, 2, 0), (101, 2, 1)}
    assert all(run.config.validation_size == 0 for run in runs)
    holdout = tune.candidate_runs(tuned_recipe, variant="holdout")
    assert {run.config.validation_size for run in holdout} == {200} and holdout[0].key.startswith("tune-holdout/tiny/")
    methods = tune.tuned_methods(choose(tune.score(tuned_recipe, Path("/nonexistent"))))
    assert methods == {} or all(run.config.validation_size == 0 for run in tune.tuned_runs(tuned_recipe, methods))


def fill_tuning(results: Path, recipe, **options):
    for planned in tune.candidate_runs(recipe, results_dir=results, **options):
        if not (results / planned.key).exists():
            save(results, planned, tuning_accuracy(planned), 90.0)


def test_the_edge_rule_extends_a_line_whose_best_is_at_its_end(tmp_path, tuned_recipe):
    results = tmp_path / "results"
    for _ in range(4):  # round by round, as `dba tune` does: train the grid, ask the rule again
        fill_tuning(results, tuned_recipe)
    grid, extensions, _ = tune.extended_grid(tuned_recipe, results)
    # Every family's best lr is the top of its line: each is extended, twice at most (the declaration's limit).
    assert sorted((e.family, e.text.split(";")[1].strip()) for e in extensions) == [
        ("adam", "tried 0.009"), ("adam", "tried 0.027"), ("dba", "tried 0.9"), ("dba", "tried 2.7"),
        ("sgd", "tried 0.333333"), ("sgd", "tried 1.11111"),
    ]
    assert len(grid) == 3 * 4 + 6
    chosen = choose(tune.score(tuned_recipe, results))
    assert chosen["adam"].candidate.label.endswith("-edge") and chosen["adam"].candidate.settings["lr"] == 0.027


def test_no_reported_run_moves_any_choice(tmp_path, tuned_recipe):
    """Planted absurd accuracies on every reported seed leave the comparator, the grid and the choices unchanged."""
    results = tmp_path / "results"
    for _ in range(4):
        fill_tuning(results, tuned_recipe)
    before = (tuning_comparator(tuned_recipe, results), tune.extended_grid(tuned_recipe, results),
              {f: e.candidate for f, e in choose(tune.score(tuned_recipe, results)).items()})
    assert before[0].name == "adam-tuned"
    planted = tuned_recipe.runs() + tune.runner_up_runs(tuned_recipe, tune.score(tuned_recipe, results))
    for index, planned in enumerate(planted):  # sgd's reported runs "win" by far, on validation and test alike
        absurd = 100.0 if planned.method_name.startswith("sgd") else 0.0
        save(results, planned, absurd if index % 2 else None, absurd)
    after = (tuning_comparator(tuned_recipe, results), tune.extended_grid(tuned_recipe, results),
             {f: e.candidate for f, e in choose(tune.score(tuned_recipe, results)).items()})
    assert after == before
    assert all(run.config.seed not in declaration().seeds.reported.seeds for run in ablate.ablation_runs(tuned_recipe))


def test_a_result_made_under_another_declaration_is_stale_and_in_no_choice_or_verdict(tmp_path, tuned_recipe):
    results = tmp_path / "results"
    for _ in range(4):
        fill_tuning(results, tuned_recipe)
    assert tuning_comparator(tuned_recipe, results).name == "adam-tuned"
    # The same tuning runs, made under another declaration: they are stale, so no choice can be made from them.
    for planned in tune.candidate_runs(tuned_recipe, results_dir=results):
        save(results, planned, tuning_accuracy(planned), 90.0, digest="feedfacefeedface")
    comparator = tuning_comparator(tuned_recipe, results)
    assert comparator.name is None and "not complete under this declaration" in comparator.why
    planned = tuned_recipe.runs(methods=["dba-tuned"])[0]
    save(results, planned, None, 90.0, digest="feedfacefeedface")
    stored = __import__("json").loads((results / planned.key).read_text())
    why = Currency().why_stale(stored, planned)
    assert why == "made under protocol declaration feedfacefeedface"
    assert current([stored]) == ([], 1)
    save(results, planned, None, 90.0, digest=None)
    stored = __import__("json").loads((results / planned.key).read_text())
    assert "protocol" not in stored and Currency().why_stale(stored, planned) == "made before the protocol declaration"


@pytest.mark.parametrize("validation, test, loss, diverged, expected", [
    (95.0, 90.0, 0.5, None, False),
    (14.9, 90.0, 0.5, None, True),  # at chance on the validation split: 10% + the 5-point margin
    (None, 12.0, 0.5, None, True),  # no validation split: the test accuracy decides
    (60.0, 60.0, 2.31, None, True),  # a training loss that never fell below ln 10 = 2.303
    (60.0, 60.0, 0.5, 3, True),  # diverged
])
def test_the_failure_rule(validation, test, loss, diverged, expected):
    document = {"final_val_accuracy": validation, "final_test_accuracy": test, "diverged_at_epoch": diverged,
                "history": [{"train_loss": loss}, {"train_loss": loss}]}
    rule = declaration().failure
    assert failed(document, rule.chance, rule.margin, rule.chance_loss) is expected


def test_a_recipe_outside_the_primary_hypotheses_gets_the_secondary_budget(tmp_path, monkeypatch, small_protocol):
    smaller = tmp_path / "secondary.yaml"
    smaller.write_text(small_protocol.read_text().replace("budget: 4", "budget: 4\nsecondary_budget: 2"))
    monkeypatch.setenv("DBA_PROTOCOL", str(smaller))
    assert declaration().budget_for("tiny") == 4 and declaration().budget_for("other") == 2
    assert load_recipe(write(tmp_path, TUNED)).tune.budget == 4  # `tiny` is the primary hypothesis' recipe
    one_setting = TUNED.replace("name: tiny", "name: other").replace("lr: [0.03, 0.1]", "lr: [0.03]") \
        .replace("lr: [0.001, 0.003]", "lr: [0.001]").replace(", {base: sgd, lr: 0.3}]", "]")
    secondary = load_recipe(write(tmp_path, one_setting, "other.yaml"))
    assert secondary.tune.budget == 2 and len(tune.candidate_runs(secondary)) == 3 * 2 * 2  # families x K x seeds
    with pytest.raises(ConfigError, match="budget of 2 settings each .* the declaration's K for recipe other"):
        load_recipe(write(tmp_path, TUNED.replace("name: tiny", "name: other"), "other4.yaml"))


def test_a_tuning_candidate_file_keeps_only_what_reports_read(tmp_path, tuned_recipe):
    from dba_cli.results.reading import read_result
    from dba_cli.results.schema import ResultProblem, check_document
    import json

    candidate = next(p for p in tune.candidate_runs(tuned_recipe) if p.config.method == "dba")
    save(tmp_path, candidate, 80.0, 90.0, loss=0.7)
    stored = json.loads((tmp_path / candidate.key).read_text())
    assert stored["history"]["summary"] is True and "train_seconds" not in stored["history"]
    assert "kept" not in stored["history"] and len(stored["history"]["train_loss"]) == candidate.config.epochs
    back = read_result(tmp_path / candidate.key, tmp_path)
    assert not back["_edited"] and [r["train_loss"] for r in back["history"]] == [0.7] * candidate.config.epochs
    assert sum(r["train_seconds"] for r in back["history"]) == pytest.approx(back["train_seconds"])
    assert all(r["kept"] is None for r in back["history"]) and back["final_val_accuracy"] == 80.0
    rule = declaration().failure
    assert not failed(back, rule.chance, rule.margin, rule.chance_loss)  # the failure rule reads the losses it kept
    reported = next(p for p in tuned_recipe.runs() if p.method_name == "dba-tuned")  # evaluated on its schedule: kept whole
    save(tmp_path, reported, None, 90.0)
    whole = json.loads((tmp_path / reported.key).read_text())["history"]
    assert "summary" not in whole and len(whole["train_seconds"]) == reported.config.epochs and whole["kept"]
    stored["role"] = "tuned"
    with pytest.raises(ResultProblem, match="history.summary: only a tuning candidate"):
        check_document(stored)
