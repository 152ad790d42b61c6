"""--jobs: runs in local worker processes give the same files, stop on Ctrl-C/SIGTERM, never outlive the parent,
survive a crashing run, and resume."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from typer.testing import CliRunner

from dba_cli.cli import app
from tests.parallel_helpers import alive, children, dba_process, kill_group, result_files, wait_for
from tests.test_recipes import write

pytestmark = pytest.mark.slow  # worker pools and subprocesses: `make test` runs them, `make test-fast` leaves them out

# Runs short enough for a test, long enough (about 0.1 s per epoch with evaluation) to be stopped in the middle.
GRID = """\
name: grid
data: 5-per-class
model: {hidden: [32]}
training: {epochs: EPOCHS, batch_size: 10}
seeds: SEEDS
methods:
  sgd: {method: sgd, lr: 0.1}
  dba: {method: dba, lr: 0.1, dba: {metric: variance, direction: minimize, min_size: 5}}
"""


@pytest.fixture(scope="module")
def worker_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("worker-cache")


@pytest.fixture(autouse=True)
def shared_cache(worker_cache, monkeypatch):
    """One cache for this module's workers (decompressed MNIST, numba's compiled search): each test's
    fresh cache would make every worker recompile for seconds; the cache is not what these tests check."""
    monkeypatch.setenv("DBA_CACHE_DIR", str(worker_cache))


def grid(tmp_path, epochs: int, seeds: int) -> str:
    return write(tmp_path, GRID.replace("EPOCHS", str(epochs)).replace("SEEDS", str(seeds)), "grid.yaml")


def test_jobs_zero_or_negative_is_one_line_and_exit_2(tmp_path):
    for value in ("0", "-2"):
        result = CliRunner().invoke(app, ["reproduce", grid(tmp_path, 2, 1), "--jobs", value, "--results", str(tmp_path / "r")])
        assert result.exit_code == 2, result.output
        assert "--jobs" in result.output and "greater than or equal to 1" in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_two_jobs_write_the_same_files_as_one(tmp_path):
    recipe = grid(tmp_path, 4, 2)
    serial = CliRunner().invoke(app, ["reproduce", recipe, "--jobs", "1", "--results", str(tmp_path / "serial")])
    assert serial.exit_code == 0, serial.output
    pooled = CliRunner().invoke(app, ["reproduce", recipe, "--jobs", "2", "--results", str(tmp_path / "pooled")])
    assert pooled.exit_code == 0, pooled.output
    assert "4 run(s) done" in pooled.output
    one, two = result_files(tmp_path / "serial"), result_files(tmp_path / "pooled")
    assert len(one) == 4 and one == two
    assert all(document["threads"] == 1 for document in one.values())


CRASH_HOOK = """\
import os
if os.environ.get("DBA_TEST_CRASH_SEEDS"):  # only in this test's worker processes
    import dba_cli.run.runners as runners
    train = runners.run_document
    def crashing(planned, *args, **kwargs):
        if planned.method_name == "sgd" and planned.config.seed == 1:
            raise ZeroDivisionError("injected: a bug in a run")
        if planned.method_name == "sgd" and planned.config.seed == 2:
            os._exit(3)  # injected: the worker process dies outright
        return train(planned, *args, **kwargs)
    runners.run_document = crashing
"""



def test_a_crashed_run_is_reported_with_its_traceback_and_the_others_finish(tmp_path, monkeypatch):
    """One run raises inside its worker, another kills its worker process; every other run still finishes."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(CRASH_HOOK)  # loaded by the spawned workers, not by this process
    monkeypatch.setenv("PYTHONPATH", str(hooks))
    monkeypatch.setenv("DBA_TEST_CRASH_SEEDS", "1")
    results = tmp_path / "r"
    outcome = CliRunner().invoke(app, ["reproduce", grid(tmp_path, 3, 3), "--jobs", "2", "--results", str(results)])
    assert outcome.exit_code == 1, outcome.output
    raised = results / "grid/sgd/seed-1.failed.txt"
    died = results / "grid/sgd/seed-2.failed.txt"
    assert "ZeroDivisionError: injected: a bug in a run" in raised.read_text()
    assert "Traceback" in raised.read_text()
    assert "worker process training it died" in died.read_text()
    assert "failed: grid sgd seed 1: ZeroDivisionError: injected: a bug in a run" in outcome.output
    assert "2 run(s) failed" in outcome.output
    finished = set(result_files(results))
    assert finished == {f"grid/{method}/seed-{seed}.json" for method in ("sgd", "dba") for seed in range(3)} - {
        "grid/sgd/seed-1.json", "grid/sgd/seed-2.json"
    }
    # Fixed (the hook off), the same command trains only the two failed runs and clears their reports.
    monkeypatch.delenv("DBA_TEST_CRASH_SEEDS")
    again = CliRunner().invoke(app, ["reproduce", grid(tmp_path, 3, 3), "--jobs", "1", "--results", str(results)])
    assert again.exit_code == 0, again.output
    assert "2 run(s) done, 4 already finished" in again.output
    assert not raised.exists() and not died.exists()


def workers_of(process) -> set[int]:
    """The worker processes a `dba --jobs` process has started (its Python children; not Python's resource tracker)."""
    found = set()
    for pid in children(process.pid):
        try:
            command = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if b"resource_tracker" not in command:
            found.add(pid)
    return found


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_every_worker_keeps_finished_runs_and_a_rerun_finishes(tmp_path, stop):
    recipe = grid(tmp_path, 60, 3)
    results = tmp_path / "r"
    args = ["reproduce", recipe, "--jobs", "2", "--results", str(results)]
    process = dba_process(args, {"DBA_CHECKPOINT_SECONDS": "0"})
    try:
        wait_for(lambda: any(results.rglob("seed-*.json")), 90, "a first finished run")
        wait_for(lambda: len(workers_of(process)) == 2 and any(results.rglob("*.ckpt*")), 30, "two workers in mid-run")
        workers = workers_of(process)
        if stop == "ctrl-c":
            os.killpg(process.pid, signal.SIGINT)  # what a terminal sends: to the whole process group
        else:
            process.send_signal(signal.SIGTERM)  # to the parent only, as a batch system would
        started = time.monotonic()
        _, stderr = process.communicate(timeout=30)
        stopped_in = time.monotonic() - started
    finally:
        kill_group(process)
    assert process.returncode == 130, stderr
    assert stopped_in < 10 and "Interrupted." in stderr
    assert not any(alive(pid) for pid in workers)
    finished = set(result_files(results))
    assert 1 <= len(finished) < 6
    for path in results.rglob("seed-*.json"):
        json.loads(path.read_text())  # every file written is whole
    if stop == "sigterm":
        return  # the resumed rerun is checked once, after Ctrl-C
    rerun = CliRunner().invoke(app, [*args[:2], "--jobs", "1", *args[4:]], env={"DBA_CHECKPOINT_SECONDS": "0"})
    assert rerun.exit_code == 0, rerun.output
    assert f"{6 - len(finished)} run(s) done, {len(finished)} already finished" in rerun.output
    assert "resuming:" in rerun.output  # the runs in flight continue from their checkpoints
    assert len(result_files(results)) == 6


def test_kill_9_of_the_parent_leaves_no_worker_and_a_rerun_resumes(tmp_path):
    recipe = grid(tmp_path, 60, 2)
    results = tmp_path / "r"
    process = dba_process(["reproduce", recipe, "--jobs", "2", "--results", str(results)], {"DBA_CHECKPOINT_SECONDS": "0"})
    try:
        wait_for(lambda: len(workers_of(process)) == 2 and len(list(results.rglob("*.ckpt*"))) >= 2, 90, "two workers in mid-run")
        workers = workers_of(process)
        process.kill()
        process.wait(timeout=10)
        wait_for(lambda: not any(alive(pid) for pid in workers), 10, "the workers to end (no orphan 10 s after kill -9)")
    finally:
        kill_group(process)
    rerun = CliRunner().invoke(app, ["reproduce", recipe, "--jobs", "1", "--results", str(results)])
    assert rerun.exit_code == 0, rerun.output
    assert "resuming:" in rerun.output
    assert len(result_files(results)) == 4
