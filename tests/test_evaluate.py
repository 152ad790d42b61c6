"""Evaluation in chunks gives the numbers one batch gave, to the last digit, on the real test set."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dba_cli.models import build_cnn, build_mlp
from dba_cli.training.evaluate import EVAL_CHUNK, evaluate


def one_batch(model, x, y) -> tuple[float, float]:
    """How evaluation was done before chunks: one forward pass over the whole set."""
    with torch.no_grad():
        logits = model(x)
        return F.cross_entropy(logits, y, reduction="sum").item() / len(y), 100.0 * (logits.argmax(1) == y).sum().item() / len(y)


@pytest.mark.parametrize("architecture", ["mlp", "cnn"])
def test_chunked_evaluation_equals_one_batch_exactly(mnist, architecture):
    torch.manual_seed(0)
    model = (build_cnn((8, 16), seed=3) if architecture == "cnn" else build_mlp((512,), seed=3)).eval()
    x, y = mnist.features(mnist.test_images), mnist.test_labels
    assert evaluate(model, x, y) == one_batch(model, x, y)  # floats compared exactly
    assert evaluate(model, x[:5000], y[:5000], chunk=333) == one_batch(model, x[:5000], y[:5000])
    assert EVAL_CHUNK < len(y)
