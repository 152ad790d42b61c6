"""The DBA training step: per layer, keep the samples whose gradients best
improve the metric, and let the base optimizer step on their gradient.

    dba = DBA(model, torch.optim.SGD(model.parameters(), lr=0.1), DBAConfig(min_size=32))
    result = dba.step(inputs, targets)     # result.loss, result.kept

One step, top to bottom (`DBA.step`):
1. Forward pass with hooks on every nn.Linear that record its input a and
   output z.
2. The summed per-sample loss, differentiated with respect to each Linear's
   output z: row i of the result is delta_i = dl_i/dz_i, the output gradient of
   sample i's own loss (the sum, not the mean, so nothing is scaled by 1/B).
   No weight gradient is formed for the whole batch. Other modules with
   parameters get per-sample gradients from torch.func (`gram_generic`).
3. Per layer: the Gram matrix K of the per-sample gradients, the greedy search
   on K (on the CPU, in float64) for the kept subset S, and the layer's
   gradient over S written into `.grad`: the mean over S, or the sum over S
   divided by B.
4. The base optimizer steps.

Each nn.Linear (weight and bias) is one layer; each other module with
parameters of its own is one layer. Frozen parameters are left alone. The
model must treat samples independently (no BatchNorm in training mode).
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
from .gram_linear import linear_gram, linear_subset_grads
from .search import greedy_search, noise_rtol

LossFn = Callable[..., torch.Tensor]


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
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        config: DBAConfig | None = None,
        loss_fn: LossFn = F.cross_entropy,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.config = config if config is not None else DBAConfig()
        self.loss_fn = loss_fn
        self.steps = 0
        self._linear, self._generic = _find_layers(model)

    @property
    def layer_names(self) -> list[str]:
        """The layers DBA selects samples for: the nn.Linear ones, then the others."""
        return [layer.name for layer in self._linear] + [layer.name for layer in self._generic]

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepResult:
        """One DBA training step on a batch (the module docstring's steps 1 to 4)."""
        for layer in (*self._linear, *self._generic):
            layer.clear_grads()  # no gradient survives from an earlier step, even one that failed
        loss_sum, batch, layers = self._per_sample_gradients(inputs, targets)  # steps 1 and 2
        kept = {}
        with torch.no_grad():
            for layer in layers:  # step 3
                subset, size = self._select(layer.gram())
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
        return {"optimizer": self.optimizer.state_dict(), "config": asdict(self.config), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        if state["config"] != asdict(self.config):
            raise ValueError(
                f"the checkpoint was saved with DBAConfig({state['config']}), this DBA has {self.config}; "
                "build the DBA with the checkpoint's config to resume"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = int(state["steps"])

    # --- the parts of a step ---

    def _per_sample_gradients(
        self, inputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, int, list[_LinearGrads | _GenericGrads]]:
        """Forward, summed loss, and what each layer needs for its per-sample gradients."""
        outputs, captured = self._forward_with_capture(inputs)
        loss_sum = self.loss_fn(outputs, targets, reduction="sum")
        batch = outputs.shape[0]
        layers: list[_LinearGrads | _GenericGrads] = []
        if self._linear:
            outs = [captured[layer.name][1] for layer in self._linear]
            deltas = torch.autograd.grad(loss_sum, outs, allow_unused=True, materialize_grads=True)
            for layer, delta in zip(self._linear, deltas):
                layers.append(_LinearGrads(layer, captured[layer.name][0], delta))
        if self._generic:
            names = [name for layer in self._generic for name in layer.params]
            grads = per_sample_grads(self.model, names, inputs, targets, self.loss_fn)
            for layer in self._generic:
                layers.append(_GenericGrads(layer, flatten_grads(grads, layer.params)))
        return loss_sum, batch, layers

    def _forward_with_capture(self, inputs: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The model's outputs, and each Linear's (input, output) from this forward pass.

        The hooks live only for this call, so none is left behind on error.
        """
        captured: dict[str, tuple[torch.Tensor, torch.Tensor, int]] = {}

        def recorder(name: str):
            def hook(module, args, kwargs, output):
                if name in captured:
                    raise RuntimeError(
                        f"nn.Linear {name!r} ran twice in one forward pass; DBA's per-layer "
                        "gradients need each Linear to run once"
                    )
                a = args[0] if args else kwargs["input"]
                captured[name] = (a.detach(), output, output._version)

            return hook

        handles = [layer.module.register_forward_hook(recorder(layer.name), with_kwargs=True) for layer in self._linear]
        try:
            outputs = self.model(inputs)
        finally:
            for handle in handles:
                handle.remove()
        for layer in self._linear:
            if layer.name not in captured:
                raise RuntimeError(
                    f"nn.Linear {layer.name!r} did not run in the forward pass, so DBA cannot give it "
                    "a gradient; freeze its parameters (requires_grad=False) before building the DBA"
                )
            _, output, version = captured[layer.name]
            if output._version != version:
                raise RuntimeError(
                    f"the output of nn.Linear {layer.name!r} was modified in place (e.g. by "
                    "ReLU(inplace=True)); DBA needs it intact: use the out-of-place version"
                )
        return outputs, {name: (a, z) for name, (a, z, _) in captured.items()}

    def _select(self, K: torch.Tensor) -> tuple[torch.Tensor | None, int]:
        """The kept samples for Gram matrix K: (indices on K's device, or None for all; count)."""
        rtol = noise_rtol(torch.finfo(K.dtype).eps)
        search_dtype = K.dtype if K.dtype in (torch.float32, torch.float64) else torch.float64
        mask = greedy_search(K.to(device="cpu", dtype=search_dtype).numpy(), self.config, rtol)
        size = int(mask.sum())
        if size == len(mask):
            return None, size
        return torch.from_numpy(np.flatnonzero(mask)).to(K.device), size


# --- layers ---


@dataclass
class _LinearLayer:
    name: str
    module: nn.Linear

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

    layer: _LinearLayer
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


def _find_layers(model: nn.Module) -> tuple[list[_LinearLayer], list[_GenericLayer]]:
    """The model's layers: nn.Linear (fast path) and other modules with trainable parameters of their own."""
    linear: list[_LinearLayer] = []
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
            linear.append(_LinearLayer(label, module))
        else:
            qualified = {f"{name}.{pname}" if name else pname: p for pname, p in params.items()}
            generic.append(_GenericLayer(label, qualified))
    return linear, generic
