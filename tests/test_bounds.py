"""Golden tests of accepted-then-crashed genotypes and of the bounds the validator and profiler keep.

Each test reproduces a failure as it was reported: a genotype ``check`` accepted that crashed in its
first forward pass, a parameter estimate below the built network, a tiny file that made
``bnnzoo info`` allocate gigabytes. Memory is checked with ``resource`` limits in a subprocess.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from bnnzoo.build.network import BinaryNet
from bnnzoo.cli import main
from bnnzoo.dsl import check, parse, to_text
from bnnzoo.dsl.library import zoo_genotype
from bnnzoo.dsl.spaces import MAX_PARAMETERS
from bnnzoo.dsl.validate import estimate_activations, estimate_parameters
from bnnzoo.fit import CellCandidate, CellFitter, CellSpace
from bnnzoo.profile import profile
from bnnzoo.search.cell_supernet import CellSupernet
from bnnzoo.search.resource import ExpectedOps


def edit(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


# -- accepted, then crashed -----------------------------------------------------------------------


def test_bnas_a_at_28x28_with_three_reductions_builds_and_runs():
    """Was: ``RuntimeError: The size of tensor a (4) must match ... (3)`` at cells.py:74 (7 -> 3 vs 4)."""
    text = to_text(zoo_genotype("bnas_a"))
    text = edit(
        edit(edit(text, "input 3x32x32", "input 3x28x28"), "layers 20", "layers 8"),
        "reductions 6 13",
        "reductions 2 4 6",
    )
    genotype = parse(text)
    model = BinaryNet(genotype).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 28, 28)).shape == (2, 10)
    # 28 -> 14 -> 7 -> 4: the last reduction halves an odd size, and every op and the residual round up.
    assert model.forward_intermediates(torch.randn(1, 3, 28, 28), intermediates_only=True)[-1].shape[-1] == 4


MBCONV_REPEAT = """\
bnnzoo 1
name repeat
space mbconv
input 3x32x32
classes 10
stem conv3x3 8
head avgpool fc

layers {
  MB3(3) 9 x2
}
"""


def test_every_copy_of_a_repeat_is_checked():
    """Was accepted: copy 1 expands 8 -> 24 channels, copy 2 9 -> 27, which g = 2 cannot split."""
    errors = check(MBCONV_REPEAT)
    assert [error.message for error in errors] == [
        "copy 2 of MB3(3) x2 after 9 channels expands to 27, which its g=2 group conv cannot split; "
        "use an even expansion or even channels"
    ]
    assert (errors[0].line, errors[0].column) == (10, 7)  # the expansion
    assert check(edit(MBCONV_REPEAT, "MB3(3) 9 x2", "MB3(3) 10 x2")) == []


def test_odd_cell_channels_build():
    """Nothing splits the channels of a BNAS cell in two any more, so odd C is accepted and builds."""
    text = edit(edit(to_text(zoo_genotype("bnas_mini")), "channels 24", "channels 7"), "conv3x3 72", "conv3x3 21")
    with torch.no_grad():
        assert BinaryNet(parse(text))(torch.randn(1, 3, 32, 32)).shape == (1, 10)


# -- the reduction shape rule in the cost models ----------------------------------------------------


EVERY_OP = (
    ("bin_conv_5x5", 0), ("bin_dil_conv_5x5", 1), ("avg_pool_3x3", 2), ("bin_conv_3x3", 1),
    ("max_pool_3x3", 3), ("bin_dil_conv_3x3", 0), ("none", 4), ("bin_conv_3x3", 2),
)  # fmt: skip


def test_the_fitters_cost_model_rounds_reductions_like_the_builder():
    """30 -> 15 -> 8: the fitter's summed counts equal the profile of the network it describes."""
    fitter = CellFitter(CellSpace(layers=5, channels=6, input_shape=(3, 30, 30)), {})
    assert fitter.op_positions() == {"normal": [(6, 30), (12, 15), (24, 8)], "reduction": [(12, 30), (24, 15)]}
    candidate = CellCandidate(EVERY_OP, EVERY_OP)
    figures, totals = fitter.counts(candidate).figures(), profile(fitter.genotype(candidate, "odd")).totals()
    assert (figures["bops"], figures["flops"]) == (totals["bops"], totals["flops"])
    assert figures["params_mb"] == pytest.approx(totals["params_mb"], abs=1e-12)


def test_the_search_supernet_runs_at_odd_sizes_and_its_cost_model_agrees():
    net = CellSupernet(channels=4, layers=5, input_size=15)
    assert net(torch.randn(2, 3, 15, 15)).shape == (2, 10)
    assert float(ExpectedOps(net)().detach()) > 0


# -- bounds ---------------------------------------------------------------------------------------


def wide_concat(channels: int) -> str:
    nodes = "\n".join(f"  node {index} = bin_conv_5x5(0)" for index in range(2, 10))
    cells = [f"cell {kind} {{\n{nodes}\n  concat 2 3 4 5 6 7 8 9\n}}" for kind in ("normal", "reduction")]
    return (
        textwrap.dedent(f"""\
        bnnzoo 1
        name wide
        space bnas
        input 3x32x32
        classes 10
        stem conv3x3 {3 * channels}
        head avgpool fc
        layers 3
        channels {channels}
        """)
        + "\n".join(cells)
        + "\n"
    )


def built_size(genotype) -> int:
    with torch.device("meta"):
        model = BinaryNet(genotype)
    return sum(t.numel() for t in [*model.parameters(), *model.buffers()])


def test_the_parameter_estimate_bounds_cells_that_concatenate_8_nodes():
    """Was: estimated 198 M (under the 200 M limit, so accepted), built 324 M parameters."""
    from bnnzoo.dsl.reader import read

    genotype, errors = read(wide_concat(213))
    assert errors == []
    size = built_size(genotype)
    assert size > MAX_PARAMETERS and estimate_parameters(genotype) >= size
    messages = [error.message for error in check(wide_concat(213))]
    assert messages == [
        "the network would have up to 324 M parameters, over the limit of 200 M; reduce channels, expansions or depth"
    ]
    small = parse(wide_concat(24))
    assert built_size(small) <= estimate_parameters(small) < 1.1 * built_size(small) + 50_000


@pytest.mark.parametrize("name", ["xnor_resnet18", "mbconv_d", "bnas_cm", "bnas_a_baseline"])
def test_the_estimates_bound_the_zoo(name):
    genotype = zoo_genotype(name)
    size = built_size(genotype)
    assert size <= estimate_parameters(genotype) < 1.2 * size
    assert estimate_activations(genotype) >= 3 * 40 * 40  # the padded input at least


TINY_HUGE = (
    "bnnzoo 1\nname x\nspace resnet\ninput 64x1024x1024\nclasses 10\nstem conv3x3 4096\nhead avgpool fc\n"
    "layers {\n  basic(binary) 8\n}\n"
)


def test_a_120_byte_file_with_a_4096_channel_stem_at_1024x1024_is_refused(tmp_path, capsys):
    """Was accepted, and ``bnnzoo info`` tried to allocate 17 GB for its real forward pass."""
    assert len(TINY_HUGE.encode()) <= 122
    errors = check(TINY_HUGE)
    assert [error.message for error in errors] == [
        "a feature map of one image would have up to 4362 M values, over the limit of 67 M; "
        "reduce the input size or the channels at full resolution"
    ]
    assert (errors[0].line, errors[0].column) == (4, 1)
    path = tmp_path / "huge.bnn"
    path.write_text(TINY_HUGE)
    assert main(["info", str(path)]) == 1
    assert "over the limit of 67 M" in capsys.readouterr().err


# A valid network whose feature maps are within the bound but large: 60 x 1024 x 1024 values (240 MB).
LARGE = """\
bnnzoo 1
name large
space resnet
input 3x1024x1024
classes 10
stem conv3x3 60
head avgpool fc

layers {
  basic(binary) 60
  basic(binary) 64 s2
}
"""

CHILD = r"""
import resource, sys
import torch
from bnnzoo.build.network import BinaryNet
from bnnzoo.dsl import parse
from bnnzoo.profile import profile

torch.set_num_threads(1)
genotype = parse(open(sys.argv[1]).read())
torch.zeros(1).add_(1)
size = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
limit = size + int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
if sys.argv[2] == "profile":
    print(profile(genotype).bops)
else:
    model = BinaryNet(genotype).eval()
    with torch.no_grad():
        model(torch.zeros(1, *genotype.input_shape))
    print("ran")
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmSize from /proc")
def test_the_profiler_allocates_no_activations(tmp_path):
    """Under an address-space limit 400 MB above what the process holds, a real forward pass of LARGE
    fails, and profiling it succeeds: the profiler counts on the meta device."""
    assert check(LARGE) == []
    path = tmp_path / "large.bnn"
    path.write_text(LARGE)
    headroom = str(400 * 2**20)

    def child(mode: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", CHILD, str(path), mode, headroom], capture_output=True, text=True)

    real = child("forward")
    assert real.returncode != 0 and "ran" not in real.stdout, "the limit must be too small for a real forward pass"
    counted = child("profile")
    assert counted.returncode == 0, counted.stderr
    assert int(counted.stdout) == profile(parse(LARGE)).bops > 0
