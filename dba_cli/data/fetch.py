"""`dba data fetch`: download a data set that does not ship with dba, verify it, and put it where dba looks.

Why this shape:
- torchvision keeps the data set's mirrors (`FashionMNIST.mirrors`); we use its
  list, not its downloader or its checksums (of the gzip bytes, which differ
  between copies). Every file is verified by the MD5 of its uncompressed IDX
  content (data/loading.py), the same check every load makes.
- A download is an input like any file: each has a connect and read timeout,
  a deadline, a floor on its rate (a server that sends a byte every few
  seconds never trips a read timeout) and a size cap (a canonical file's size
  is known); a file:// mirror must name a regular file. A mirror that fails
  any of these, or serves a file that fails its checksum, is skipped for the next.
- Nothing half-written is ever where dba looks: the four files download into a
  staging folder beside the target and are moved into place (one rename each)
  only once all four verified. A failed or interrupted fetch leaves no file; a
  staging folder left by a killed fetch (its process gone) is removed by the next.
- The files go into torchvision's layout, `<target>/FashionMNIST/raw/`, under
  `fetched_data_dir()` by default, which `load_dataset` searches without --data-dir.
- Not a training source (training/code_version.py): fetching changes no trained number.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError, DataError, UnreadableFile
from ..files import read_bounded
from .datasets import DATASET_SPECS, DatasetSpec, IdxFile
from .loading import GZIP_SLACK, fetched_data_dir, idx_size, load_verified, read_content, verify

# How to get a data set without internet, for the failed-download message.
OFFLINE = {"fashion-mnist": "install Debian's package (`apt install dataset-fashion-mnist`, then no --data-dir is needed)"}
TIMEOUT_SECONDS = 30.0  # to connect, and for each read
DEADLINE_SECONDS = 900.0  # for one file, however it arrives (Fashion-MNIST's largest is 26 MB)
RATE_WINDOW_SECONDS = 30.0  # a download slower than RATE_FLOOR bytes/s over this window is given up
RATE_FLOOR = 1024
CHUNK = 1 << 16
STAGING_PREFIX = ".fetch-"

OnBytes = Callable[[str, int], None]  # file name, bytes received so far


def torchvision_mirrors(spec: DatasetSpec) -> list[str]:
    """The URL prefixes torchvision downloads this data set from."""
    import torchvision.datasets

    return list(getattr(torchvision.datasets, spec.torchvision_folder).mirrors)


def already_verified(folder: Path, spec: DatasetSpec) -> bool:
    """Whether `folder` already holds all four files with the canonical content (the check every load makes)."""
    try:
        for file in spec.files.values():
            load_verified(file, folder, None, spec)
    except DataError:
        return False
    return True


def download(url: str, target: Path, limit: int, on_bytes: OnBytes | None = None) -> None:
    """Copy `url` into the file `target`, at most `limit` bytes, within the timeouts above; DataError otherwise."""
    if url.startswith("file:"):
        local = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
        try:
            target.write_bytes(read_bounded(local, limit))  # a regular file only: never /dev/zero or a FIFO
        except FileNotFoundError:
            raise DataError(f"{local} does not exist") from None
        except UnreadableFile as exc:
            raise DataError(exc.reason) from None
        if on_bytes is not None:
            on_bytes(target.name, target.stat().st_size)
        return
    started = time.monotonic()
    window: list[tuple[float, int]] = [(started, 0)]
    received = 0
    request = urllib.request.Request(url, headers={"User-Agent": "dba-cli"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response, open(target, "wb") as out:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise DataError(f"it announces {int(length):,} bytes, more than the {limit:,} the canonical file can take")
        while chunk := response.read1(CHUNK):  # what has arrived: a server that drips is measured as it drips
            received += len(chunk)
            if received > limit:
                raise DataError(f"it sent more than the {limit:,} bytes the canonical file can take; stopped there")
            out.write(chunk)
            now = time.monotonic()
            if now - started > DEADLINE_SECONDS:
                raise DataError(f"it took more than {DEADLINE_SECONDS:.0f} s")
            window = [(t, n) for t, n in window if now - t <= RATE_WINDOW_SECONDS] + [(now, received)]
            if now - started >= RATE_WINDOW_SECONDS and received - window[0][1] < RATE_FLOOR * RATE_WINDOW_SECONDS:
                raise DataError(f"it sent {received - window[0][1]:,} bytes in {RATE_WINDOW_SECONDS:.0f} s: too slow")
            if on_bytes is not None:
                on_bytes(target.name, received)


def fetch_file(file: IdxFile, mirrors: list[str], staging: Path, spec: DatasetSpec, on_bytes: OnBytes | None) -> None:
    """Download one file from the first mirror that serves the canonical one; DataError naming every mirror's problem."""
    name = file.stem + ".gz"
    problems = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name
        target = staging / name
        try:
            download(url, target, idx_size(file) + GZIP_SLACK, on_bytes)
            content = read_content(target, file, spec)
            verify(content, file, url, spec, fix="")
            return
        except DataError as exc:  # named by its URL: the staging file it was checked in is gone with the next line
            problems.append(f"{mirror}: {' '.join(str(exc).replace(str(target), url).split())}")
        except Exception as exc:  # noqa: BLE001 - urllib's, HTTP's and the socket's errors alike: try the next mirror
            reason = getattr(exc, "reason", None) or exc
            problems.append(f"{mirror}: {' '.join(str(reason).split()) or type(exc).__name__}")
        target.unlink(missing_ok=True)
    raise DataError(
        f"could not get a verified copy of {spec.title}'s {name} ({'; '.join(problems)}). Nothing was installed. "
        f"Fix: check the internet connection or pass another --mirror; without internet, "
        f"{OFFLINE.get(spec.name, 'copy the four IDX files')}, or pass --data-dir (or set DBA_DATA_DIR) to a folder "
        "holding the four IDX files."
    )


def remove_abandoned_staging(target: Path) -> None:
    """Staging folders of fetches whose process is gone (killed mid-download): removed, however large."""
    for folder in target.glob(STAGING_PREFIX + "*"):
        pid = folder.name[len(STAGING_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and process_alive(int(pid)):
            continue  # another fetch is downloading into it right now
        shutil.rmtree(folder, ignore_errors=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def fetch_dataset(
    name: str,
    target: Path | None = None,
    mirrors: list[str] | None = None,
    on_file: Callable[[str], None] | None = None,
    on_bytes: OnBytes | None = None,
) -> Path:
    """Download, verify and install data set `name` under `target` (default `fetched_data_dir()`); return the folder.

    Already there and verified: nothing is downloaded. `mirrors` are URL
    prefixes tried in turn for each file (default: torchvision's).
    """
    spec = DATASET_SPECS[name]
    if spec.packaged:
        raise ConfigError(f"{spec.title} ships with dba: there is nothing to fetch. `dba data check` verifies it.")
    target = (target or fetched_data_dir()).expanduser()
    final = target / spec.torchvision_folder / "raw"
    if already_verified(final, spec):
        return final
    mirrors = mirrors or torchvision_mirrors(spec)
    try:
        target.mkdir(parents=True, exist_ok=True)
        remove_abandoned_staging(target)
        staging = Path(tempfile.mkdtemp(dir=target, prefix=f"{STAGING_PREFIX}{os.getpid()}-"))
    except OSError as exc:
        raise DataError(f"cannot write to {target} ({exc.strerror or exc}). Fix: pass --to a folder you can write to.") from None
    try:
        for file in spec.files.values():
            fetch_file(file, mirrors, staging, spec, on_bytes)
            if on_file is not None:
                on_file(file.stem + ".gz")
        final.mkdir(parents=True, exist_ok=True)
        for file in spec.files.values():
            os.replace(staging / (file.stem + ".gz"), final / (file.stem + ".gz"))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
