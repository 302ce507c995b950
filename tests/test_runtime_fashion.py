"""A trained model: the runtime's top-1 equals the float model's on every Fashion-MNIST test image.

The models are tests/tiny.py's quickly trained ones (a few Adam steps, so weights, BatchNorm statistics
and thresholds have all moved away from their initial values), at Fashion-MNIST's 1x28x28.
"""

from __future__ import annotations

import pytest
import torch
from test_runtime import LOGIT_TOL, runtime_built  # noqa: F401  (the fixture skips or fails)
from tiny import genotype_text, trained

import bnnzoo.runtime as rt
from bnnzoo.export import export_packed, load_packed
from bnnzoo.train.data import DEFAULT_FASHION_MNIST_ROOT, load_fashion_mnist_arrays

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (DEFAULT_FASHION_MNIST_ROOT / "t10k-images-idx3-ubyte.gz").is_file(),
        reason="apt-get install dataset-fashion-mnist",
    ),
]

INPUT = "1x28x28"
MODELS = {
    "mbconv": genotype_text("fm_mb", "mbconv", "layers {\n  MB3(2) 16 s2\n  MB5(3) 24 s2\n}\n", input=INPUT),
    "resnet": genotype_text("fm_res", "resnet", "layers {\n  basic(binary) 8\n  basic(real) 16 s2\n}\n", input=INPUT),
    "cells": genotype_text(
        "fm_cells",
        "bnas",
        "layers 2\nchannels 4\nreductions 1\n\ncell normal {\n  node 2 = bin_conv_3x3(0) + avg_pool_3x3(1)\n"
        "  node 3 = bin_dil_conv_3x3(2) + max_pool_3x3(0)\n  concat 2 3\n}\n\ncell reduction {\n"
        "  node 2 = bin_conv_5x5(0) + max_pool_3x3(1)\n  node 3 = bin_conv_3x3(2) + none(1)\n  concat 2 3\n}\n",
        input=INPUT,
        stem="conv3x3 12",
    ),
}


@pytest.mark.parametrize("space", sorted(MODELS))
def test_top1_is_identical_on_every_test_image(tmp_path, space):
    path = export_packed(trained(MODELS[space], steps=5), tmp_path / "fm.packed.safetensors")
    model, runtime = load_packed(path), rt.load(path)
    images, _ = load_fashion_mnist_arrays(DEFAULT_FASHION_MNIST_ROOT, "test")
    assert len(images) == 10_000
    expected, got = [], []
    with torch.no_grad():
        for start in range(0, len(images), 2000):
            x = (images[start : start + 2000].float() / 255 - 0.2860) / 0.3530
            expected.append(model(x))
            got.append(runtime(x))
    expected_logits, logits = torch.cat(expected), torch.cat(got)
    differ = int((logits.argmax(1) != expected_logits.argmax(1)).sum())
    assert differ == 0, f"{differ} of 10000 test images differ in top-1"
    gap = (logits - expected_logits).abs().amax(1) / expected_logits.abs().amax(1).clamp_min(1.0)
    assert (gap <= LOGIT_TOL).float().mean() >= 0.99  # the rest: a value within rounding of a threshold
