"""Runs as Ray tasks on a cluster (`dba reproduce --ray ADDRESS`): Ray schedules, retries and moves the data.

Each run is one task with its resources (`--threads` CPUs, or a share of a
GPU). The task returns the result document and this process, the driver,
writes it into the results folder, so workers need no shared filesystem (and
write no checkpoints: a task lost with its node is retried from its start by
Ray, `max_retries`). A run is written once, when its task's result arrives,
so a retried task never makes a second file. Workers need `dba-cli[ray]`
installed (the same version: the code hash in each result says which code
trained it) and read MNIST from their own installed package.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import ConfigError, DBAError
from ..settings.validation import excerpt
from ..training.devices import set_threads
from .runners import OnEpoch, RunFailed, failure_from, train_pack_run, train_run

if TYPE_CHECKING:
    from ..recipes.planned import PlannedRun

INSTALL_HINT = "pip install 'dba-cli[ray]'"
TASK_RETRIES = 3  # a task whose worker or node dies is run again, up to this many times
CONNECT_SECONDS = 10.0


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"--ray needs Ray, which is not installed here. Fix: {INSTALL_HINT} (and the same on every node of the cluster)."
        ) from None
    return ray


HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def parse_address(address: str) -> tuple[str, int]:
    """HOST:PORT of a head node, checked: a port in 1..65535, a host that is an IP address or a valid host name."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(
            f"--ray {excerpt(address)}: expected HOST:PORT of the cluster's head node with a port from 1 to 65535 "
            "(e.g. 10.0.0.5:6379), or 'auto'."
        )
    try:
        ipaddress.ip_address(host)
    except ValueError:
        labels = host.rstrip(".").split(".")
        if len(host) > 253 or not all(HOST_LABEL.fullmatch(label) for label in labels):
            raise ConfigError(
                f"--ray {excerpt(address)}: {excerpt(host)} is neither an IP address nor a host name "
                "(labels of 1 to 63 letters, digits or '-', 253 characters at most)."
            ) from None
    return host, int(port)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: a cluster on this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_reachable(address: str) -> None:
    """A HOST:PORT address must accept a connection within CONNECT_SECONDS, else a clear error before anything trains."""
    if address == "auto" or "://" in address:
        return
    host, port = parse_address(address)
    try:
        socket.create_connection((host, port), timeout=CONNECT_SECONDS).close()
    except (OSError, UnicodeError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (getattr(exc, "strerror", None) or str(exc))
        raise ConfigError(
            f"--ray {address}: no Ray cluster answers there ({reason}). Fix: start one (ray start --head) "
            "or give the head node's address; nothing was trained."
        ) from None


def node_address(address: str) -> str | None:
    """The address this driver presents to the cluster: 127.0.0.1 for a cluster on loopback, else Ray's own choice.

    Ray otherwise picks the machine's external address, and a driver on a
    loopback cluster would then reach (or be reached) past this machine.
    """
    if address == "auto" or "://" in address:
        return None
    host, _ = parse_address(address)
    return "127.0.0.1" if is_loopback(host) else None


JOIN_SECONDS = 30.0


def join_cluster(ray, address: str) -> None:
    """`ray.init` on the address, given up after JOIN_SECONDS with a clear error (Ray itself would retry for minutes).

    Ray's client retries an address that accepts connections but is not (or not
    fully) a Ray head, or one it resolves to an unreachable interface, for many
    minutes; the join runs in a daemon thread so that a stuck one cannot keep
    this process alive.
    """
    outcome: dict = {}

    options: dict = {}
    if (node := node_address(address)) is not None:
        options["_node_ip_address"] = node

    def join() -> None:
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, **options)
            outcome["joined"] = True
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc

    thread = threading.Thread(target=join, name="ray-join", daemon=True)
    thread.start()
    thread.join(JOIN_SECONDS)
    if outcome.get("joined"):
        return
    exc = outcome.get("error")
    reason = f"no answer within {JOIN_SECONDS:.0f} s" if exc is None else (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    raise ConfigError(
        f"--ray {address}: could not join the Ray cluster ({reason}). Fix: check the address "
        "(the head node's HOST:PORT, printed by ray start --head) or use 'auto' on a cluster node; nothing was trained."
    )


class RayRunner:
    """Trains each submitted run as a Ray task on the cluster at `address`."""

    shares_files = False

    def __init__(self, address: str, threads: int, device: torch.device, jobs: int | None = None) -> None:
        ray = import_ray()
        check_reachable(address)
        join_cluster(ray, address)
        self.ray = ray
        resources = ray.cluster_resources()
        self.slots = jobs or max(1, int(resources.get("CPU", 1) // threads))
        # SPREAD: a sweep's runs go to every node, not first to fill the driver's own (Ray's default).
        options: dict = {"num_cpus": threads, "max_retries": TASK_RETRIES, "retry_exceptions": False, "scheduling_strategy": "SPREAD"}
        if device.type == "cuda":
            gpus = resources.get("GPU", 0)
            if not gpus:
                ray.shutdown()
                raise ConfigError(f"--device cuda: the Ray cluster at {address} has no GPU. Fix: --device cpu, or add GPU nodes.")
            options["num_gpus"] = min(1.0, gpus / self.slots)  # runs share the GPUs evenly
        self.task = ray.remote(**options)(train_on_ray)
        self.device = str(device)
        self.threads = threads
        self.in_flight: list = []

    def open(self, on_epoch: OnEpoch) -> None:
        pass  # epochs are not streamed back from the cluster; each run reports when it ends

    def cap(self, runs: int) -> str | None:
        return None  # tasks are only submitted as slots free up: no process starts for a run that is not there

    def submit(self, planned: PlannedRun, checkpoint: Path | None) -> Future:
        return self._submit(planned)

    def submit_pack(self, runs: list[PlannedRun]) -> Future:
        """A pack is one task (training/packed.py): it returns its runs' documents."""
        return self._submit(runs)

    def _submit(self, runs: PlannedRun | list[PlannedRun]) -> Future:
        ref = self.task.remote(runs, self.device, self.threads)
        self.in_flight.append(ref)
        result: Future = Future()

        def settle(done: Future) -> None:
            self.in_flight.remove(ref)
            try:
                result.set_result(done.result())
            except BaseException as exc:  # noqa: BLE001 - translated into what a local run would raise
                result.set_exception(self.translate(exc))

        ref.future().add_done_callback(settle)
        return result

    def translate(self, exc: BaseException) -> BaseException:
        """A task's error as a local run would raise it: the user error or RunFailed inside, or a lost task as RunFailed."""
        exceptions = self.ray.exceptions
        if isinstance(exc, exceptions.RayTaskError):
            cause = exc.cause
            if isinstance(cause, (DBAError, RunFailed)):
                return cause
            return RunFailed(str(exc))
        if isinstance(exc, exceptions.RayError):
            return RunFailed(f"{type(exc).__name__} (after {TASK_RETRIES} retries): {exc}")
        return exc

    def poll(self) -> None:
        pass

    def stop(self) -> None:
        for ref in list(self.in_flight):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone with its node
                pass
        self.shutdown()

    def shutdown(self) -> None:
        """Leave the cluster (it keeps running; only this driver disconnects)."""
        if self.ray.is_initialized():
            self.ray.shutdown()


def train_on_ray(planned: PlannedRun | list[PlannedRun], device: str, threads: int) -> dict | list[dict]:
    """One run (or a pack: a list) as a Ray task: train with the node's own copy of the data, return the document(s), node id added.

    The node's copy is its default one: packaged MNIST, or Fashion-MNIST where the node has it.
    """
    import ray

    try:
        set_threads(threads)
    except Exception as exc:  # noqa: BLE001 - sent to the driver as this run's failure
        raise failure_from(exc) from None
    node = ray.get_runtime_context().get_node_id()
    if isinstance(planned, list):
        documents = train_pack_run(planned, None, torch.device(device), lambda key, record: None)
        return [{**document, "ray_node": node} for document in documents]
    return {**train_run(planned, None, torch.device(device), lambda key, record: None, None), "ray_node": node}
