"""The recipe's `evaluation:` schedule: which epochs evaluate the test set, validated, and never changing training."""

import pytest
import torch
from typer.testing import CliRunner

from dba_cli.cli import app
from dba_cli.settings.run import run_config
from dba_cli.errors import ConfigError
from dba_cli.cli.eta import GridEta
from dba_cli.settings.evaluation import DEFAULT_SCHEDULE, FINAL_ONLY, EvaluationSchedule, evaluated_epochs
from dba_cli.recipes.loading import list_recipes, load_recipe
from dba_cli.recipes.planned import PlannedRun
from dba_cli.results.format import encode_result
from dba_cli.results.reading import read_result
from dba_cli.studies.ablate import ablation_runs
from dba_cli.studies.protocol import protocol_runs
from dba_cli.training.train import train
from dba_cli.studies.tune import candidate_runs, tuned_runs

from tests.synthetic_results import complete
from tests.test_recipes import TINY, write

CPU = torch.device("cpu")
runner = CliRunner()


@pytest.mark.parametrize("epochs", [1, 2, 15, 39, 40])
def test_a_short_run_is_evaluated_every_epoch(epochs):
    assert evaluated_epochs(DEFAULT_SCHEDULE, epochs) == tuple(range(1, epochs + 1))


@pytest.mark.parametrize("epochs", [41, 55, 100, 150, 300, 301, 1000, 12345])
def test_a_long_run_gets_30_to_60_points_dense_at_first_and_the_last_always(epochs):
    chosen = evaluated_epochs(DEFAULT_SCHEDULE, epochs)
    assert 30 <= len(chosen) <= 60
    assert chosen[:10] == tuple(range(1, 11)) and chosen[-1] == epochs
    assert list(chosen) == sorted(set(chosen)) and all(1 <= epoch <= epochs for epoch in chosen)


def test_the_packaged_recipes_schedules():
    epochs = {name: load_recipe(name).runs(seeds=1)[0].evaluated_epochs for name in list_recipes()}
    assert epochs["mnist-full"] == tuple(range(1, 16))  # time-to-target stays exact
    assert epochs["mnist-10-per-class"] == (*range(1, 11), *range(20, 301, 10))
    assert epochs["mnist-1pct"] == (*range(1, 11), *range(15, 151, 5))


def test_runs_that_need_only_final_accuracies_evaluate_the_last_epoch_only():
    assert evaluated_epochs(FINAL_ONLY, 300) == (300,) and evaluated_epochs(FINAL_ONLY, 1) == (1,)
    recipe = load_recipe("mnist-10-per-class")
    grids = {
        "tune": candidate_runs(recipe),
        "ablation": ablation_runs(recipe),
        "protocol": protocol_runs(recipe),
    }
    for name, runs in grids.items():
        assert runs and all(run.evaluated_epochs == (run.config.epochs,) for run in runs), name
    # The tuned choices' reruns on the reported seeds are paper-table runs: the recipe's schedule.
    reruns = tuned_runs(recipe, {name: recipe.methods[name] for name in ("sgd-tuned", "dba-tuned")}, seeds=1)
    assert all(run.evaluation == recipe.evaluation for run in reruns)


def test_a_recipe_sets_its_schedule_or_gets_the_default(tmp_path):
    recipe = load_recipe(write(tmp_path, TINY + "evaluation: {every_epoch_until: 1, points: 2}\n"))
    assert recipe.evaluation == EvaluationSchedule(every_epoch_until=1, points=2)
    assert [run.evaluated_epochs for run in recipe.runs(epochs=10, seeds=1)] == [(1, 10)] * 2
    assert load_recipe(write(tmp_path, TINY)).evaluation == DEFAULT_SCHEDULE  # omitted: the default


@pytest.mark.parametrize(
    "section, expected",
    [
        ("{every_epoch_until: 10, points: 10}", r"evaluation\.points: must be larger than every_epoch_until \(10\).*Fix:"),
        ("{points: 0}", r"evaluation\.points: .*greater than or equal to 1"),
        ("{every_epoch_until: -1}", r"evaluation\.every_epoch_until: .*greater than or equal to 0"),
        ("{points: many}", r"evaluation\.points: .*integer"),
        ("{pionts: 30}", r"evaluation\.pionts: unknown key; did you mean 'points'\?"),
        ("every", r"evaluation: "),
    ],
)
def test_bad_schedules_name_the_file_and_field(tmp_path, section, expected):
    path = write(tmp_path, TINY + f"evaluation: {section}\n")
    with pytest.raises(ConfigError, match=expected) as excinfo:
        load_recipe(path)
    assert path in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_the_cli_rejects_a_bad_schedule_in_one_line(tmp_path):
    path = write(tmp_path, TINY + "evaluation: {every_epoch_until: 50, points: 20}\n")
    for command in (["recipes", "show", path], ["reproduce", path, "--results", str(tmp_path / "r"), "--device", "cpu"]):
        outcome = runner.invoke(app, command)
        assert outcome.exit_code == 2, outcome.output
        assert "evaluation.points: must be larger than every_epoch_until (50)" in outcome.output
        assert "Traceback" not in outcome.output
    assert not (tmp_path / "r").exists()


def final_weights(mnist, config, evaluate_at):
    holder = {}
    result = train(config, mnist, CPU, evaluate_at=evaluate_at, model_out=holder)
    return result, holder["model"].state_dict()


@pytest.mark.parametrize("method", ["sgd", "dba"])
def test_a_sparse_schedule_trains_exactly_the_same_weights(mnist, method):
    config = run_config(data="10-per-class", method=method, lr=0.1, epochs=12, batch_size=25, hidden=[32], seed=3,
                        validation_size=300)
    schedule = evaluated_epochs(EvaluationSchedule(every_epoch_until=2, points=5), config.epochs)
    assert schedule == (1, 2, 3, 6, 9, 12)
    every, every_weights = final_weights(mnist, config, None)
    sparse, sparse_weights = final_weights(mnist, config, schedule)
    assert every_weights.keys() == sparse_weights.keys()
    assert all(torch.equal(every_weights[name], sparse_weights[name]) for name in every_weights)
    assert [r.train_loss for r in every.history] == [r.train_loss for r in sparse.history]
    assert every.final_test_accuracy == sparse.final_test_accuracy
    # The history has test (and validation) accuracy exactly at the scheduled epochs, equal to the every-epoch run's.
    assert tuple(r.epoch for r in sparse.history if r.test_accuracy is not None) == schedule
    assert tuple(r.epoch for r in sparse.history if r.val_accuracy is not None) == schedule
    for dense, thin in zip(every.history, sparse.history):
        if thin.test_accuracy is not None:
            assert (thin.test_accuracy, thin.test_loss) == (dense.test_accuracy, dense.test_loss)
        else:
            assert thin.test_loss is None and thin.eval_seconds == 0.0


def test_a_diverging_run_is_evaluated_where_it_stops(mnist):
    config = run_config(data="10-per-class", method="sgd", lr=1e6, epochs=30, hidden=[16])
    result = train(config, mnist, CPU, evaluate_at=(30,))
    assert result.diverged_at_epoch == len(result.history) < 30
    assert result.history[-1].test_accuracy is not None
    assert all(r.test_accuracy is None for r in result.history[:-1])


def test_a_stored_sparse_history_round_trips_with_accuracy_only_at_scheduled_epochs(tmp_path):
    recipe = load_recipe(write(tmp_path, TINY.replace("epochs: 2", "epochs: 9")
                               + "evaluation: {every_epoch_until: 2, points: 4}\n"))
    outcome = runner.invoke(app, ["reproduce", recipe._source, "--results", str(tmp_path / "r"), "--device", "cpu",
                                  "--methods", "sgd", "--seeds", "1"])
    assert outcome.exit_code == 0, outcome.output
    planned = recipe.runs(seeds=1, methods=["sgd"])[0]
    assert planned.evaluated_epochs == (1, 2, 4, 9)
    path = tmp_path / "r" / planned.key
    document = read_result(path)
    assert tuple(e["epoch"] for e in document["history"] if e["test_accuracy"] is not None) == planned.evaluated_epochs
    assert document["final_test_accuracy"] == document["history"][-1]["test_accuracy"]
    assert not document["_edited"]
    assert encode_result({k: v for k, v in document.items() if k != "_edited"}) == path.read_text()  # schema 2 round-trips
    assert sum(e["eval_seconds"] for e in document["history"]) == pytest.approx(document["eval_seconds"], rel=1e-3)


def test_the_eta_prices_scheduled_epochs_of_one_run_at_their_own_rates():
    run = PlannedRun("r", "m", "baseline", run_config(epochs=20), evaluation=EvaluationSchedule(every_epoch_until=2, points=4))
    assert run.evaluated_epochs == (1, 2, 9, 20)
    eta = GridEta([run])
    eta.epoch_done(run, 1.0)  # epoch 1, evaluated
    eta.epoch_done(run, 1.0)
    eta.epoch_done(run, 0.1)  # epoch 3, not evaluated
    assert eta.remaining_seconds() == pytest.approx(2 * 1.0 + 15 * 0.1)  # epochs 9, 20; 15 others
    eta.run_ended(run)
    assert eta.remaining_seconds() == 0.0


def sparse_document(method_name, seed, accuracies):
    """A finished mnist-full result evaluated at some epochs only (None elsewhere), as `dba reproduce` stores it."""
    history = [
        {"epoch": i + 1, "train_loss": 1.0 / (i + 1), "test_loss": None if a is None else 0.1, "test_accuracy": a,
         "train_seconds": 2.0, "eval_seconds": 0.0 if a is None else 0.5, "kept": None}
        for i, a in enumerate(accuracies)
    ]
    return complete({
        "recipe": "mnist-full", "method_name": method_name, "role": "baseline", "seed": seed,
        "config": {"method": "sgd", "data": "full", "hidden": [512], "batch_size": 64, "epochs": len(accuracies)},
        "history": history, "final_test_accuracy": accuracies[-1], "subset_size": 60000,
    })


def test_tables_figures_and_protocol_read_histories_with_unevaluated_epochs(tmp_path):
    from dba_cli.reports.figures import build_figures
    from dba_cli.reports.protocol_report import accuracies
    from dba_cli.reports.paper_tables import build_tables

    results = tmp_path / "results"
    runs = {0: [90.0, None, None, 97.5, None, 97.2], 1: [91.0, None, 96.0, 98.2, None, 97.8]}
    for seed, values in runs.items():
        path = results / "mnist-full" / "sgd" / f"seed-{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(encode_result(sparse_document("sgd", seed, values)))
        assert [e["test_accuracy"] for e in read_result(path)["history"]] == values  # None survives the file
    with pytest.warns(UserWarning):  # fewer seeds and epochs than the recipe plans
        markdown, frame = build_tables(results)
    row = frame[frame.recipe == "mnist-full"].iloc[0]
    assert row.epochs_to_97 == 4.0 and row.seconds_to_97 == pytest.approx(8.0)  # the first evaluated epoch >= 97: 4, 4
    assert row.epochs_to_98 == 4.0 and row.reached_98 == "1/2"
    assert "first *evaluated* epoch" in markdown
    with pytest.warns(UserWarning):
        figures = build_figures(results)
    line = figures["mnist-full-accuracy-vs-epoch"].axes[0].lines[0]
    assert list(line.get_xdata()) == [1, 4, 6]  # the epochs both seeds evaluated, joined
    assert list(line.get_ydata()) == [90.5, pytest.approx(97.85), 97.5]
    planned = load_recipe("mnist-full").runs(seeds=2, methods=["sgd"])
    assert accuracies(results, planned, best_epoch=True) == {"sgd": {0: 97.5, 1: 98.2}}  # among evaluated epochs
    assert accuracies(results, planned) == {"sgd": {0: 97.2, 1: 97.8}}
