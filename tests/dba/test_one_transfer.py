"""A step moves all Gram matrices to the host at once (issue 12, part 3).

`DBA.step` used to search layer by layer: each Gram matrix copied to the CPU,
searched, and its kept indices copied back, two blocking transfers per layer
on a GPU. Now every Gram matrix is computed first and they cross together.
On the CPU that must change nothing: `reference_step` below is the old step,
kept verbatim, and the new one must match it bit for bit, subsets and weights.
The CUDA side (one device-to-host copy per step) is in tests/test_cuda.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dba_cli.dba import DBA, DBAConfig, engine
from dba_cli.dba.search import greedy_search, noise_rtol
from dba_cli.models import build_mlp

from .oracles import batch, mlp
from .test_engine import Scale

BATCH = 24
STEPS = 4


def reference_select(K: torch.Tensor, config: DBAConfig) -> tuple[torch.Tensor | None, int]:
    """The kept samples for one Gram matrix, as `DBA._select` chose them before this change."""
    rtol = noise_rtol(torch.finfo(K.dtype).eps)
    search_dtype = K.dtype if K.dtype in (torch.float32, torch.float64) else torch.float64
    mask = greedy_search(K.to(device="cpu", dtype=search_dtype).numpy(), config, rtol)
    size = int(mask.sum())
    if size == len(mask):
        return None, size
    return torch.from_numpy(np.flatnonzero(mask)).to(K.device), size


def reference_step(dba: DBA, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, int]]:
    """`DBA.step` as it was: Gram matrix, search and gradient one layer at a time."""
    for layer in (*dba._linear, *dba._generic):
        layer.clear_grads()
    loss_sum, batch_size, layers = dba._per_sample_gradients(inputs, targets)
    kept = {}
    with torch.no_grad():
        for layer in layers:
            subset, size = reference_select(layer.gram(), dba.config)
            divisor = size if dba.config.reduction == "mean" else batch_size
            layer.write_grads(subset, divisor)
            kept[layer.name] = size
    dba.optimizer.step()
    dba.steps += 1
    return loss_sum.detach() / batch_size, kept


class ToFloat64(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.double()


def build(kind: str) -> tuple[nn.Module, torch.dtype]:
    """A model and the dtype of its inputs."""
    torch.manual_seed(5)
    if kind == "build_mlp-float32":
        return build_mlp(hidden=(16, 12), activation="tanh", in_features=5, out_features=3, seed=0), torch.float32
    if kind == "build_mlp-float64":
        return build_mlp(hidden=(16,), in_features=5, out_features=3, seed=1).double(), torch.float64
    if kind == "generic-float64":
        model = nn.Sequential(nn.Linear(5, 6), nn.LayerNorm(6), nn.Tanh(), Scale(6), nn.Linear(6, 3))
        return model.double(), torch.float64
    if kind == "conv-float32":
        model = nn.Sequential(nn.Unflatten(1, (1, 5)), nn.Conv1d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(6, 3))
        return model, torch.float32
    if kind == "mixed-float32-float64":  # Gram matrices of two dtypes in one step
        return nn.Sequential(nn.Linear(5, 7), ToFloat64(), nn.Tanh(), nn.Linear(7, 3).double()), torch.float32
    if kind == "bfloat16":  # searched in float64, with bfloat16's tolerance
        return mlp((5, 8, 3), seed=6, dtype=torch.bfloat16), torch.bfloat16
    raise ValueError(kind)


MODELS = [
    "build_mlp-float32",
    "build_mlp-float64",
    "generic-float64",
    "conv-float32",
    "mixed-float32-float64",
    "bfloat16",
]
CONFIGS = {
    "variance-min1": DBAConfig(),
    "variance-min6": DBAConfig(min_size=6),
    "variance-min8-sum": DBAConfig(min_size=8, reduction="sum_over_batch"),
    "cosine-min4": DBAConfig(metric="cosine", direction="maximize", min_size=4),
    "cosine-sum": DBAConfig(metric="cosine", direction="maximize", reduction="sum_over_batch"),
    "snr-unbiased": DBAConfig(metric="snr", direction="maximize", unbiased=True, min_size=3, max_removals=9),
}


def twins(kind: str, config: DBAConfig) -> tuple[DBA, DBA, torch.dtype]:
    """Two DBAs on identical copies of one model, with momentum so that every step's gradient carries on."""
    a, dtype = build(kind)
    b, _ = build(kind)
    b.load_state_dict(a.state_dict())
    return (
        DBA(a, torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.9), config),
        DBA(b, torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9), config),
        dtype,
    )


@pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))
@pytest.mark.parametrize("kind", MODELS)
def test_steps_are_bit_identical_to_the_per_layer_search(kind, config):
    new, old, dtype = twins(kind, config)
    partial = 0
    for step in range(STEPS):
        x, y = batch(BATCH, seed=100 + step, dtype=dtype)
        result = new.step(x, y)
        loss, kept = reference_step(old, x, y)
        assert result.kept == kept, f"step {step}"
        assert torch.equal(result.loss, loss)
        for (name, p), q in zip(new.model.named_parameters(), old.model.parameters()):
            assert torch.equal(p.grad, q.grad), f"{name}.grad, step {step}"
            assert torch.equal(p, q), f"{name}, step {step}"
        partial += sum(size < BATCH for size in kept.values())
    if kind != "bfloat16":  # bfloat16's tolerance is wide: it may keep everything
        assert partial > 0, "the search never dropped a sample: this case tests nothing"


def test_a_cpu_step_views_every_gram_matrix_once_and_copies_none(monkeypatch):
    """One call per step that hands the search every layer's Gram matrix, as
    views of the matrices the step computed; nothing packed, pinned or CUDA."""

    def refuse(*args, **kwargs):
        raise AssertionError("a CPU step must not pack, copy to the host or use CUDA")

    monkeypatch.setattr(engine, "_pack_grams", refuse)
    monkeypatch.setattr(engine, "_copy_to_host", refuse)
    for name in ("Event", "current_stream", "synchronize", "Stream"):
        monkeypatch.setattr(torch.cuda, name, refuse)
    empty = torch.empty

    def unpinned_empty(*args, **kwargs):
        if kwargs.get("pin_memory"):
            refuse()
        return empty(*args, **kwargs)

    monkeypatch.setattr(torch, "empty", unpinned_empty)

    to_host, to_device = [], []
    real_to_host, real_to_device = engine._grams_to_host, engine._kept_to_device

    def spy_to_host(grams):
        arrays = real_to_host(grams)
        to_host.append((list(grams), arrays))
        return arrays

    def spy_to_device(masks, devices):
        selections = real_to_device(masks, devices)
        to_device.append((masks, selections))
        return selections

    monkeypatch.setattr(engine, "_grams_to_host", spy_to_host)
    monkeypatch.setattr(engine, "_kept_to_device", spy_to_device)

    model, dtype = build("generic-float64")
    dba = DBA(model, torch.optim.SGD(model.parameters(), lr=0.1), DBAConfig(min_size=6))
    assert len(dba.layer_names) == 4
    for step in range(3):
        x, y = batch(BATCH, seed=200 + step, dtype=dtype)
        expected = dba.layer_grams(x, y)  # the weights the step will see
        result = dba.step(x, y)
        assert len(to_host) == len(to_device) == step + 1  # once per step, for all layers together
        grams, arrays = to_host[-1]
        assert len(grams) == len(arrays) == len(dba.layer_names)
        for name, K, array in zip(dba.layer_names, grams, arrays):
            assert torch.equal(K, expected[name])
            assert array.dtype == np.float64 and array.shape == (BATCH, BATCH)
            assert np.shares_memory(array, K.numpy()), f"layer {name}: the search got a copy"
        masks, selections = to_device[-1]
        assert [size for _, size in selections] == [int(m.sum()) for m in masks] == list(result.kept.values())
        for mask, (subset, size) in zip(masks, selections):
            if subset is None:
                assert size == BATCH
            else:
                assert subset.tolist() == np.flatnonzero(mask).tolist()


@pytest.mark.parametrize(
    "dtypes",
    [
        (torch.float64,),
        (torch.float32,),
        (torch.float32, torch.float64, torch.float32),
        (torch.float16, torch.float32, torch.bfloat16, torch.float64, torch.float32),
    ],
    ids=["float64", "float32", "float32-float64", "five-dtypes"],
)
def test_the_packed_buffer_unpacks_to_every_matrix_bit_for_bit(dtypes):
    """The GPU path's packing, checked on the CPU: matrices of odd sizes and
    mixed dtypes in one byte buffer, each segment aligned to its item size and
    viewed in place, equal to the matrix cast to its search dtype bit for bit."""
    generator = torch.Generator().manual_seed(7)
    grams = []
    for i, dtype in enumerate(dtypes):
        n = 3 + 2 * i  # odd sizes: a float32 segment is not always a multiple of 8 bytes
        K = torch.randn(n, n, generator=generator, dtype=torch.float64)
        K[0, -1] = float("nan") if i % 2 else float("inf")  # non-finite values travel too
        grams.append(K.to(dtype))
    indices = list(range(len(grams)))[::-1]  # any subset, in any order
    packed, layout = engine._pack_grams(grams, indices)
    assert packed.dtype == torch.uint8 and packed.dim() == 1
    assert sorted(segment.index for segment in layout) == sorted(indices)
    end = 0
    for segment in sorted(layout, key=lambda s: s.offset):
        assert segment.offset == end  # no gaps, no overlaps
        assert segment.offset % segment.dtype.itemsize == 0
        end += segment.nbytes
    assert end == packed.numel()

    host = packed.clone()  # stands in for the copy to the host
    arrays = engine._unpack_grams(host, layout)
    for i in indices:
        expected = grams[i].to(torch.float32 if dtypes[i] == torch.float32 else torch.float64).numpy()
        assert arrays[i].dtype == expected.dtype and arrays[i].shape == expected.shape
        assert arrays[i].tobytes() == expected.tobytes()
        assert np.shares_memory(arrays[i], host.numpy())


def test_kept_indices_go_back_as_views_of_one_tensor():
    masks = [
        np.array([True, False, True, True]),
        np.ones(4, dtype=bool),
        np.array([False, False, True, False]),
    ]
    cpu = torch.device("cpu")
    selections = engine._kept_to_device(masks, [cpu] * 3)
    assert selections[1] == (None, 4)
    (first, first_size), (third, third_size) = selections[0], selections[2]
    assert (first.tolist(), first_size) == ([0, 2, 3], 3)
    assert (third.tolist(), third_size) == ([2], 1)
    assert first.dtype == third.dtype == torch.int64
    assert first.untyped_storage().data_ptr() == third.untyped_storage().data_ptr()
