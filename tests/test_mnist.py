"""MNIST loading: checksums, the cache, other folders, and every failure path."""

import gzip
import hashlib

import pytest
import torch

from dba_cli.data.datasets import FILES, to_features
from dba_cli.data.loading import load_dataset
from dba_cli.data.loading import packaged_data_dir
from dba_cli.errors import DataError


def copy_files(target, compress=True, layout=""):
    """Write the four canonical files into target (optionally as MNIST/raw) as gzip or raw IDX."""
    folder = target / layout if layout else target
    folder.mkdir(parents=True, exist_ok=True)
    for spec in FILES.values():
        content = gzip.decompress((packaged_data_dir() / f"{spec.stem}.gz").read_bytes())
        if compress:
            (folder / f"{spec.stem}.gz").write_bytes(gzip.compress(content, compresslevel=1))
        else:
            (folder / spec.stem).write_bytes(content)
    return folder


def test_packaged_data_matches_the_readme_facts(mnist):
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.train_images.dtype == torch.uint8
    assert mnist.test_images.shape == (10000, 28, 28)
    assert mnist.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert mnist.train_labels.bincount().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert mnist.test_labels.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    pixels = mnist.train_images.float() / 255
    assert pixels.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert pixels.std().item() == pytest.approx(0.3081, abs=1e-4)
    features = to_features(mnist.train_images)
    assert features.shape == (60000, 784)
    assert features.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert features.std().item() == pytest.approx(1.0, abs=1e-3)


def test_cache_is_written_verified_and_rebuilt_when_damaged(tmp_path, mnist):
    cache = tmp_path / "cache"
    first = load_dataset(cache_dir=cache)
    entries = sorted((cache / "mnist").glob("*.idx"))
    assert sorted(e.stem.split("-")[1] for e in entries) == sorted(spec.md5 for spec in FILES.values())
    for entry in entries:  # each entry is the raw IDX content, named by its gzip file's hash and its own checksum
        source, content = entry.stem.split("-")
        assert hashlib.md5(entry.read_bytes()).hexdigest() == content
        gz = next(packaged_data_dir().glob("*.gz"), None)
        assert len(source) == 32 and gz is not None
    damaged = next(e for e in entries if e.stem.endswith(FILES["train_labels"].md5))
    damaged.write_bytes(damaged.read_bytes()[:-5] + b"\x00" * 5)
    second = load_dataset(cache_dir=cache)  # the damaged entry is discarded and rebuilt
    assert torch.equal(second.train_labels, first.train_labels)
    assert hashlib.md5(damaged.read_bytes()).hexdigest() == damaged.stem.split("-")[1]


@pytest.mark.parametrize(
    "compress, layout", [(True, ""), (False, ""), (False, "MNIST/raw"), (True, "MNIST/raw")]
)
def test_other_folders_gzip_raw_and_torchvision_layout(tmp_path, mnist, compress, layout):
    copy_files(tmp_path / "data", compress=compress, layout=layout)
    loaded = load_dataset(tmp_path / "data", cache_dir=False)
    assert torch.equal(loaded.train_images, mnist.train_images)
    assert torch.equal(loaded.test_labels, mnist.test_labels)


def test_data_dir_from_environment(tmp_path, monkeypatch, mnist):
    copy_files(tmp_path / "env", compress=False)
    monkeypatch.setenv("DBA_DATA_DIR", str(tmp_path / "env"))
    assert load_dataset(cache_dir=False).source == str(tmp_path / "env")


def test_corrupted_file_names_file_and_both_checksums(tmp_path):
    folder = copy_files(tmp_path / "data", compress=False)
    bad = folder / FILES["test_images"].stem
    content = bytearray(bad.read_bytes())
    content[5000] ^= 0xFF  # one flipped pixel byte
    bad.write_bytes(bytes(content))
    actual = hashlib.md5(bytes(content)).hexdigest()
    with pytest.raises(DataError) as excinfo:
        load_dataset(folder, cache_dir=False)
    message = str(excinfo.value)
    assert str(bad) in message and actual in message and FILES["test_images"].md5 in message
    assert "Fix:" in message


def test_corrupted_file_is_never_taken_from_or_put_into_the_cache(tmp_path):
    folder = copy_files(tmp_path / "data", compress=False)
    bad = folder / FILES["train_labels"].stem
    bad.write_bytes(bad.read_bytes()[:-1] + b"\x07")
    with pytest.raises(DataError):
        load_dataset(folder, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "mnist" / f"{FILES['train_labels'].md5}.idx").exists()


def test_truncated_gzip_is_a_clear_error(tmp_path):
    folder = copy_files(tmp_path / "data", compress=True)
    bad = folder / f"{FILES['train_images'].stem}.gz"
    bad.write_bytes(bad.read_bytes()[:1000])
    with pytest.raises(DataError, match="ends before its gzip stream does: truncated"):
        load_dataset(folder, cache_dir=False)


def test_missing_file_and_missing_folder(tmp_path):
    folder = copy_files(tmp_path / "data", compress=False)
    (folder / FILES["test_labels"].stem).unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_dataset(folder, cache_dir=False)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nowhere", cache_dir=False)
