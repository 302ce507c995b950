"""The BNAS template against the official BNAS evaluation code (gistvision/bnas, ``src/model.py``).

``OfficialNetwork`` below is written by hand from the official ``model.py`` and ``operations.py``:
the same modules in the same order, plain ``nn.Conv2d`` where the official code binarizes with
BinOp. The tests run it beside bnnzoo's build of the same genotype and compare every layer.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import bnnzoo
from bnnzoo.build.binary import BinaryConv2d
from bnnzoo.build.network import BinaryNet
from bnnzoo.dsl.library import zoo_genotype
from bnnzoo.profile import profile, profile_module
from bnnzoo.profile.counter import memory_mb

# -- the official network, by hand ------------------------------------------------------------------


class OfficialZero(nn.Module):
    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class OfficialBinReLUConvBN(nn.Module):
    """``BinReLUConvBN`` (and ``BinDilConv``): BN, sign, conv, ReLU."""

    def __init__(self, c_in, c_out, kernel, stride, padding, dilation=1, affine=True) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(c_in, affine=affine)
        self.op = nn.Sequential(
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, bias=False), nn.ReLU()
        )

    def forward(self, x):
        return self.op(torch.sign(self.bn(x)))


OFFICIAL_OPS = {
    "none": lambda c, stride: OfficialZero(stride),
    "avg_pool_3x3": lambda c, stride: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "max_pool_3x3": lambda c, stride: nn.MaxPool2d(3, stride=stride, padding=1),
    "bin_dil_conv_3x3": lambda c, stride: OfficialBinReLUConvBN(c, c, 3, stride, 2, 2),
    "bin_dil_conv_5x5": lambda c, stride: OfficialBinReLUConvBN(c, c, 5, stride, 4, 2),
    "bin_conv_3x3": lambda c, stride: OfficialBinReLUConvBN(c, c, 3, stride, 1),
    "bin_conv_5x5": lambda c, stride: OfficialBinReLUConvBN(c, c, 5, stride, 2),
}


class OfficialCell(nn.Module):
    def __init__(self, genotype, layer_no, c_pp, c_p, c, reduction, reduction_prev) -> None:
        super().__init__()
        self.reduction, self.layer = reduction, layer_no
        if reduction_prev:
            self.preprocess0 = OfficialBinReLUConvBN(c_pp, c, 3, 2, 1, affine=False)
        else:
            self.preprocess0 = OfficialBinReLUConvBN(c_pp, c, 1, 1, 0)
        self.preprocess1 = OfficialBinReLUConvBN(c_p, c, 1, 1, 0)
        if reduction:
            self.preprocess_res = nn.Sequential(nn.BatchNorm2d(c_p, affine=True), nn.Conv2d(c_p, 4 * c, 2, stride=2))
        pairs, self.concat = genotype["reduce" if reduction else "normal"], genotype["concat"]
        self.ops = nn.ModuleList(OFFICIAL_OPS[op](c, 2 if reduction and index < 2 else 1) for op, index in pairs)
        self.indices = [index for _, index in pairs]
        self.multiplier = len(self.concat)

    def forward(self, s0, s1):
        res1 = s1
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(len(self.ops) // 2):
            a = self.ops[2 * i](states[self.indices[2 * i]])
            b = self.ops[2 * i + 1](states[self.indices[2 * i + 1]])
            states.append(a + b)
        out = torch.cat([states[i] for i in self.concat], dim=1)
        if self.layer == 0:
            return out
        return out + (self.preprocess_res(res1) if self.reduction else res1)


class OfficialNetwork(nn.Module):
    """``NetworkCIFAR``: stem ``ReLUConvBN(3, 3C, 3, 1, 1)``, reductions at layers//3 and 2*layers//3."""

    def __init__(self, c, num_classes, layers, genotype) -> None:
        super().__init__()
        c_curr = 3 * c
        self.stem = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, c_curr, 3, padding=1, bias=False), nn.ReLU())
        c_pp, c_p, c_curr = c_curr, c_curr, c
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in [layers // 3, 2 * layers // 3]
            if reduction:
                c_curr *= 2
            cell = OfficialCell(genotype, i, c_pp, c_p, c_curr, reduction, reduction_prev)
            reduction_prev = reduction
            self.cells.append(cell)
            c_pp, c_p = c_p, cell.multiplier * c_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))


# BNAS-A (genotypes.py, `latest_cell_zeroise`), and a genotype that uses every op on both inputs.
BNAS_A = {
    "normal": [("none", 1), ("bin_dil_conv_3x3", 0), ("bin_conv_3x3", 1), ("none", 2),
               ("none", 2), ("none", 3), ("none", 3), ("none", 4)],
    "reduce": [("max_pool_3x3", 0), ("none", 1), ("max_pool_3x3", 0), ("none", 2),
               ("none", 3), ("none", 2), ("none", 3), ("none", 4)],
    "concat": [2, 3, 4, 5],
}  # fmt: skip
EVERY_OP = {
    "normal": [("bin_conv_5x5", 0), ("bin_dil_conv_5x5", 1), ("avg_pool_3x3", 2), ("bin_conv_3x3", 1),
               ("max_pool_3x3", 3), ("bin_dil_conv_3x3", 0), ("none", 4), ("bin_conv_3x3", 2)],
    "reduce": [("bin_dil_conv_3x3", 0), ("max_pool_3x3", 1), ("bin_conv_5x5", 1), ("avg_pool_3x3", 0),
               ("bin_dil_conv_5x5", 0), ("bin_conv_3x3", 3), ("bin_conv_5x5", 4), ("none", 1)],
    "concat": [2, 3, 4, 5],
}  # fmt: skip


def bnnzoo_genotype(cells: dict, channels: int, layers: int, size: int) -> bnnzoo.Genotype:
    def cell(kind: str, pairs) -> str:
        nodes = [
            f"  node {2 + i} = {pairs[2 * i][0]}({pairs[2 * i][1]}) + {pairs[2 * i + 1][0]}({pairs[2 * i + 1][1]})"
            for i in range(len(pairs) // 2)
        ]
        return "\n".join([f"cell {kind} {{", *nodes, f"  concat {' '.join(map(str, cells['concat']))}", "}"])

    text = "\n".join(
        [
            "bnnzoo 1",
            "name reference",
            "space bnas",
            f"input 3x{size}x{size}",
            "classes 10",
            f"stem conv3x3 {3 * channels}",
            "head avgpool fc",
            f"layers {layers}",
            f"channels {channels}",
            cell("normal", cells["normal"]),
            cell("reduction", cells["reduce"]),
        ]
    )
    return bnnzoo.parse(text)


_TRACED = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d)


def official_binary(name: str, module: nn.Module) -> bool:
    """BinOp binarizes every conv but the stem's and the residual's (``'res' not in name``)."""
    return isinstance(module, nn.Conv2d) and "res" not in name and not name.startswith("stem")


def layer_trace(model: nn.Module, size: int) -> list[tuple]:
    """Every conv, linear, BatchNorm and pooling outside the stem, in the order the forward pass runs them."""
    trace: list[tuple] = []

    def describe(name: str, module: nn.Module, output: torch.Tensor) -> tuple:
        shape = tuple(output.shape[1:])
        if isinstance(module, nn.Conv2d):
            binary = isinstance(module, BinaryConv2d) if isinstance(model, BinaryNet) else official_binary(name, module)
            return ("conv", module.in_channels, module.out_channels, module.kernel_size, module.stride,
                    tuple(module.padding), module.dilation, module.bias is not None, binary, shape)  # fmt: skip
        if isinstance(module, nn.Linear):
            return ("linear", module.in_features, module.out_features, shape)
        if isinstance(module, nn.BatchNorm2d):
            return ("bn", module.num_features, module.affine, shape)
        return (type(module).__name__, module.kernel_size, module.stride, module.padding, shape)

    handles = []
    for name, module in model.named_modules():
        if isinstance(module, _TRACED) and not name.startswith("stem"):
            hook = module.register_forward_hook(lambda m, args, out, name=name: trace.append(describe(name, m, out)))
            handles.append(hook)
    with torch.no_grad():
        model.eval()(torch.randn(2, 3, size, size))
    for handle in handles:
        handle.remove()
    return trace


@pytest.mark.parametrize("cells", [BNAS_A, EVERY_OP], ids=["bnas_a", "every_op"])
@pytest.mark.parametrize("layers", [5, 7])
def test_every_layer_has_the_official_shape(cells, layers):
    channels, size = 6, 16
    official = OfficialNetwork(channels, 10, layers, cells)
    ours = BinaryNet(bnnzoo_genotype(cells, channels, layers, size))
    expected, found = layer_trace(official, size), layer_trace(ours, size)
    assert len(found) == len(expected)
    for index, (mine, theirs) in enumerate(zip(found, expected)):
        assert mine == theirs, f"layer {index}"
    # The stems: a real 3x3 conv to 3C at full resolution in both.
    assert ours.stem.conv.weight.shape == official.stem[1].weight.shape
    assert ours.stem.conv.stride == official.stem[1].stride and ours.stem.conv.padding == official.stem[1].padding


def official_counts(model: OfficialNetwork, size: int) -> dict[str, float]:
    """BOPs, FLOPs and Params of the official network with every conv outside the residual and stem binary."""
    bops = flops = binary = real = 0
    macs: dict[str, int] = {}

    def hook(name):
        def record(module, args, out):
            if isinstance(module, nn.Linear):
                macs[name] = module.weight.numel()
            else:
                macs[name] = out[0].numel() * module.weight[0].numel()

        return record

    handles = [
        m.register_forward_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for handle in handles:
        handle.remove()
    modules = dict(model.named_modules())
    for name, count in macs.items():
        module = modules[name]
        if official_binary(name, module):
            bops += count
            binary += module.weight.numel()
            real += module.out_channels  # the per-output-channel scale of BinOp
        else:
            flops += count
            real += module.weight.numel() + (module.bias.numel() if module.bias is not None else 0)
    for name, module in modules.items():
        if isinstance(module, nn.BatchNorm2d) and module.affine and not name.startswith("stem"):
            real += 2 * module.num_features
    return {"bops": bops, "flops": flops, "params_mb": memory_mb(binary, real)}


@pytest.mark.parametrize("cells", [BNAS_A, EVERY_OP], ids=["bnas_a", "every_op"])
def test_profile_counts_what_the_official_network_computes(cells):
    channels, layers, size = 6, 7, 16
    official = official_counts(OfficialNetwork(channels, 10, layers, cells), size)
    ours = profile(BinaryNet(bnnzoo_genotype(cells, channels, layers, size))).totals()
    assert (ours["bops"], ours["flops"]) == (official["bops"], official["flops"])
    assert ours["params_mb"] == pytest.approx(official["params_mb"], abs=1e-12)


def test_bnas_a_baseline_is_the_official_bnas_a():
    """The zoo's BNAS-A is the official network at C = 36, 20 cells: the same counts, layer for layer."""
    official = official_counts(OfficialNetwork(36, 10, 20, BNAS_A), 32)
    ours = profile("bnas_a_baseline").totals()
    assert (ours["bops"], ours["flops"]) == (official["bops"], official["flops"]) == (696_729_600, 87_926_400)
    assert ours["params_mb"] == pytest.approx(official["params_mb"], abs=1e-12)
    assert zoo_genotype("bnas_a_baseline").body.reductions == (6, 13)


def test_reduction_residual_has_a_bias_and_the_preprocessing_after_a_reduction_is_a_binary_3x3():
    model = BinaryNet(zoo_genotype("bnas_a_baseline"))
    cells = model.body.cells
    assert cells[6].residual.conv.bias is not None and cells[6].residual.conv.kernel_size == (2, 2)
    after = cells[7].preprocess0
    assert isinstance(after.conv, BinaryConv2d) and after.conv.kernel_size == (3, 3) and after.conv.stride == (2, 2)
    assert not after.bn.affine
    counts = profile_module(after, (144, 32, 32))
    assert counts.bops == 72 * 16 * 16 * 144 * 9  # 23.9 M MACs, as in the official network
