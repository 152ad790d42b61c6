"""Hardening, round 3: numbers, grids, paths and addresses that used to run away or end in exit 1.

Each case of the issue, for real and within seconds: grids of a billion seeds
(75 MB/s of plans, SIGTERM ignored), `--jobs 1000` starting a worker per run,
20-digit numbers (a numba dump, exit 1), `--epochs 10^20` (a traceback from the
display thread), a 300-character folder name ("File name too long", exit 1), a
70-character host label for `--ray` (UnicodeError), port 99999 (wrapped to
another port), and a validation split that leaves nothing to train on (88
failed runs). Each is now one line and exit 2, before anything is planned.
"""

from __future__ import annotations

import io
import re
import time

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from dba_cli.cli import app
from dba_cli.cli import display
from dba_cli.errors import ConfigError
from dba_cli.recipes.loading import load_recipe
from tests.test_recipes import TINY, write

runner = CliRunner()
LONG = "x" * 300
TWENTY_DIGITS = "9" * 20


def one_line_exit_2(args: list[str], within: float = 20.0) -> str:
    started = time.monotonic()
    outcome = runner.invoke(app, args)
    assert time.monotonic() - started < within
    lines = [line for line in outcome.output.splitlines() if line.strip()]
    assert outcome.exit_code == 2, outcome.output
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in outcome.output, outcome.output
    return lines[0]


def test_a_billion_seeds_from_the_command_line_or_a_recipe_is_refused_at_once(tmp_path):
    line = one_line_exit_2(["reproduce", write(tmp_path, TINY), "--seeds", "1000000000", "--results", str(tmp_path / "r")], 5)
    assert "--seeds" in line and "1000" in line
    recipe = write(tmp_path, TINY.replace("seeds: 2", "seeds: 1000000000"), "big.yaml")
    assert "seeds: Input should be less than or equal to 1000" in one_line_exit_2(["reproduce", recipe], 5)
    points = TINY + "tune: {budget: 1000000, families: {sgd: {lr: [" + ", ".join(["0.1"] * 1000000) + "]}}}\n"
    line = one_line_exit_2(["tune", write(tmp_path, points, "p.yaml")], 5)
    assert "is larger than 1 MiB" in line  # a million learning rates: refused before it is parsed
    budget = TINY + "tune: {budget: 1000000, families: {sgd: {lr: [0.1, 0.2]}}}\n"  # the declaration's, not a recipe's
    assert "budget: is no longer a recipe setting" in one_line_exit_2(["tune", write(tmp_path, budget, "b.yaml")], 5)
    axis = TINY + "tune: {families: {sgd: {lr: [" + ", ".join(["0.1"] * 101) + "]}}}\n"
    assert "List should have at most 100 items" in one_line_exit_2(["tune", write(tmp_path, axis, "a.yaml")], 5)
    assert not (tmp_path / "r").exists()


def test_a_grid_over_the_run_bound_is_refused_before_it_is_planned(tmp_path):
    from dba_cli.recipes.planned import MAX_RUNS

    methods = "".join(f"  m{i}: {{method: sgd, lr: 0.1, seeds: 1000}}\n" for i in range(150))
    recipe = write(tmp_path, TINY.replace("methods:\n", "methods:\n" + methods), "many.yaml")
    with pytest.raises(ConfigError, match=rf"makes 150,004 runs; at most {MAX_RUNS:,}"):
        load_recipe(recipe).runs()


def test_jobs_beyond_the_runs_to_train_start_no_more_workers_than_runs(tmp_path):
    outcome = runner.invoke(app, ["reproduce", write(tmp_path, TINY), "--methods", "sgd", "--jobs", "1000",
                                  "--results", str(tmp_path / "r"), "--device", "cpu"])
    assert outcome.exit_code == 0, outcome.output
    assert "--jobs 1000: 2 run(s) to train, so 2 worker process(es) start" in outcome.output
    assert "2 run(s) done" in outcome.output
    assert "Invalid value for '--jobs'" in one_line_exit_2(["reproduce", "mnist-1pct", "--jobs", "100000"])


@pytest.mark.parametrize("args, fragment", [
    (["run", "--hidden", TWENTY_DIGITS], "--hidden.0: Input should be less than or equal to 65536"),
    (["run", "--architecture", "cnn", "--channels", f"8,{TWENTY_DIGITS}"], "--channels.1: Input should be less than or equal to 4096"),
    (["run", "--method", "dba", "--min-size", TWENTY_DIGITS], "--min-size: Input should be less than or equal to 1000000"),
    (["run", "--method", "dba", "--max-removals", TWENTY_DIGITS], "--max-removals: Input should be less than or equal to 1000000"),
    (["run", "--threads", TWENTY_DIGITS], "Invalid value for '--threads'"),
    (["run", "--epochs", str(10**20)], "--epochs: Input should be less than or equal to 100000"),
    (["run", "--batch-size", TWENTY_DIGITS], "--batch-size: Input should be less than or equal to 1000000"),
    (["run", "--seed", TWENTY_DIGITS], "--seed: Input should be less than or equal to 2147483647"),
    (["run", "--data", "full", "--validation-size", "60000"], "--validation-size: 60000 leaves no training image"),
    (["run", "--data", "10-per-class", "--validation-size", "59950"], "--validation-size: 59950 is more than the 59900"),
    (["run", "--channels", "8,16"], "--channels: is set but architecture mlp ignores it"),
    (["run", "--data", "7000-per-class"], "--data: asks for 70,000 images, more than the 60,000"),
])
def test_out_of_range_numbers_and_ignored_settings_are_one_line(args, fragment):
    assert fragment in one_line_exit_2(args)


def test_20_digit_numbers_in_a_recipe_are_one_line_naming_the_field(tmp_path):
    recipe = write(tmp_path, TINY.replace("hidden: [32]", f"hidden: [{TWENTY_DIGITS}]"))
    assert "model.hidden.0: Input should be less than or equal to 65536" in one_line_exit_2(["reproduce", recipe])
    dba = TINY + f"  dba: {{method: dba, lr: 0.1, dba: {{min_size: {TWENTY_DIGITS}}}}}\n"
    assert "methods.dba.dba.min_size: Input should be less than or equal to 1000000" in one_line_exit_2(
        ["reproduce", write(tmp_path, dba, "dba.yaml")])


def test_a_recipe_key_the_architecture_ignores_is_an_error(tmp_path):
    recipe = write(tmp_path, TINY.replace("model: {hidden: [32]}", "model: {hidden: [32], channels: [4, 8]}"))
    assert "model.channels: is set but architecture mlp ignores it" in one_line_exit_2(["reproduce", recipe])
    cnn = write(tmp_path, TINY.replace("model: {hidden: [32]}", "model: {architecture: cnn, hidden: [32]}"), "c.yaml")
    assert "model.hidden: is set but architecture cnn ignores it" in one_line_exit_2(["reproduce", cnn])


def test_a_validation_split_as_large_as_the_training_set_is_refused_before_any_run(tmp_path):
    text = TINY.replace("data: 5-per-class", "data: full").replace(
        "sgd: {method: sgd, lr: 0.1}", "sgd: {method: sgd, lr: 0.1, validation_size: 60000}")
    line = one_line_exit_2(["reproduce", write(tmp_path, text), "--results", str(tmp_path / "r")], 10)
    assert "validation_size: 60000 leaves no training image" in line and not (tmp_path / "r").exists()


@pytest.mark.parametrize("option", ["--results", "--data-dir"])
def test_a_folder_name_too_long_for_the_os_is_one_line(tmp_path, option):
    line = one_line_exit_2(["reproduce", write(tmp_path, TINY), option, str(tmp_path / LONG)])
    assert f"Invalid value for '{option}'" in line and "300 bytes long; this filesystem allows 255" in line


def test_a_fetch_target_too_long_for_the_os_is_one_line(tmp_path):
    line = one_line_exit_2(["data", "fetch", "fashion-mnist", "--to", str(tmp_path / LONG)])
    assert "Invalid value for '--to'" in line


@pytest.mark.parametrize("address, fragment", [
    ("a" * 70 + ".example:6379", "is neither an IP address nor a host name"),
    ("127.0.0.1:99999", "a port from 1 to 65535"),
    ("127.0.0.1:0", "a port from 1 to 65535"),
    ("no port", "expected HOST:PORT"),
])
def test_a_ray_address_ray_cannot_use_is_one_line(tmp_path, address, fragment):
    line = one_line_exit_2(["reproduce", write(tmp_path, TINY), "--ray", address, "--results", str(tmp_path / "r")])
    assert fragment in line and not (tmp_path / "r").exists()


# --- the console at 80 columns ---


def render(width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    progress = display.make_progress()
    overall = progress.add_task("all: 1184 run(s)", total=300000, status="", unit="ep", left=7384.0)
    one = progress.add_task("seed 101 tune/dba/adam-snr-maximize-min25-mean-lr-0.003162 (mnist-1pct-cnn)", total=150,
                            status="acc 89.12%", unit="ep")
    progress.update(overall, completed=123456)
    progress.update(one, completed=77)
    console.print(progress.make_tasks_table(progress.tasks))
    return console.file.getvalue().splitlines()


@pytest.mark.parametrize("width", [80, 100, 160])
def test_progress_bars_fit_one_line_each_with_readable_times(width):
    lines = render(width)
    assert len(lines) == 2 and all(len(line) <= width for line in lines)
    assert "123456/300000 ep" in lines[0] and "~2h03m left" in lines[0] and "━" in lines[0]
    assert lines[1].startswith("seed 101 ") and "77/150 ep" in lines[1] and "acc 89.12%" in lines[1]


def test_clock_reads_as_people_read_durations():
    assert [display.clock(s) for s in (None, 7, 65, 3600 * 2 + 125)] == ["?", "7s", "1m05s", "2h02m"]


def test_done_never_shows_a_wall_time_shorter_than_the_training():
    document = {"final_test_accuracy": 88.0, "train_seconds": 10.0}
    assert display.outcome_text(document, 12.0) == "88.00% in 12.0 s (10.0 s training)"
    resumed = display.outcome_text(document, 3.0)  # most epochs trained before a restart, from a checkpoint
    assert resumed == "88.00% in 3.0 s this sitting (10.0 s training in all: resumed from a checkpoint)"


def help_texts() -> dict[str, str]:
    texts = {}

    def walk(command, path):
        texts[" ".join(path)] = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}).output
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return texts


def test_help_shows_no_bool_after_plain_flags_and_names_both_data_sets():
    texts = help_texts()
    assert len(texts) >= 15
    for path, text in texts.items():
        assert "<bool>" not in text, path
    for path in ("run", "reproduce", "data check", "bench step"):
        flat = re.sub(r"[│\s]+", " ", texts[path])
        assert "MNIST's or Fashion-MNIST's" in flat, path
