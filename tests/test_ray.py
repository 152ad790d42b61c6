"""--ray: a grid on a real two-node Ray cluster on this machine (loopback only), a node lost mid-grid, bad addresses.

The cluster is Ray's own test harness (`ray.cluster_utils.Cluster`): each node
is a raylet process group of its own, started and stopped by these tests
(never `ray stop`, which would end every Ray process on the machine).
`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` with `node_ip_address="127.0.0.1"` keeps
every node address on loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import socket
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dba_cli.cli import app
from tests.parallel_helpers import dba_process, kill_group, result_files, wait_for
from tests.test_parallel import grid

# Read when Ray is imported: keep every node (and this driver) on 127.0.0.1, never the machine's network address.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

pytestmark = pytest.mark.slow  # a Ray cluster: `make test` runs them, `make test-fast` leaves them out

LOOPBACK = "127.0.0.1"
NODE = {"num_cpus": 1, "node_ip_address": LOOPBACK, "object_store_memory": 80 * 2**20}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head and a second node, 1 CPU each, on loopback; shut down (by the harness, per node) at the end."""
    os.environ["DBA_CACHE_DIR"] = str(tmp_path_factory.mktemp("ray-worker-cache"))  # the workers' numba cache
    # Ray's sessions and sockets: not the machine's /tmp/ray, and a short path (a socket's path holds at most 107
    # bytes, which pytest's own temporary folders exceed under pytest-xdist).
    ray_tmp = tempfile.mkdtemp(prefix="dba-ray-")
    os.environ["RAY_TMPDIR"] = ray_tmp
    started = Cluster(
        initialize_head=True,
        head_node_args={**NODE, "include_dashboard": False,
                        # a lost node is declared dead after about 2 s instead of the default 15 s or more
                        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 4}},
    )
    second = started.add_node(**NODE)
    started.wait_for_nodes()
    try:
        yield started, second
    finally:
        started.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.fixture(autouse=True)
def worker_cache(cluster, monkeypatch):
    monkeypatch.setenv("DBA_CACHE_DIR", os.environ["DBA_CACHE_DIR"])


def node_ids(results: Path) -> dict[str, str]:
    return {str(path.relative_to(results)): json.loads(path.read_text())["ray_node"] for path in results.rglob("seed-*.json")}


def test_a_grid_on_two_nodes_writes_the_files_a_serial_run_writes(cluster, tmp_path):
    if not os.environ.get("DBA_IN_LOOPBACK_NAMESPACE") and loopback_namespace_works():
        pytest.skip("runs inside a loopback-only network namespace instead, a stricter run of the same test "
                    "(test_the_ray_grid_passes_where_only_loopback_exists)")
    head_cluster, second = cluster
    recipe = grid(tmp_path, 4, 2)
    on_ray = CliRunner().invoke(app, ["reproduce", recipe, "--ray", head_cluster.address, "--results", str(tmp_path / "ray")])
    assert on_ray.exit_code == 0, on_ray.output
    assert "4 run(s) done" in on_ray.output
    assert not ray.is_initialized()  # the driver left the cluster; the cluster itself still runs
    serial = CliRunner().invoke(app, ["reproduce", recipe, "--jobs", "1", "--results", str(tmp_path / "serial")])
    assert serial.exit_code == 0, serial.output
    assert result_files(tmp_path / "ray") == result_files(tmp_path / "serial")
    nodes = node_ids(tmp_path / "ray")
    assert set(nodes.values()) == {head_cluster.head_node.node_id, second.node_id}  # both nodes trained runs
    counts = Counter("head" if node == head_cluster.head_node.node_id else "second" for node in nodes.values())
    print(f"\nray: 2 nodes (1 CPU each); runs per node: {dict(sorted(counts.items()))}; files equal to the serial run's")


def training_tasks_on(node) -> list[int]:
    """Ray worker processes of `node` now running a training task (Ray titles them ray::train_on_ray)."""
    raylet = node.all_processes["raylet"][0].process.pid
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if command.startswith(b"ray::train_on_ray") and parent == raylet:
            found.append(int(entry.name))
    return found


def test_a_node_lost_mid_grid_has_its_run_retried_and_every_run_is_written_once(cluster, tmp_path):
    head_cluster, _ = cluster
    third = head_cluster.add_node(**NODE)
    head_cluster.wait_for_nodes()
    results = tmp_path / "r"
    process = dba_process(
        ["reproduce", grid(tmp_path, 200, 3), "--methods", "sgd", "--ray", head_cluster.address, "--results", str(results)],
        {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"},
    )
    try:
        wait_for(lambda: training_tasks_on(third), 120, "a run training on the third node")
        head_cluster.remove_node(third, allow_graceful=False)  # its first run, in mid-training: none finished there
        stdout, stderr = process.communicate(timeout=240)
    finally:
        kill_group(process)
    assert process.returncode == 0, stderr
    assert "3 run(s) done" in stdout
    nodes = node_ids(results)
    assert sorted(nodes) == [f"grid/sgd/seed-{seed}.json" for seed in range(3)]  # each run once
    assert third.node_id not in nodes.values()  # the run it was training finished elsewhere: retried by Ray
    assert stderr.count("done: grid sgd") == 3  # and reported once
    names = {head_cluster.head_node.node_id: "head"}
    counts = Counter(names.get(node, "second") for node in nodes.values())
    print(f"\nray: third node removed while training a run; all 3 runs written once; runs per node: {dict(sorted(counts.items()))}")


def test_an_unreachable_address_fails_fast_and_writes_nothing(tmp_path):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    result = CliRunner().invoke(app, ["reproduce", grid(tmp_path, 2, 1), "--ray", f"{LOOPBACK}:{port}", "--results", str(tmp_path / "r")])
    assert time.monotonic() - started < 30
    assert result.exit_code == 2, result.output
    assert "no Ray cluster answers there" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_ray_not_installed_is_one_line_naming_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where Ray is not installed
    result = CliRunner().invoke(app, ["reproduce", grid(tmp_path, 2, 1), "--ray", "auto", "--results", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert "pip install 'dba-cli[ray]'" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_a_driver_joining_a_loopback_cluster_presents_itself_at_127_0_0_1(cluster):
    """Ray would pick this machine's external address for the driver; against a loopback cluster we give it 127.0.0.1."""
    from dba_cli.run.ray_runner import join_cluster, node_address

    head_cluster, _ = cluster
    assert node_address(head_cluster.address) == LOOPBACK and node_address("auto") is None
    assert node_address("10.1.2.3:6379") is None  # a real cluster: Ray's own choice
    join_cluster(ray, head_cluster.address)
    try:
        assert ray._private.worker.global_worker.node.node_ip_address == LOOPBACK
    finally:
        ray.shutdown()


def loopback_namespace_works() -> bool:
    """Whether this process may make a network namespace with only the loopback device (root, Linux)."""
    import shutil as which
    import subprocess

    if not (which.which("unshare") and which.which("ip")):
        return False
    probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, timeout=30)
    return probe.returncode == 0


def test_the_ray_grid_passes_where_only_loopback_exists():
    """The two-node grid again, in a network namespace whose only device is loopback: nothing reaches past it."""
    import subprocess

    if os.environ.get("DBA_IN_LOOPBACK_NAMESPACE"):
        pytest.skip("already inside the namespace")
    if not loopback_namespace_works():
        pytest.skip("no network namespaces here (needs root and unshare)")
    env = {**os.environ, "DBA_IN_LOOPBACK_NAMESPACE": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    test = "tests/test_ray.py::test_a_grid_on_two_nodes_writes_the_files_a_serial_run_writes"
    command = f"ip link set lo up && exec {sys.executable} -m pytest -q -p no:cacheprovider -p no:xdist {test}"
    outcome = subprocess.run(["unshare", "-n", "sh", "-c", command], capture_output=True, text=True, timeout=300,
                             cwd=Path(__file__).resolve().parent.parent, env=env)
    assert outcome.returncode == 0, outcome.stdout[-3000:] + outcome.stderr[-3000:]
    assert "1 passed" in outcome.stdout
