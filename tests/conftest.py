import os
from pathlib import Path

import pytest

# Plain output in CliRunner tests, the same locally and in CI.
os.environ["NO_COLOR"] = "1"
os.environ["TERM"] = "dumb"
os.environ.pop("DBA_DATA_DIR", None)


@pytest.fixture(scope="session")
def mnist(tmp_path_factory):
    """The packaged, verified MNIST, loaded once per test session (cache in a temp folder)."""
    from dba_cli.data.loading import load_dataset

    return load_dataset(cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Never touch the user's real cache from tests; one run at a time unless a test asks for --jobs."""
    monkeypatch.setenv("DBA_CACHE_DIR", str(tmp_path / "dba-cache"))
    monkeypatch.setenv("DBA_JOBS", "1")  # the default (all cores) spawns workers: tests of --jobs say so
    monkeypatch.delenv("DBA_RAY_ADDRESS", raising=False)


SMALL_PROTOCOL = Path(__file__).resolve().parent / "small-protocol.yaml"


@pytest.fixture
def small_protocol(monkeypatch):
    """Studies under tests/small-protocol.yaml: the packaged rules with a budget and seed counts tiny runs can afford."""
    monkeypatch.setenv("DBA_PROTOCOL", str(SMALL_PROTOCOL))
    return SMALL_PROTOCOL


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
