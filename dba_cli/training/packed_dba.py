"""DBA's step for a pack of MLP runs (training/packed.py): the engine's step (dba/engine.py), batched over the runs.

Alone, a DBA step on an MLP is: a forward pass that records each Linear's
input a and output z; the summed loss differentiated with respect to every z
(the per-sample output gradients delta); each layer's Gram matrix
K = (a a^T + 1) * (delta delta^T); the greedy search on each K; each layer's
gradient over its kept samples; the base optimizer's step. Here the forward
and backward passes and the Gram products are batched over the pack
(`baddbmm`/`bmm`, each slice the run's own product), the searches of every
layer of every run are one compiled call (`dba.search.greedy_search_many`),
and each run's subset gradient is the engine's own `linear_subset_grads` on
its kept rows (the subsets differ in size between runs and layers, and a
product over a padded subset would round differently). The random-composition
control (`dba-random`) draws its samples from each run's own generator, in the
engine's order. So each run's step is bit-identical to its alone step
(tests/test_packed.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..dba.engine import _kept_to_device  # the engine's own: every run's and layer's indices in one copy
from ..dba.gram_linear import linear_subset_grads
from ..dba.search import greedy_search_many, noise_rtol
from ..seeding import derive_seed
from ..settings.run import RunConfig
from .packed_model import PackedLinear, PackedMLP


class DBAStep:
    """The DBA engine's step (composition "search", or "random" for dba-random) for every run of a pack."""

    def __init__(self, configs: Sequence[RunConfig], model: nn.Module) -> None:
        self.configs = [config.dba for config in configs]
        self.count = len(configs)
        self.names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
        self.random = configs[0].method == "dba-random"
        self.generators = [torch.Generator().manual_seed(derive_seed(c.seed, "composition")) for c in configs]

    def __call__(self, model: PackedMLP, inputs: torch.Tensor, targets: torch.Tensor, epoch: int):
        batch = targets.shape[1]
        layer_inputs, outputs, logits = forward_with_capture(model, inputs)
        log_probs = F.log_softmax(logits, dim=-1)
        losses = F.nll_loss(log_probs.flatten(0, 1), targets.flatten(), reduction="none")
        deltas = torch.autograd.grad(losses.sum(), outputs)
        with torch.no_grad():
            reported = torch.stack([F.nll_loss(log_probs[p], targets[p], reduction="sum") / batch for p in range(self.count)])
            grams = torch.stack([gram(a, delta) for a, delta in zip(layer_inputs, deltas)], dim=1)  # [P, layers, B, B]
            masks = self.search(grams)
            count, layers = masks.shape[:2]
            selections = _kept_to_device(list(masks.reshape(count * layers, batch)), [inputs.device] * (count * layers))
            kept = [{} for _ in range(self.count)]
            for k, (a, delta, weight, bias) in enumerate(zip(layer_inputs, deltas, model.weights, model.biases)):
                weight.grad = torch.empty_like(weight)
                bias.grad = torch.empty_like(bias)
                for p in range(self.count):
                    indices, size = selections[p * layers + k]
                    divisor = size if self.configs[p].reduction == "mean" else batch
                    grad_w, grad_b = linear_subset_grads(a[p], delta[p], indices, divisor)
                    weight.grad[p].copy_(grad_w)
                    bias.grad[p].copy_(grad_b)
                    kept[p][self.names[k]] = size
        return reported, kept

    def search(self, grams: torch.Tensor) -> np.ndarray:
        """Every run's and layer's kept mask ([P, layers, B]), as the engine's `_select_all` finds them."""
        count, layers, batch = grams.shape[:3]
        host = grams.cpu().numpy().reshape(count * layers, batch, batch)
        configs = [config for config in self.configs for _ in range(layers)]
        masks = greedy_search_many(host, configs, noise_rtol(torch.finfo(grams.dtype).eps)).reshape(count, layers, batch)
        if self.random:  # the control: as many samples per layer as the search kept, drawn at random, layer by layer
            for p, generator in enumerate(self.generators):
                for k in range(layers):
                    size = int(masks[p, k].sum())
                    masks[p, k] = False
                    masks[p, k, torch.randperm(batch, generator=generator)[:size].numpy()] = True
        return masks


def forward_with_capture(model: PackedMLP, inputs: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """Each layer's input a and output z (the outputs differentiable, the weights not), and the logits.

    Alone, the engine differentiates the summed loss with respect to every
    Linear's output; here the first output is made a leaf that requires grad,
    and every weight enters detached, so no weight gradient is formed.
    """
    layer_inputs, outputs = [], []
    x = inputs
    for k, (weight, bias) in enumerate(zip(model.weights, model.biases)):
        layer_inputs.append(x.detach())
        z = PackedLinear.apply(x, weight.detach(), bias.detach())
        if k == 0:
            z = z.detach().requires_grad_()
        outputs.append(z)
        x = model.activations[k](z) if k < len(model.activations) else z
    return layer_inputs, outputs, x


def gram(a: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Each run's K = (a a^T + 1) * (delta delta^T), as `linear_gram` computes it for a Linear with weight and bias."""
    grads = torch.bmm(delta, delta.transpose(1, 2))
    products = torch.bmm(a, a.transpose(1, 2))
    products += 1.0
    return products.mul_(grads)
