"""The CNN's open lever (issue 30), measured: the first convolution's per-sample Gram matrix at batch 256, three ways.

    .venv/bin/python -m tests.hardening.measure_conv_gram

The DBA engine's path (dba/gram_conv.py, "materialised": each sample's weight
gradient as a product of its output gradients and unfolded patches, in cache-
sized blocks, then K = G G^T's lower triangle) against the grouped-convolution
form of the same per-sample gradients (one conv2d with groups=B, the samples'
output gradients as its kernels) and against F.unfold with one bmm. All three
give the same K (to float32 rounding, printed). Medians of 20 calls, one
thread, interleaved. Not a test (pytest does not collect it): docs/packing.md
quotes its figures.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from dba_cli.dba.gram_conv import ConvSamples

BATCH = 256


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(BATCH, 1, 28, 28)
    conv = torch.nn.Conv2d(1, 8, 5)
    d = torch.randn_like(conv(x))

    def engine() -> torch.Tensor:
        return ConvSamples(conv, x, d, True, True).gram()

    def grouped_conv() -> torch.Tensor:
        weights = F.conv2d(x.view(1, BATCH, 28, 28), d.reshape(BATCH * 8, 1, 24, 24), groups=BATCH).view(BATCH, 200)
        grads = torch.cat([weights, d.sum((2, 3))], 1)
        return grads @ grads.T

    def unfold_bmm() -> torch.Tensor:
        patches = F.unfold(x, 5)
        weights = torch.bmm(d.view(BATCH, 8, 576), patches.transpose(1, 2)).view(BATCH, 200)
        grads = torch.cat([weights, d.sum((2, 3))], 1)
        return grads @ grads.T

    ways = {"engine (materialised, blocked)": engine, "grouped convolution": grouped_conv, "F.unfold + bmm": unfold_bmm}
    reference = engine()
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(20):
        for name, way in ways.items():
            started = time.perf_counter()
            way()
            seconds[name].append(time.perf_counter() - started)
    print("| first convolution's K at batch 256 | median ms | x engine | max relative difference to the engine's K |")
    print("|---|---:|---:|---:|")
    base = statistics.median(seconds["engine (materialised, blocked)"])
    for name, way in ways.items():
        median = statistics.median(seconds[name])
        gap = ((way() - reference).abs().max() / reference.abs().max()).item()
        print(f"| {name} | {1e3 * median:.2f} | {median / base:.2f}x | {gap:.1e} |")


if __name__ == "__main__":
    main()
