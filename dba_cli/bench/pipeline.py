"""How much faster is our tensor pipeline than the textbook torchvision one?

Both sides train the same 784-H-10 MLP (same initial weights, same SGD) for one
epoch of full MNIST. Ours indexes mini-batches out of one standardised tensor
already on the device; the reference is `torchvision.datasets.MNIST` with
`ToTensor()` and a shuffling `DataLoader` (PIL image and tensor per sample,
then collation). The two are interleaved in one process so that machine noise
hits both alike; we report medians and their ratio.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.datasets import FILES, PIXEL_MEAN, PIXEL_STD, Dataset
from ..data.loading import default_cache_dir, load_verified, resolve_data_dir
from ..models import build_mlp
from ..reports.markdown import markdown_table
from ..seeding import derive_seed
from ..settings.run import RunConfig, run_config
from ..training.devices import synchronize
from ..training.optim import Stepper
from ..training.train import prepare_data, train_epoch


# The reference pipelines: the literal one, and PyTorch's official MNIST
# example (examples/mnist), which also standardises the pixels as we do.
REFERENCES = {
    "torchvision ToTensor": False,
    "torchvision ToTensor+Normalize": True,
}


@dataclass
class PipelineTiming:
    """Seconds per training epoch, per pipeline, one entry per round."""

    seconds: dict[str, list[float]]
    num_workers: int
    batch_size: int
    hidden: int

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def ratio(self, name: str) -> float:
        """How many times slower `name` is than our pipeline."""
        return self.median(name) / self.median("ours")

    def table(self) -> str:
        rows = [
            [name, f"{self.median(name):.2f}", ", ".join(f"{v:.2f}" for v in values), f"{self.ratio(name):.2f}x"]
            for name, values in self.seconds.items()
        ]
        return "\n".join([
            f"one epoch of full-MNIST SGD, batch {self.batch_size}, 784-{self.hidden}-10 MLP, "
            f"DataLoader num_workers={self.num_workers}, {len(self.seconds['ours'])} rounds",
            "",
            markdown_table(["pipeline", "median s/epoch", "all rounds (s)", "time / ours"], rows, "lrlr"),
        ])


def write_torchvision_layout(root: Path, data_dir: Path | None) -> None:
    """Put verified, uncompressed IDX files where torchvision's MNIST looks (root/MNIST/raw)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    source = resolve_data_dir(data_dir)
    for spec in FILES.values():
        (raw / spec.stem).write_bytes(load_verified(spec, source, default_cache_dir()))


def epoch_ours(mnist: Dataset, config: RunConfig, device: torch.device) -> float:
    data = prepare_data(mnist, config, device)
    model = build_mlp(tuple(config.hidden), seed=config.seed).to(device)
    step = Stepper(model, config)
    generator = torch.Generator().manual_seed(derive_seed(config.seed, "batches"))
    synchronize(device)
    started = time.perf_counter()
    train_epoch(step, data, config.batch_size, generator)
    synchronize(device)
    return time.perf_counter() - started


def epoch_torchvision(
    root: Path, config: RunConfig, device: torch.device, num_workers: int, normalize: bool
) -> float:
    from torchvision import datasets, transforms

    steps = [transforms.ToTensor()]
    if normalize:
        steps.append(transforms.Normalize((PIXEL_MEAN,), (PIXEL_STD,)))
    dataset = datasets.MNIST(str(root), train=True, download=False, transform=transforms.Compose(steps))
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=True,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(config.seed),
    )
    model = build_mlp(tuple(config.hidden), seed=config.seed).to(device)
    step = Stepper(model, config)
    synchronize(device)
    started = time.perf_counter()
    for images, labels in loader:
        step(images.view(len(images), -1).to(device), labels.to(device))
    synchronize(device)
    return time.perf_counter() - started


def compare_pipelines(
    mnist: Dataset,
    device: torch.device,
    repeats: int = 3,
    batch_size: int = 64,
    hidden: int = 512,
    num_workers: int = 0,
    data_dir: Path | None = None,
    on_round=None,
) -> PipelineTiming:
    """Alternate one epoch of each pipeline `repeats` times; time the training epoch only."""
    config = run_config(data="full", method="sgd", lr=0.1, batch_size=batch_size, hidden=[hidden], epochs=1)
    timing = PipelineTiming({"ours": [], **{name: [] for name in REFERENCES}}, num_workers, batch_size, hidden)
    with tempfile.TemporaryDirectory(prefix="dba-torchvision-") as tmp:
        write_torchvision_layout(Path(tmp), data_dir)
        for _ in range(repeats):
            timing.seconds["ours"].append(epoch_ours(mnist, config, device))
            for name, normalize in REFERENCES.items():
                seconds = epoch_torchvision(Path(tmp), config, device, num_workers, normalize)
                timing.seconds[name].append(seconds)
            if on_round is not None:
                on_round()
    return timing
