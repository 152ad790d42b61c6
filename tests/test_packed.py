"""Packed training (training/packed.py): each packed run bit-identical to the run alone; grids pack, resume and report it."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from dba_cli.cli import app
from dba_cli.settings.packing import (
    DEFAULT_GPU_PACK, DEFAULT_PACK, MAX_PACKED_IMAGES, PACKED_METHODS, default_pack, pack_groups, pack_key,
)
from dba_cli.settings.run import RunConfig
from dba_cli.training.packed import PACKED_STEPS, train_pack
from dba_cli.training.train import train
from tests.parallel_helpers import dba_process, kill_group, result_files, wait_for
from tests.test_parallel import GRID as PARALLEL_GRID
from tests.test_recipes import write

CPU = torch.device("cpu")
COMMON = dict(data="10-per-class", epochs=3, batch_size=30, hidden=[64])  # 100 images: batches of 30, 30, 30, 10


def records(result) -> list[tuple]:
    """What a run trained, epoch by epoch: every loss, accuracy and kept size (not the seconds); NaN as "nan" (NaN != NaN)."""
    return [
        tuple("nan" if isinstance(v, float) and math.isnan(v) else v
              for v in (r.train_loss, r.test_loss, r.test_accuracy, r.val_loss, r.val_accuracy, str(r.kept)))
        for r in result.history
    ]


def assert_alone_equals_packed(configs: list[RunConfig], mnist, schedules=None) -> list:
    torch.set_num_threads(1)
    packed_models: list = []
    packed = train_pack(configs, mnist, CPU, evaluate_at=schedules, models_out=packed_models)
    for p, config in enumerate(configs):
        out: dict = {}
        alone = train(config, mnist, CPU, evaluate_at=None if schedules is None else schedules[p], model_out=out)
        assert records(packed[p]) == records(alone), f"run {p} ({config.method}, lr {config.lr})"
        assert packed[p].subset_hash == alone.subset_hash and packed[p].diverged_at_epoch == alone.diverged_at_epoch
        if alone.diverged_at_epoch is None:  # a diverged run's weights train on in its pack (no result holds weights)
            for own, theirs in zip(out["model"].parameters(), packed_models[p].parameters()):
                assert torch.equal(own, theirs)
    return packed


@pytest.mark.parametrize("options", [
    [dict(momentum=0.9, lr=0.05), dict(momentum=0.5, lr=0.1, weight_decay=1e-3), dict(momentum=0.9, lr=0.02, schedule="cosine")],
    [dict(momentum=0.9, nesterov=True, lr=0.05), dict(momentum=0.8, nesterov=True, lr=0.03, weight_decay=5e-4)],
    [dict(lr=0.1), dict(lr=0.05, weight_decay=1e-3, schedule="cosine")],
], ids=["sgd-momentum", "sgd-nesterov", "sgd-plain"])
def test_a_packed_sgd_run_is_bit_identical_to_the_run_alone(mnist, options):
    configs = [RunConfig(method="sgd", seed=seed, **COMMON, **extra) for seed, extra in enumerate(options)]
    packed = assert_alone_equals_packed(configs, mnist)
    assert all(result.pack_size == len(configs) for result in packed)
    assert len({records(result)[-1] for result in packed}) == len(configs)  # each trained its own run


@pytest.mark.parametrize("method", ["adam", "adamw"])
def test_a_packed_adam_run_is_bit_identical_to_the_run_alone(mnist, method):
    options = [dict(lr=1e-3), dict(lr=3e-3, weight_decay=1e-2), dict(lr=1e-3, schedule="cosine"), dict(lr=1e-3)]
    configs = [RunConfig(method=method, seed=seed, **COMMON, **extra) for seed, extra in enumerate(options)]
    assert_alone_equals_packed(configs, mnist)


def test_packed_validation_splits_noise_schedules_and_activations_match_alone(mnist):
    common = {**COMMON, "activation": "tanh", "label_noise": "symmetric", "noise_rate": 0.3, "validation_size": 200}
    configs = [RunConfig(method="sgd", seed=seed, lr=0.05, momentum=0.9, **common) for seed in range(3)]
    packed = assert_alone_equals_packed(configs, mnist, schedules=[(1, 3), (3,), (2, 3)])
    assert packed[1].history[0].test_accuracy is None and packed[0].history[0].test_accuracy is not None
    assert packed[0].label_noise_realised == pytest.approx(0.3, abs=0.1)


def test_uneven_folds_train_as_one_pack_per_size(mnist):
    configs = [RunConfig(method="adam", lr=1e-3, seed=seed, folds=3, fold=fold, **COMMON) for seed, fold in ((0, 0), (0, 1), (1, 2))]
    packed = assert_alone_equals_packed(configs, mnist)
    assert sorted(result.subset_size for result in packed) == [66, 67, 67]


def test_a_diverging_run_stops_alone_while_its_pack_trains_on(mnist):
    configs = [RunConfig(method="sgd", seed=0, lr=0.05, **COMMON), RunConfig(method="sgd", seed=1, lr=1e6, **COMMON)]
    packed = assert_alone_equals_packed(configs, mnist)
    assert packed[1].diverged_at_epoch is not None and packed[0].diverged_at_epoch is None
    assert len(packed[0].history) == 3


def test_packed_ordered_sgd_and_small_loss_are_bit_identical_to_alone(mnist):
    options = [dict(fraction=0.5), dict(fraction=0.25, keep="smallest", ramp_epochs=3), dict(fraction=0.8, keep="smallest")]
    configs = [RunConfig(method="ordered", seed=seed, lr=0.05, momentum=0.9, ordered=extra, **COMMON) for seed, extra in enumerate(options)]
    assert_alone_equals_packed(configs, mnist)


@pytest.mark.parametrize("method", ["dba", "dba-random"])
def test_packed_dba_is_bit_identical_to_alone_kept_subsets_included(mnist, method):
    options = [
        dict(lr=0.1, dba=dict(min_size=8)),
        dict(lr=0.05, dba=dict(metric="snr", direction="maximize", min_size=4)),
        dict(lr=0.2, schedule="cosine", dba=dict(min_size=16, reduction="sum_over_batch")),
    ]
    configs = [RunConfig(method=method, seed=seed, **{**COMMON, "batch_size": 32}, **extra) for seed, extra in enumerate(options)]
    packed = assert_alone_equals_packed(configs, mnist)
    kept = [result.history[-1].kept for result in packed]
    assert all(set(layers) == {"0", "2"} for layers in kept) and len({str(layers) for layers in kept}) == 3


def test_packed_adam_based_dba_is_bit_identical_to_alone(mnist):
    configs = [RunConfig(method="dba", base="adamw", lr=lr, seed=seed, dba=dict(min_size=6), **COMMON)
               for seed, lr in enumerate((1e-3, 3e-3))]
    assert_alone_equals_packed(configs, mnist)


def test_every_packed_method_has_a_packed_step():
    assert set(PACKED_STEPS) == set(PACKED_METHODS)


def test_what_packs_together():
    sgd = RunConfig(method="sgd", **COMMON)
    assert pack_key(sgd) == pack_key(sgd.model_copy(update={"lr": 0.3, "seed": 4, "weight_decay": 0.1}))
    assert pack_key(sgd) != pack_key(sgd.model_copy(update={"momentum": 0.9}))  # its step has another structure
    assert pack_key(sgd) != pack_key(sgd.model_copy(update={"batch_size": 31}))
    assert pack_key(RunConfig(method="ordered", **COMMON)) != pack_key(RunConfig(method="ordered", base="adamw", **COMMON))
    for alone in (RunConfig(architecture="cnn", data="10-per-class"), RunConfig(method="online", **COMMON),
                  RunConfig(method="importance", **COMMON), RunConfig(method="sgd", data="full"),
                  RunConfig(method="sgd", resample="every_epoch", **COMMON)):
        assert pack_key(alone) is None
    assert MAX_PACKED_IMAGES < 60_000
    configs = [sgd.model_copy(update={"seed": s}) for s in range(5)] + [RunConfig(method="online", **COMMON)]
    assert pack_groups(configs, 2) == [[0, 1], [2, 3], [4], [5]]
    assert pack_groups(configs, 1) == [[p] for p in range(6)]
    assert default_pack(configs, 1, "cuda") == 5 and default_pack(configs, 2, "cuda") == 3
    assert default_pack(configs * 20, 1, "cuda") == DEFAULT_GPU_PACK
    assert default_pack(configs, 1, "cpu") == 1  # plain SGD is not faster packed on a CPU (docs/packing.md)
    dba = [RunConfig(method="dba", seed=s, **COMMON) for s in range(21)]
    assert default_pack(dba, 1, "cpu") == DEFAULT_PACK
    assert [len(members) for members in pack_groups(dba, 16)] == [11, 10]  # balanced, not 16 and 5


GRID = PARALLEL_GRID.replace("name: grid", "name: packs") + "  adam: {method: adam, lr: 0.001}\n"  # sgd, dba and adam


def grid(tmp_path, epochs: int, seeds: int) -> str:
    return write(tmp_path, GRID.replace("EPOCHS", str(epochs)).replace("SEEDS", str(seeds)), "packs.yaml")


def test_a_packed_grid_writes_the_files_an_unpacked_one_does(tmp_path):
    recipe = grid(tmp_path, 3, 3)
    unpacked = CliRunner().invoke(app, ["reproduce", recipe, "--jobs", "1", "--pack", "1", "--results", str(tmp_path / "one")])
    assert unpacked.exit_code == 0, unpacked.output
    packed = CliRunner().invoke(app, ["reproduce", recipe, "--jobs", "1", "--pack", "3", "--results", str(tmp_path / "three")])
    assert packed.exit_code == 0, packed.output
    assert "packing: 9 runs train as 3 task(s)" in packed.output
    one, three = result_files(tmp_path / "one"), result_files(tmp_path / "three")
    assert len(one) == 9 and one == three  # pack_size aside (parallel_helpers.VOLATILE), every field equal
    sizes = {key: json.loads((tmp_path / "three" / key).read_text()).get("pack_size") for key in three}
    assert {key.split("/")[1]: size for key, size in sizes.items()} == {"sgd": 3, "adam": 3, "dba": 3}
    again = CliRunner().invoke(app, ["reproduce", recipe, "--pack", "3", "--results", str(tmp_path / "three")])
    assert again.exit_code == 0 and "0 run(s) done, 9 already finished" in again.output


@pytest.mark.slow
def test_a_killed_packed_grid_reruns_its_unfinished_packs_and_ends_as_an_uninterrupted_one(tmp_path):
    recipe = grid(tmp_path, 40, 4)
    results = tmp_path / "killed"
    process = dba_process(["reproduce", recipe, "--jobs", "1", "--pack", "2", "--results", str(results)])
    try:  # the first pack's two files appear together; kill the command while later packs train
        wait_for(lambda: len(list(results.rglob("seed-*.json"))) >= 2, 120, "a first finished pack")
        process.kill()
        process.wait(timeout=10)
    finally:
        kill_group(process)
    finished = {str(path.relative_to(results / "packs")) for path in results.rglob("seed-*.json")}
    done = len(finished)
    assert 2 <= done < 12
    for method in ("sgd", "adam", "dba"):  # a pack's two runs end together: both files, or neither
        for pair in ((0, 1), (2, 3)):
            assert len({f"{method}/seed-{seed}.json" in finished for seed in pair}) == 1, finished
    rerun = CliRunner().invoke(app, ["reproduce", recipe, "--jobs", "1", "--pack", "2", "--results", str(results)])
    assert rerun.exit_code == 0, rerun.output
    assert f"{12 - done} run(s) done, {done} already finished" in rerun.output
    reference = CliRunner().invoke(app, ["reproduce", recipe, "--pack", "1", "--results", str(tmp_path / "whole")])
    assert reference.exit_code == 0, reference.output
    assert result_files(results) == result_files(tmp_path / "whole")
