"""Data sets other than the packaged MNIST: Fashion-MNIST's lookup, checksums and missing-data message,
exercised with a tiny generated IDX data set (the tests never need the real Fashion-MNIST files)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from pathlib import Path

import pytest
import torch

from dba_cli.settings.run import RunConfig
from dba_cli.data import loading as data
from dba_cli.data.datasets import DATASET_SPECS, DatasetSpec, IdxFile
from dba_cli.data.loading import load_dataset
from dba_cli.errors import DataError
from dba_cli.training.train import train

TRAIN, TEST = 40, 20  # four training and two test images per class


def idx_bytes(array: torch.Tensor) -> bytes:
    """An unsigned-byte IDX file: magic (0, 0, 8, ndim), big-endian dims, the bytes."""
    header = bytes([0, 0, 8, array.dim()]) + b"".join(size.to_bytes(4, "big") for size in array.shape)
    return header + array.to(torch.uint8).numpy().tobytes()


def tiny_dataset(folder: Path, compress: bool = True, seed: int = 0) -> DatasetSpec:
    """Write a tiny MNIST-format data set (random images, balanced labels) and return its spec.

    The spec is Fashion-MNIST's with the tiny files' checksums and shapes: a run
    configured for fashion-mnist trains on it as it would on the real files.
    """
    generator = torch.Generator().manual_seed(seed)
    arrays = {
        "train_images": torch.randint(0, 256, (TRAIN, 28, 28), generator=generator, dtype=torch.uint8),
        "train_labels": torch.arange(TRAIN, dtype=torch.uint8) % 10,
        "test_images": torch.randint(0, 256, (TEST, 28, 28), generator=generator, dtype=torch.uint8),
        "test_labels": torch.arange(TEST, dtype=torch.uint8) % 10,
    }
    fashion = DATASET_SPECS["fashion-mnist"]
    files = {}
    folder.mkdir(parents=True, exist_ok=True)
    for key, array in arrays.items():
        stem = fashion.files[key].stem
        content = idx_bytes(array)
        (folder / (stem + ".gz" if compress else stem)).write_bytes(gzip.compress(content) if compress else content)
        files[key] = IdxFile(stem, hashlib.md5(content).hexdigest(), tuple(array.shape))
    return dataclasses.replace(fashion, files=files)


@pytest.fixture
def no_default_copies(tmp_path, monkeypatch):
    """No Fashion-MNIST where dba looks by default: an empty cache and no system package."""
    monkeypatch.setenv("DBA_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("DBA_DATA_DIR", raising=False)
    spec = dataclasses.replace(DATASET_SPECS["fashion-mnist"], system_dirs=(str(tmp_path / "no-system-copy"),))
    monkeypatch.setitem(DATASET_SPECS, "fashion-mnist", spec)
    return spec


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("layout", ["", "FashionMNIST/raw", "fashion-mnist"])
def test_tiny_dataset_loads_from_gzip_raw_and_torchvision_layouts(tmp_path, compress, layout):
    spec = tiny_dataset(tmp_path / "data" / layout if layout else tmp_path / "data", compress)
    loaded = load_dataset(tmp_path / "data", cache_dir=False, dataset=spec)
    assert loaded.name == "fashion-mnist" and loaded.spec == spec
    assert loaded.train_images.shape == (TRAIN, 28, 28) and loaded.test_images.shape == (TEST, 28, 28)
    assert loaded.train_labels.tolist() == [i % 10 for i in range(TRAIN)]
    assert loaded.train_labels.dtype == torch.int64


def test_default_locations_fetched_copy_then_system_package(tmp_path, monkeypatch, no_default_copies):
    system = tmp_path / "system"
    spec = dataclasses.replace(tiny_dataset(system), system_dirs=(str(system),))
    assert load_dataset(cache_dir=False, dataset=spec).source == str(system)
    fetched = tmp_path / "empty-cache" / "datasets"
    tiny_dataset(fetched / "FashionMNIST" / "raw")  # where `dba data fetch` (torchvision) puts it
    assert load_dataset(cache_dir=False, dataset=spec).source == str(fetched)


def test_missing_dataset_is_one_line_naming_both_ways_to_get_it(no_default_copies, tmp_path):
    with pytest.raises(DataError) as caught:
        load_dataset(cache_dir=False, dataset="fashion-mnist")
    message = str(caught.value)
    assert "\n" not in message
    assert "Fashion-MNIST is not on this machine" in message
    assert "dba data fetch fashion-mnist" in message and "apt install dataset-fashion-mnist" in message
    assert str(tmp_path / "empty-cache" / "datasets") in message and "--data-dir" in message


def test_checksum_failure_names_the_file_both_checksums_and_how_to_get_a_copy(tmp_path):
    folder = tmp_path / "data"
    spec = tiny_dataset(folder, compress=False)
    path = folder / spec.files["train_images"].stem
    content = bytearray(path.read_bytes())
    content[-1] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(DataError) as caught:
        load_dataset(folder, cache_dir=tmp_path / "cache", dataset=spec)
    message = str(caught.value)
    assert str(path) in message and hashlib.md5(bytes(content)).hexdigest() in message
    assert spec.files["train_images"].md5 in message and "dba data fetch fashion-mnist" in message
    assert not (tmp_path / "cache" / "fashion-mnist" / f"{spec.files['train_images'].md5}.idx").exists()


def test_mnist_files_are_not_taken_for_fashion_mnist(tmp_path):
    """The two data sets share file names: only the checksum tells them apart, and it does."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for spec in DATASET_SPECS["mnist"].files.values():
        (folder / f"{spec.stem}.gz").write_bytes((data.packaged_data_dir() / f"{spec.stem}.gz").read_bytes())
    with pytest.raises(DataError, match="not the canonical Fashion-MNIST train-images-idx3-ubyte"):
        load_dataset(folder, cache_dir=False, dataset="fashion-mnist")


def test_cache_entries_are_per_dataset_and_verified(tmp_path):
    spec = tiny_dataset(tmp_path / "data")
    load_dataset(tmp_path / "data", cache_dir=tmp_path / "cache", dataset=spec)
    cached = sorted(path.name.split("-")[1] for path in (tmp_path / "cache" / "fashion-mnist").iterdir())
    assert cached == sorted(f"{file.md5}.idx" for file in spec.files.values())
    again = load_dataset(tmp_path / "data", cache_dir=tmp_path / "cache", dataset=spec)  # from the cache
    assert torch.equal(again.test_images, load_dataset(tmp_path / "data", cache_dir=False, dataset=spec).test_images)
    empty = tmp_path / "empty"  # the files are gone: the cache never stands in for a folder that lacks them
    empty.mkdir()
    with pytest.raises(DataError, match="not found in"):
        load_dataset(empty, cache_dir=tmp_path / "cache", dataset=spec)


def test_features_use_the_dataset_s_own_pixel_statistics(tmp_path):
    spec = dataclasses.replace(tiny_dataset(tmp_path), pixel_mean=0.5, pixel_std=0.25)
    loaded = load_dataset(tmp_path, cache_dir=False, dataset=spec)
    expected = (loaded.train_images.reshape(TRAIN, -1).float() / 255 - 0.5) / 0.25
    assert torch.allclose(loaded.features(loaded.train_images), expected)


@pytest.mark.parametrize("architecture", ["mlp", "cnn"])
def test_a_run_trains_on_the_tiny_dataset_and_refuses_another(tmp_path, mnist, architecture):
    tiny = load_dataset(tmp_path, cache_dir=False, dataset=tiny_dataset(tmp_path))
    model = {"hidden": [16]} if architecture == "mlp" else {"channels": [4, 6]}
    config = RunConfig(
        dataset="fashion-mnist", data="2-per-class", architecture=architecture, **model, epochs=2,
        batch_size=10, method="dba", dba={"metric": "variance", "direction": "minimize", "min_size": 5},
    )
    result = train(config, tiny, torch.device("cpu"))
    assert result.subset_size == 20 and len(result.history) == 2
    assert result.config["dataset"] == "fashion-mnist" and result.config.get("architecture", "mlp") == architecture
    assert 0 <= result.final_test_accuracy <= 100
    with pytest.raises(ValueError, match="configured for fashion-mnist but was given mnist"):
        train(config, mnist, torch.device("cpu"))


def test_saved_configs_of_mnist_mlp_runs_are_unchanged_by_the_new_fields():
    """Results made before `dataset` and `architecture` existed stay current: the defaults are not saved."""
    config = RunConfig(data="1pct", method="sgd")
    assert not {"dataset", "architecture", "channels"} & set(config.to_dict())
    assert config.to_dict()["hidden"] == [512]
    cnn = RunConfig(data="1pct", dataset="fashion-mnist", architecture="cnn").to_dict()
    assert cnn["dataset"] == "fashion-mnist" and cnn["architecture"] == "cnn" and cnn["channels"] == [8, 16]
    assert "hidden" not in cnn


@pytest.mark.skipif(
    not all(data.locate(Path(d), f.stem, DATASET_SPECS["fashion-mnist"]) for d in DATASET_SPECS["fashion-mnist"].system_dirs
            for f in DATASET_SPECS["fashion-mnist"].files.values()),
    reason="the real Fashion-MNIST is not installed here (apt install dataset-fashion-mnist)",
)
def test_real_fashion_mnist_matches_the_canonical_facts():
    fashion = load_dataset(DATASET_SPECS["fashion-mnist"].system_dirs[0], cache_dir=False, dataset="fashion-mnist")
    assert fashion.train_images.shape == (60000, 28, 28) and fashion.test_images.shape == (10000, 28, 28)
    assert fashion.train_labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert fashion.train_labels.bincount().tolist() == [6000] * 10
    pixels = fashion.train_images.float() / 255
    assert pixels.mean().item() == pytest.approx(0.2860, abs=1e-4)
    assert pixels.std().item() == pytest.approx(0.3530, abs=1e-4)
