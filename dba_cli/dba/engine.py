"""The DBA training step: per layer, keep the samples whose gradients best
improve the metric, and let the base optimizer step on their gradient.

    dba = DBA(model, torch.optim.SGD(model.parameters(), lr=0.1), DBAConfig(min_size=32))
    result = dba.step(inputs, targets)     # result.loss, result.kept

One step, top to bottom (`DBA.step`):
1. Forward pass with hooks on every nn.Linear and every plain nn.Conv2d that
   record its input a and output z.
2. The summed per-sample loss, differentiated with respect to all those
   outputs z in one `torch.autograd.grad`: sample i's part of the result is
   delta_i = dl_i/dz_i, the output gradient of sample i's own loss (the sum,
   not the mean, so nothing is scaled by 1/B). No weight gradient is formed
   for the whole batch. Only the other modules with parameters get per-sample
   gradients from torch.func (`gram_generic`), which costs a second forward
   and backward pass.
3. Every layer's Gram matrix K of the per-sample gradients, on the model's
   device (from a and delta: `gram_linear`, `gram_conv`; from torch.func's
   per-sample gradients: `gram_generic`); then per layer the greedy search on
   K (on the CPU, accumulating in float64) for the kept subset S; then each
   layer's gradient over S written into `.grad`: the mean over S, or the sum
   over S divided by B.
   On a GPU the Gram matrices reach the CPU in one transfer: all of them are
   cast to their search dtype and packed into one buffer on the device, copied
   into pinned host memory, and the step waits once for that copy. The kept
   indices of all layers go back in one non-blocking copy that nothing waits
   for (the gradient kernels queue behind it on the same stream). So a step
   synchronises with the GPU once, not twice per layer (once per device, for
   a model spread over several). On the CPU the search reads the Gram
   matrices in place: nothing is copied.
4. The base optimizer steps.

Each nn.Linear and nn.Conv2d (weight and bias) is one layer; each other
module with parameters of its own is one layer. Frozen parameters are left
alone. The model must treat samples independently (no BatchNorm in training
mode).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import DBAConfig
from .gram_generic import flatten_grads, gram, per_sample_grads
from .gram_conv import ConvSamples, conv_fast_path_supported
from .gram_linear import linear_gram, linear_subset_grads
from .search import greedy_search, noise_rtol

LossFn = Callable[..., torch.Tensor]
# "search": the kept samples are the search's; "random": the random-composition control, which keeps as many
# samples per layer as the search chose, drawn uniformly at random (it separates how many from which).
COMPOSITIONS = ("search", "random")


@dataclass(frozen=True)
class StepResult:
    """What one DBA step did."""

    loss: torch.Tensor  # mean loss over the whole batch, detached, 0-dim, on the model's device
    kept: dict[str, int]  # layer name -> size of its kept subset this step


class DBA:
    """Dynamic Batch Adaptation around a model and any torch.optim optimizer.

    loss_fn(outputs, targets, reduction="sum") must be the sum of per-sample
    losses (F.cross_entropy, F.mse_loss, ... all are).
    The layers are found once, here: parameters frozen or unfrozen later are
    not picked up. `step` replaces the `.grad` of every trained parameter.
    `composition="random"` is the random-composition control: the same search
    gives each layer's size, and that many samples are drawn at random (from a
    generator seeded by `seed`, part of the state).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        config: DBAConfig | None = None,
        loss_fn: LossFn = F.cross_entropy,
        composition: str = "search",
        seed: int = 0,
    ) -> None:
        if composition not in COMPOSITIONS:
            raise ValueError(f"composition: {composition!r} is not one of {', '.join(COMPOSITIONS)}")
        self.model = model
        self.optimizer = optimizer
        self.config = config if config is not None else DBAConfig()
        self.loss_fn = loss_fn
        self.steps = 0
        self.composition = composition
        self._composition_rng = torch.Generator().manual_seed(seed)  # the random control's draws (CPU)
        self._linear, self._conv, self._generic = _find_layers(model)

    @property
    def layer_names(self) -> list[str]:
        """The layers DBA selects samples for: the nn.Linear ones, the nn.Conv2d ones, then the others."""
        return [layer.name for layer in (*self._linear, *self._conv, *self._generic)]

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepResult:
        """One DBA training step on a batch (the module docstring's steps 1 to 4)."""
        for layer in (*self._linear, *self._conv, *self._generic):
            layer.clear_grads()  # no gradient survives from an earlier step, even one that failed
        loss_sum, batch, layers = self._per_sample_gradients(inputs, targets)  # steps 1 and 2
        kept = {}
        with torch.no_grad():  # step 3
            selections = self._select_all([layer.gram() for layer in layers])
            for layer, (subset, size) in zip(layers, selections):
                divisor = size if self.config.reduction == "mean" else batch
                layer.write_grads(subset, divisor)
                kept[layer.name] = size
        self.optimizer.step()  # step 4
        self.steps += 1
        return StepResult(loss=loss_sum.detach() / batch, kept=kept)

    def layer_grams(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each layer's Gram matrix of per-sample gradients for this batch; no search, no step."""
        _, _, layers = self._per_sample_gradients(inputs, targets)
        with torch.no_grad():
            return {layer.name: layer.gram() for layer in layers}

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        """The optimizer's state and DBA's own (config, step count); the model's weights are not included."""
        state = {"optimizer": self.optimizer.state_dict(), "config": asdict(self.config), "steps": self.steps}
        if self.composition != "search":
            state["composition"] = {"kind": self.composition, "rng": self._composition_rng.get_state()}
        return state

    def load_state_dict(self, state: dict) -> None:
        if state["config"] != asdict(self.config):
            raise ValueError(
                f"the checkpoint was saved with DBAConfig({state['config']}), this DBA has {self.config}; "
                "build the DBA with the checkpoint's config to resume"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = int(state["steps"])
        if self.composition != "search":
            self._composition_rng.set_state(state["composition"]["rng"])

    # --- the parts of a step ---

    def _per_sample_gradients(
        self, inputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, int, list[_LinearGrads | _ConvGrads | _GenericGrads]]:
        """Forward, summed loss, and what each layer needs for its per-sample gradients."""
        outputs, captured = self._forward_with_capture(inputs)
        loss_sum = self.loss_fn(outputs, targets, reduction="sum")
        batch = outputs.shape[0]
        layers: list[_LinearGrads | _ConvGrads | _GenericGrads] = []
        fast = [*self._linear, *self._conv]
        if fast:
            outs = [captured[layer.name][1] for layer in fast]
            deltas = torch.autograd.grad(loss_sum, outs, allow_unused=True, materialize_grads=True)
            delta = {layer.name: d for layer, d in zip(fast, deltas)}
            for layer in self._linear:
                layers.append(_LinearGrads(layer, captured[layer.name][0], delta[layer.name]))
            for layer in self._conv:
                samples = ConvSamples(
                    layer.module, captured[layer.name][0], delta[layer.name], layer.train_weight, layer.train_bias
                )
                layers.append(_ConvGrads(layer, samples))
        if self._generic:
            names = [name for layer in self._generic for name in layer.params]
            grads = per_sample_grads(self.model, names, inputs, targets, self.loss_fn)
            for layer in self._generic:
                layers.append(_GenericGrads(layer, flatten_grads(grads, layer.params)))
        return loss_sum, batch, layers

    def _forward_with_capture(self, inputs: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The model's outputs, and each fast-path layer's (input, output) from this forward pass.

        The hooks live only for this call, so none is left behind on error.
        """
        captured: dict[str, tuple[torch.Tensor, torch.Tensor, int]] = {}

        def recorder(name: str):
            def hook(module, args, kwargs, output):
                if name in captured:
                    raise RuntimeError(
                        f"{_kind(module)} {name!r} ran twice in one forward pass; DBA's per-layer "
                        f"gradients need each {_kind(module)} to run once"
                    )
                a = args[0] if args else kwargs["input"]
                captured[name] = (a.detach(), output, output._version)

            return hook

        fast = [*self._linear, *self._conv]
        handles = [layer.module.register_forward_hook(recorder(layer.name), with_kwargs=True) for layer in fast]
        try:
            outputs = self.model(inputs)
        finally:
            for handle in handles:
                handle.remove()
        for layer in fast:
            if layer.name not in captured:
                raise RuntimeError(
                    f"{_kind(layer.module)} {layer.name!r} did not run in the forward pass, so DBA cannot give "
                    "it a gradient; freeze its parameters (requires_grad=False) before building the DBA"
                )
            _, output, version = captured[layer.name]
            if output._version != version:
                raise RuntimeError(
                    f"the output of {_kind(layer.module)} {layer.name!r} was modified in place (e.g. by "
                    "ReLU(inplace=True)); DBA needs it intact: use the out-of-place version"
                )
        return outputs, {name: (a, z) for name, (a, z, _) in captured.items()}

    def _select_all(self, grams: list[torch.Tensor]) -> list[tuple[torch.Tensor | None, int]]:
        """The kept samples for each Gram matrix K: (indices on K's device, or None for all; count).

        All the matrices cross to the CPU together and all the indices come
        back together (`_grams_to_host`, `_kept_to_device`): on a GPU, one
        wait per step instead of two per layer. Each K's search tolerance comes
        from K's own dtype (the precision it was computed in), not from the
        dtype it is searched in.
        """
        masks = [
            greedy_search(host, self.config, noise_rtol(torch.finfo(K.dtype).eps))
            for K, host in zip(grams, _grams_to_host(grams))
        ]
        if self.composition == "random":
            masks = [self._random_mask(len(mask), int(mask.sum())) for mask in masks]
        return _kept_to_device(masks, [K.device for K in grams])


    def _random_mask(self, batch: int, size: int) -> np.ndarray:
        """`size` of `batch` samples, uniformly at random: the control's composition for a size the search chose."""
        mask = np.zeros(batch, dtype=bool)
        mask[torch.randperm(batch, generator=self._composition_rng)[:size].numpy()] = True
        return mask


# --- moving Gram matrices and kept indices between the device and the host ---


@dataclass(frozen=True)
class _Segment:
    """Where one Gram matrix lies in a packed byte buffer."""

    index: int  # position in the list of Gram matrices
    dtype: torch.dtype  # its search dtype
    shape: tuple[int, ...]
    offset: int  # in bytes, a multiple of dtype's item size
    nbytes: int


def _search_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the search reads K in: float32 and float64 as they are, anything else as float64."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float64


def _pack_grams(grams: list[torch.Tensor], indices: list[int]) -> tuple[torch.Tensor, list[_Segment]]:
    """grams[i] for i in `indices`, cast to their search dtypes, as one flat uint8 tensor on their device.

    Bytes, so that matrices of different dtypes still travel in one copy. The
    widest item size goes first: every segment then starts at a multiple of
    its own item size, and `_unpack_grams` can view it in place.
    """
    cast = {i: grams[i].to(_search_dtype(grams[i].dtype)) for i in indices}
    order = sorted(indices, key=lambda i: -cast[i].element_size())  # stable: ties keep layer order
    parts, layout, offset = [], [], 0
    for i in order:
        K = cast[i]
        nbytes = K.numel() * K.element_size()
        parts.append(K.reshape(-1).view(torch.uint8))
        layout.append(_Segment(i, K.dtype, tuple(K.shape), offset, nbytes))
        offset += nbytes
    packed = parts[0] if len(parts) == 1 else torch.cat(parts)
    return packed, layout


def _unpack_grams(host: torch.Tensor, layout: list[_Segment]) -> dict[int, np.ndarray]:
    """{index: numpy view of that Gram matrix} in a packed buffer on the CPU; nothing is copied."""
    return {
        segment.index: host[segment.offset : segment.offset + segment.nbytes]
        .view(segment.dtype)
        .view(segment.shape)
        .numpy()
        for segment in layout
    }


def _copy_to_host(packed: torch.Tensor) -> torch.Tensor:
    """One device tensor copied to the CPU, returned once the copy is complete.

    On CUDA the copy goes into pinned memory (a copy into pageable memory is
    staged by the driver through a pinned buffer of its own, and blocks), is
    queued without blocking, and we then wait for it alone, with an event
    recorded right after it, not for the whole device. Other accelerators get
    one ordinary copy.
    """
    if packed.device.type != "cuda":
        return packed.cpu()
    host = torch.empty(packed.shape, dtype=packed.dtype, pin_memory=True)
    host.copy_(packed, non_blocking=True)
    copied = torch.cuda.Event()
    copied.record(torch.cuda.current_stream(packed.device))
    copied.synchronize()
    return host


def _grams_to_host(grams: list[torch.Tensor]) -> list[np.ndarray]:
    """Each Gram matrix as a numpy array in its search dtype, with one copy per device they live on.

    On the CPU the arrays are K itself (or its cast, for dtypes other than
    float32 and float64): the search then reads exactly what it read when it
    was called layer by layer. Elsewhere the matrices are packed on the device
    (`_pack_grams`), copied once (`_copy_to_host`) and viewed in place. An
    ordinary model lives on one device, so that is one transfer per step.
    """
    by_device: dict[torch.device, list[int]] = {}
    for i, K in enumerate(grams):
        by_device.setdefault(K.device, []).append(i)
    host: dict[int, np.ndarray] = {}
    for device, indices in by_device.items():
        if device.type == "cpu":
            host.update({i: grams[i].to(_search_dtype(grams[i].dtype)).numpy() for i in indices})
        else:
            packed, layout = _pack_grams(grams, indices)
            host.update(_unpack_grams(_copy_to_host(packed), layout))
    return [host[i] for i in range(len(grams))]


def _kept_to_device(masks: list[np.ndarray], devices: list[torch.device]) -> list[tuple[torch.Tensor | None, int]]:
    """(indices of mask's kept samples on its device, or None when all are kept; count) per mask.

    The indices of all layers on one device travel in one tensor, split there
    into views. On CUDA they are staged in pinned memory and copied without
    blocking: nothing on the host needs them, the kernels that use them are
    queued on the same stream after the copy, and PyTorch's pinned-memory
    allocator does not reuse the staging buffer until the copy is done.
    """
    selections: list[tuple[torch.Tensor | None, int] | None] = [None] * len(masks)
    partial: dict[torch.device, list[int]] = {}
    for i, mask in enumerate(masks):
        size = int(mask.sum())
        if size == len(mask):
            selections[i] = (None, size)
        else:
            partial.setdefault(devices[i], []).append(i)
    for device, indices in partial.items():
        kept = [np.flatnonzero(masks[i]) for i in indices]
        flat = np.concatenate(kept)
        if device.type == "cuda":
            staging = torch.empty(len(flat), dtype=torch.int64, pin_memory=True)
            staging.numpy()[:] = flat
            on_device = staging.to(device, non_blocking=True)
        else:
            on_device = torch.from_numpy(flat).to(device)
        for i, part in zip(indices, on_device.split([len(k) for k in kept])):
            selections[i] = (part, len(part))
    return selections


# --- layers ---


@dataclass
class _FastLayer:
    """An nn.Linear or a plain nn.Conv2d: a weight and an optional bias, from its input and output gradients."""

    name: str
    module: nn.Linear | nn.Conv2d

    @property
    def train_weight(self) -> bool:
        return self.module.weight.requires_grad

    @property
    def train_bias(self) -> bool:
        return self.module.bias is not None and self.module.bias.requires_grad

    def clear_grads(self) -> None:
        self.module.weight.grad = None
        if self.module.bias is not None:
            self.module.bias.grad = None


@dataclass
class _GenericLayer:
    name: str
    params: dict[str, nn.Parameter]  # qualified name -> parameter

    def clear_grads(self) -> None:
        for p in self.params.values():
            p.grad = None


@dataclass
class _LinearGrads:
    """A Linear's input A and per-sample output gradients Delta for one batch."""

    layer: _FastLayer
    inputs: torch.Tensor
    output_grads: torch.Tensor

    @property
    def name(self) -> str:
        return self.layer.name

    def gram(self) -> torch.Tensor:
        return linear_gram(self.inputs, self.output_grads, self.layer.train_weight, self.layer.train_bias)

    def write_grads(self, kept: torch.Tensor | None, divisor: float) -> None:
        weight, bias = linear_subset_grads(self.inputs, self.output_grads, kept, divisor, self.layer.train_weight)
        if self.layer.train_weight:
            self.layer.module.weight.grad = weight
        if self.layer.train_bias:
            self.layer.module.bias.grad = bias


@dataclass
class _ConvGrads:
    """An nn.Conv2d's input and per-sample output gradients for one batch (`gram_conv`)."""

    layer: _FastLayer
    samples: ConvSamples

    @property
    def name(self) -> str:
        return self.layer.name

    def gram(self) -> torch.Tensor:
        return self.samples.gram()

    def write_grads(self, kept: torch.Tensor | None, divisor: float) -> None:
        weight, bias = self.samples.subset_grads(kept, divisor)
        if self.layer.train_weight:
            self.layer.module.weight.grad = weight
        if self.layer.train_bias:
            self.layer.module.bias.grad = bias


@dataclass
class _GenericGrads:
    """Another module's flattened per-sample gradients G (B x P) for one batch."""

    layer: _GenericLayer
    flat: torch.Tensor

    @property
    def name(self) -> str:
        return self.layer.name

    def gram(self) -> torch.Tensor:
        return gram(self.flat)

    def write_grads(self, kept: torch.Tensor | None, divisor: float) -> None:
        rows = self.flat if kept is None else self.flat[kept]
        total = rows.sum(dim=0) / divisor
        for p, grad in zip(self.layer.params.values(), total.split([p.numel() for p in self.layer.params.values()])):
            p.grad = grad.view_as(p).clone()


def _kind(module: nn.Module) -> str:
    return "nn.Linear" if isinstance(module, nn.Linear) else "nn.Conv2d"


def _find_layers(model: nn.Module) -> tuple[list[_FastLayer], list[_FastLayer], list[_GenericLayer]]:
    """The model's layers: nn.Linear and nn.Conv2d on their fast paths, then other modules with
    trainable parameters of their own (`conv_fast_path_supported` says which convolutions)."""
    linear: list[_FastLayer] = []
    conv: list[_FastLayer] = []
    generic: list[_GenericLayer] = []
    owner: dict[int, str] = {}
    for name, module in model.named_modules():
        label = name or "(model)"
        params = {pname: p for pname, p in module.named_parameters(recurse=False) if p.requires_grad}
        if not params:
            continue
        for p in params.values():
            if id(p) in owner:
                raise ValueError(
                    f"modules {owner[id(p)]!r} and {label!r} share a parameter; DBA selects samples "
                    "per layer and needs every parameter in one layer"
                )
            owner[id(p)] = label
        if isinstance(module, nn.Linear) and type(module).forward is nn.Linear.forward:
            linear.append(_FastLayer(label, module))
        elif conv_fast_path_supported(module):
            conv.append(_FastLayer(label, module))
        else:
            qualified = {f"{name}.{pname}" if name else pname: p for pname, p in params.items()}
            generic.append(_GenericLayer(label, qualified))
    return linear, conv, generic
