"""The architecture as checks: import-linter's contracts, and a code version that covers what trains.

The contracts (pyproject.toml) say that a run's path only goes down: cli ->
bench -> run | reports -> studies -> recipes -> results | training -> models |
data -> settings -> files | seeding -> errors -> dba, that reports import
neither torch nor run/, that studies import neither run/ nor reports/, and
that nothing imports in a cycle. The code version (training/code_version.py)
is a hash over an explicit list of modules: every module that `train()`
imports is either on it or known not to change a trained number.
"""

from __future__ import annotations

from pathlib import Path

import grimp
from importlinter.cli import lint_imports

from dba_cli.training.code_version import PACKAGE, TRAINING_SOURCES, training_source_files

ROOT = Path(__file__).resolve().parent.parent

# Modules a training run imports that cannot change a trained number, and why.
NO_EFFECT_ON_NUMBERS = {
    "dba_cli.dba._jit": "whether numba compiles the search; the same float64 arithmetic either way (tested)",
    "dba_cli.errors": "exception classes",
    "dba_cli.files": "atomic writes of checkpoints",
    "dba_cli.settings.run": "the config, recorded whole in every result: a change shows as another config",
    "dba_cli.settings.methods": "the methods' declarations and settings, recorded whole in every result's config",
    "dba_cli.settings.subsets": "subset names; what they draw is checked by the subset hash every result records",
    "dba_cli.settings.validation": "validation messages",
    "dba_cli.settings.packing": "which runs may share a pack; a packed run is bit-identical to the run alone (tests/test_packed.py)",
    "dba_cli.training.code_version": "records which code trained",
    "dba_cli.training.devices": "device and thread count, recorded in every result",
    "dba_cli.training.provenance": "records library versions and the device",
}


def test_the_import_contracts_are_kept(monkeypatch):
    monkeypatch.chdir(ROOT)  # where pyproject.toml holds the contracts
    assert lint_imports(no_cache=True, no_logo=True) == 0  # 0: every contract kept (its report is printed on failure)


def test_every_module_a_run_imports_is_hashed_or_cannot_change_a_number():
    graph = grimp.build_graph("dba_cli")
    trainers = ("dba_cli.training.train", "dba_cli.training.packed")  # a run alone, and runs in a pack
    imported = set().union(*(graph.find_upstream_modules(name) | {name} for name in trainers))
    hashed = {"dba_cli." + name.removesuffix(".py").replace("/", ".") for name in TRAINING_SOURCES}
    unaccounted = sorted(imported - hashed - set(NO_EFFECT_ON_NUMBERS))
    assert not unaccounted, f"add these to TRAINING_SOURCES (or, with a reason, to NO_EFFECT_ON_NUMBERS): {unaccounted}"
    assert hashed <= imported | {"dba_cli.dba.engine"}  # nothing hashed that training does not use
    assert all(path.is_file() for path in training_source_files())


def test_moving_or_editing_anything_else_leaves_results_current():
    hashed = {path.resolve() for path in training_source_files()}
    for part in ("cli", "reports", "run", "studies", "bench", "recipes", "results"):
        assert not any(path.resolve() in hashed for path in (PACKAGE / part).rglob("*.py")), part
    assert (PACKAGE / "data" / "loading.py").resolve() not in hashed and (PACKAGE / "data" / "fetch.py").resolve() not in hashed
