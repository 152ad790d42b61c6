"""`dba data fetch`: download a data set that does not ship with dba, verify it, and put it where dba looks.

Why this shape:
- torchvision keeps the data set's mirrors (`FashionMNIST.mirrors`) and a
  downloader that follows redirects; we use both, but not torchvision's own
  checksums: they are of the gzip bytes, which differ between copies. Every
  file is verified by the MD5 of its uncompressed IDX content (data/loading.py),
  the same check every load makes.
- Nothing half-written is ever where dba looks: the four files download into a
  staging folder beside the target and are moved into place (one rename each)
  only once all four verified. A failed or interrupted fetch leaves no file.
- The files go into torchvision's layout, `<target>/FashionMNIST/raw/`, under
  `fetched_data_dir()` by default, which `load_dataset` searches without --data-dir.
- Not a training source (training/code_version.py): fetching changes no trained number.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError, DataError
from .datasets import DATASET_SPECS, DatasetSpec
from .loading import fetched_data_dir, load_verified

# How to get a data set without internet, for the failed-download message.
OFFLINE = {"fashion-mnist": "install Debian's package (`apt install dataset-fashion-mnist`, then no --data-dir is needed)"}


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


def download(url: str, folder: Path, name: str) -> None:
    """One file, through torchvision's downloader (no checksum here: `verify` checks the content).

    A file:// mirror (a local copy of the mirror's files) is read directly:
    torchvision's downloader expects an HTTP response.
    """
    if url.startswith("file:"):
        with urllib.request.urlopen(url) as response, open(folder / name, "wb") as out:
            shutil.copyfileobj(response, out)
        return
    from torchvision.datasets.utils import download_url

    download_url(url, str(folder), filename=name)


def fetch_dataset(
    name: str,
    target: Path | None = None,
    mirrors: list[str] | None = None,
    on_file: Callable[[str], None] | None = None,
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
        staging = Path(tempfile.mkdtemp(dir=target, prefix=".fetch-"))
    except OSError as exc:
        raise DataError(f"cannot write to {target} ({exc}). Fix: pass --to a folder you can write to.") from None
    try:
        for file in spec.files.values():
            gz_name = file.stem + ".gz"
            problems = []
            for mirror in mirrors:
                try:
                    download(mirror.rstrip("/") + "/" + gz_name, staging, gz_name)
                    break
                except Exception as exc:  # noqa: BLE001 - urllib, HTTP and torchvision errors alike: try the next mirror
                    problems.append(f"{mirror}: {' '.join(str(exc).split()) or type(exc).__name__}")
            else:
                raise DataError(
                    f"could not download {spec.title}'s {gz_name} ({'; '.join(problems)}). "
                    f"Fix: check the internet connection; without internet, {OFFLINE.get(name, 'copy the four IDX files')}, "
                    "or pass --data-dir (or set DBA_DATA_DIR) to a folder holding the four IDX files."
                )
            load_verified(file, staging, None, spec)  # raises, naming the file and both checksums
            if on_file is not None:
                on_file(gz_name)
        final.mkdir(parents=True, exist_ok=True)
        for file in spec.files.values():
            os.replace(staging / (file.stem + ".gz"), final / (file.stem + ".gz"))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
