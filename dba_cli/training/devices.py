"""Choosing the device: `auto` picks CUDA when present, asking for CUDA without one is an error.

torch is imported by the functions that use it: `DEVICE_HELP` is read by `--help`.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING

from ..errors import ConfigError, DeviceError

if TYPE_CHECKING:
    import torch

DEVICE_HELP = "auto (CUDA when available, else CPU), cpu, cuda or cuda:N"


def resolve_device(name: str) -> torch.device:
    """Turn a user's device string into a usable torch.device, or raise DeviceError."""
    import torch

    value = name.strip().lower()
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if value == "cpu":
        return torch.device("cpu")
    if value == "cuda" or value.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device: {name!r} was requested but no CUDA GPU is available "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}). "
                "Fix: use --device cpu or --device auto."
            )
        device = torch.device(value)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device: {name!r} does not exist; this machine has {torch.cuda.device_count()} CUDA device(s)."
            )
        return device
    raise DeviceError(f"device: {name!r} is not a device. Use {DEVICE_HELP}.")


def set_threads(threads: int) -> None:
    """Use exactly `threads` torch threads (intra-op) in this process.

    torch's default is one per core, which oversubscribes a machine already
    running other work (measured: 15x slower under load) and changes the last
    digits of results, since reductions are split differently. So every
    command sets it explicitly and every result records it.
    """
    import torch

    if threads < 1:
        raise ConfigError(f"--threads: {threads} must be at least 1.")
    torch.set_num_threads(threads)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so that wall-clock timings are honest."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def out_of_memory_message(exc: BaseException) -> str | None:
    """A clear message for a device running out of memory, or None for any other error.

    torch raises torch.OutOfMemoryError for CUDA (and some other backends);
    a CPU allocation failure surfaces as a RuntimeError from the allocator
    ("[enforce fail at alloc_cpu.cpp:..] . DefaultCPUAllocator: can't allocate
    memory: you tried to allocate N bytes. Error code 12 ..."), which is
    reduced here to the size that did not fit.
    """
    torch = sys.modules.get("torch")  # not loaded: the error cannot be torch's, and loading it costs seconds
    torch_oom = torch is not None and isinstance(exc, torch.OutOfMemoryError)
    text = str(exc)
    cpu = isinstance(exc, RuntimeError) and "DefaultCPUAllocator" in text
    if not cpu and not (torch_oom or "out of memory" in text.lower()):
        return None
    size = re.search(r"allocate (?:memory: you tried to allocate )?(\d+) bytes", text) or re.search(
        r"allocate (\d+(?:\.\d+)? [KMGT]i?B)", text
    )
    wanted = size.group(1) if size else None
    if wanted and wanted.isdigit():
        wanted = readable_bytes(int(wanted))
    what = f"could not allocate {wanted}" if wanted else "an allocation failed"
    if cpu:
        where, fix = "the CPU (RAM)", "a smaller --batch-size or hidden width, or fewer runs at once"
    else:
        where = "the GPU" if "cuda" in text.lower() or torch_oom else "the device"
        fix = "a smaller --batch-size or hidden width, fewer runs at once on this device, or --device cpu"
    return f"out of memory on {where} ({what}). Fix: {fix}. Finished runs are kept; rerun to continue."


def readable_bytes(count: int) -> str:
    """12544000000000 -> '11.4 TiB'."""
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} bytes"
