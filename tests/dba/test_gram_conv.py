"""The nn.Conv2d fast path (gram_conv) against explicit per-sample gradients
(float64): from torch.func and from a plain autograd loop over the samples.

Run with -s to see the largest relative error each strategy reached.
"""

from __future__ import annotations

import copy
from collections import defaultdict

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

from dba_cli.dba import DBA, DBAConfig, engine, gram_conv
from dba_cli.dba.gram_conv import (
    MATERIALISED,
    STRATEGIES,
    UNFOLDED,
    ConvGeometry,
    ConvSamples,
    choose_strategy,
    conv_fast_path_supported,
    strategy_costs,
)
from dba_cli.models import build_cnn

from .oracles import flat, func_per_sample_grads, loop_per_sample_grads
from .test_engine import check_step

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")

LR = 0.1
WORST: dict[tuple[str, str], float] = defaultdict(float)  # (strategy, oracle) -> largest relative error seen


@pytest.fixture(scope="module", autouse=True)
def report_worst_errors():
    yield
    for (strategy, oracle), error in sorted(WORST.items()):
        print(f"\ngram_conv float64: largest relative error, {strategy} vs {oracle}: {error:.2e}")


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def record(strategy: str, oracle: str, a: torch.Tensor, b: torch.Tensor) -> float:
    error = relative_error(a, b)
    WORST[strategy, oracle] = max(WORST[strategy, oracle], error)
    return error


# --- models: the recipe's CNN, and odd convolutions ---


class Images(nn.Module):
    """Flat inputs to B x C x H x W, so that the models take the rows oracles.batch-like data gives."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(len(x), *self.shape)


ODD_SHAPE = (3, 12, 13)  # C_in > 1, not square


def odd_cnn(seed: int = 0) -> nn.Sequential:
    """Every option the fast path supports, once each, in one float64 model."""
    torch.manual_seed(seed)
    layers = [
        Images(ODD_SHAPE),
        nn.Conv2d(3, 4, (3, 2), stride=2, padding=1),  # non-square kernel, stride 2, padding 1: 6 x 7
        nn.Tanh(),
        nn.Conv2d(4, 6, (2, 3), dilation=2, groups=2, bias=False),  # dilation 2, groups 2, no bias: 4 x 3
        nn.Tanh(),
        nn.Conv2d(6, 4, (2, 2), padding="same"),  # even kernel: PyTorch pads one more zero after
        nn.Tanh(),
        nn.Conv2d(4, 6, 3, stride=(1, 2), padding=(2, 1), dilation=(1, 2), groups=2),  # 6 x 1
        nn.Flatten(),
        nn.Linear(36, 3),
    ]
    return nn.Sequential(*layers).double()


def recipe_cnn(seed: int = 0) -> nn.Sequential:
    return build_cnn((8, 16), seed=seed).double()


LATE_SHAPE = (2, 7, 7)


def late_cnn(seed: int = 0) -> nn.Sequential:
    """A convolution with a 1 x 1 output after one with many positions: one of each strategy."""
    torch.manual_seed(seed)
    return nn.Sequential(
        Images(LATE_SHAPE), nn.Conv2d(2, 8, 3, stride=2), nn.Tanh(), nn.Conv2d(8, 12, 3), nn.Flatten(), nn.Linear(12, 3)
    ).double()


def data(model_kind: str, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    features, classes = {"recipe": (784, 10), "odd": (3 * 12 * 13, 3), "late": (2 * 7 * 7, 3)}[model_kind]
    x = torch.randn(count, features, generator=generator, dtype=torch.float64)
    return x, torch.randint(0, classes, (count,), generator=generator)


MODELS = {"recipe": recipe_cnn, "odd": odd_cnn, "late": late_cnn}


def convs(model: nn.Module) -> dict[str, nn.Conv2d]:
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def capture(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{conv name: (its input, the per-sample gradients at its output)}, from one forward and one autograd.grad."""
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = [
        m.register_forward_hook(lambda m, args, out, name=name: seen.__setitem__(name, (args[0].detach(), out)))
        for name, m in convs(model).items()
    ]
    try:
        loss = F.cross_entropy(model(x), y, reduction="sum")
    finally:
        for handle in handles:
            handle.remove()
    deltas = torch.autograd.grad(loss, [out for _, out in seen.values()])
    return {name: (a, delta) for (name, (a, _)), delta in zip(seen.items(), deltas)}


def names_of(model: nn.Module, conv: str) -> list[str]:
    return [f"{conv}.{p}" for p, _ in convs(model)[conv].named_parameters()]


@pytest.fixture(params=["whole", "in-blocks"])
def blocks(request, monkeypatch):
    """Both ways through each strategy's code: in one piece, and cut into small blocks of samples."""
    if request.param == "in-blocks":
        monkeypatch.setattr(gram_conv, "_PAIR_BLOCK", 50)  # (a): a block of rows of K per sample or two
        monkeypatch.setattr(gram_conv, "_UNFOLD_BLOCK", 100)  # (b): G and K a sample or two at a time
    return request.param


# --- the Gram matrix ---


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("batch_size", [1, 2, 7])
@pytest.mark.parametrize("kind", MODELS)
def test_conv_gram_matches_torch_func_and_a_loop(kind, batch_size, strategy, blocks):
    model = MODELS[kind](seed=batch_size)
    x, y = data(kind, batch_size, seed=batch_size)
    func = func_per_sample_grads(model, x, y)
    loop = loop_per_sample_grads(model, x, y)
    for name, (a, delta) in capture(model, x, y).items():
        module = convs(model)[name]
        K = ConvSamples(module, a, delta, bias=module.bias is not None, strategy=strategy).gram()
        for oracle, grads in (("torch.func", func), ("loop", loop)):
            G = flat(grads, names_of(model, name))
            assert record(strategy, oracle, K, G @ G.T) < 1e-10, (name, oracle)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_conv_gram_of_the_bias_or_the_weight_alone(strategy):
    model = odd_cnn(seed=3)
    x, y = data("odd", 5, seed=3)
    func = func_per_sample_grads(model, x, y)
    a, delta = capture(model, x, y)["1"]
    module = model[1]
    for weight, bias, names in ((False, True, ["1.bias"]), (True, False, ["1.weight"])):
        K = ConvSamples(module, a, delta, weight=weight, bias=bias, strategy=strategy).gram()
        G = flat(func, names)
        assert record(strategy, "torch.func", K, G @ G.T) < 1e-10


@pytest.mark.parametrize(
    "module, shape, channels_last",
    [
        (nn.Conv2d(1, 2, 5), (3, 1, 12, 10), False),  # output rows of 6 against 5 x 1 channel
        (nn.Conv2d(8, 2, 5), (3, 8, 9, 9), True),  # output rows of 5 against 5 x 8 channels
        (nn.Conv2d(4, 2, (2, 3), stride=2, padding=(1, 2), dilation=(2, 1), groups=2), (2, 4, 9, 8), True),
        (nn.Conv2d(2, 2, 4, padding="same"), (2, 2, 7, 6), True),  # rows of 6 against 4 x 2
        (nn.Conv2d(6, 4, (3, 2), padding="same", dilation=(1, 3), groups=2), (2, 6, 5, 8), False),
    ],
    ids=["one-channel", "eight-channels", "strided-grouped", "same-even", "same-dilated-grouped"],
)
def test_unfold_is_f_unfold_in_either_patch_order(module, shape, channels_last):
    geometry = ConvGeometry.of(module)
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    U, last = geometry.unfold(x)
    assert last == channels_last
    batch, groups = shape[0], module.groups
    expected = F.unfold(geometry.padded(x), module.kernel_size, module.dilation, 0, module.stride)
    expected = expected.view(batch, groups, -1, expected.shape[-1]).transpose(2, 3)  # B x g x P x patch
    if last:  # (kh, kw, channel) -> (channel, kh, kw)
        kh, kw = module.kernel_size
        U = U.unflatten(3, (kh, kw, -1)).permute(0, 1, 2, 5, 3, 4).flatten(3)
    out = module.double()(x)
    assert U.shape[2] == out.shape[2] * out.shape[3]
    torch.testing.assert_close(U, expected, rtol=0, atol=0)


def test_unbatched_input_is_refused():
    with pytest.raises(ValueError, match="4-D"):
        ConvSamples(nn.Conv2d(1, 2, 3), torch.zeros(1, 5, 5), torch.zeros(2, 3, 3))


# --- the subset gradient ---


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("kind", MODELS)
def test_subset_grads_are_the_mean_of_kept_per_sample_grads(kind, strategy, blocks):
    model = MODELS[kind](seed=5)
    x, y = data(kind, 9, seed=5)
    func = func_per_sample_grads(model, x, y)
    kept = torch.tensor([0, 3, 4, 8])
    for name, (a, delta) in capture(model, x, y).items():
        module = convs(model)[name]
        samples = ConvSamples(module, a, delta, bias=module.bias is not None, strategy=strategy)
        samples.gram()  # as in a step: the subset gradient reuses what the Gram matrix formed
        for subset, divisor, rows in ((kept, 4, kept), (kept, 9, kept), (None, 9, slice(None))):
            weight, bias = samples.subset_grads(subset, divisor)
            expected = func[f"{name}.weight"][rows].sum(0) / divisor
            torch.testing.assert_close(weight, expected, rtol=1e-12, atol=1e-14)
            if module.bias is None:
                assert bias is None
            else:
                torch.testing.assert_close(bias, func[f"{name}.bias"][rows].sum(0) / divisor, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_subset_grads_without_the_gram_matrix_and_with_a_frozen_weight(strategy):
    model = recipe_cnn(seed=6)
    x, y = data("recipe", 6, seed=6)
    func = func_per_sample_grads(model, x, y)
    a, delta = capture(model, x, y)["4"]
    kept = torch.tensor([1, 2, 5])
    weight, bias = ConvSamples(model[4], a, delta, strategy=strategy).subset_grads(kept, 3)
    torch.testing.assert_close(weight, func["4.weight"][kept].mean(0), rtol=1e-12, atol=1e-14)
    weight, bias = ConvSamples(model[4], a, delta, weight=False, strategy=strategy).subset_grads(kept, 3)
    assert weight is None
    torch.testing.assert_close(bias, func["4.bias"][kept].mean(0), rtol=1e-12, atol=1e-14)


# --- the choice of strategy ---


def test_strategy_costs_by_hand():
    # B = 2, P = 3, C_out = 4, patch = 5, one group: (B P)^2 = 36, C_out patch = 20.
    assert strategy_costs(2, 3, 4, 5) == {
        UNFOLDED: 36 * (4 + 5 + 1) + 2 * 3 * 20,
        MATERIALISED: 2 * 3 * 20 + 4 * 20 + 2 * 20,
    }
    # two groups of patch 5: the (B P x B P) products of patches and their product, once per group
    assert strategy_costs(2, 3, 4, 5, groups=2)[UNFOLDED] == 36 * (4 + 2 * 5 + 2) + 2 * 3 * 20


@pytest.mark.parametrize("batch_size", [1, 2, 7, 50, 256])
@pytest.mark.parametrize("positions", [1, 2, 4, 9, 64, 576])
@pytest.mark.parametrize(
    "out_channels, patch, groups", [(8, 25, 1), (16, 200, 1), (64, 576, 1), (6, 6, 2), (512, 4608, 1)]
)
def test_choice_is_the_cheaper_strategy(batch_size, positions, out_channels, patch, groups):
    costs = strategy_costs(batch_size, positions, out_channels, patch, groups)
    assert costs[choose_strategy(batch_size, positions, out_channels, patch, groups)] == min(costs.values())


def test_the_recipe_cnn_materialises_and_a_1x1_output_does_not():
    for batch_size in (50, 256):
        assert choose_strategy(batch_size, 24 * 24, 8, 25) == MATERIALISED
        assert choose_strategy(batch_size, 8 * 8, 16, 200) == MATERIALISED
        assert choose_strategy(batch_size, 1, 64, 576) == UNFOLDED  # 3 x 3 x 64 in, 1 x 1 out


def test_the_engine_uses_the_cost_based_choice():
    model = late_cnn(seed=7)
    x, y = data("late", 6, seed=7)
    dba = DBA(model, torch.optim.SGD(model.parameters(), lr=LR))
    _, _, layers = dba._per_sample_gradients(x, y)
    chosen = {layer.name: layer.samples.strategy for layer in layers if isinstance(layer, engine._ConvGrads)}
    assert chosen == {"1": choose_strategy(6, 9, 8, 18), "3": choose_strategy(6, 1, 12, 72)}
    assert chosen == {"1": MATERIALISED, "3": UNFOLDED}


# --- the whole step ---


def conv_layers(model: nn.Module) -> dict[str, list[str]]:
    layers = {}
    for name, module in model.named_modules():
        names = [f"{name}.{p}" for p, q in module.named_parameters(recurse=False) if q.requires_grad]
        if names:
            layers[name] = names
    return layers


@pytest.mark.parametrize("strategy", [None, *STRATEGIES])
@pytest.mark.parametrize("kind", MODELS)
def test_a_step_moves_each_layer_by_its_kept_mean_gradient(kind, strategy, monkeypatch):
    if strategy is not None:  # force one strategy on every convolution
        monkeypatch.setattr(gram_conv, "choose_strategy", lambda *shape: strategy)
    model = MODELS[kind](seed=8)
    x, y = data(kind, 10, seed=8)
    _, fast_convs, generic = engine._find_layers(model)
    assert {layer.name for layer in fast_convs} == set(convs(model))  # every convolution on the fast path
    assert not generic
    check_step(model, x, y, DBAConfig(min_size=4), conv_layers(model))


@pytest.mark.parametrize("kind", MODELS)
def test_a_step_equals_the_generic_paths_step(kind, monkeypatch):
    fast = MODELS[kind](seed=9)
    generic = copy.deepcopy(fast)
    config = DBAConfig(metric="snr", direction="maximize", min_size=3)
    dba_fast = DBA(fast, torch.optim.SGD(fast.parameters(), lr=LR, momentum=0.9), config)
    monkeypatch.setattr(engine, "conv_fast_path_supported", lambda module: False)
    dba_generic = DBA(generic, torch.optim.SGD(generic.parameters(), lr=LR, momentum=0.9), config)
    assert not dba_generic._conv and len(dba_fast._conv) == len(convs(fast))
    for step in range(3):
        x, y = data(kind, 12, seed=10 + step)
        a, b = dba_fast.step(x, y), dba_generic.step(x, y)
        assert a.kept == b.kept
        torch.testing.assert_close(a.loss, b.loss, rtol=1e-12, atol=0)
    for p, q in zip(fast.parameters(), generic.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-13)


def test_frozen_weight_and_frozen_bias():
    model = odd_cnn(seed=11)
    model[1].weight.requires_grad_(False)
    model[5].bias.requires_grad_(False)
    frozen = (model[1].weight.detach().clone(), model[5].bias.detach().clone())
    check_step(model, *data("odd", 8, seed=11), DBAConfig(min_size=3), conv_layers(model))
    assert torch.equal(model[1].weight, frozen[0]) and torch.equal(model[5].bias, frozen[1])


def test_channels_last_model():
    model = recipe_cnn(seed=12).to(memory_format=torch.channels_last)
    check_step(model, *data("recipe", 7, seed=12), DBAConfig(min_size=3), conv_layers(model))


# --- what the fast path leaves to the generic one ---


class Doubled(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(x)


def unsupported() -> dict[str, nn.Module]:
    torch.manual_seed(13)
    return {
        "reflect": nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"),
        "circular": nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular"),
        "subclass": Doubled(3, 4, 3),
        "weight-norm": parametrizations.weight_norm(nn.Conv2d(3, 4, 3)),
    }


def test_supported_convolutions():
    assert conv_fast_path_supported(nn.Conv2d(3, 4, 3, padding="same", groups=1, bias=False))
    assert conv_fast_path_supported(nn.Conv2d(4, 4, (1, 3), stride=2, dilation=2, groups=4))
    assert not conv_fast_path_supported(nn.Conv1d(3, 4, 3))
    assert not conv_fast_path_supported(nn.ConvTranspose2d(3, 4, 3))
    for module in unsupported().values():
        assert not conv_fast_path_supported(module)


@pytest.mark.parametrize("case", list(unsupported()))
def test_unsupported_convolutions_take_the_generic_path_and_step_correctly(case):
    conv = unsupported()[case]
    model = nn.Sequential(Images(ODD_SHAPE), nn.Conv2d(3, 3, 3, padding=1), nn.Tanh(), conv, nn.Flatten())
    with torch.no_grad():
        width = model(torch.zeros(1, 3 * 12 * 13)).shape[1]
    model = nn.Sequential(*model, nn.Linear(width, 3)).double()
    _, fast_convs, generic = engine._find_layers(model)
    assert [layer.name for layer in fast_convs] == ["1"]
    # weight_norm: the module's own parameter is its bias; the weight's (g, v) are a layer of their own
    assert [layer.name for layer in generic] == ["3"] + (["3.parametrizations.weight"] if case == "weight-norm" else [])
    check_step(model, *data("odd", 8, seed=13), DBAConfig(min_size=3), conv_layers(model))


def test_in_place_activation_after_a_conv_is_refused():
    model = nn.Sequential(Images((1, 6, 6)), nn.Conv2d(1, 2, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(32, 3))
    dba = DBA(model.double(), torch.optim.SGD(model.parameters(), lr=LR))
    with pytest.raises(RuntimeError, match=r"nn.Conv2d '1' was modified in place"):
        dba.step(torch.randn(4, 36, dtype=torch.float64), torch.zeros(4, dtype=torch.long))


def test_a_conv_used_twice_is_refused():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x):
            return self.conv(torch.tanh(self.conv(x.view(len(x), 1, 4, 4)))).flatten(1)[:, :3]

    model = Twice().double()
    with pytest.raises(RuntimeError, match="nn.Conv2d 'conv' ran twice"):
        DBA(model, torch.optim.SGD(model.parameters(), lr=LR)).step(
            torch.randn(4, 16, dtype=torch.float64), torch.zeros(4, dtype=torch.long)
        )
