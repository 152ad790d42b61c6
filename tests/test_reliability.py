"""Faults provoked for real: kill -9, SIGTERM, two processes, damaged files, full or unwritable disks, OOM."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dba_cli.cli import app
from dba_cli.results.reading import read_result

from tests.test_recipes import TINY, write

pytestmark = pytest.mark.slow  # real subprocesses and signals: `make test` runs them, `make test-fast` leaves them out

runner = CliRunner()

TIMINGS = {"train_seconds", "eval_seconds", "finished_at", "digest"}  # the digest covers the timings too


def without_timings(document: dict) -> dict:
    """A result document minus what legitimately differs between identical runs: wall-clock times."""
    clean = {key: value for key, value in document.items() if key not in TIMINGS}
    clean["history"] = [{k: v for k, v in epoch.items() if k not in TIMINGS} for epoch in document["history"]]
    return clean


def results_of(folder: Path) -> dict[str, dict]:
    return {
        str(path.relative_to(folder)): without_timings(read_result(path))
        for path in sorted(folder.rglob("seed-*.json"))
    }


def dba_process(*args, env=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dba_cli", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def wait_for(predicate, timeout=120.0):
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


# A run long enough to be killed in the middle: 80 short epochs, DBA (its state is checkpointed too).
LONG = """\
name: long
data: 10-per-class
model: {hidden: [64]}
training: {epochs: 80, batch_size: 20}
seeds: 1
methods:
  dba:
    method: dba
    base: adam
    lr: 0.001
    dba: {metric: variance, min_size: 10}
"""


def test_kill_9_loses_at_most_an_epoch_and_the_resumed_run_is_bit_identical(tmp_path):
    recipe = write(tmp_path, LONG)
    every_epoch = {"DBA_CHECKPOINT_SECONDS": "0"}
    reference = tmp_path / "reference"
    clean = dba_process("reproduce", recipe, "--results", str(reference), "--device", "cpu", env=every_epoch)
    assert clean.wait(timeout=300) == 0, clean.stdout.read()

    killed = tmp_path / "killed"
    checkpoint = killed / "long" / "dba" / "seed-0.ckpt"
    process = dba_process("reproduce", recipe, "--results", str(killed), "--device", "cpu", env=every_epoch)
    wait_for(checkpoint.exists)
    time.sleep(0.3)  # well inside the run: a few dozen epochs more
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "long" / "dba" / "seed-0.json").exists() and checkpoint.exists()

    resumed = dba_process("reproduce", recipe, "--results", str(killed), "--device", "cpu", env=every_epoch)
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    assert "resuming: long dba seed 0 from its last checkpoint" in output
    assert not checkpoint.exists() and not list(killed.rglob("*.tmp"))
    assert results_of(killed) == results_of(reference)  # every number, per epoch, identical


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_stop_within_seconds_and_keep_finished_runs(tmp_path, signum):
    recipe = write(tmp_path, TINY.replace("epochs: 2", "epochs: 60").replace("seeds: 2", "seeds: 4"))
    results = tmp_path / "results"
    process = dba_process("reproduce", recipe, "--results", str(results), "--device", "cpu")
    wait_for(lambda: list(results.rglob("seed-*.json")))
    sent = time.time()
    process.send_signal(signum)
    output, _ = process.communicate(timeout=60)
    assert time.time() - sent < 10
    assert process.returncode == 130, output
    assert "Interrupted" in output and "Traceback" not in output
    finished = list(results.rglob("seed-*.json"))
    assert 1 <= len(finished) < 8 and not list(results.rglob("*.tmp"))
    assert all(json.loads(path.read_text())["status"] == "finished" for path in finished)


def test_two_processes_on_one_results_folder_never_train_the_same_run(tmp_path):
    recipe = write(tmp_path, TINY.replace("epochs: 2", "epochs: 30").replace("seeds: 2", "seeds: 4"))
    results = tmp_path / "results"
    first = dba_process("reproduce", recipe, "--results", str(results), "--device", "cpu")
    second = dba_process("reproduce", recipe, "--results", str(results), "--device", "cpu")
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    done = [{line.split(":")[1].strip() for line in out.splitlines() if line.startswith("done:")} for out in outputs]
    assert not done[0] & done[1]  # no run trained by both
    files = list(results.rglob("seed-*.json"))
    assert len(files) == 8 and all(json.loads(p.read_text())["status"] == "finished" for p in files)
    assert not list((results / ".locks").glob("*.lock"))  # finished runs leave no lock file behind
    # A third run finds everything finished.
    again = runner.invoke(app, ["reproduce", recipe, "--results", str(results), "--device", "cpu"])
    assert "0 run(s) done, 8 already finished" in again.output


def test_a_busy_run_is_left_to_its_owner_or_awaited(tmp_path, mnist):
    """Another process holds one run's lock: reproduce skips it, or with wait_for_busy waits and then trains it."""
    import torch

    from dba_cli.recipes.loading import load_recipe
    from dba_cli.run.execute import execute_runs
    from dba_cli.run.locks import release_lock, take_lock

    runs = load_recipe(write(tmp_path, TINY)).runs(methods=["sgd"])
    results = tmp_path / "results"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time, pathlib; p = pathlib.Path(sys.argv[1]); p.parent.mkdir(parents=True, exist_ok=True); "
        "h = open(p, 'a+b'); fcntl.flock(h, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(float(sys.argv[2]))"
    ), str(results / ".locks" / "tiny__sgd__seed-1.json.lock"), "3"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    plan = execute_runs(runs, results)
    assert [p.config.seed for p in plan.done] == [0] and [p.config.seed for p in plan.busy] == [1]
    plan = execute_runs(runs, results, wait_for_busy=True)  # blocks until the holder exits
    assert holder.poll() is not None
    assert [p.config.seed for p in plan.done] == [1] and plan.busy == []
    held = take_lock(results, "tiny/sgd/seed-1.json")
    assert held is not None  # released
    release_lock(held)


def test_a_diverging_run_is_recorded_and_the_others_continue(tmp_path):
    recipe = write(tmp_path, TINY.replace("methods:\n", "methods:\n  huge: {method: sgd, lr: 1.0e+12}\n")
                   .replace("epochs: 2", "epochs: 5"))
    results = tmp_path / "results"
    outcome = runner.invoke(app, ["reproduce", recipe, "--results", str(results), "--device", "cpu"])
    assert outcome.exit_code == 0, outcome.output
    diverged = read_result(results / "tiny" / "huge" / "seed-0.json")
    assert diverged["diverged_at_epoch"] is not None and len(diverged["history"]) == diverged["diverged_at_epoch"]
    assert len(list(results.rglob("seed-*.json"))) == 6  # sgd and adam finished too
    table = runner.invoke(app, ["table", "--results", str(results)])
    assert "(2/2 diverged)" in table.output


def test_same_recipe_and_seed_give_identical_result_files(tmp_path):
    recipe = write(tmp_path, TINY.replace("methods:\n", "methods:\n  dba: {method: dba, lr: 0.1, dba: {min_size: 3}}\n"))
    for folder in ("a", "b"):
        outcome = runner.invoke(app, ["reproduce", recipe, "--results", str(tmp_path / folder), "--device", "cpu"])
        assert outcome.exit_code == 0, outcome.output
    first, second = results_of(tmp_path / "a"), results_of(tmp_path / "b")
    assert len(first) == 6 and first == second


def test_hand_edited_result_is_named_and_redone_and_the_table_skips_it(tmp_path):
    recipe = write(tmp_path, TINY)
    results = tmp_path / "results"
    assert runner.invoke(app, ["reproduce", recipe, "--results", str(results), "--device", "cpu"]).exit_code == 0
    edited = results / "tiny" / "adam" / "seed-1.json"
    document = json.loads(edited.read_text())
    document["final_test_accuracy"] = "very high"
    edited.write_text(json.dumps(document))
    table = runner.invoke(app, ["table", "--results", str(results)])
    assert table.exit_code == 0 and "seed-1.json" in table.output and "edited by hand" in table.output
    redo = runner.invoke(app, ["reproduce", recipe, "--results", str(results), "--device", "cpu"])
    assert redo.exit_code == 0 and "seed-1.json is damaged" in redo.output
    assert "1 run(s) done, 3 already finished" in redo.output
    assert isinstance(json.loads(edited.read_text())["final_test_accuracy"], float)


def test_unwritable_results_folder_is_an_error_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    started = time.time()
    outcome = runner.invoke(app, ["reproduce", write(tmp_path, TINY), "--results", str(blocker / "results")])
    assert outcome.exit_code == 2 and "is not writable" in outcome.output and "--results" in outcome.output
    assert "done:" not in outcome.output and time.time() - started < 30


def mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    try:
        return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True).returncode == 0
    except OSError:
        return False


def test_a_nearly_full_disk_is_detected_before_training(tmp_path):
    disk = tmp_path / "small-disk"
    if not mount_tmpfs(disk, "2m"):
        pytest.skip("cannot mount a small tmpfs here (needs root); the write-failure test below still runs")
    try:
        outcome = runner.invoke(app, ["reproduce", write(tmp_path, TINY), "--results", str(disk / "results")])
        assert outcome.exit_code == 2 and "MB free" in outcome.output and "done:" not in outcome.output
    finally:
        subprocess.run(["umount", str(disk)])


def test_a_disk_filling_up_mid_run_is_a_clear_error_and_keeps_finished_runs(tmp_path):
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "80m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        recipe = write(tmp_path, TINY.replace("epochs: 2", "epochs: 60").replace("seeds: 2", "seeds: 4"))
        results = disk / "results"
        process = dba_process("reproduce", recipe, "--results", str(results), "--device", "cpu")
        wait_for(lambda: list(results.rglob("seed-*.json")))
        with open(disk / "filler", "wb", buffering=0) as filler:  # another program fills the disk (unbuffered:
            try:  # closing a buffered file would retry the write that failed)
                while True:
                    filler.write(b"\0" * 2**20)
            except OSError:
                pass
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 2, output
        assert "No space left on device" in output and "Runs finished before this one are kept" in output
        assert "Traceback" not in output
        kept = list(results.rglob("seed-*.json"))
        assert kept and all(read_result(p)["status"] == "finished" for p in kept)
        assert not list(results.rglob("*.tmp"))
    finally:
        subprocess.run(["umount", str(disk)])


@pytest.mark.cuda
def test_cuda_out_of_memory_is_a_clear_message():
    """A real failed allocation on the GPU (128 TiB) inside a command's error policy."""
    import typer

    from dba_cli.cli.console import user_errors

    command = typer.Typer()

    @command.command()
    def allocate() -> None:
        with user_errors():
            __import__("torch").empty(2**45, device="cuda")

    outcome = runner.invoke(command, [])
    assert outcome.exit_code == 2 and "out of memory on the GPU" in outcome.output


def test_batch_larger_than_the_subset_is_stated_and_trains():
    outcome = runner.invoke(app, ["run", "--data", "2-per-class", "--batch-size", "64", "--epochs", "1", "--device", "cpu",
                                  "--method", "dba", "--min-size", "32"])
    assert outcome.exit_code == 0, outcome.output
    assert "batch size 64 is larger than the training subset (20 images" in outcome.output
    assert "DBA can remove no sample" in outcome.output


def test_an_internal_error_is_one_line_and_its_traceback_is_saved():
    import typer

    from dba_cli.cli.console import user_errors

    broken = typer.Typer()

    @broken.command()
    def explode() -> None:
        with user_errors():
            1 / 0

    outcome = runner.invoke(broken, [])
    assert outcome.exit_code == 1
    assert "internal error" in outcome.output and "ZeroDivisionError" in outcome.output
    report = outcome.output.split("Traceback saved to ")[1].split(";")[0]
    assert "ZeroDivisionError" in Path(report).read_text()
