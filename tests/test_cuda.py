"""CUDA behaviour; skipped on machines without a GPU (CI has none)."""

import pytest
import torch

from dba_cli.config import run_config
from dba_cli.train import train

pytestmark = pytest.mark.cuda


def test_cuda_training_matches_cpu_closely(mnist):
    config = run_config(data="10-per-class", epochs=5, seed=0)
    cpu = train(config, mnist, torch.device("cpu"))
    gpu = train(config, mnist, torch.device("cuda"))
    assert gpu.device.startswith("cuda")
    assert gpu.subset_hash == cpu.subset_hash  # same subset and batch order on every device
    assert gpu.final_test_accuracy == pytest.approx(cpu.final_test_accuracy, abs=1.0)
