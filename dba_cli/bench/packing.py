"""What packing buys: one real tuning grid trained unpacked and packed, and a packed step's GFLOP/s against this machine's peak.

`time_grids` trains the same planned runs (a family's tuning candidates) once
per pack size, each into its own fresh folder, through the same Executor and
runner a grid command uses, and checks that every packed run's result equals
the unpacked one's (losses, accuracies, subset: everything but timings and
provenance). `step_gflops` times packed SGD steps of the paper's MLP on
random data, with a large matmul in the same process as the peak to compare
with: what fraction of the machine a packed step uses.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..recipes.planned import PlannedRun
from ..results.reading import read_result
from ..run.execute import Executor, Reporter
from ..training.devices import synchronize

IGNORED = ("finished_at", "digest", "train_seconds", "eval_seconds", "pack_size", "device_name", "versions")


@dataclass
class GridTiming:
    pack: int
    seconds: float
    identical: bool | None  # None: the unpacked reference itself


def family_runs(runs: list[PlannedRun], family: str, count: int, epochs: int | None = None) -> list[PlannedRun]:
    """The first `count` runs of the family `family` (its method name's first part) in plan order; `epochs` shortens them."""
    chosen = [planned for planned in runs if planned.method_name.split("/")[0] == family][:count]
    if epochs is None:
        return chosen
    return [replace(planned, config=planned.config.model_copy(update={"epochs": epochs})) for planned in chosen]


def same_result(a: dict, b: dict) -> bool:
    """Whether two result documents hold the same training (timings, provenance and epoch seconds aside)."""
    def training(document: dict) -> tuple:
        kept = {k: v for k, v in document.items() if k not in IGNORED and k != "history"}
        epochs = [{k: v for k, v in record.items() if not k.endswith("_seconds")} for record in document["history"]]
        return kept, epochs

    return training(a) == training(b)


def time_grids(runs: list[PlannedRun], packs: list[int], runner_for, on_grid=None) -> list[GridTiming]:
    """Wall seconds of training `runs` at each pack size (the first is the reference), and whether results match it."""
    timings: list[GridTiming] = []
    with tempfile.TemporaryDirectory(prefix="dba-bench-pack-") as scratch:
        folders = []
        for pack in packs:
            folder = Path(scratch) / f"pack-{pack}"
            runner = runner_for()
            started = time.perf_counter()
            try:
                Executor(folder, runner, Reporter(), pack=pack).execute(runs)
            finally:
                runner.shutdown()
            seconds = time.perf_counter() - started
            folders.append(folder)
            identical = None
            if len(folders) > 1:
                identical = all(
                    same_result(read_result(folders[0] / p.key, inside=folders[0]), read_result(folder / p.key, inside=folder))
                    for p in runs
                )
            timings.append(GridTiming(pack, seconds, identical))
            if on_grid is not None:
                on_grid()
    return timings


def grid_table(timings: list[GridTiming], runs: int, jobs: int) -> str:
    from ..reports.markdown import markdown_table

    reference = timings[0].seconds
    rows = [
        [str(t.pack), f"{t.seconds:.1f}", f"{t.seconds / runs:.2f}", f"{reference / t.seconds:.2f}x",
         "reference" if t.identical is None else ("yes" if t.identical else "NO")]
        for t in timings
    ]
    header = ["pack", f"wall s ({runs} runs, {jobs} job(s))", "s per run", "speed-up", "results bit-identical"]
    return markdown_table(header, rows, "rrrrl")


def matmul_gflops(device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    """This device's fp32 matmul rate (GFLOP/s) at the current thread count: the peak a training step is held against."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def step_gflops(pack: int, device: torch.device, batch: int = 64, hidden: int = 512, steps: int = 50) -> float:
    """GFLOP/s of packed plain-SGD steps of `pack` 784-hidden-10 MLPs (forward, backward, update; 6 x batch x weights)."""
    from ..settings.run import RunConfig
    from ..training.packed import PackedOptimizer
    from ..training.packed_model import PackedMLP
    from ..models import build_mlp

    configs = [RunConfig(method="sgd", lr=0.01, momentum=0.9, hidden=[hidden], batch_size=batch, seed=s) for s in range(pack)]
    model = PackedMLP([build_mlp((hidden,), seed=s).to(device) for s in range(pack)])
    optimizer = PackedOptimizer(model.parameters(), configs, total_steps=steps)
    x = torch.randn(pack, batch, 784, device=device)
    y = torch.randint(0, 10, (pack, batch), device=device)

    def step() -> None:
        for param in model.parameters():
            param.grad = None
        losses = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction="none")
        losses.view(pack, batch).mean(dim=1).sum().backward()
        optimizer.step()

    for _ in range(3):
        step()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    weights = 784 * hidden + hidden * 10
    return 6 * batch * weights * pack * steps / (time.perf_counter() - started) / 1e9


def gflops_table(packs: list[int], device: torch.device, batch: int, rounds: int = 3) -> str:
    """Each pack's packed-step GFLOP/s beside the matmul peak measured right before it, both the best of `rounds`.

    The two are interleaved, round by round, so that a shared machine's slow
    spells hit both alike; best-of rather than median, since noise only slows.
    """
    from ..reports.markdown import markdown_table

    rows = []
    for pack in packs:
        peak = rate = 0.0
        for _ in range(rounds):
            peak = max(peak, matmul_gflops(device))
            rate = max(rate, step_gflops(pack, device, batch))
        rows.append([str(pack), f"{rate:.0f}", f"{peak:.0f}", f"{100 * rate / peak:.0f}%"])
    header = ["pack", f"SGD step GFLOP/s (batch {batch})", "2048² matmul GFLOP/s (peak)", "of peak"]
    return markdown_table(header, rows, "rrrr")
