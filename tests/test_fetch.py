"""`dba data fetch` and the missing-data path through the CLI, with a tiny generated data set as the "download".

A file:// mirror stands in for the internet: the fetch goes through torchvision's
downloader exactly as it would over HTTP, and the files are checked against the
(tiny data set's) content checksums.
"""

from __future__ import annotations

import dataclasses
import gzip

import pytest
from typer.testing import CliRunner

from dba_cli.cli import app
from dba_cli.data.datasets import DATASET_SPECS

from .test_datasets import tiny_dataset

runner = CliRunner()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A folder of tiny Fashion-MNIST-like gzip files, served as file://, with its spec standing in for the real one."""
    folder = tmp_path / "mirror"
    spec = dataclasses.replace(tiny_dataset(folder), system_dirs=(str(tmp_path / "no-system-copy"),))
    monkeypatch.setitem(DATASET_SPECS, "fashion-mnist", spec)
    monkeypatch.setenv("DBA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DBA_DATA_DIR", raising=False)
    return folder


def test_fetch_installs_verified_files_where_dba_then_finds_them(mirror, tmp_path):
    result = runner.invoke(app, ["data", "fetch", "fashion-mnist", "--mirror", mirror.as_uri() + "/"])
    assert result.exit_code == 0, result.output
    installed = tmp_path / "cache" / "datasets" / "FashionMNIST" / "raw"
    assert sorted(path.name for path in installed.iterdir()) == sorted(f"{f.stem}.gz" for f in DATASET_SPECS["fashion-mnist"].files.values())
    assert not list((tmp_path / "cache" / "datasets").glob(".fetch-*"))  # no staging folder left
    check = runner.invoke(app, ["data", "check", "fashion-mnist"])  # no --data-dir: the fetched copy is found
    assert check.exit_code == 0, check.output
    assert f"source: {tmp_path / 'cache' / 'datasets'}" in check.output and "verified: 40 training and 20 test" in check.output
    again = runner.invoke(app, ["data", "fetch", "fashion-mnist", "--mirror", (tmp_path / "gone").as_uri() + "/"])
    assert again.exit_code == 0, again.output  # already there and verified: nothing is downloaded


def test_fetch_to_a_folder_names_the_data_dir_to_use(mirror, tmp_path):
    result = runner.invoke(app, ["data", "fetch", "fashion-mnist", "--to", str(tmp_path / "mine"), "--mirror", mirror.as_uri()])
    assert result.exit_code == 0, result.output
    assert f"--data-dir {tmp_path / 'mine'}" in result.output
    check = runner.invoke(app, ["data", "check", "fashion-mnist", "--data-dir", str(tmp_path / "mine")])
    assert check.exit_code == 0, check.output


def test_a_corrupted_download_installs_nothing(mirror, tmp_path):
    labels = mirror / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(labels.read_bytes()))
    content[-1] = (content[-1] + 1) % 10
    labels.write_bytes(gzip.compress(bytes(content)))
    result = runner.invoke(app, ["data", "fetch", "fashion-mnist", "--mirror", mirror.as_uri() + "/"])
    assert result.exit_code == 2
    assert "failed its checksum" in result.output and "t10k-labels-idx1-ubyte" in result.output
    datasets = tmp_path / "cache" / "datasets"
    assert not (datasets / "FashionMNIST").exists() and not list(datasets.glob(".fetch-*"))


def test_an_unreachable_mirror_is_one_line_naming_the_offline_way(mirror, tmp_path):
    result = runner.invoke(app, ["data", "fetch", "fashion-mnist", "--mirror", (tmp_path / "nowhere").as_uri() + "/"])
    assert result.exit_code == 2
    line = " ".join(result.output.split())
    assert "could not get a verified copy of Fashion-MNIST's train-images-idx3-ubyte.gz" in line
    assert "apt install dataset-fashion-mnist" in line and "--data-dir" in line
    assert "Traceback" not in result.output


def test_mnist_ships_and_unknown_names_are_refused():
    shipped = runner.invoke(app, ["data", "fetch", "mnist"])
    assert shipped.exit_code == 2 and "ships with dba" in shipped.output
    unknown = runner.invoke(app, ["data", "fetch", "cifar10"])
    assert unknown.exit_code == 2 and "unknown data set 'cifar10'" in unknown.output and "fashion-mnist" in unknown.output


def test_a_fashion_recipe_without_the_data_is_one_line_and_trains_nothing(mirror, tmp_path):
    result = runner.invoke(app, ["reproduce", "fashion-1pct", "--smoke", "--results", str(tmp_path / "results")])
    assert result.exit_code == 2
    line = " ".join(result.output.split())
    assert "Fashion-MNIST is not on this machine" in line
    assert "dba data fetch fashion-mnist" in line and "apt install dataset-fashion-mnist" in line
    assert not (tmp_path / "results" / "fashion-1pct").exists()
    run = runner.invoke(app, ["run", "--dataset", "fashion-mnist", "--epochs", "1"])
    assert run.exit_code == 2 and "dba data fetch fashion-mnist" in " ".join(run.output.split())
