"""Property: every genotype the validator accepts builds and runs, and every bound it checks holds.

Hypothesis draws genotypes of every space: odd and even, square and non-square input sizes, every
placement of the reductions, repeats, cells of 1 to 5 nodes with any concat. Each one either fails
validation with bnnzoo's own error, or builds on the ``meta`` device (no memory) and runs a forward
pass with the right output shape, within the parameter and activation bounds the validator
estimated.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnnzoo.build.network import BinaryNet
from bnnzoo.dsl import Basic, Cell, CellNetwork, Edge, Genotype, Head, LayerList, MBConv, Node, Skip, Stem, validate
from bnnzoo.dsl.spaces import BNAS_OPS, SHORTCUT_KINDS
from bnnzoo.dsl.validate import estimate_activations, estimate_parameters

PROPERTY = settings(
    max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)

sizes = st.integers(1, 40)
input_shapes = st.tuples(st.integers(1, 4), sizes, sizes | st.just(1))
stems = st.builds(Stem, st.sampled_from([3, 5, 7]), st.integers(1, 24), st.sampled_from([1, 2]))
header = dict(input_shape=input_shapes, num_classes=st.integers(1, 12), stem=stems, head=st.builds(Head))

mbconv_layers = st.one_of(
    st.builds(
        MBConv,
        st.sampled_from([3, 5, 7]),
        st.integers(1, 4),
        st.integers(1, 40),
        st.sampled_from([1, 2]),
        st.integers(1, 3),
    ),
    st.builds(Skip, st.integers(1, 2)),
)
basic_layers = st.builds(
    Basic, st.sampled_from(["binary", "real"]), st.integers(1, 40), st.sampled_from([1, 2]), st.integers(1, 2)
)


@st.composite
def cells(draw, kind: str) -> Cell:
    count = draw(st.integers(1, 5))
    nodes = []
    for position in range(count):
        index = 2 + position
        edges = draw(
            st.lists(st.builds(Edge, st.sampled_from(BNAS_OPS), st.integers(0, index - 1)), min_size=1, max_size=3)
        )
        nodes.append(Node(index, tuple(edges)))
    concat = draw(st.lists(st.integers(2, 1 + count), min_size=1, max_size=count, unique=True))
    return Cell(kind, tuple(nodes), tuple(sorted(concat)))


@st.composite
def cell_networks(draw) -> CellNetwork:
    layers = draw(st.integers(1, 7))
    reductions = draw(st.lists(st.integers(0, layers - 1), max_size=3, unique=True))
    return CellNetwork(
        layers, draw(st.integers(1, 8)), tuple(sorted(reductions)), draw(cells("normal")), draw(cells("reduction"))
    )


def genotypes(space: str) -> st.SearchStrategy[Genotype]:
    if space == "bnas":
        body = cell_networks()
    else:
        layer = mbconv_layers if space == "mbconv" else basic_layers
        body = st.builds(LayerList, st.lists(layer, min_size=1, max_size=5).map(tuple))
    shortcut = st.sampled_from(SHORTCUT_KINDS) if space == "mbconv" else st.just("partial_duplicate")
    return st.builds(Genotype, name=st.just("drawn"), space=st.just(space), body=body, shortcut=shortcut, **header)


def run_on_meta(genotype: Genotype) -> tuple[torch.Size, int, int]:
    """Build on the meta device and run one forward pass: the output shape, parameters and the largest map."""
    with torch.device("meta"):
        model = BinaryNet(genotype).eval()
    largest = 0

    def watch(module, args, output):
        nonlocal largest
        if isinstance(output, torch.Tensor):
            largest = max(largest, output[0].numel())

    for module in model.modules():
        module.register_forward_hook(watch)
    with torch.no_grad():
        out = model(torch.empty(1, *genotype.input_shape, device="meta"))
    size = sum(t.numel() for t in [*model.parameters(), *model.buffers()])
    return out.shape, size, largest


@pytest.mark.parametrize("space", ["mbconv", "resnet", "bnas"])
def test_every_accepted_genotype_builds_and_runs_within_its_bounds(space):
    accepted = []

    @PROPERTY
    @given(genotypes(space))
    def check(genotype: Genotype) -> None:
        if validate(genotype):
            return  # refused with located bnnzoo errors: fine
        shape, size, largest = run_on_meta(genotype)
        assert shape == (1, genotype.num_classes)
        assert size <= estimate_parameters(genotype)
        assert largest <= estimate_activations(genotype)
        accepted.append(genotype)

    check()
    assert len(accepted) >= 20, "the strategy should mostly draw valid genotypes"
