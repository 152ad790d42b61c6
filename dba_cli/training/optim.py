"""One optimisation step: the base optimizers, and a DBA step or a plain one behind the same call.

Adam and AdamW use the fused kernel (CPU and CUDA): about 1.4x faster per step here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..settings.run import RunConfig


def make_optimizer(params, config: RunConfig) -> torch.optim.Optimizer:
    """The config's optimizer (settings/run.py OPTIMIZERS) with its learning rate, weight decay and, for SGD, momentum.

    Adam's weight decay is L2 added to the gradient; AdamW's is decoupled from it.
    """
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)


class Stepper:
    """One optimisation step on a mini-batch, and the optimizer (and DBA) state a checkpoint needs.

    Calling it returns the batch's mean loss (a 0-dim tensor, left on the
    device to avoid a sync) and, for DBA, the kept subset size per layer.
    """

    def __init__(self, model: nn.Module, config: RunConfig) -> None:
        self.model = model
        self.optimizer = make_optimizer(model.parameters(), config)
        self.engine = None
        if config.method == "dba":
            from ..dba.engine import DBA

            self.engine = DBA(model, self.optimizer, config.dba)

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, int] | None]:
        if self.engine is not None:
            result = self.engine.step(inputs, targets)
            return result.loss, result.kept
        self.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(inputs), targets)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), None

    def state_dict(self) -> dict:
        if self.engine is not None:
            return {"dba": self.engine.state_dict()}
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.engine is not None:
            self.engine.load_state_dict(state["dba"])
        else:
            self.optimizer.load_state_dict(state["optimizer"])
