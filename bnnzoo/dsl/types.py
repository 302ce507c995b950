"""The typed genotype: the one canonical in-memory form of an architecture.

All types are frozen dataclasses with value equality and hashing. Source positions (kept for
error messages) and the leading comment block are not part of equality.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from bnnzoo.dsl.spaces import DEFAULT_SHORTCUT
from bnnzoo.errors import Position

FORMAT_VERSION = 1


def _spans() -> Mapping[str, Position]:
    return field(default_factory=dict, compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class Stem:
    """The real-valued first convolution: ``stem conv3x3 48 [s2]``."""

    kernel: int = 3
    channels: int = 32
    stride: int = 1
    spans: Mapping[str, Position] = _spans()


@dataclass(frozen=True)
class Head:
    """The real-valued classifier: global pooling, then a linear layer."""

    pool: str = "avgpool"
    classifier: str = "fc"
    spans: Mapping[str, Position] = _spans()


@dataclass(frozen=True)
class MBConv:
    """A binary MBConv block ``MB k (e)``: ``MB5(6) 64 s2``."""

    kernel: int
    expansion: int
    channels: int
    stride: int = 1
    repeat: int = 1
    spans: Mapping[str, Position] = _spans()


@dataclass(frozen=True)
class Skip:
    """The identity choice of the MBConv space: ``skip``."""

    repeat: int = 1
    spans: Mapping[str, Position] = _spans()


@dataclass(frozen=True)
class Basic:
    """A binary ResNet basic block with a binary or real 1x1 downsample: ``basic(real) 128 s2``."""

    downsample: str
    channels: int
    stride: int = 1
    repeat: int = 1
    spans: Mapping[str, Position] = _spans()


Layer = MBConv | Skip | Basic


@dataclass(frozen=True)
class LayerList:
    """A network as a list of blocks (the ``mbconv`` and ``resnet`` spaces)."""

    layers: tuple[Layer, ...]
    spans: Mapping[str, Position] = _spans()

    def expanded(self) -> Iterator[Layer]:
        """Yield one block per layer: repeats unrolled, the stride kept on the first copy only."""
        for layer in self.layers:
            for copy in range(layer.repeat):
                stride = getattr(layer, "stride", 1) if copy == 0 else 1
                if isinstance(layer, Skip):
                    yield Skip()
                else:
                    yield type(layer)(**{**_fields(layer), "stride": stride, "repeat": 1})


@dataclass(frozen=True)
class Edge:
    """One input of a cell node: ``op(input)``."""

    op: str
    input: int
    spans: Mapping[str, Position] = _spans()


@dataclass(frozen=True)
class Node:
    """An intermediate cell node: the sum of its edges."""

    index: int
    edges: tuple[Edge, ...]
    spans: Mapping[str, Position] = _spans()


@dataclass(frozen=True)
class Cell:
    """A normal or reduction cell: nodes numbered from 2, inputs 0 = c_{k-2} and 1 = c_{k-1}."""

    kind: str
    nodes: tuple[Node, ...]
    concat: tuple[int, ...]
    spans: Mapping[str, Position] = _spans()


@dataclass(frozen=True)
class CellNetwork:
    """A BNAS-style network: ``layers`` cells of ``channels`` initial channels, reductions at given cells."""

    layers: int
    channels: int
    reductions: tuple[int, ...]
    normal: Cell
    reduction: Cell
    spans: Mapping[str, Position] = _spans()


Body = LayerList | CellNetwork


@dataclass(frozen=True)
class Genotype:
    """A complete architecture: header settings, a body and metadata."""

    name: str
    space: str
    input_shape: tuple[int, int, int]
    num_classes: int
    stem: Stem
    head: Head
    body: Body
    shortcut: str = DEFAULT_SHORTCUT
    meta: tuple[tuple[str, str], ...] = ()
    version: int = FORMAT_VERSION
    comments: tuple[str, ...] = field(default=(), compare=False)
    path: str = field(default="<string>", compare=False, repr=False)
    spans: Mapping[str, Position] = _spans()

    @property
    def metadata(self) -> dict[str, str]:
        """The ``meta`` lines as a dict."""
        return dict(self.meta)


def _fields(obj: object) -> dict:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__ if name != "spans"}
