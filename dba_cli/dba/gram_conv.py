"""The fast path for nn.Conv2d: per-sample Gram matrix and subset gradient from
the layer's inputs and output gradients, without torch.func.

Why: a module the Linear fast path does not cover goes through torch.func
(`gram_generic`), which runs the model forward and backward a second time
under vmap. For a convolution that is not needed: the one forward pass gives
its input x_i, the one `torch.autograd.grad` the engine already takes gives its
output gradients, and the per-sample gradient is a small product of the two.
On the small CNN of models.py (one CPU thread) a DBA step went from about
2.4x a plain SGD step to about 1.4x at batch 50 and 1.4x to 1.6x at batch 256,
where K = G G^T of the second convolution (B^2 x 3,200 multiply-adds) is the
largest part that SGD does not have.

With u_{i,p} the input patch under output position p (the C_in/groups x kh x kw
values `torch.nn.functional.unfold` gives) and delta_{i,p} = dl_i/dz_{i,p} the
output gradient there (C_out values), sample i's gradient is

    G_i = sum_p delta_{i,p} u_{i,p}^T   (C_out x C_in/groups kh kw),   db_i = sum_p delta_{i,p}

(with groups, each group of output channels sees only its own input channels:
it is a convolution of its own). Two ways to the Gram matrix K_ij = <g_i, g_j>:

(a) "unfolded", from the unfolded inputs and output gradients, never forming G:
        K_ij = sum_{p,q} (delta_{i,p} . delta_{j,q}) (u_{i,p} . u_{j,q}) + db_i . db_j
    two Gram matrices over all B x P (sample, position) pairs: about
    (B P)^2 (C_out + C_in kh kw) multiply-adds. Cheap when the output has few
    positions (a late layer, a 1x1 output).
(b) "materialised": every G_i (B P C_out C_in/groups kh kw multiply-adds,
    the same as the weight gradient of an ordinary backward pass), then
    K = G G^T (B^2 C_out C_in/groups kh kw). The usual case.

`choose_strategy` picks the one with fewer multiply-adds for the layer's shape
and batch size. The gradient of a kept subset S, sum over S of G_i / divisor,
is then a sum of rows of G (b), or one contraction over the kept samples'
patches and output gradients (a).

Only the plain nn.Conv2d is covered (`conv_fast_path_supported`): zero padding
(numbers, 'valid' or 'same'), any stride, dilation and groups, a weight and
bias that are the module's own parameters. Anything else (another padding
mode, an overridden forward, a parametrised weight) takes the generic path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

UNFOLDED = "unfolded"  # (a): from unfolded inputs and output gradients
MATERIALISED = "materialised"  # (b): per-sample weight gradients, then G G^T
STRATEGIES = (MATERIALISED, UNFOLDED)

_PAIR_BLOCK = 1 << 22  # (a) works on blocks of rows of its (B P x B P) matrices of about this many entries
_UNFOLD_BLOCK = 1 << 19  # (b) on the CPU: blocks of samples of about this many patch values (2 MiB in float32)
_UNFOLD_BLOCK_DEVICE = 1 << 27  # (b) elsewhere (a GPU): only to bound the memory (512 MiB in float32)


def conv_fast_path_supported(module: nn.Module) -> bool:
    """Whether DBA may take `module`'s per-sample gradients on the nn.Conv2d fast path.

    The engine asks this once per module when it sorts the layers; a module
    for which it is False goes to the generic torch.func path.
    """
    if not isinstance(module, nn.Conv2d):
        return False
    kind = type(module)
    if kind.forward is not nn.Conv2d.forward or kind._conv_forward is not nn.Conv2d._conv_forward:
        return False  # a subclass that computes something else
    if module.padding_mode != "zeros":
        return False
    if not isinstance(module.weight, nn.Parameter):
        return False  # e.g. torch.nn.utils.parametrize: the weight is computed from other parameters
    return module.bias is None or isinstance(module.bias, nn.Parameter)


def strategy_costs(batch: int, positions: int, out_channels: int, patch: int, groups: int = 1) -> dict[str, int]:
    """Multiply-adds to the weight's Gram matrix and subset gradient, per strategy.

    positions: P, output height x width; patch: C_in/groups x kh x kw, the
    length of one group's unfolded patch. The unfold itself and the bias
    (B P C_out + B^2 C_out) cost the same in both and are left out.
    """
    weights = out_channels * patch  # per sample, all groups
    pairs = (batch * positions) ** 2
    return {
        UNFOLDED: pairs * (out_channels + groups * patch + groups) + batch * positions * weights,
        MATERIALISED: batch * positions * weights + batch**2 * weights + batch * weights,
    }


def choose_strategy(batch: int, positions: int, out_channels: int, patch: int, groups: int = 1) -> str:
    """The strategy with fewer multiply-adds (`strategy_costs`); "materialised" on a tie."""
    costs = strategy_costs(batch, positions, out_channels, patch, groups)
    return min(STRATEGIES, key=lambda name: costs[name])


@dataclass(frozen=True)
class ConvGeometry:
    """What nn.Conv2d does to its input, with the padding made explicit."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int]  # zeros on each side of (height, width)
    extra: tuple[int, int]  # zeros added after (below, right of) the input: padding="same" with an even span
    groups: int

    @classmethod
    def of(cls, module: nn.Conv2d) -> ConvGeometry:
        kernel, stride, dilation = tuple(module.kernel_size), tuple(module.stride), tuple(module.dilation)
        if module.padding == "valid":
            padding, extra = (0, 0), (0, 0)
        elif module.padding == "same":  # as PyTorch does it: the odd zero goes after the input
            spans = [d * (k - 1) for d, k in zip(dilation, kernel)]
            padding, extra = tuple(s // 2 for s in spans), tuple(s % 2 for s in spans)
        else:
            padding, extra = tuple(module.padding), (0, 0)
        return cls(kernel, stride, dilation, padding, extra, module.groups)

    def padded(self, inputs: torch.Tensor) -> torch.Tensor:
        """The input with its zero padding."""
        (ph, pw), (eh, ew) = self.padding, self.extra
        if ph == pw == eh == ew == 0:
            return inputs
        return F.pad(inputs, (pw, pw + ew, ph, ph + eh))

    def channels_last(self, in_channels: int, out_width: int) -> bool:
        """Whether to unfold from a channels-last copy of the input.

        The unfold is a copy whose speed is set by the longest run of
        neighbouring values it can read: out_width along a row of the usual
        layout (stride 1), or kernel width x channels of a group in the
        channels-last one (one group, no dilation; else the channels of a
        group). On the small CNN: 24 against 5 for the first convolution, 8
        against 40 for the second, which unfolds twice as fast channels-last.
        """
        (_, kw), (_, sw), (_, dw) = self.kernel, self.stride, self.dilation
        row = out_width if sw == 1 else 1
        channels = in_channels // self.groups
        pixel = kw * channels if dw == 1 and self.groups == 1 else channels
        return pixel > row

    def unfold(self, inputs: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """(U, channels_last): every sample's patches, U of shape B x groups x P x C_in/groups kh kw.

        F.unfold's values, from one strided view of the padded input copied
        once (several times faster than F.unfold on the CPU). A patch is
        ordered (channel, kh, kw) like the weight, or (kh, kw, channel) when
        channels_last (`channels_last` says why): see `weight_layout`.
        """
        x = self.padded(inputs)
        batch, channels, height, width = x.shape
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        out_h, out_w = (height - dh * (kh - 1) - 1) // sh + 1, (width - dw * (kw - 1) - 1) // sw + 1
        groups, per_group = self.groups, channels // self.groups
        last = self.channels_last(channels, out_w)
        if last:
            x = x.permute(0, 2, 3, 1).contiguous()  # B x H x W x C: free when the input already is channels-last
            b, h, w, c = x.stride()
            shape = (batch, groups, out_h, out_w, kh, kw, per_group)
            strides = (b, per_group * c, sh * h, sw * w, dh * h, dw * w, c)
            U = x.as_strided(shape, strides, x.storage_offset()).reshape(batch, groups, out_h * out_w, -1)
        else:
            b, c, h, w = x.stride()
            shape = (batch, groups, per_group, kh, kw, out_h, out_w)
            strides = (b, per_group * c, c, dh * h, dw * w, sh * h, sw * w)
            U = x.as_strided(shape, strides, x.storage_offset()).reshape(batch, groups, -1, out_h * out_w)
            U = U.transpose(2, 3)
        return U, last


def weight_layout(total: torch.Tensor, weight_shape: tuple[int, ...], channels_last: bool) -> torch.Tensor:
    """A weight gradient (groups x C_out/groups x patch) from patches ordered as `ConvGeometry.unfold` made them,
    as a tensor of the weight's shape."""
    out_channels, per_group, kh, kw = weight_shape
    if not channels_last:
        return total.reshape(weight_shape)
    return total.reshape(out_channels, kh, kw, per_group).permute(0, 3, 1, 2).contiguous()


class ConvSamples:
    """One nn.Conv2d's input and per-sample output gradients for one batch: its Gram matrix and subset gradients.

    inputs: x (B x C_in x H x W), the layer's input; output_grads: Delta
    (B x C_out x H_out x W_out), the gradient of each sample's own loss with
    respect to the layer's output. `weight` / `bias` say which of the two
    parameters are trained. strategy: UNFOLDED or MATERIALISED, by default
    `choose_strategy`'s. What `gram` forms (the per-sample weight gradients,
    or the unfolded patches) is kept for `subset_grads`.
    """

    def __init__(
        self,
        module: nn.Conv2d,
        inputs: torch.Tensor,
        output_grads: torch.Tensor,
        weight: bool = True,
        bias: bool = True,
        strategy: str | None = None,
    ) -> None:
        if inputs.dim() != 4 or output_grads.dim() != 4:
            raise ValueError(
                "the nn.Conv2d fast path needs batched 4-D inputs (batch x channels x height x width), got "
                f"input shape {tuple(inputs.shape)} and output shape {tuple(output_grads.shape)}"
            )
        if not (weight or bias):
            raise ValueError("an nn.Conv2d with no trainable parameter has no gradient Gram matrix")
        if strategy is not None and strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        self.geometry = ConvGeometry.of(module)
        self.weight_shape = tuple(module.weight.shape)
        self.inputs, self.output_grads = inputs, output_grads
        self.weight, self.bias = weight, bias
        batch, out_channels, out_h, out_w = output_grads.shape
        patch = self.weight_shape[1] * self.weight_shape[2] * self.weight_shape[3]
        self.strategy = strategy or choose_strategy(batch, out_h * out_w, out_channels, patch, self.geometry.groups)
        self._bias_sums: torch.Tensor | None = None  # db (B x C_out)
        self._per_sample: torch.Tensor | None = None  # G (B x C_out patch), MATERIALISED
        self._channels_last = False  # how G's patches are ordered (`weight_layout`)
        self._unfolded: tuple[torch.Tensor, bool] | None = None  # (U, channels_last), UNFOLDED

    def gram(self) -> torch.Tensor:
        """K_ij = <g_i, g_j> over the trained parameters (B x B)."""
        if not self.weight:
            return self._db() @ self._db().T
        if self.strategy == MATERIALISED:
            K = self._materialise(gram=True)
        else:
            K = _pair_gram(self._patches()[0], self._grouped_output_grads())
        if self.bias:
            K.addmm_(self._db(), self._db().T)
        return K

    def subset_grads(
        self, kept: torch.Tensor | None, divisor: float
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(weight grad, bias grad) = (sum over kept i of G_i, of db_i) / divisor, None for a frozen one.

        kept: indices of the kept samples, or None for the whole batch.
        """
        batch = self.output_grads.shape[0]
        share = self.output_grads.new_zeros(batch) if kept is not None else self.output_grads.new_empty(batch)
        if kept is None:
            share.fill_(1.0 / divisor)
        else:
            share[kept] = 1.0 / divisor  # the sums over kept rows as one product, without gathering the rows
        bias = share @ self._db() if self.bias else None
        if not self.weight:
            return None, bias
        if self.strategy == MATERIALISED:
            total, channels_last = share @ self._weight_grads(), self._channels_last
        else:  # sum over kept samples i and positions p of delta_{i,p} u_{i,p}^T, group by group
            (U, channels_last), D = self._patches(), self._grouped_output_grads()
            if kept is not None:
                U, D = U[kept], D[kept]
            total = torch.einsum("bgcp,bgpd->gcd", D, U).div_(divisor)
        return weight_layout(total, self.weight_shape, channels_last), bias

    # --- the parts ---

    def _db(self) -> torch.Tensor:
        """Each sample's bias gradient, sum over positions of delta_{i,p} (B x C_out)."""
        if self._bias_sums is None:
            self._bias_sums = self.output_grads.sum(dim=(2, 3))
        return self._bias_sums

    def _grouped_output_grads(self) -> torch.Tensor:
        """Delta as B x groups x C_out/groups x P."""
        batch, out_channels = self.output_grads.shape[:2]
        groups = self.geometry.groups
        return self.output_grads.reshape(batch, groups, out_channels // groups, -1)

    def _patches(self) -> tuple[torch.Tensor, bool]:
        if self._unfolded is None:
            self._unfolded = self.geometry.unfold(self.inputs)
        return self._unfolded

    def _weight_grads(self) -> torch.Tensor:
        """G: row i is sample i's weight gradient, its patch ordered as `unfold` made it (B x C_out patch)."""
        if self._per_sample is None:
            self._materialise(gram=False)
        return self._per_sample

    def _materialise(self, gram: bool) -> torch.Tensor | None:
        """Form G (kept for `subset_grads`) and, if `gram`, K = G G^T (returned), a block of samples at a time.

        On the CPU the blocks are small (_UNFOLD_BLOCK): a block's unfolded
        patches, several times the size of its input, are still in the cache
        when the product reads them, and so are its rows of G when they are
        multiplied with all the rows before them. That gives K's lower
        triangle (and diagonal blocks), about half the work of G G^T, which a
        matrix product cannot know is symmetric; the upper triangle is copied.
        Elsewhere (a GPU) the blocks only bound the memory the unfolded
        patches take (_UNFOLD_BLOCK_DEVICE): usually one block, one G G^T.
        """
        D = self._grouped_output_grads()
        batch, groups, per_group, positions = D.shape
        patch = self.weight_shape[1] * self.weight_shape[2] * self.weight_shape[3]
        G = D.new_empty(batch, groups, per_group, patch)
        flat = G.view(batch, -1)
        K = D.new_empty(batch, batch) if gram else None
        budget = _UNFOLD_BLOCK if D.device.type == "cpu" else _UNFOLD_BLOCK_DEVICE
        rows = max(1, budget // (positions * groups * patch))
        for start in range(0, batch, rows):
            stop = min(batch, start + rows)
            U, self._channels_last = self.geometry.unfold(self.inputs[start:stop])
            torch.matmul(D[start:stop], U, out=G[start:stop])
            if K is not None:
                torch.mm(flat[start:stop], flat[:stop].T, out=K[start:stop, :stop])
                K[:start, start:stop] = K[start:stop, :start].T
        self._per_sample = flat
        return K


def _pair_gram(U: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """K_ij = sum over groups, p, q of (delta_{i,p} . delta_{j,q}) (u_{i,p} . u_{j,q}), without G.

    U: B x groups x P x patch; D: B x groups x C_out/groups x P. The two
    (B P x B P) matrices are formed a block of rows (samples i) at a time, so
    that memory stays near _PAIR_BLOCK entries each.
    """
    batch, groups, positions, _ = U.shape
    u = U.transpose(0, 1).reshape(groups, batch * positions, -1)  # (g, B P, patch)
    d = D.permute(1, 0, 3, 2).reshape(groups, batch * positions, -1)  # (g, B P, C_out/groups)
    rows = max(1, _PAIR_BLOCK // (groups * positions * batch * positions))
    K = U.new_empty(batch, batch)
    for start in range(0, batch, rows):
        stop = min(batch, start + rows)
        block = slice(start * positions, stop * positions)
        products = torch.bmm(u[:, block], u.transpose(1, 2)).mul_(torch.bmm(d[:, block], d.transpose(1, 2)))
        K[start:stop] = products.sum(dim=0).view(stop - start, positions, batch, positions).sum(dim=(1, 3))
    return K
