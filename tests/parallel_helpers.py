"""Shared by the --jobs and --ray tests: comparing result files, finding a process's children."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# Timing and host fields: they differ between any two runs of the same config (the "timing and host fields aside");
# pack_size says how the run was trained (packed runs are bit-identical to alone: tests/test_packed.py).
VOLATILE = {"train_seconds", "eval_seconds", "finished_at", "digest", "ray_node", "pack_size"}


def without_timing(value):
    """A result document with every timing and host field removed, at any depth (history columns included)."""
    if isinstance(value, dict):
        return {key: without_timing(item) for key, item in value.items() if key not in VOLATILE}
    if isinstance(value, list):
        return [without_timing(item) for item in value]
    return value


def result_files(folder: Path) -> dict[str, dict]:
    """Every result file under `folder` (relative path -> document without timing)."""
    return {
        str(path.relative_to(folder)): without_timing(json.loads(path.read_text()))
        for path in sorted(folder.rglob("seed-*.json"))
    }


def children(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is `pid`, from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def dba_process(args: list[str], env: dict | None = None) -> subprocess.Popen:
    """`dba ARGS` as its own process group (as a shell starts a command), output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "dba_cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})}, start_new_session=True,
    )


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def kill_group(process: subprocess.Popen) -> None:
    """Clean up after a failed test: the command's whole process group."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
