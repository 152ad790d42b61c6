import os

import pytest

# Plain output in CliRunner tests, the same locally and in CI.
os.environ["NO_COLOR"] = "1"
os.environ["TERM"] = "dumb"
os.environ.pop("DBA_DATA_DIR", None)


@pytest.fixture(scope="session")
def mnist(tmp_path_factory):
    """The packaged, verified MNIST, loaded once per test session (cache in a temp folder)."""
    from dba_cli.data.mnist import load_mnist

    return load_mnist(cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Never touch the user's real cache from tests."""
    monkeypatch.setenv("DBA_CACHE_DIR", str(tmp_path / "dba-cache"))


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
