"""``op_norm="batchnorm"``: DARTS's per-op BatchNorm in the BNAS supernet, checked against a slow
reference that runs every op of every edge on its own."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bnnzoo.build.binary import sign
from bnnzoo.cli import main
from bnnzoo.dsl.spaces import BNAS_OPS
from bnnzoo.errors import SearchError
from bnnzoo.search import SearchConfig, run_search
from bnnzoo.search.cell_supernet import CELL_INPUTS, CellSupernet, MixedCell, edge_index

# the binary convolutions of BNAS_OPS: (kernel attribute, dilation, padding of the +1-padded input)
CONVS = {
    "bin_conv_3x3": ("w3", 1, 1),
    "bin_conv_5x5": ("w5", 1, 2),
    "bin_dil_conv_3x3": ("wd3", 2, 2),
    "bin_dil_conv_5x5": ("wd5", 2, 4),
}


def _bn(x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, None, None, training=True)


def _reference(cell: MixedCell, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Every edge, every op, one at a time: sum over ops of weight * BN(op(state))."""
    states = [cell.preprocess0(s0), cell.preprocess1(s1)]
    c = cell.channels
    for node in range(cell.nodes):
        total = 0.0
        for source in range(CELL_INPUTS + node):
            x, w = states[source], weights[edge_index(node, source)]
            stride = 2 if cell.reduction and source < CELL_INPUTS else 1
            slot = cell.targets[source].index(node)
            xb = sign(_bn(x) - cell.thresholds[source])  # centred, then thresholded
            for index, op in enumerate(BNAS_OPS):
                if op == "none":
                    continue
                if op == "max_pool_3x3":
                    out = F.max_pool2d(x, 3, stride, 1)
                elif op == "avg_pool_3x3":
                    out = F.avg_pool2d(x, 3, stride, 1, count_include_pad=False)
                else:
                    name, dilation, pad = CONVS[op]
                    kernel = sign(getattr(cell, name)[source][slot * c : (slot + 1) * c])
                    out = F.conv2d(F.pad(xb, (pad,) * 4, value=1.0), kernel, stride=stride, dilation=dilation)
                total = total + w[index] * _bn(out)
        states.append(total)
    out = torch.cat(states[CELL_INPUTS:], dim=1)
    return out if cell.residual is None else out + cell.residual(s1)


@pytest.mark.parametrize("reduction", [False, True])
def test_the_batchnorm_cell_equals_every_op_run_on_its_own(reduction):
    torch.manual_seed(0)
    cell = MixedCell(6, 8 if reduction else 12, 4, reduction, False, residual=True, nodes=3, op_norm="batchnorm")
    s0, s1 = torch.randn(5, 6, 8, 8), torch.randn(5, 8 if reduction else 12, 8, 8)
    weights = torch.softmax(torch.randn(9, len(BNAS_OPS)), dim=-1)
    expected = _reference(cell, s0, s1, weights)
    got = cell(s0, s1, weights)
    assert got.shape == expected.shape == (5, 12, 4 if reduction else 8, 4 if reduction else 8)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_each_op_comes_out_normalised_whatever_its_kernel_scale():
    torch.manual_seed(1)
    cell = MixedCell(4, 4, 4, False, False, residual=False, nodes=2, op_norm="batchnorm")
    weights = torch.zeros(5, len(BNAS_OPS))
    weights[edge_index(0, 1), BNAS_OPS.index("bin_conv_5x5")] = 1.0  # node 0 is exactly BN(conv5(s1))
    out = cell(torch.randn(16, 4, 8, 8), torch.randn(16, 4, 8, 8), weights)
    node0 = out[:, :4]
    assert node0.mean(dim=(0, 2, 3)).abs().max() < 1e-5
    torch.testing.assert_close(node0.var(dim=(0, 2, 3), unbiased=False), torch.ones(4), rtol=1e-3, atol=1e-3)


def test_the_supernet_passes_op_norm_to_every_cell_and_alpha_gets_gradients():
    net = CellSupernet(4, 3, 10, 1, nodes=2, input_size=16, op_norm="batchnorm")
    assert {cell.op_norm for cell in net.cells} == {"batchnorm"}
    net(torch.randn(4, 1, 16, 16)).sum().backward()
    assert net.alpha_normal.alpha.grad.abs().sum() > 0 and net.alpha_reduction.alpha.grad.abs().sum() > 0


def test_a_batchnorm_search_runs_and_resumes_from_the_cli(tmp_path, capsys):
    out = tmp_path / "bn"
    argv = ["search", "--space", "bnas", "--dataset", "synthetic", "--channels", "4", "--layers", "3"]
    argv += ["--epochs", "2", "--batch-size", "8", "--limit", "48", "--op-norm", "batchnorm", "--no-progress"]
    assert main([*argv, "-o", str(out)]) == 0
    assert (out / "searched.bnn").exists()
    config = SearchConfig(
        space="bnas", dataset="synthetic", channels=4, layers=3, epochs=2, batch_size=8, limit=48,
        op_norm="batchnorm", output=str(out), progress=False,
    )  # fmt: skip
    again = run_search(config, resume=True, echo=None)
    assert len(again.history) == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(op_norm="layernorm"), "unknown --op-norm 'layernorm'; use scale or batchnorm"),
        (dict(space="mbconv", op_norm="batchnorm"), "--op-norm applies to the bnas space"),
    ],
)
def test_bad_op_norms_are_clear_errors(overrides, message):
    with pytest.raises(SearchError, match=message):
        SearchConfig(**overrides).validate()
