"""Hardening, round 3: data files and downloads are inputs too.

Each case of the issue, for real: a 9 MB gzip that expands to 2 GiB (it peaked at
4.6 GB of memory before its checksum failed), a 100 GB sparse file (MemoryError),
a FIFO, HTTP mirrors that never answer, send a byte every few seconds or never
stop (it hung `dba data fetch`, or wrote 1.6 GB in 40 s), `--mirror file:///dev/zero`,
a staging folder left by a killed fetch, and `dba data check --data-dir EMPTY`
saying "verified" from the cache (and Fashion-MNIST checked against MNIST's files).
"""

from __future__ import annotations

import gzip
import http.server
import os
import resource
import socket
import threading
import time
import zlib

import pytest
from typer.testing import CliRunner

from dba_cli.cli import app
from dba_cli.data import fetch
from dba_cli.data.datasets import DATASET_SPECS, FILES
from dba_cli.data.loading import idx_size, load_dataset, packaged_data_dir
from dba_cli.errors import DataError
from tests.test_fetch import mirror  # noqa: F401 - the fixture: a tiny Fashion-MNIST served as file://
from tests.test_mnist import copy_files

runner = CliRunner()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bomb(path, size: int) -> None:
    """A gzip file of `size` zero bytes, written in pieces (a few MB on disk, whatever it expands to)."""
    with gzip.open(path, "wb", compresslevel=9) as out:
        block = bytes(2**24)
        for _ in range(size // len(block)):
            out.write(block)


def test_a_decompression_bomb_stops_at_the_canonical_size_without_taking_the_memory(tmp_path):
    folder = copy_files(tmp_path / "data", compress=False)
    target = folder / FILES["train_images"].stem
    target.unlink()
    bomb(folder / (target.name + ".gz"), 2**31)  # 2 GiB of zeros in about 2 MB
    assert (folder / (target.name + ".gz")).stat().st_size < 10 * 2**20
    before = peak_rss_mb()
    started = time.monotonic()
    with pytest.raises(DataError, match=r"expands to more than the 47,040,016 bytes the canonical train-images-idx3-ubyte holds"):
        load_dataset(folder, cache_dir=False)
    assert time.monotonic() - started < 10
    assert peak_rss_mb() - before < 200  # never the 2 GiB it claims


@pytest.mark.parametrize("compressed", [False, True])
def test_a_100_gb_sparse_file_is_refused_by_its_size_before_it_is_read(tmp_path, compressed):
    folder = copy_files(tmp_path / "data", compress=False)
    target = folder / FILES["train_images"].stem
    target.unlink()
    sparse = folder / (target.name + (".gz" if compressed else ""))
    with open(sparse, "wb") as handle:
        handle.truncate(100 * 2**30)
    started = time.monotonic()
    with pytest.raises(DataError, match=r"107,374,182,400 bytes|holds 107,374,182,400 bytes"):
        load_dataset(folder, cache_dir=False)
    assert time.monotonic() - started < 5


def test_a_fifo_in_place_of_a_data_file_is_refused_at_once(tmp_path):
    folder = copy_files(tmp_path / "data", compress=False)
    target = folder / FILES["test_labels"].stem
    target.unlink()
    os.mkfifo(target)
    with pytest.raises(DataError, match="not a regular file"):
        load_dataset(folder, cache_dir=False)


def test_a_raw_file_of_the_wrong_size_is_refused_before_reading_it(tmp_path):
    folder = copy_files(tmp_path / "data", compress=False)
    target = folder / FILES["test_labels"].stem
    target.write_bytes(target.read_bytes() + b"\0")
    with pytest.raises(DataError, match="holds 10,009 bytes; the canonical t10k-labels-idx1-ubyte holds exactly 10,008"):
        load_dataset(folder, cache_dir=False)
    assert idx_size(FILES["train_images"]) == 47_040_016


def test_data_check_reads_the_folder_it_names_never_the_cache(tmp_path):
    cache = tmp_path / "cache"
    load_dataset(cache_dir=cache)  # the cache now holds MNIST
    empty = tmp_path / "empty"
    empty.mkdir()
    outcome = runner.invoke(app, ["data", "check", "--data-dir", str(empty)], env={"DBA_CACHE_DIR": str(cache)})
    assert outcome.exit_code == 2 and "not found in" in outcome.output and "verified" not in outcome.output
    trained = runner.invoke(app, ["run", "--epochs", "1", "--data-dir", str(empty)], env={"DBA_CACHE_DIR": str(cache)})
    assert trained.exit_code == 2 and "not found in" in trained.output
    fashion = runner.invoke(app, ["data", "check", "fashion-mnist", "--data-dir", str(packaged_data_dir())],
                            env={"DBA_CACHE_DIR": str(cache)})
    assert fashion.exit_code == 2 and "failed its checksum" in fashion.output  # MNIST's files are not Fashion-MNIST


# --- downloads over HTTP, from a server this test starts on 127.0.0.1 ---


class Server:
    """A loopback HTTP server whose handler does what a test asks: stall, drip, or never stop."""

    def __init__(self, behaviour: str) -> None:
        behaviour_ = behaviour

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                if behaviour_ == "silent":
                    time.sleep(30)  # accepts the connection, never answers
                    return
                self.send_response(200)
                self.end_headers()
                try:
                    if behaviour_ == "drip":
                        for _ in range(300):
                            self.wfile.write(b"\x1f")
                            self.wfile.flush()
                            time.sleep(0.1)
                    elif behaviour_ == "endless":
                        block = os.urandom(2**16)
                        while True:
                            self.wfile.write(block)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("behaviour, limits, message", [
    ("silent", {"TIMEOUT_SECONDS": 1.0}, "timed out"),
    ("drip", {"RATE_WINDOW_SECONDS": 1.0, "RATE_FLOOR": 1024}, "too slow"),
    ("endless", {}, "more than the"),
])
def test_a_mirror_that_stalls_drips_or_never_stops_is_given_up_and_nothing_is_installed(
    mirror, tmp_path, monkeypatch, behaviour, limits, message,  # noqa: F811
):
    for name, value in limits.items():
        monkeypatch.setattr(fetch, name, value)
    before = peak_rss_mb()
    with Server(behaviour) as server:
        started = time.monotonic()
        outcome = runner.invoke(app, ["data", "fetch", "fashion-mnist", "--mirror", server.url, "--to", str(tmp_path / "to")])
        took = time.monotonic() - started
    assert outcome.exit_code == 2, outcome.output
    assert message in outcome.output and "Nothing was installed" in outcome.output
    assert took < 30 and peak_rss_mb() - before < 200
    assert not list((tmp_path / "to").rglob("*.gz")) and not list((tmp_path / "to").glob(".fetch-*"))


def test_a_file_mirror_of_dev_zero_is_refused(mirror, tmp_path):  # noqa: F811
    outcome = runner.invoke(app, ["data", "fetch", "fashion-mnist", "--mirror", "file:///dev/zero#", "--to", str(tmp_path / "to")])
    assert outcome.exit_code == 2 and "not a regular file (a character device)" in outcome.output, outcome.output


def test_a_staging_folder_left_by_a_killed_fetch_is_removed_by_the_next(mirror, tmp_path):  # noqa: F811
    target = tmp_path / "to"
    dead = target / ".fetch-999999999-abandoned"  # no such process
    dead.mkdir(parents=True)
    (dead / "train-images-idx3-ubyte.gz").write_bytes(os.urandom(2**20))
    alive = target / f".fetch-{os.getpid()}-inflight"  # a fetch still running (this process): left alone
    alive.mkdir()
    outcome = runner.invoke(app, ["data", "fetch", "fashion-mnist", "--mirror", mirror.as_uri() + "/", "--to", str(target)])
    assert outcome.exit_code == 0, outcome.output
    assert not dead.exists() and alive.exists()


def test_a_fetch_shows_one_progress_bar_and_a_bad_download_names_its_url_with_other_advice(mirror, tmp_path):  # noqa: F811
    labels = mirror / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(zlib.decompress(labels.read_bytes(), 16 + zlib.MAX_WBITS))
    content[-1] = (content[-1] + 1) % 10
    labels.write_bytes(gzip.compress(bytes(content)))
    outcome = runner.invoke(app, ["data", "fetch", "fashion-mnist", "--mirror", mirror.as_uri() + "/", "--to", str(tmp_path / "t")])
    assert outcome.exit_code == 2
    line = " ".join(outcome.output.split())
    assert f"{mirror.as_uri()}/t10k-labels-idx1-ubyte.gz failed its checksum" in line  # the URL, not a deleted file
    assert "dba data fetch fashion-mnist" not in line  # not the command that was just run
    assert outcome.output.count("%") <= 1 and "fetch fashion-mnist" in outcome.output  # no stream of percentages
    assert DATASET_SPECS["fashion-mnist"].name == "fashion-mnist"


def test_the_server_fixture_listens_on_loopback_only():
    with Server("endless") as server:
        assert server.httpd.server_address[0] == "127.0.0.1"
        with socket.create_connection(server.httpd.server_address, timeout=5):
            pass
