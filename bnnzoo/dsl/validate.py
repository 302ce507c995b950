"""Semantic checks of a genotype: the space's choices, sane bounds and consistent shapes.

Checks run on the typed genotype, so genotypes built in code (by the search, say) are held to
the same rules as parsed files. Positions come from the spans the reader recorded, when any.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from bnnzoo._suggest import did_you_mean
from bnnzoo.dsl import spaces
from bnnzoo.dsl.types import Basic, Cell, CellNetwork, Genotype, LayerList, MBConv, Skip
from bnnzoo.errors import GenotypeError, GenotypeValidationError, Position, capped

Problem = tuple[str, Position | None]


def validate(genotype: Genotype, source: str | None = None) -> list[GenotypeError]:
    """Return the problems in ``genotype`` as located errors (empty when valid), capped (see errors.capped)."""
    return capped(
        GenotypeValidationError(message, path=genotype.path, position=position, source=source)
        for message, position in _problems(genotype)
    )


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")


def _problems(g: Genotype) -> Iterator[Problem]:
    problems = list(_header_problems(g))
    problems += _layer_list(g, g.body) if isinstance(g.body, LayerList) else _cell_network(g, g.body)
    yield from problems
    if problems:
        return  # sizes are out of bounds already; estimating could take as long as building
    estimate = estimate_parameters(g)
    if estimate > spaces.MAX_PARAMETERS:
        yield (
            f"the network would have up to {estimate / 1e6:.0f} M parameters, over the limit of "
            f"{spaces.MAX_PARAMETERS / 1e6:.0f} M; reduce channels, expansions or depth",
            g.spans.get("name"),
        )
    activations = estimate_activations(g)
    if activations > spaces.MAX_ACTIVATIONS:
        yield (
            f"a feature map of one image would have up to {activations / 1e6:.0f} M values, over the limit of "
            f"{spaces.MAX_ACTIVATIONS / 1e6:.0f} M; reduce the input size or the channels at full resolution",
            g.spans.get("input", g.spans.get("name")),
        )


def _header_problems(g: Genotype) -> Iterator[Problem]:
    if not _WORD.match(g.name):
        yield f"name {g.name!r} is not a word (letters, digits, _ . -, not starting with a digit)", g.spans.get("name")
    for key, _ in g.meta:
        if not _WORD.match(key):
            yield f"meta key {key!r} is not a word (letters, digits, _ . -)", None
    if len({key for key, _ in g.meta}) != len(g.meta):
        yield "a meta key is set twice", None
    if any("\n" in c or "\r" in c for c in g.comments):
        yield "a comment line cannot contain a line break", None
    if not all(_utf8(text) for text in (*g.comments, *(value for _, value in g.meta if isinstance(value, str)))):
        yield "a comment or meta value holds a lone surrogate, which UTF-8 cannot encode", None
    channels, height, width = g.input_shape
    yield from _bound("input channels", channels, 1, spaces.MAX_INPUT_CHANNELS, g.spans, "input")
    yield from _bound("input height", height, 1, spaces.MAX_INPUT_SIZE, g.spans, "input")
    yield from _bound("input width", width, 1, spaces.MAX_INPUT_SIZE, g.spans, "input")
    yield from _bound("classes", g.num_classes, 1, spaces.MAX_CLASSES, g.spans, "classes")
    yield from _bound("stem channels", g.stem.channels, 1, spaces.MAX_CHANNELS, g.stem.spans, "channels")
    yield from _stride(g.stem.stride, g.stem.spans)
    if g.space != "mbconv" and g.shortcut != spaces.DEFAULT_SHORTCUT:
        yield f"'shortcut' applies to the mbconv space only, not '{g.space}'", g.spans.get("shortcut")


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _bound(what: str, value: int, low: int, high: int, spans: Mapping[str, Position], key: str) -> Iterator[Problem]:
    if not low <= value <= high:
        yield f"{what} must be between {low} and {high}, got {value}", spans.get(key)


def _stride(stride: int, spans: Mapping[str, Position]) -> Iterator[Problem]:
    if stride not in (1, 2):
        yield f"stride must be 1 or 2, got {stride}", spans.get("stride")


def _max_reductions(g: Genotype) -> int:
    smallest = min(g.input_shape[1:])
    return max(smallest.bit_length() - 1, 0)


def _layer_list(g: Genotype, body: LayerList) -> Iterator[Problem]:
    allowed = (MBConv, Skip) if g.space == "mbconv" else (Basic,)
    if not body.layers:
        yield "the 'layers' block is empty", body.spans.get("block")
    total = sum(layer.repeat for layer in body.layers)
    if total > spaces.MAX_LAYERS:
        yield f"the network has {total} layers, over the limit of {spaces.MAX_LAYERS}", body.spans.get("block")
    reductions = int(g.stem.stride == 2)
    limit = _max_reductions(g)
    channels = g.stem.channels
    for layer in body.layers:
        where = layer.spans.get("block")
        if not isinstance(layer, allowed):
            names = "MB k (e) blocks and skip" if g.space == "mbconv" else "basic blocks"
            yield f"the {g.space} space has {names}, not '{_block_name(layer)}'", where
            continue
        yield from _bound("repeat", layer.repeat, 1, spaces.MAX_REPEAT, layer.spans, "repeat")
        if isinstance(layer, Skip):
            continue
        yield from _bound("channels", layer.channels, 1, spaces.MAX_CHANNELS, layer.spans, "channels")
        yield from _stride(layer.stride, layer.spans)
        if isinstance(layer, MBConv):
            yield from _mbconv_channels(layer, channels, layer.repeat)
            if layer.kernel not in spaces.MBCONV_KERNELS:
                kernels = ", ".join(str(k) for k in spaces.MBCONV_KERNELS)
                yield f"kernel {layer.kernel} is outside the mbconv space (kernels {kernels})", where
            yield from _bound("expansion", layer.expansion, 1, spaces.MBCONV_MAX_EXPANSION, layer.spans, "argument")
        channels = layer.channels
        if layer.stride == 2:
            reductions += 1
            if reductions == limit + 1:
                h, w = g.input_shape[1:]
                yield (
                    f"too many stride-2 reductions: input {h}x{w} allows at most {limit}",
                    layer.spans.get("stride", where),
                )


def _mbconv_channels(layer: MBConv, in_channels: int, copies: int) -> Iterator[Problem]:
    """The channel rules for every copy of a repeated block: copy 0 reads ``in_channels``, the others
    ``layer.channels``."""
    where = layer.spans.get("channels")
    if layer.channels < in_channels:
        yield (
            f"an MB block cannot reduce channels ({in_channels} -> {layer.channels}): "
            "its parameter-free shortcut only fills channels up",
            where,
        )
    for copy, cin in enumerate([in_channels] + [layer.channels] * (min(copies, 2) - 1)):
        hidden = cin * layer.expansion
        if hidden % spaces.MBCONV_GROUPS:
            which = (
                f"copy {copy + 1} of MB{layer.kernel}({layer.expansion}) x{copies}"
                if copy
                else (f"MB{layer.kernel}({layer.expansion})")
            )
            yield (
                f"{which} after {cin} channels expands to {hidden}, which its g={spaces.MBCONV_GROUPS} "
                "group conv cannot split; use an even expansion or even channels",
                layer.spans.get("argument"),
            )
            return


def _block_name(layer: object) -> str:
    if isinstance(layer, MBConv):
        return f"MB{layer.kernel}({layer.expansion})"
    return "skip" if isinstance(layer, Skip) else "basic"


def _cell_network(g: Genotype, body: CellNetwork) -> Iterator[Problem]:
    yield from _bound("layers", body.layers, 1, spaces.MAX_CELL_LAYERS, body.spans, "layers")
    yield from _bound("channels", body.channels, 1, spaces.MAX_CHANNELS, body.spans, "channels")
    where = body.spans.get("reductions")
    if list(body.reductions) != sorted(set(body.reductions)):
        yield "reductions must be distinct cell indices in increasing order", where
    for index in body.reductions:
        if not 0 <= index < body.layers:
            yield f"reduction at cell {index} is outside the network's cells 0..{body.layers - 1}", where
    limit = _max_reductions(g)
    count = len(body.reductions) + int(g.stem.stride == 2)
    if count > limit:
        h, w = g.input_shape[1:]
        yield f"too many reductions: input {h}x{w} allows at most {limit}, got {count}", where
    for cell in (body.normal, body.reduction):
        yield from _cell(cell)
    if len(body.normal.concat) != len(body.reduction.concat):
        yield (
            "the normal and reduction cells must concatenate the same number of nodes "
            "(the cell-level residual adds cells of equal width)",
            body.reduction.spans.get("concat"),
        )


def _cell(cell: Cell) -> Iterator[Problem]:
    where = cell.spans.get("kind")
    if not 1 <= len(cell.nodes) <= spaces.MAX_CELL_NODES:
        yield (
            f"a cell has 1 to {spaces.MAX_CELL_NODES} nodes, the {cell.kind} cell has {len(cell.nodes)}",
            where,
        )
    last = spaces.CELL_INPUTS + len(cell.nodes) - 1
    for position, node in enumerate(cell.nodes):
        expected = spaces.CELL_INPUTS + position
        node_at = node.spans.get("index", where)
        if node.index != expected:
            yield (
                f"nodes are numbered in order from {spaces.CELL_INPUTS}: expected node {expected}, got {node.index}",
                node_at,
            )
            continue
        if not 1 <= len(node.edges) <= spaces.MAX_EDGES_PER_NODE:
            yield f"node {node.index} needs 1 to {spaces.MAX_EDGES_PER_NODE} edges", node_at
        for edge in node.edges:
            if edge.op not in spaces.BNAS_OPS:
                yield f"unknown op '{edge.op}'{did_you_mean(edge.op, spaces.BNAS_OPS)}", edge.spans.get("op")
            input_at = edge.spans.get("input")
            if edge.input == node.index:
                yield f"node {node.index} has an edge that points at itself", input_at
            elif node.index < edge.input <= last:
                yield (
                    f"node {node.index} has an edge from node {edge.input}, which is computed later",
                    input_at,
                )
            elif edge.input > last or edge.input < 0:
                yield (
                    f"node {node.index} has an edge from missing node {edge.input} "
                    f"(inputs are 0 and 1, nodes {spaces.CELL_INPUTS}..{last})",
                    input_at,
                )
    concat_at = cell.spans.get("concat", where)
    if not cell.concat:
        yield "'concat' needs at least one node", concat_at
    if len(set(cell.concat)) != len(cell.concat):
        yield "'concat' lists a node twice", concat_at
    for index in cell.concat:
        if not spaces.CELL_INPUTS <= index <= last:
            yield f"'concat' names missing node {index} (nodes are {spaces.CELL_INPUTS}..{last})", concat_at


def _conv(cin: int, cout: int, kernel: int, groups: int = 1) -> int:
    """At least the parameters and buffers of a conv with its extras: weights, and 8 per channel for a
    bias, BatchNorm (weight, bias, running mean and variance, counter), RSign and RPReLU."""
    return -(-cin // groups) * cout * kernel * kernel + 8 * (cin + cout)


def _padded(channels: int, height: int, width: int) -> int:
    """A feature map with room for the widest padding any op adds (4 on each side)."""
    return channels * (height + 8) * (width + 8)


_OP_KERNELS = {"bin_conv_3x3": 3, "bin_conv_5x5": 5, "bin_dil_conv_3x3": 3, "bin_dil_conv_5x5": 5}


def estimate_parameters(g: Genotype) -> int:
    """An upper bound on the parameters and buffers of the built network (refuses absurd networks)."""
    total = _conv(g.input_shape[0], g.stem.channels, g.stem.kernel)
    channels = g.stem.channels
    if isinstance(g.body, LayerList):
        for layer in g.body.expanded():
            if isinstance(layer, MBConv):
                hidden = channels * layer.expansion
                total += _conv(channels, hidden, 1) + _conv(hidden, hidden, layer.kernel, spaces.MBCONV_GROUPS)
                total += _conv(hidden, layer.channels, 1)
            elif isinstance(layer, Basic):
                total += _conv(channels, layer.channels, 3) + _conv(layer.channels, layer.channels, 3)
                total += _conv(channels, layer.channels, 1)
            channels = getattr(layer, "channels", channels)
    else:
        for shape in _cell_walk(g, g.body):
            total += _conv(shape.prev_prev, shape.width, 3 if shape.after_reduction else 1)
            total += _conv(shape.prev, shape.width, 1) + (_conv(shape.prev, shape.out, 2) if shape.reduction else 0)
            for node in shape.cell.nodes:
                for edge in node.edges:
                    kernel = _OP_KERNELS.get(edge.op)
                    total += _conv(shape.width, shape.width, kernel) if kernel else 0
            channels = shape.out
    return total + channels * g.num_classes + g.num_classes


def estimate_activations(g: Genotype) -> int:
    """An upper bound on the values in any one feature map of one image (padding included)."""
    channels, height, width = g.input_shape
    largest = _padded(channels, height, width)
    if g.stem.stride == 2:
        height, width = spaces.reduced_size(height), spaces.reduced_size(width)
    largest = max(largest, _padded(g.stem.channels, height, width))
    if isinstance(g.body, LayerList):
        channels = g.stem.channels
        for layer in g.body.expanded():
            if isinstance(layer, Skip):
                continue
            hidden, out, strided = channels * getattr(layer, "expansion", 1), layer.channels, layer.stride == 2
            largest = max(largest, _padded(max(channels, hidden, 0 if strided else out), height, width))
            if strided:
                height, width = spaces.reduced_size(height), spaces.reduced_size(width)
            largest = max(largest, _padded(max(hidden, out), height, width))
            channels = out
    else:
        for shape in _cell_walk(g, g.body):
            largest = max(
                largest, _padded(shape.width if shape.reduction else max(shape.width, shape.out), height, width)
            )
            if shape.reduction:
                height, width = spaces.reduced_size(height), spaces.reduced_size(width)
            largest = max(largest, _padded(shape.out, height, width))
    return largest


@dataclass(frozen=True)
class _CellShape:
    cell: Cell
    reduction: bool
    after_reduction: bool
    prev_prev: int  # channels of c_{k-2}
    prev: int  # channels of c_{k-1}
    width: int  # C of this cell
    out: int  # channels of its output


def _cell_walk(g: Genotype, body: CellNetwork) -> Iterator[_CellShape]:
    """The channels of every cell, as the builder makes them."""
    prev_prev = prev = g.stem.channels
    width, after_reduction = body.channels, False
    for index in range(body.layers):
        reduction = index in body.reductions
        width = width * 2 if reduction else width
        cell = body.reduction if reduction else body.normal
        out = len(cell.concat) * width
        yield _CellShape(cell, reduction, after_reduction, prev_prev, prev, width, out)
        prev_prev, prev, after_reduction = prev, out, reduction
