"""A runtime plan: ops over per-image NHWC tensors, laid out in one arena, encoded for the native executor.

The plan of a body for one input size is a list of ops (``Pack``, ``BConv``, ``FConv``, ``Pool``,
``Elementwise``) reading and writing :class:`Tensor` views of :class:`Buffer` s. :func:`allocate`
gives every arena buffer a byte offset (buffers whose lifetimes do not overlap share memory);
:func:`encode` writes the int64 table that ``csrc/executor.inc`` reads, in the field layout of
``csrc/engine.h`` (``ABI_VERSION``); :func:`validate` then checks every size and offset of that table
against the arena, the images and the weight blobs, mirroring what each native op reads and writes.
Nothing reaches C++ that :func:`validate` has not passed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from bnnzoo.errors import ModelError

ABI_VERSION = 1
OP_WIDTH = 64
PANEL = 16  # output channels per binary weight panel
MAX_MR = 8  # the largest pixel block of any ISA's binary microkernel
MAX_TAPS = 128
ALIGN = 64

ARENA, INPUT, OUTPUT = 0, 1, 2
PACK, BCONV, FCONV, POOL, ADD, COPY, ZERO, MEANFILL, AFFINE = 1, 2, 3, 4, 5, 6, 7, 8, 9
RES_NONE, RES_MOD, RES_ZEROFILL = 0, 1, 2
ACT_NONE, ACT_RPRELU, ACT_RELU = 0, 1, 2
AVG, MAX = 0, 1
_LIMIT = 1 << 40  # no field may exceed this: products of a few fields stay far inside int64


def words(channels: int) -> int:
    """64-bit words that hold ``channels`` sign bits."""
    return -(-channels // 64)


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(eq=False)
class Buffer:
    """A per-image allocation: float32 ``(H, W, width)`` (width = channels) or sign bits (width = words)."""

    bits: bool
    H: int
    W: int
    width: int
    space: int = ARENA
    offset: int = -1  # bytes into its space; set by allocate()

    @property
    def itemsize(self) -> int:
        return 8 if self.bits else 4

    @property
    def nbytes(self) -> int:
        return self.H * self.W * self.width * self.itemsize

    def encode(self) -> list[int]:
        return [self.space, self.offset, self.H, self.W, self.width]


@dataclass(frozen=True, eq=False)
class Tensor:
    """Channels ``[c0, c0 + C)`` of a float buffer: an NHWC activation of one image."""

    buf: Buffer
    c0: int
    C: int

    @classmethod
    def new(cls, H: int, W: int, C: int, space: int = ARENA) -> Tensor:
        return cls(Buffer(False, H, W, C, space), 0, C)

    @property
    def H(self) -> int:
        return self.buf.H

    @property
    def W(self) -> int:
        return self.buf.W

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.H, self.W, self.C)

    def channels(self, start: int, count: int) -> Tensor:
        return Tensor(self.buf, self.c0 + start, count)

    def encode(self) -> list[int]:
        return [self.buf.space, self.buf.offset, self.H, self.W, self.buf.width, self.c0, self.C]


_NO_TENSOR = [-1, 0, 0, 0, 0, 0, 0]
_NO_BITS = [-1, 0, 0, 0, 0]


# -- ops ------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Op(ABC):
    """An op of the plan; ``label`` and ``macs`` describe it for profiles."""

    label: str = field(default="", init=False)
    macs: int = field(default=0, init=False)

    def reads(self) -> Iterator[Buffer]:
        return iter(())

    def writes(self) -> Iterator[Buffer]:
        return iter(())

    @abstractmethod
    def fields(self) -> list[int]:
        """The op's record in the engine's program (its kind, then its operands)."""


@dataclass(eq=False)
class Pack(Op):
    """Binarise ``src`` into ``dst`` with +1 padding ``pad`` wide; ``groups`` start at word boundaries.

    Channel ``c`` becomes ``sign(x - offset[c])`` (an RSign), or ``sign(x * scale[c] + offset[c])``
    when ``scale`` is given (a BatchNorm before the sign). Interior pixel ``(i, j)`` of ``dst`` is
    ``src[i * sub, j * sub]``.
    """

    src: Tensor
    dst: Buffer
    groups: int
    pad: int
    Hd: int
    Wd: int
    scale: int = -1
    offset: int = -1
    sub: int = 1
    border_only: bool = False  # the interior is written by the convolution that produced ``src``

    def __post_init__(self) -> None:
        self.label = "pack"

    def reads(self) -> Iterator[Buffer]:
        yield self.src.buf

    def writes(self) -> Iterator[Buffer]:
        yield self.dst

    def fields(self) -> list[int]:
        cg = self.src.C // self.groups
        return [
            PACK,
            *self.src.encode(),
            self.sub,
            self.scale,
            self.offset,
            self.groups,
            cg,
            words(cg),
            *self.dst.encode(),
            self.pad,
            self.Hd,
            self.Wd,
            int(self.border_only),
        ]


@dataclass(frozen=True)
class BinaryLayer:
    """A binary convolution's weight panels and fused epilogue, as offsets into the plan's blobs."""

    name: str
    in_channels: int
    out_channels: int
    groups: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    weights: int  # word offset of the panels
    scale: int  # float offsets of per-output-channel vectors (in tile layout: each group from a
    bn_a: int  # multiple of PANEL): the weight scale and the BatchNorm after the convolution,
    bn_b: int  # fma(x, bn_a, bn_b) (-1, -1 without)
    in_scale: int  # its input's binarisation (see Pack): scale or -1, offset or -1
    in_offset: int
    activation: int  # ACT_NONE, ACT_RPRELU or ACT_RELU
    rprelu: tuple[int, int, int] | None  # gamma, slope, zeta of a fused RPReLU


@dataclass(eq=False)
class BConv(Op):
    """XNOR-popcount convolution of packed ``src`` with a fused epilogue.

    ``y[o] = fma((n - 2 * mismatches[o]) * scale[o], bn_a[o], bn_b[o])`` (the scale, then
    BatchNorm as torch computes it), plus a residual (``RES_MOD``: ``residual[o % C_r]``;
    ``RES_ZEROFILL``: ``residual[o]`` below ``C_r``), then RPReLU or ReLU (the residual after a ReLU
    with ``residual_after_activation``). The result goes to ``out`` as floats, or (``out_bits``)
    straight to the next convolution's sign bits (``out_layer``'s input binarisation).
    """

    src: Buffer
    layer: BinaryLayer
    stride: int  # 1 when the pack already subsampled a 1x1 convolution
    Ho: int
    Wo: int
    out: Tensor | None = None
    residual: Tensor | None = None
    residual_mode: int = RES_NONE
    residual_after_activation: bool = False
    out_bits: Buffer | None = None
    out_layer: BinaryLayer | None = None  # the convolution whose input ``out_bits`` is
    next_pack: Pack | None = None  # beside ``out``: the interior of this pack's bits, binarised in the epilogue

    def __post_init__(self) -> None:
        layer = self.layer
        k = layer.kernel
        self.label = f"binary conv {k}x{k}" + (f" g{layer.groups}" if layer.groups > 1 else "")
        self.label += f" d{layer.dilation}" if layer.dilation > 1 else ""
        self.macs = self.Ho * self.Wo * layer.out_channels * (layer.in_channels // layer.groups) * k * k

    def reads(self) -> Iterator[Buffer]:
        yield self.src
        if self.residual is not None:
            yield self.residual.buf

    def writes(self) -> Iterator[Buffer]:
        if self.out is not None:
            yield self.out.buf
        if self.out_bits is not None:
            yield self.out_bits
        if self.next_pack is not None:
            yield self.next_pack.dst

    def fields(self) -> list[int]:
        layer = self.layer
        nxt = self.next_pack
        cg, og, k = layer.in_channels // layer.groups, layer.out_channels // layer.groups, layer.kernel
        gamma, slope, zeta = layer.rprelu or (-1, -1, -1)
        packed = self.out_bits is not None and self.out_layer is not None
        then = self.out_layer
        out_groups = then.groups if then is not None else 1
        return [
            BCONV,
            *self.src.encode(),
            layer.groups,
            words(cg),
            k,
            k,
            self.stride,
            layer.dilation,
            self.Ho,
            self.Wo,
            layer.out_channels,
            og,
            cg * k * k,
            layer.weights,
            layer.scale,
            layer.bn_b,
            gamma,
            slope,
            zeta,
            *(self.residual.encode() if self.residual is not None else _NO_TENSOR),
            self.residual_mode,
            1 if packed else 0,
            *(self.out.encode() if self.out is not None else _NO_TENSOR),
            *(self.out_bits.encode() if self.out_bits is not None else _NO_BITS),
            then.in_offset if then is not None else -1,
            out_groups,
            words(layer.out_channels // out_groups) if packed else 0,
            layer.activation,
            int(self.residual_after_activation),
            then.in_scale if then is not None else -1,
            layer.bn_a,
            *(nxt.dst.encode() if nxt is not None else _NO_BITS),
            nxt.pad if nxt is not None else 0,
            nxt.groups if nxt is not None else 0,
            words(layer.out_channels // nxt.groups) if nxt is not None else 0,
            nxt.offset if nxt is not None else -1,
            nxt.scale if nxt is not None else -1,
        ]


@dataclass(frozen=True)
class FloatLayer:
    """A real-valued convolution (BatchNorms folded in) as offsets into the float blob."""

    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    padding: int
    weights: int  # [kh][kw][C][opad]
    bias: int  # [opad], or -1


@dataclass(eq=False)
class _IntoOut(Op):
    """An op reading ``src`` into ``out``, or adding onto ``out`` with ``accumulate`` (both keywords,
    after the op's own fields)."""

    src: Tensor
    out: Tensor = field(kw_only=True)
    accumulate: bool = field(default=False, kw_only=True)

    def reads(self) -> Iterator[Buffer]:
        yield self.src.buf
        if self.accumulate:
            yield self.out.buf

    def writes(self) -> Iterator[Buffer]:
        yield self.out.buf


@dataclass(eq=False)
class FConv(_IntoOut):
    """A real-valued convolution, zero padded; ``accumulate`` adds into ``out``."""

    layer: FloatLayer
    Ho: int
    Wo: int

    def __post_init__(self) -> None:
        k = self.layer.kernel
        self.label = f"real conv {k}x{k}"
        self.macs = self.Ho * self.Wo * self.layer.out_channels * self.layer.in_channels * k * k

    def fields(self) -> list[int]:
        layer = self.layer
        return [
            FCONV,
            *self.src.encode(),
            layer.kernel,
            layer.kernel,
            layer.stride,
            layer.padding,
            self.Ho,
            self.Wo,
            layer.out_channels,
            layer.weights,
            round_up(layer.out_channels, PANEL),
            layer.bias,
            int(self.accumulate),
            *self.out.encode(),
        ]


@dataclass(eq=False)
class Pool(_IntoOut):
    """Average (``count_include_pad=False``) or max pooling; ``accumulate`` adds into ``out``."""

    mode: int
    kernel: int
    stride: int
    pad: int

    def __post_init__(self) -> None:
        self.label = f"{'avg' if self.mode == AVG else 'max'} pool {self.kernel}x{self.kernel}"

    def fields(self) -> list[int]:
        return [
            POOL,
            *self.src.encode(),
            self.mode,
            self.kernel,
            self.stride,
            self.pad,
            self.out.H,
            self.out.W,
            int(self.accumulate),
            *self.out.encode(),
        ]


@dataclass(eq=False)
class Elementwise(Op):
    """``ADD`` (dst += src), ``COPY``, ``ZERO``, ``MEANFILL`` (dst = [src, channel mean of src ...]) or
    ``AFFINE`` (dst = src * params[scale + c] + params[offset + c])."""

    kind: int
    dst: Tensor
    src: Tensor | None = None
    scale: int = -1
    offset: int = -1

    def __post_init__(self) -> None:
        self.label = {ADD: "add", COPY: "copy", ZERO: "zero", MEANFILL: "mean fill", AFFINE: "batchnorm"}[self.kind]

    def reads(self) -> Iterator[Buffer]:
        if self.src is not None:
            yield self.src.buf
        if self.kind == ADD:
            yield self.dst.buf

    def writes(self) -> Iterator[Buffer]:
        yield self.dst.buf

    def fields(self) -> list[int]:
        source = self.src.encode() if self.src is not None else _NO_TENSOR
        return [self.kind, *self.dst.encode(), *source, self.scale, self.offset]


# -- arena allocation and encoding ------------------------------------------------------------------


def allocate(ops: list[Op]) -> int:
    """Give every arena buffer a 64-byte aligned offset; buffers live from first to last use. Returns the arena size."""
    first: dict[Buffer, int] = {}
    last: dict[Buffer, int] = {}
    for index, op in enumerate(ops):
        for buf in (*op.reads(), *op.writes()):
            if buf.space == ARENA:
                first.setdefault(buf, index)
                last[buf] = index
    live: list[tuple[int, int, Buffer]] = []  # (offset, end, buffer), sorted by offset
    arena = 0
    for buf in sorted(first, key=lambda b: first[b]):
        live = [entry for entry in live if last[entry[2]] >= first[buf]]
        size = round_up(buf.nbytes, ALIGN)
        offset = 0
        for start, end, _ in live:  # first fit
            if offset + size <= start:
                break
            offset = max(offset, end)
        buf.offset = offset
        live.append((offset, offset + size, buf))
        live.sort(key=lambda entry: entry[0])
        arena = max(arena, offset + size)
    return arena


def encode(ops: list[Op]) -> np.ndarray:
    """The ``(len(ops), OP_WIDTH)`` int64 table of allocated ops."""
    table = np.zeros((len(ops), OP_WIDTH), dtype=np.int64)
    for index, op in enumerate(ops):
        values = op.fields()
        if len(values) > OP_WIDTH:
            raise ModelError(f"internal: op {op.label} has {len(values)} fields")
        table[index, : len(values)] = values
    return table


def bconv_scratch(out_channels: int, groups: int) -> int:
    """A binary convolution's per-thread scratch: MAX_MR rows of accumulators (each group's from a
    multiple of PANEL) and one float row."""
    accumulators = groups * round_up(out_channels // groups, PANEL)
    return 4 * MAX_MR * accumulators + 4 * (out_channels + PANEL)


def scratch_bytes(ops: list[Op]) -> int:
    """Per-thread scratch: binary accumulators and a row for the fused next binarisation, pooling rows."""
    need = 0
    for op in ops:
        if isinstance(op, BConv):
            need = max(need, bconv_scratch(op.layer.out_channels, op.layer.groups))
        elif isinstance(op, FConv):
            need = max(need, 4 * op.layer.in_channels)
        elif isinstance(op, Pool):
            need = max(need, 4 * op.src.C)
    return round_up(max(need, ALIGN), ALIGN)


# -- validation: what the native ops read and write, checked before they run -----------------------


@dataclass(frozen=True)
class Limits:
    """The sizes a plan's table is checked against."""

    arena: int
    scratch: int
    in_bytes: int
    out_bytes: int
    n_weights: int  # 64-bit words
    n_params: int  # float32 values

    def space(self, space: int) -> int:
        return (self.arena, self.in_bytes, self.out_bytes)[space]


class PlanError(ModelError):
    """A plan's table does not fit its arena, images or blobs (a bug in the planner, never a user's)."""


def validate(table: np.ndarray, limits: Limits) -> None:
    """Check every field of every op; raise :class:`PlanError` naming the first that does not fit."""
    if table.dtype != np.int64 or table.ndim != 2 or table.shape[1] != OP_WIDTH:
        raise PlanError(f"plan table must be int64 (n, {OP_WIDTH}), got {table.dtype} {table.shape}")
    if min(limits.arena, limits.scratch) < 0 or min(limits.in_bytes, limits.out_bytes) <= 0:
        raise PlanError("plan sizes must be positive")
    if limits.arena % ALIGN or limits.scratch % ALIGN or limits.in_bytes % 4 or limits.out_bytes % 4:
        raise PlanError(f"plan sizes: arena and scratch in multiples of {ALIGN} bytes, images of 4")
    for index, row in enumerate(table.tolist()):
        try:
            if any(abs(value) >= _LIMIT for value in row):
                raise PlanError("a field is out of range")
            _CHECKS.get(row[0], _unknown)(row, limits)
        except PlanError as error:
            raise PlanError(f"plan op {index} (kind {row[0]}): {error}") from None


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise PlanError(what)


def _tensor(f: list[int], at: int, limits: Limits, *, write: bool) -> tuple[int, int, int]:
    space, offset, H, W, ld, c0, C = f[at : at + 7]
    _require(space in (ARENA, INPUT, OUTPUT), f"tensor at field {at}: bad space {space}")
    _require(not (write and space == INPUT), f"tensor at field {at}: the input is read-only")
    _require(min(H, W, ld, C) >= 1 and c0 >= 0 and c0 + C <= ld, f"tensor at field {at}: bad shape")
    _require(offset >= 0 and offset % 4 == 0, f"tensor at field {at}: bad offset")
    end = offset + 4 * ((H * W - 1) * ld + c0 + C)
    _require(end <= limits.space(space), f"tensor at field {at}: ends at byte {end}, past its space")
    return H, W, C


def _bits(f: list[int], at: int, limits: Limits) -> tuple[int, int, int]:
    space, offset, H, W, ldw = f[at : at + 5]
    _require(space == ARENA, f"bits at field {at}: must be in the arena")
    _require(min(H, W, ldw) >= 1 and offset >= 0 and offset % 8 == 0, f"bits at field {at}: bad shape")
    _require(offset + 8 * H * W * ldw <= limits.arena, f"bits at field {at}: past the arena")
    return H, W, ldw


def _params(index: int, count: int, limits: Limits, what: str, optional: bool = True) -> None:
    if optional and index == -1:
        return
    _require(index >= 0 and index + count <= limits.n_params, f"{what}: params [{index}, +{count}) out of range")


def _check_pack(f: list[int], limits: Limits) -> None:
    H, W, C = _tensor(f, 1, limits, write=False)
    sub, scale, offset, groups, cg, wg = f[8:14]
    Hp, Wp, ldw = _bits(f, 14, limits)
    pad, Hd, Wd, border_only = f[19:23]
    _require(border_only in (0, 1), "bad border flag")
    _require(sub >= 1 and (Hd - 1) * sub < H and (Wd - 1) * sub < W, "bad sampling")
    _require(groups >= 1 and cg >= 1 and groups * cg == C and wg == words(cg) and ldw == groups * wg, "bad channels")
    _require(pad >= 0 and min(Hd, Wd) >= 1 and Hp == Hd + 2 * pad and Wp == Wd + 2 * pad, "bad padding")
    _require(scale == -1 or offset >= 0, "a scale needs an offset")
    _params(scale, C, limits, "input scale")
    _params(offset, C, limits, "thresholds")


def _check_bconv(f: list[int], limits: Limits) -> None:
    Hp, Wp, ldw = _bits(f, 1, limits)
    groups, wg, kh, kw, s, d, Ho, Wo, out_c, og, nvalid, weights = f[6:18]
    _require(groups >= 1 and wg >= 1 and ldw == groups * wg, "bad input words")
    _require(1 <= kh <= 11 and 1 <= kw <= 11 and kh * kw <= MAX_TAPS and s >= 1 and d >= 1, "bad kernel")
    _require(Ho >= 1 and Wo >= 1, "bad output size")
    _require((Ho - 1) * s + (kh - 1) * d < Hp and (Wo - 1) * s + (kw - 1) * d < Wp, "window past the input")
    _require(og >= 1 and groups * og == out_c and 1 <= nvalid <= 64 * wg * kh * kw, "bad channels")
    panels = groups * (-(-og // PANEL)) * kh * kw * wg * PANEL
    _require(weights >= 0 and weights + panels <= limits.n_weights, "weights out of range")
    tiled = groups * round_up(og, PANEL)  # the microkernels read a whole panel of 16 per group
    _params(f[18], tiled, limits, "scale", optional=False)
    _require((f[50] == -1) == (f[19] == -1), "partial BatchNorm")
    _params(f[50], tiled, limits, "BatchNorm scale")
    _params(f[19], tiled, limits, "BatchNorm shift")
    rprelu = f[20:23]
    _require(all(v == -1 for v in rprelu) or all(v >= 0 for v in rprelu), "partial RPReLU")
    for index, what in zip(rprelu, ("gamma", "slope", "zeta")):
        _params(index, out_c, limits, what)
    mode, packed, activation, after = f[30], f[31], f[47], f[48]
    _require(mode in (RES_NONE, RES_MOD, RES_ZEROFILL) and after in (0, 1), "bad residual mode")
    _require(activation in (ACT_NONE, ACT_RPRELU, ACT_RELU), "bad activation")
    _require((activation == ACT_RPRELU) == (rprelu[0] >= 0), "RPReLU parameters without RPReLU")
    if mode != RES_NONE:
        rh, rw, _ = _tensor(f, 23, limits, write=False)
        _require((rh, rw) == (Ho, Wo), "residual size differs from the output")
    _require(packed in (0, 1), "bad output mode")
    if packed:
        bh, bw, out_ldw = _bits(f, 39, limits)
        out_groups, out_wg = f[45], f[46]
        _require((bh, bw) == (Ho, Wo), "packed output size differs")
        fits = out_groups >= 1 and out_c % out_groups == 0 and out_wg == words(out_c // out_groups)
        _require(fits, "bad packed groups")
        _require(out_ldw == out_groups * out_wg, "bad packed words")
        _require(f[49] == -1 or f[44] >= 0, "a scale needs an offset")
        _params(f[44], out_c, limits, "output thresholds")
        _params(f[49], out_c, limits, "output input scale")
    else:
        _require(_tensor(f, 32, limits, write=True) == (Ho, Wo, out_c), "output shape differs")
    if f[51] != -1:  # the next convolution's bits beside the floats
        _require(not packed, "two packed outputs")
        nh, nw, next_ldw = _bits(f, 51, limits)
        pad, next_groups, next_wg = f[56:59]
        _require(pad >= 0 and (nh, nw) == (Ho + 2 * pad, Wo + 2 * pad), "next bits size differs")
        fits = next_groups >= 1 and out_c % next_groups == 0 and next_wg == words(out_c // next_groups)
        _require(fits and next_ldw == next_groups * next_wg, "bad next bits groups")
        _require(f[60] == -1 or f[59] >= 0, "a scale needs an offset")
        _params(f[59], out_c, limits, "next thresholds")
        _params(f[60], out_c, limits, "next input scale")
    _require(limits.scratch >= bconv_scratch(out_c, groups), "scratch too small")


def _check_fconv(f: list[int], limits: Limits) -> None:
    H, W, C = _tensor(f, 1, limits, write=False)
    kh, kw, s, pad, Ho, Wo, out_c, weights, opad, bias, accumulate = f[8:19]
    _require(min(kh, kw, s) >= 1 and pad >= 0 and min(Ho, Wo, out_c) >= 1, "bad shape")
    # windows may run past the bottom and right (zeros there: the BNAS residual's pad_to_even)
    _require((Ho - 1) * s - pad < H and (Wo - 1) * s - pad < W and pad < min(kh, kw), "window past the input")
    _require(opad == round_up(out_c, PANEL), "bad padded channels")
    _params(weights, kh * kw * C * opad, limits, "weights", optional=False)
    _params(bias, opad, limits, "bias")
    _require(accumulate in (0, 1), "bad accumulate flag")
    _require(_tensor(f, 19, limits, write=True) == (Ho, Wo, out_c), "output shape differs")
    _require(limits.scratch >= 4 * C, "scratch too small")


def _check_pool(f: list[int], limits: Limits) -> None:
    H, W, C = _tensor(f, 1, limits, write=False)
    mode, k, s, pad, Ho, Wo, accumulate = f[8:15]
    _require(mode in (AVG, MAX) and k >= 1 and s >= 1 and 0 <= pad < k, "bad pool")
    _require(min(Ho, Wo) >= 1 and (Ho - 1) * s - pad < H and (Wo - 1) * s - pad < W, "empty window")
    _require(accumulate in (0, 1), "bad accumulate flag")
    _require(_tensor(f, 15, limits, write=True) == (Ho, Wo, C), "output shape differs")
    _require(limits.scratch >= 4 * C, "scratch too small")


def _check_elementwise(f: list[int], limits: Limits) -> None:
    H, W, C = _tensor(f, 1, limits, write=True)
    if f[0] == ZERO:
        return
    sh, sw, sc = _tensor(f, 8, limits, write=False)
    _require((sh, sw) == (H, W), "shapes differ")
    _require(sc <= C if f[0] == MEANFILL else sc == C, "channels differ")
    if f[0] == AFFINE:
        _params(f[15], C, limits, "scale", optional=False)
        _params(f[16], C, limits, "offset", optional=False)


def _unknown(f: list[int], limits: Limits) -> None:
    raise PlanError("unknown op kind")


_CHECKS = {
    PACK: _check_pack,
    BCONV: _check_bconv,
    FCONV: _check_fconv,
    POOL: _check_pool,
    ADD: _check_elementwise,
    COPY: _check_elementwise,
    ZERO: _check_elementwise,
    MEANFILL: _check_elementwise,
    AFFINE: _check_elementwise,
}
