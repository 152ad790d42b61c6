"""Hardening, console: divergence is said, bars say what they count, `done:` gives wall time, messages are exact."""

import re

import torch
from typer.testing import CliRunner

from dba_cli.cli import app
from dba_cli.cli.eta import GridEta
from dba_cli.settings.evaluation import DEFAULT_SCHEDULE, FINAL_ONLY, EvaluationSchedule
from dba_cli.recipes.planned import PlannedRun
from dba_cli.settings.run import run_config

from tests.test_recipes import TINY, write

runner = CliRunner()


def test_a_diverged_run_says_so_on_the_console(tmp_path):
    outcome = runner.invoke(app, ["run", "--epochs", "3", "--lr", "1e6", "--hidden", "16", "--device", "cpu"])
    assert outcome.exit_code == 0, outcome.output
    assert "DIVERGED at epoch" in outcome.output and "final test accuracy: 9.80%" not in outcome.output
    recipe = write(tmp_path, TINY.replace("adam: {method: adam, lr: 0.001}", "adam: {method: sgd, lr: 1.0e+6}"))
    outcome = runner.invoke(app, ["reproduce", recipe, "--results", str(tmp_path / "r"), "--device", "cpu"])
    done = [line for line in outcome.output.splitlines() if line.startswith("done: tiny adam")]
    assert len(done) == 2 and all("DIVERGED at epoch" in line for line in done), outcome.output


def test_bars_say_what_they_count_and_label_their_times_and_done_gives_wall_time(tmp_path):
    outcome = runner.invoke(app, ["reproduce", write(tmp_path, TINY), "--results", str(tmp_path / "r"), "--device", "cpu"])
    assert outcome.exit_code == 0, outcome.output
    bar = next(line for line in outcome.output.splitlines() if line.startswith("all: 4 run(s)"))
    assert "8/8 ep" in bar and re.search(r"\b\d+s$", bar.strip())  # epochs counted, time taken
    done = [line for line in outcome.output.splitlines() if line.startswith("done:")]
    assert len(done) == 4 and all(" s training)" in line and "% in " in line for line in done)


def planned(evaluation: EvaluationSchedule, seed: int, epochs: int = 10) -> PlannedRun:
    name = "at-the-end" if evaluation == FINAL_ONLY else "scheduled"
    return PlannedRun("r", name, "baseline", run_config(epochs=epochs, seed=seed), evaluation=evaluation)


def test_the_eta_prices_evaluated_and_unevaluated_epochs_at_their_own_measured_rates():
    # A grid like tune's: runs evaluated at the end only, and runs evaluated every epoch (10 epochs: the default schedule).
    cheap = [planned(FINAL_ONLY, seed) for seed in range(3)]
    costly = [planned(DEFAULT_SCHEDULE, seed) for seed in range(3)]
    eta = GridEta(cheap + costly)
    assert eta.remaining_seconds() is None  # nothing measured yet: no made-up number
    for _ in range(9):
        eta.epoch_done(cheap[0], 0.01)  # unevaluated epochs
    assert abs(eta.remaining_seconds() - 51 * 0.01) < 1e-9  # evaluated epochs, unseen, priced at the seen kinds' mean
    eta.epoch_done(cheap[0], 0.5)  # its last epoch is evaluated
    eta.run_ended(cheap[0])
    expected = 18 * 0.01 + 32 * 0.5  # two cheap runs: 9 + 9 unevaluated, 1 + 1 evaluated; three costly: 30 evaluated
    assert abs(eta.remaining_seconds() - expected) < 1e-9
    # One rate for the whole grid (what the bar used before) would say: 50 epochs at (9 * 0.01 + 0.5) / 10.
    assert expected > 5 * (50 * (9 * 0.01 + 0.5) / 10)


def test_out_of_memory_on_the_cpu_names_the_size_and_does_not_suggest_the_cpu():
    """A real failed allocation (128 TiB: refused at once, nothing touched) inside a command's error policy."""
    import typer

    from dba_cli.cli.console import user_errors

    command = typer.Typer()

    @command.command()
    def allocate() -> None:
        with user_errors():
            torch.empty(2**45)

    outcome = runner.invoke(command, [])
    assert outcome.exit_code == 2, outcome.output
    line = next(line for line in outcome.output.splitlines() if line.startswith("error:"))
    assert "out of memory on the CPU (RAM) (could not allocate" in line and "TiB)" in line
    assert "--device cpu" not in line and "enforce fail" not in line and "DefaultCPUAllocator" not in line


def test_a_path_in_a_message_is_never_wrapped(tmp_path):
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 6)
    deep.mkdir(parents=True)
    recipe = write(deep, TINY)
    results = deep / "results"
    assert runner.invoke(app, ["reproduce", recipe, "--results", str(results), "--device", "cpu"]).exit_code == 0
    (results / "tiny" / "adam" / "seed-1.json").write_text("{")
    outcome = runner.invoke(app, ["table", "--results", str(results)], env={"COLUMNS": "40"})
    warning = next(line for line in outcome.output.splitlines() if line.startswith("warning: skipped"))
    assert str(results / "tiny" / "adam" / "seed-1.json") in warning
