"""Start-up of grid commands (docs/scaling.md#start-up): the pool starts before torch loads here, with as many
workers as the runs left to train, they warm up, they leave without tearing torch down, and numba's cache is
used only where it can be written and survives damage."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dba_cli.dba
from dba_cli.cli import app
from dba_cli.recipes.loading import load_recipe
from dba_cli.run.runners import PoolRunner
from tests.parallel_helpers import result_files, wait_for
from tests.test_recipes import write

pytestmark = pytest.mark.slow  # worker pools and subprocesses

GRID = """\
name: grid
data: 5-per-class
model: {hidden: [32]}
training: {epochs: 2, batch_size: 10}
seeds: 2
methods:
  sgd: {method: sgd, lr: 0.1}
  dba: {method: dba, lr: 0.1, dba: {metric: variance, direction: minimize, min_size: 5}}
"""

SEARCH = """\
import numpy as np
from dba_cli.dba import _jit
from dba_cli.dba.config import DBAConfig
from dba_cli.dba.search import greedy_search
K = np.array([[2.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 3.0]], dtype=np.float32)
print(_jit.CACHE, greedy_search(K, DBAConfig(min_size=1)).tolist())
"""


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("startup-cache")


@pytest.fixture(autouse=True)
def own_cache(module_cache, monkeypatch):
    """One cache for this module's workers (numba compiles the search once); the cache tests name their own."""
    monkeypatch.setenv("DBA_CACHE_DIR", str(module_cache))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)


def run_python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_the_runners_and_the_grid_executor_import_no_torch_so_the_pool_can_start_first():
    done = run_python("import sys, dba_cli.cli.grid, dba_cli.run.runners; print('torch' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_the_early_start_counts_only_runs_left_to_train(tmp_path):
    recipe = write(tmp_path, GRID, "grid.yaml")
    results = tmp_path / "r"
    first = CliRunner().invoke(app, ["reproduce", recipe, "--jobs", "1", "--results", str(results)])
    assert first.exit_code == 0, first.output
    (results / "grid/sgd/seed-1.json").unlink()
    runs = load_recipe(recipe).runs()
    assert len(runs) == 4
    for overwrite, expected in ((False, 1), (True, 3)):
        pool = PoolRunner(3, 1, "cpu", None, ["mnist"])
        try:
            assert pool.start(results, runs, overwrite) == expected
            assert len(multiprocessing.active_children()) >= expected
        finally:
            pool.stop()
        wait_for(lambda: not multiprocessing.active_children(), 10, "the early workers stopped")


def test_a_grid_with_every_run_finished_hands_no_run_to_its_early_pool(tmp_path):
    """The files an early-started pool writes are a serial run's (tests/test_parallel.py, every pool starts early)."""
    recipe = write(tmp_path, GRID, "grid.yaml")
    serial = CliRunner().invoke(app, ["reproduce", recipe, "--jobs", "1", "--results", str(tmp_path / "r")])
    assert serial.exit_code == 0, serial.output
    written = result_files(tmp_path / "r")
    again = CliRunner().invoke(app, ["reproduce", recipe, "--jobs", "3", "--results", str(tmp_path / "r")])
    assert again.exit_code == 0, again.output
    assert "0 run(s) done, 4 already finished" in again.output
    assert result_files(tmp_path / "r") == written
    wait_for(lambda: not multiprocessing.active_children(), 10, "no worker left")


def test_the_workers_count_matches_the_runs_when_jobs_exceed_them(tmp_path):
    """Early-started workers are held until a run takes their place, so the pool spawns none beside them."""
    recipe = write(tmp_path, GRID, "grid.yaml")
    runs = load_recipe(recipe).runs()[:2]
    pool = PoolRunner(8, 1, "cpu", None, ["mnist"], engine=True)
    seen = set()
    try:
        assert pool.start(tmp_path / "r", runs) == 2
        assert pool.cap(2) == "--jobs 8: 2 run(s) to train, so 2 worker process(es) start"
        futures = [pool.submit(planned, None) for planned in runs]
        seen = {process.pid for process in multiprocessing.active_children()}
        documents = [future.result(timeout=120) for future in futures]
    finally:
        pool.stop()
    assert [document["status"] for document in documents] == ["finished", "finished"]
    assert len(seen) == 2


EXIT_HOOK = """\
import atexit, os
if os.environ.get("DBA_TEST_EXIT_MARK"):  # only in this test's worker processes
    import dba_cli.run.runners as runners
    train = runners.run_document
    def mark(kind):
        open(os.path.join(os.environ["DBA_TEST_EXIT_MARK"], f"{kind}-{os.getpid()}"), "w").close()
    def marking(planned, *args, **kwargs):
        mark("trained")
        atexit.register(lambda: mark("left"))
        return train(planned, *args, **kwargs)
    runners.run_document = marking
"""


def test_a_worker_leaves_without_teardown_after_every_exit_handler_registered_by_a_run(tmp_path, monkeypatch):
    hooks, marks = tmp_path / "hooks", tmp_path / "marks"
    hooks.mkdir()
    marks.mkdir()
    (hooks / "sitecustomize.py").write_text(EXIT_HOOK)  # loaded by the spawned workers
    monkeypatch.setenv("PYTHONPATH", str(hooks))
    monkeypatch.setenv("DBA_TEST_EXIT_MARK", str(marks))
    outcome = CliRunner().invoke(app, ["reproduce", write(tmp_path, GRID, "grid.yaml"), "--jobs", "2",
                                       "--results", str(tmp_path / "r")])
    assert outcome.exit_code == 0, outcome.output
    names = [path.name for path in marks.iterdir()]
    trained = {name.removeprefix("trained-") for name in names if name.startswith("trained-")}
    left = {name.removeprefix("left-") for name in names if name.startswith("left-")}
    assert trained and left == trained  # every worker that trained ran the handlers its runs registered, then left


def test_a_cache_folder_that_cannot_be_written_is_not_used_and_nothing_lands_beside_the_sources(tmp_path):
    """Numba given such a folder writes its cache into the package instead (dba_cli/dba/__pycache__): not here."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = False
    if os.geteuid() == 0:  # root writes through permissions: a read-only mount instead, where allowed
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(folder)], capture_output=True).returncode == 0
        if not mounted:
            pytest.skip("running as root without permission to mount a read-only folder")
    else:
        folder.chmod(0o555)
    sources = Path(dba_cli.dba.__file__).parent
    before = set(sources.rglob("*.nb[ic]"))
    try:
        done = run_python(SEARCH, {"DBA_CACHE_DIR": str(folder / "dba")})
        in_numba_dir = run_python(SEARCH, {"NUMBA_CACHE_DIR": str(folder / "numba")})
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=False)
        else:
            folder.chmod(0o755)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "False"
    assert in_numba_dir.returncode == 0 and in_numba_dir.stdout.split()[0] == "False", in_numba_dir.stderr
    assert set(sources.rglob("*.nb[ic]")) == before


def test_a_damaged_numba_cache_is_compiled_again_and_repaired(tmp_path):
    env = {"DBA_CACHE_DIR": str(tmp_path / "cache")}
    first = run_python(SEARCH, env)
    assert first.returncode == 0, first.stderr
    entries = list((tmp_path / "cache").rglob("*.nb[ic]"))
    assert entries
    for entry in entries:  # truncated, as a full disk or a half-copied folder leaves them
        entry.write_bytes(entry.read_bytes()[:10])
    damaged = run_python(SEARCH, env)
    assert damaged.returncode == 0, damaged.stderr
    assert damaged.stdout == first.stdout
    assert "Traceback" not in damaged.stderr
    repaired = run_python(SEARCH, env)  # the damaged run cached its compilation afresh
    assert repaired.returncode == 0, repaired.stderr
    assert repaired.stdout == first.stdout
    assert all(index.stat().st_size > 10 for index in (tmp_path / "cache").rglob("*.nbi"))
