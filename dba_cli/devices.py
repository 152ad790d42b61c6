"""Choosing the device: `auto` picks CUDA when present, asking for CUDA without one is an error."""

from __future__ import annotations

import torch

from .errors import DeviceError

DEVICE_HELP = "auto (CUDA when available, else CPU), cpu, cuda or cuda:N"


def resolve_device(name: str) -> torch.device:
    """Turn a user's device string into a usable torch.device, or raise DeviceError."""
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


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so that wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def out_of_memory_message(exc: BaseException) -> str | None:
    """A clear message for a device running out of memory, or None for any other error.

    torch raises torch.OutOfMemoryError for CUDA (and some other backends);
    a CPU allocation failure surfaces as a RuntimeError naming the bytes it
    could not allocate.
    """
    text = str(exc)
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text.lower():
        where = "the GPU" if "cuda" in text.lower() or isinstance(exc, torch.OutOfMemoryError) else "the device"
    elif isinstance(exc, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in text:
        where = "the CPU (RAM)"
    else:
        return None
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return (
        f"out of memory on {where} ({first[:160]}). Fix: a smaller --batch-size or hidden width, "
        "fewer runs at once on this device, or --device cpu. Finished runs are kept; rerun to continue."
    )
