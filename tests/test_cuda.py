"""CUDA behaviour; skipped on machines without a GPU (CI has none)."""

import copy

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from dba_cli.settings.run import run_config
from dba_cli.dba import DBA, DBAConfig
from dba_cli.training.train import train
from tests.dba.oracles import batch
from tests.dba.test_one_transfer import BATCH, build, reference_select

pytestmark = pytest.mark.cuda


def test_cuda_training_matches_cpu_closely(mnist):
    config = run_config(data="10-per-class", epochs=5, seed=0)
    cpu = train(config, mnist, torch.device("cpu"))
    gpu = train(config, mnist, torch.device("cuda"))
    assert gpu.device.startswith("cuda")
    assert gpu.subset_hash == cpu.subset_hash  # same subset and batch order on every device
    assert gpu.final_test_accuracy == pytest.approx(cpu.final_test_accuracy, abs=1.0)


# --- a DBA step copies to the host once (issue 12, part 3) ---


def device_to_host_copies(step):
    """step()'s result and the names of the device-to-host memcpys it made, from the profiler."""
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        result = step()
        torch.cuda.synchronize()
    return result, [event.name for event in prof.events() if "Memcpy DtoH" in event.name]


# Linear and LayerNorm layers only: their kernels give the same bits twice, so
# the subsets found before the step are the step's (cuDNN's convolution
# gradients may not be).
@pytest.mark.parametrize("kind", ["generic-float64", "mixed-float32-float64"])
def test_a_dba_step_copies_to_the_host_once(kind):
    """Every layer's Gram matrix in one pinned copy, and the kept subsets the
    per-layer search finds on those same (GPU-computed) matrices."""
    model, dtype = build(kind)
    model.cuda()
    config = DBAConfig(min_size=6)
    dba = DBA(model, torch.optim.SGD(model.parameters(), lr=0.1), config)
    dba.step(*(t.cuda() for t in batch(BATCH, seed=300, dtype=dtype)))  # warm-up: cuBLAS, numba, pinned pool
    x, y = (t.cuda() for t in batch(BATCH, seed=301, dtype=dtype))
    expected = {name: reference_select(K, config)[1] for name, K in dba.layer_grams(x, y).items()}
    assert min(expected.values()) < BATCH  # some indices travel back too
    result, copies = device_to_host_copies(lambda: dba.step(x, y))
    assert len(copies) == 1, copies
    assert "Pinned" in copies[0], copies  # into pinned memory, so it could be asynchronous
    assert result.kept == expected
    assert result.loss.device.type == "cuda"


@pytest.mark.parametrize(
    "config", [DBAConfig(min_size=8), DBAConfig(metric="cosine", direction="maximize", reduction="sum_over_batch")]
)
def test_dba_steps_on_cuda_match_cpu(config):
    cpu, dtype = build("generic-float64")
    gpu = copy.deepcopy(cpu).cuda()
    on_cpu = DBA(cpu, torch.optim.SGD(cpu.parameters(), lr=0.1, momentum=0.9), config)
    on_gpu = DBA(gpu, torch.optim.SGD(gpu.parameters(), lr=0.1, momentum=0.9), config)
    for step in range(3):
        x, y = batch(BATCH, seed=400 + step, dtype=dtype)
        kept = on_cpu.step(x, y).kept
        assert on_gpu.step(x.cuda(), y.cuda()).kept == kept, f"step {step}"
        for pc, pg in zip(cpu.parameters(), gpu.parameters()):
            torch.testing.assert_close(pg.cpu(), pc, rtol=1e-9, atol=1e-12)
