"""Round trips of the genotype DSL: random valid genotypes survive ``to_text`` and ``parse``.

Genotypes are drawn from the typed dataclasses of ``bnnzoo.dsl.types`` in all three spaces and
kept inside every rule of ``bnnzoo.dsl.validate`` (bounds of ``bnnzoo.dsl.spaces``, the parameter
estimate, stride-2 reductions against the input size, MBConv channel and group rules, cell wiring).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bnnzoo.dsl import (
    Basic,
    Cell,
    CellNetwork,
    Edge,
    Genotype,
    Head,
    LayerList,
    MBConv,
    Node,
    Skip,
    Stem,
    check,
    check_genotype,
    parse,
    spaces,
    to_text,
)
from bnnzoo.dsl.validate import estimate_activations, estimate_parameters

ZOO = Path(__file__).resolve().parents[1] / "genotypes"

# Words follow the WORD terminal of grammar/genotype.lark, /[A-Za-z_][A-Za-z0-9_.\-]*/.
# Words that are keywords or look like other tokens somewhere in the grammar.
TRICKY_WORDS = (
    "bnnzoo",
    "meta",
    "layers",
    "cell",
    "node",
    "concat",
    "name",
    "space",
    "input",
    "classes",
    "stem",
    "head",
    "shortcut",
    "channels",
    "reductions",
    "normal",
    "reduction",
    "skip",
    "basic",
    "MB3",
    "mbconv",
    "conv3x3",
    "s2",
    "x2",
    "s1-",
    "x3.5",
    "e-1",
    "_",
)
WORD_START = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
WORD_REST = WORD_START + "0123456789.-"
words = st.one_of(
    st.builds(str.__add__, st.sampled_from(WORD_START), st.text(WORD_REST, max_size=15)),
    st.sampled_from(TRICKY_WORDS),
)

# str.splitlines() breaks lines at these: a comment is one line, so they cannot occur in one.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
SPECIAL = '"\\\n\r\t\x00\x7f\x85\u2028\u2029é漢字😀 #{}()=+'
ASCII = "".join(chr(code) for code in range(32, 127))
meta_values = st.one_of(
    st.text(ASCII + SPECIAL, max_size=40), st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
)
comment_lines = st.one_of(
    st.text(ASCII + '"\\#é漢😀 \t', max_size=40),
    st.text(st.characters(exclude_characters=LINE_BREAKS, exclude_categories=("Cs",)), max_size=20),
)
comments = st.lists(comment_lines, max_size=4).map(tuple)
metas = st.lists(st.tuples(words, meta_values), max_size=4, unique_by=lambda kv: kv[0]).map(tuple)

sizes = st.one_of(st.integers(1, 64), st.integers(1, spaces.MAX_INPUT_SIZE), st.sampled_from((1, 2, 3, 4, 1024)))
small_channels = st.one_of(st.integers(1, 64), st.sampled_from((1, 2, 3)))


def rarely(extreme: st.SearchStrategy, usual: st.SearchStrategy) -> st.SearchStrategy:
    """``extreme`` about one time in ten, else ``usual``."""
    return st.integers(0, 9).flatmap(lambda roll: extreme if roll == 0 else usual)


def max_reductions(height: int, width: int) -> int:
    """How many stride-2 steps an input allows: halving down to 1x1 at most."""
    return max(min(height, width).bit_length() - 1, 0)


def within_parameter_bound(genotype: Genotype) -> bool:
    """The validator's estimates, also with repeats unrolled (a repeated block's later copies are
    wider than its first), stay under the bounds: robust to either way of counting repeats."""
    estimates = [estimate_parameters(genotype)]
    if isinstance(genotype.body, LayerList):
        unrolled = LayerList(tuple(genotype.body.expanded()))
        estimates.append(estimate_parameters(dataclasses.replace(genotype, body=unrolled)))
    return max(estimates) <= spaces.MAX_PARAMETERS and estimate_activations(genotype) <= spaces.MAX_ACTIVATIONS


@st.composite
def repeats(draw, left: int) -> int:
    return min(draw(rarely(st.integers(1, spaces.MAX_REPEAT), st.one_of(st.just(1), st.integers(1, 4)))), left)


@st.composite
def mbconv_layers(draw, stem_channels: int, strides_left: int) -> LayerList:
    count = draw(st.integers(1, 8))
    layers = []
    channels = stem_channels
    total = 0
    for index in range(count):
        repeat = draw(repeats(spaces.MAX_LAYERS - total - (count - index - 1)))
        total += repeat
        if draw(st.integers(0, 4)) == 0:
            layers.append(Skip(repeat))
            continue
        kernel = draw(st.sampled_from(spaces.MBCONV_KERNELS))
        # An MB block never narrows: its shortcut only fills channels up.
        grow = draw(rarely(st.just(spaces.MAX_CHANNELS), st.one_of(st.just(0), st.integers(0, 8), st.integers(0, 64))))
        out = min(channels + grow, spaces.MAX_CHANNELS)
        # The g=2 group conv needs an even hidden width in every copy: odd channels (the first copy
        # reads `channels`, the others `out`) take an even expansion.
        even = tuple(e for e in range(2, spaces.MBCONV_MAX_EXPANSION + 1, 2))
        odd = channels % 2 or (repeat > 1 and out % 2)
        expansion = draw(st.sampled_from(even) if odd else st.integers(1, spaces.MBCONV_MAX_EXPANSION))
        stride = draw(st.sampled_from((1, 2))) if strides_left else 1
        strides_left -= stride == 2
        layers.append(MBConv(kernel, expansion, out, stride, repeat))
        channels = out
    return LayerList(tuple(layers))


@st.composite
def resnet_layers(draw, strides_left: int) -> LayerList:
    count = draw(st.integers(1, 8))
    layers = []
    total = 0
    for index in range(count):
        repeat = draw(repeats(spaces.MAX_LAYERS - total - (count - index - 1)))
        total += repeat
        channels = draw(rarely(st.just(spaces.MAX_CHANNELS), st.one_of(small_channels, st.integers(1, 256))))
        stride = draw(st.sampled_from((1, 2))) if strides_left else 1
        strides_left -= stride == 2
        downsample = draw(st.sampled_from(spaces.BASIC_DOWNSAMPLES))
        layers.append(Basic(downsample, channels, stride, repeat))
    return LayerList(tuple(layers))


@st.composite
def cells(draw, kind: str, node_count: int, concat_count: int) -> Cell:
    nodes = []
    for position in range(node_count):
        index = spaces.CELL_INPUTS + position
        edge_count = draw(st.one_of(st.integers(1, 2), st.integers(1, spaces.MAX_EDGES_PER_NODE)))
        edges = tuple(
            Edge(draw(st.sampled_from(spaces.BNAS_OPS)), draw(st.integers(0, index - 1))) for _ in range(edge_count)
        )
        nodes.append(Node(index, edges))
    indices = [node.index for node in nodes]
    concat = tuple(draw(st.permutations(indices))[:concat_count])
    return Cell(kind, tuple(nodes), concat)


@st.composite
def cell_networks(draw, strides_left: int) -> CellNetwork:
    layers = draw(st.one_of(st.integers(1, 20), st.integers(1, spaces.MAX_CELL_LAYERS)))
    most = min(strides_left, layers, draw(st.sampled_from((2, 3, spaces.MAX_CELL_LAYERS))))
    reductions = draw(st.lists(st.integers(0, layers - 1), unique=True, max_size=most))
    channels = 2 * draw(st.one_of(st.integers(1, 16), st.integers(1, 64)))
    normal_nodes = draw(st.integers(1, spaces.MAX_CELL_NODES))
    reduction_nodes = draw(st.integers(1, spaces.MAX_CELL_NODES))
    # Both cells concatenate the same number of nodes (equal cell widths for the residual).
    concat_count = draw(st.integers(1, min(normal_nodes, reduction_nodes)))
    return CellNetwork(
        layers,
        channels,
        tuple(sorted(reductions)),
        draw(cells("normal", normal_nodes, concat_count)),
        draw(cells("reduction", reduction_nodes, concat_count)),
    )


@st.composite
def genotypes(draw) -> Genotype:
    space = draw(st.sampled_from(spaces.SPACES))
    input_shape = (draw(st.integers(1, spaces.MAX_INPUT_CHANNELS)), draw(sizes), draw(sizes))
    strides_left = max_reductions(*input_shape[1:])
    stem_stride = draw(st.sampled_from((1, 2))) if strides_left else 1
    strides_left -= stem_stride == 2
    # MB blocks never narrow, so a very wide stem only fits the resnet space.
    usual = st.one_of(small_channels, st.integers(1, 128))
    stem_channels = draw(rarely(st.just(spaces.MAX_CHANNELS), usual) if space == "resnet" else usual)
    stem = Stem(draw(st.sampled_from((3, 5, 7))), stem_channels, stem_stride)
    if space == "mbconv":
        body = draw(mbconv_layers(stem_channels, strides_left))
        shortcut = draw(st.sampled_from(spaces.SHORTCUT_KINDS))
    elif space == "resnet":
        body = draw(resnet_layers(strides_left))
        shortcut = spaces.DEFAULT_SHORTCUT
    else:
        body = draw(cell_networks(strides_left))
        shortcut = spaces.DEFAULT_SHORTCUT
    genotype = Genotype(
        name=draw(words),
        space=space,
        input_shape=input_shape,
        num_classes=draw(st.one_of(st.integers(1, 1000), st.integers(1, spaces.MAX_CLASSES))),
        stem=stem,
        head=Head(draw(st.sampled_from(spaces.HEAD_POOLS)), draw(st.sampled_from(spaces.HEAD_CLASSIFIERS))),
        body=body,
        shortcut=shortcut,
        meta=draw(metas),
        comments=draw(comments),
    )
    assume(within_parameter_bound(genotype))
    return genotype


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(genotypes())
def test_valid_genotypes_round_trip(genotype: Genotype) -> None:
    assert check_genotype(genotype) is genotype
    text = to_text(genotype)
    assert check(text) == []
    parsed = parse(text)
    assert parsed == genotype
    assert hash(parsed) == hash(genotype)
    assert to_text(parsed) == text  # printing is idempotent
    assert parsed.metadata == dict(genotype.meta)
    assert parsed.comments == tuple(comment.rstrip() for comment in genotype.comments)
    assert text.endswith("\n") and not text.endswith("\n\n")


@settings(max_examples=50, deadline=None)
@given(genotypes(), st.sampled_from(("normal", "reduction")))
def test_a_different_genotype_is_not_equal(genotype: Genotype, _: str) -> None:
    other = dataclasses.replace(genotype, num_classes=genotype.num_classes % spaces.MAX_CLASSES + 1)
    assert other != genotype
    assert parse(to_text(other)) == other
    assert len({genotype, other}) == 2


# -- equality and hashing ----------------------------------------------------------------------


def _zoo_texts() -> dict[str, str]:
    return {path.stem: path.read_text(encoding="utf-8") for path in sorted(ZOO.glob("*.bnn"))}


def _restyled(text: str) -> str:
    """The same genotype written differently: other comments, blank lines, spacing, a trailing comment."""
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    out = ["# a different comment block", "#", "#   entirely"]
    for line in lines:
        if line.startswith("bnnzoo"):
            out.append(line.replace(" ", "   ") + "   # version")
        elif line.startswith("meta"):  # keep the quoted value as it is
            key, value = line.split(" = ", 1)
            out.append("  " + key.replace(" ", " \t ") + "  =  " + value + "  # trailing")
        elif line.strip():
            out.append("\t" + line.strip().replace(" ", "  ") + "  # trailing")
        else:
            out.append("")
        out.append("")
    return "\n".join(out)


def test_comments_positions_and_layout_do_not_affect_equality() -> None:
    for name, text in _zoo_texts().items():
        original = parse(text, f"{name}.bnn")
        restyled = parse(_restyled(text), "elsewhere/other.bnn")
        assert restyled.comments != original.comments
        assert restyled.spans != original.spans  # parsed at other lines and columns
        assert restyled == original, name
        assert hash(restyled) == hash(original)
        assert {original, restyled} == {original}
        assert {original: name}[restyled] == name


def test_genotypes_built_in_code_equal_parsed_ones() -> None:
    text = "\n".join(
        [
            "bnnzoo 1",
            "name tiny",
            "space mbconv",
            "input 3x32x32",
            "classes 10",
            "stem conv3x3 16 s2",
            "head maxpool fc",
            "shortcut zero",
            'meta note = "caf\\u00e9 \\"quoted\\" \\\\ back\\nslash"',
            "layers {",
            "  MB3(2) 16",
            "  skip x2",
            "  MB7(4) 32 s2 x3",
            "}",
        ]
    )
    built = Genotype(
        name="tiny",
        space="mbconv",
        input_shape=(3, 32, 32),
        num_classes=10,
        stem=Stem(3, 16, 2),
        head=Head("maxpool", "fc"),
        body=LayerList((MBConv(3, 2, 16), Skip(2), MBConv(7, 4, 32, 2, 3))),
        shortcut="zero",
        meta=(("note", 'café "quoted" \\ back\nslash'),),
        comments=("built in code",),
        path="nowhere.bnn",
    )
    parsed = parse(text)
    assert parsed.spans and parsed.stem.spans and parsed.body.layers[0].spans
    assert not built.spans
    assert parsed == built
    assert hash(parsed) == hash(built)
    assert parsed.body.layers[2] == MBConv(7, 4, 32, 2, 3)
    assert hash(parsed.body.layers[2]) == hash(MBConv(7, 4, 32, 2, 3))
    assert check_genotype(built) is built


def test_zoo_genotypes_are_distinct_set_members() -> None:
    texts = _zoo_texts()
    parsed = [parse(text) for text in texts.values()]
    again = [parse(_restyled(text)) for text in texts.values()]
    assert len(set(parsed + again)) == len(texts)
    assert set(parsed) == set(again)


def test_cell_parts_compare_by_value() -> None:
    edge = Edge("bin_conv_3x3", 0)
    assert edge == Edge("bin_conv_3x3", 0, spans={"op": None})
    assert hash(edge) == hash(Edge("bin_conv_3x3", 0, spans={"input": None}))
    node = Node(2, (edge, Edge("none", 1)))
    assert node == Node(2, (Edge("bin_conv_3x3", 0), Edge("none", 1)))
    assert node != Node(2, (Edge("none", 1), Edge("bin_conv_3x3", 0)))  # edge order is part of a node
    cell = Cell("normal", (node,), (2,))
    assert {cell, Cell("normal", (node,), (2,))} == {cell}
    assert cell != Cell("reduction", (node,), (2,))
