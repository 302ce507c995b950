"""Exact behaviour of the binary building blocks in bnnzoo.build.binary."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnnzoo.build.binary import (
    ApproxSign,
    BinaryConv2d,
    RPReLU,
    RSign,
    SignWeightSTE,
    binarize_activation,
    binarize_weight,
    set_binary_weights,
    sign,
)
from bnnzoo.errors import ModelError


def _reference_binary_conv(conv: BinaryConv2d, x: torch.Tensor) -> torch.Tensor:
    """What BinaryConv2d must compute, written out from the spec (threshold 0, +1 padding)."""
    ph, pw = conv.padding
    xb = F.pad(torch.where(x >= 0, 1.0, -1.0), (pw, pw, ph, ph), value=1.0)
    w = conv.weight.detach()
    wb = torch.where(w >= 0, 1.0, -1.0) * w.abs().mean(dim=(1, 2, 3), keepdim=True)
    return F.conv2d(xb, wb, None, conv.stride, 0, conv.dilation, conv.groups)


# --- sign and ApproxSign --------------------------------------------------------------------------


def test_sign_of_zero_is_plus_one_and_values_are_exactly_pm1() -> None:
    x = torch.tensor([-2.0, -1e-8, -0.0, 0.0, 1e-8, 3.0])
    expected = torch.tensor([-1.0, -1.0, 1.0, 1.0, 1.0, 1.0])
    assert torch.equal(sign(x), expected)
    assert torch.equal(binarize_activation(x), expected)
    assert torch.equal(binarize_activation(x.clone().requires_grad_()), expected)
    assert torch.equal(ApproxSign.apply(x.clone().requires_grad_()), expected)


def test_approx_sign_gradient_exact_values() -> None:
    points = [-1.5, -1.0, -0.5, 0.0, 0.25, 0.75, 0.99, 1.0, 2.0]
    # 2 + 2x on [-1, 0), 2 - 2x on [0, 1), 0 elsewhere.
    expected = [0.0, 0.0, 1.0, 2.0, 1.5, 0.5, 2.0 - 2.0 * 0.99, 0.0, 0.0]
    x = torch.tensor(points, dtype=torch.float64, requires_grad=True)
    binarize_activation(x).sum().backward()
    assert x.grad is not None
    assert x.grad.tolist() == expected


def test_approx_sign_gradient_scales_upstream_gradient() -> None:
    x = torch.tensor([-0.5, 0.0, 0.5, 1.5], requires_grad=True)
    upstream = torch.tensor([3.0, -2.0, 4.0, 7.0])
    binarize_activation(x).backward(upstream)
    assert x.grad is not None
    assert torch.equal(x.grad, torch.tensor([3.0, -4.0, 4.0, 0.0]))


# --- weight binarization ---------------------------------------------------------------------------


def test_binarize_weight_forward_is_sign_times_channel_mean_abs() -> None:
    w = torch.tensor(
        [
            [[[0.5, -1.5]], [[2.0, 0.0]]],  # mean|W| = 1.0, sign(0) = +1
            [[[-0.25, -0.25]], [[0.25, -0.25]]],  # mean|W| = 0.25
            [[[-3.0, 1.0]], [[-1.0, 3.0]]],  # mean|W| = 2.0
        ]
    )
    expected = torch.tensor(
        [
            [[[1.0, -1.0]], [[1.0, 1.0]]],
            [[[-0.25, -0.25]], [[0.25, -0.25]]],
            [[[-2.0, 2.0]], [[-2.0, 2.0]]],
        ]
    )
    assert torch.equal(binarize_weight(w), expected)
    assert torch.equal(binarize_weight(w.clone().requires_grad_()), expected)
    assert torch.equal(SignWeightSTE.apply(w.clone().requires_grad_()), expected)


def test_weight_ste_gradient_is_clipped_identity_with_detached_scale() -> None:
    w = torch.tensor([[-2.0, -1.0, -0.5, 0.0], [0.3, 1.0, 1.0001, 5.0]], requires_grad=True)
    upstream = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    binarize_weight(w).backward(upstream)
    assert w.grad is not None
    # grad passes unchanged where |W| <= 1 (boundary included), zero elsewhere; no term through the scale.
    assert torch.equal(w.grad, torch.tensor([[0.0, 2.0, 3.0, 4.0], [5.0, 6.0, 0.0, 0.0]]))


def test_weight_ste_gradient_through_sum_is_the_mask() -> None:
    w = torch.tensor([[0.1, -0.2, 1.5]], requires_grad=True)
    binarize_weight(w).sum().backward()
    assert w.grad is not None
    # With gradient through the scale this would not be an exact 0/1 mask.
    assert torch.equal(w.grad, torch.tensor([[1.0, 1.0, 0.0]]))


# --- RSign and RPReLU -----------------------------------------------------------------------------


def test_rsign_learnable_threshold() -> None:
    rsign = RSign(2)
    assert rsign.threshold is not None
    assert rsign.threshold.shape == (1, 2, 1, 1)
    assert torch.equal(rsign.threshold, torch.zeros(1, 2, 1, 1))
    with torch.no_grad():
        rsign.threshold.copy_(torch.tensor([0.5, -1.0]).view(1, 2, 1, 1))
    x = torch.tensor([0.4, 0.5, 0.6, -1.1, -1.0, 0.0]).view(1, 2, 3, 1)
    out = rsign(x)
    assert torch.equal(out.flatten(), torch.tensor([-1.0, 1.0, 1.0, -1.0, 1.0, 1.0]))
    out.sum().backward()
    # d/d threshold of sign(x - t) = -ApproxSign'(x - t), summed over the channel.
    # channel 0: x - t = -0.1, 0, 0.1 -> 1.8 + 2 + 1.8; channel 1: x - t = -0.1, 0, 1 -> 1.8 + 2 + 0.
    assert rsign.threshold.grad is not None
    assert torch.allclose(rsign.threshold.grad.flatten(), torch.tensor([-5.6, -3.8]))


def test_rsign_not_learnable_has_no_parameters() -> None:
    rsign = RSign(3, learnable=False)
    assert list(rsign.parameters()) == []
    assert rsign.threshold is None
    x = torch.tensor([-0.5, 0.0, 0.5]).view(1, 3, 1, 1)
    assert torch.equal(rsign(x).flatten(), torch.tensor([-1.0, 1.0, 1.0]))


def test_rprelu_exact_values() -> None:
    act = RPReLU(2)
    assert torch.equal(act.gamma, torch.zeros(1, 2, 1, 1))
    assert torch.equal(act.zeta, torch.zeros(1, 2, 1, 1))
    assert torch.equal(act.prelu.weight, torch.full((2,), 0.25))
    with torch.no_grad():
        act.gamma.copy_(torch.tensor([1.0, -1.0]).view(1, 2, 1, 1))
        act.zeta.copy_(torch.tensor([0.5, 2.0]).view(1, 2, 1, 1))
        act.prelu.weight.copy_(torch.tensor([0.5, 0.25]))
    x = torch.tensor([3.0, -1.0, 1.0, -5.0]).view(1, 2, 2, 1)
    # ch0: x - 1 = 2, -2 -> 2, -1 -> +0.5 -> 2.5, -0.5; ch1: x + 1 = 2, -4 -> 2, -1 -> +2 -> 4, 1.
    assert torch.equal(act(x).flatten(), torch.tensor([2.5, -0.5, 4.0, 1.0]))


# --- BinaryConv2d ---------------------------------------------------------------------------------


def test_binary_conv_is_a_conv_and_flags_defaults() -> None:
    conv = BinaryConv2d(4, 8, 3, padding=1)
    assert isinstance(conv, nn.Conv2d)
    assert BinaryConv2d.is_binary is True
    assert conv.is_binary is True
    assert conv.binary_weights is True
    assert conv.binary_activations is True
    assert conv.bias is None
    assert conv.padding == (1, 1)
    assert isinstance(conv.rsign, RSign) and conv.rsign.learnable
    assert not BinaryConv2d(4, 8, 3, learnable_threshold=False).rsign.learnable


def test_binarized_weight_is_pm_scale_per_output_channel() -> None:
    torch.manual_seed(0)
    conv = BinaryConv2d(4, 6, 3, groups=2)
    wb = conv.binarized_weight()
    w = conv.weight.detach()
    scale = w.abs().mean(dim=(1, 2, 3))
    for c in range(6):
        assert torch.equal(wb[c].abs(), torch.full_like(wb[c], scale[c].item()))
        assert torch.equal(torch.sign(wb[c]), torch.where(w[c] >= 0, 1.0, -1.0))


def test_padding_is_plus_one_at_borders() -> None:
    conv = BinaryConv2d(1, 1, 3, padding=1, learnable_threshold=False)
    with torch.no_grad():
        conv.weight.fill_(0.5)  # binarized: +0.5 everywhere
    x = -torch.ones(1, 1, 4, 4)  # binarized: -1 everywhere, the padding is +1
    out = conv(x)
    # corner: 4 inputs (-1) + 5 pads (+1) = +1; edge: 6 inputs, 3 pads = -3; interior: -9; times 0.5.
    expected = torch.tensor(
        [
            [0.5, -1.5, -1.5, 0.5],
            [-1.5, -4.5, -4.5, -1.5],
            [-1.5, -4.5, -4.5, -1.5],
            [0.5, -1.5, -1.5, 0.5],
        ]
    ).view(1, 1, 4, 4)
    assert torch.equal(out, expected)


def test_real_activations_are_zero_padded() -> None:
    conv = BinaryConv2d(1, 1, 3, padding=1, binary_activations=False)
    with torch.no_grad():
        conv.weight.fill_(0.5)
    out = conv(-torch.ones(1, 1, 3, 3))
    expected = torch.tensor([[-2.0, -3.0, -2.0], [-3.0, -4.5, -3.0], [-2.0, -3.0, -2.0]]).view(1, 1, 3, 3)
    assert torch.equal(out, expected)


def test_binary_conv_matches_reference_with_groups_stride_dilation() -> None:
    torch.manual_seed(1)
    conv = BinaryConv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2)
    x = torch.randn(2, 4, 9, 9)
    out = conv(x)
    assert out.shape == (2, 6, 5, 5)
    assert torch.equal(out, _reference_binary_conv(conv, x))
    # groups=2: output channels 0..2 see only input channels 0..1.
    x2 = x.clone()
    x2[:, 2:] = -x2[:, 2:]
    out2 = conv(x2)
    assert torch.equal(out2[:, :3], out[:, :3])
    assert not torch.equal(out2[:, 3:], out[:, 3:])


def test_binary_conv_output_values_are_integer_multiples_of_scale() -> None:
    torch.manual_seed(2)
    conv = BinaryConv2d(3, 2, 3, padding=1)
    out = conv(torch.randn(1, 3, 5, 5)).detach()
    scale = conv.weight.detach().abs().mean(dim=(1, 2, 3))
    for c in range(2):
        counts = out[0, c] / scale[c]
        assert torch.allclose(counts, counts.round(), atol=1e-4)
        # 27 products of +-1: odd count, at most 27 in magnitude.
        assert set(counts.round().int().remainder(2).unique().tolist()) == {1}
        assert counts.abs().max() <= 27 + 1e-4


def test_binary_weights_flag_uses_real_weights() -> None:
    torch.manual_seed(3)
    conv = BinaryConv2d(2, 3, 3, padding=1, binary_weights=False)
    x = torch.randn(1, 2, 4, 4)
    xb = F.pad(torch.where(x >= 0, 1.0, -1.0), (1, 1, 1, 1), value=1.0)
    assert torch.equal(conv(x), F.conv2d(xb, conv.weight))
    conv.binary_weights = True
    assert torch.equal(conv(x), _reference_binary_conv(conv, x))


def test_set_binary_weights_toggles_every_binary_conv() -> None:
    model = nn.Sequential(
        BinaryConv2d(3, 4, 3, padding=1),
        nn.Conv2d(4, 4, 1),
        nn.Sequential(BinaryConv2d(4, 4, 3, padding=1, groups=2)),
    )
    binary = [m for m in model.modules() if isinstance(m, BinaryConv2d)]
    assert set_binary_weights(model, False) == 2
    assert all(m.binary_weights is False for m in binary)
    assert set_binary_weights(model, True) == 2
    assert all(m.binary_weights is True for m in binary)


def test_binary_conv_gradients() -> None:
    conv = BinaryConv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(2.0)  # |W| > 1: the clipped STE blocks the weight gradient
    x = torch.tensor([-0.5, 0.0, 0.5, 2.0]).view(1, 1, 2, 2).requires_grad_()
    conv(x).sum().backward()
    assert x.grad is not None and conv.weight.grad is not None
    # d out / d x = W_b * ApproxSign'(x) = 2 * [1, 2, 1, 0]
    assert torch.equal(x.grad.flatten(), torch.tensor([2.0, 4.0, 2.0, 0.0]))
    assert torch.equal(conv.weight.grad, torch.zeros(1, 1, 1, 1))
    conv.weight.grad = None
    with torch.no_grad():
        conv.weight.fill_(0.5)
    conv(x.detach()).sum().backward()
    # d out / d W (STE) = sum of the binarized inputs = -1 + 1 + 1 + 1
    assert torch.equal(conv.weight.grad, torch.full((1, 1, 1, 1), 2.0))


def test_string_padding_is_rejected() -> None:
    with pytest.raises(ModelError, match="integer padding"):
        BinaryConv2d(2, 2, 3, padding="same")  # type: ignore[arg-type]


def test_torch_compile_matches_eager() -> None:
    torch.manual_seed(4)
    conv = BinaryConv2d(4, 4, 3, padding=1, groups=2)
    x = torch.randn(2, 4, 6, 6)
    eager_x = x.clone().requires_grad_()
    conv(eager_x).square().sum().backward()
    eager_grads = (eager_x.grad.clone(), conv.weight.grad.clone(), conv.rsign.threshold.grad.clone())
    conv.zero_grad()
    compiled = torch.compile(conv, backend="aot_eager", fullgraph=True)
    comp_x = x.clone().requires_grad_()
    compiled(comp_x).square().sum().backward()
    comp_grads = (comp_x.grad, conv.weight.grad, conv.rsign.threshold.grad)
    for a, b in zip(eager_grads, comp_grads, strict=True):
        assert torch.equal(a, b)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_onnx_export(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from onnx.reference import ReferenceEvaluator

    torch.manual_seed(5)
    model = nn.Sequential(
        BinaryConv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        BinaryConv2d(8, 8, 3, stride=2, padding=1, groups=2),
        RPReLU(8),
    ).eval()
    x = torch.randn(1, 3, 8, 8)
    path = tmp_path / "binary.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"])
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    ops = {node.op_type for node in proto.graph.node}
    assert "Conv" in ops
    assert all(node.domain in ("", "ai.onnx") for node in proto.graph.node), ops
    (y,) = ReferenceEvaluator(proto).run(None, {"x": x.numpy()})
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(torch.from_numpy(y), expected, atol=1e-5)
