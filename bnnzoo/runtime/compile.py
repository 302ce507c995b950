"""From a built bnnzoo body to a runtime plan: one method per block type of ``bnnzoo.build``.

Each method emits the ops that compute exactly what the block's ``forward`` computes, fused:

* a binary convolution is a ``Pack`` (its RSign: ``sign(x - threshold)`` once per convolution,
  +1 padding) and a ``BConv`` whose epilogue applies the scale, BatchNorm, the parameter-free
  shortcut (identity, channel tiling, AvgPool, partial duplication or zero fill) and RPReLU;
* in the MBConv block the group convolution's output feeds only the projection, so its epilogue
  also applies the projection's RSign and stores sign bits instead of floats;
* a 1x1 stride-s convolution is packed at stride s (only the pixels it reads);
* BNAS's unit (BatchNorm, sign, binary convolution, ReLU) folds its BatchNorm into the pack
  (``sign(x * a + b)``) and its ReLU into the epilogue; cells write their nodes straight into their
  slice of the concatenated output, a node's later edges add onto the first in their epilogues
  (after the ReLU), and ``none`` edges are skipped.

The layers' weights are folded once (:class:`Layers`); plans are made per input size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from bnnzoo.build.binary import BinaryConv2d, RPReLU
from bnnzoo.build.cell_ops import NormBinaryConv, ReductionResidual, Zero
from bnnzoo.build.cells import BinaryCell, CellBody
from bnnzoo.build.layer_list import LayerListBody
from bnnzoo.build.mbconv import BinaryMBConv
from bnnzoo.build.resnet import BinaryBasicBlock
from bnnzoo.build.shortcuts import ReductionShortcut
from bnnzoo.build.units import BinaryConvBN
from bnnzoo.dsl.spaces import reduced_size
from bnnzoo.errors import ModelError
from bnnzoo.runtime import program as P
from bnnzoo.runtime.layers import Blobs, batchnorm_affine, binary_layer, float_layer
from bnnzoo.runtime.program import BinaryLayer, FloatLayer, Tensor


class Layers:
    """The folded weights of every convolution, made on first use and cached by module."""

    def __init__(self, names: dict[nn.Module, str]) -> None:
        self.blobs = Blobs()
        self._names = names
        self._binary: dict[int, BinaryLayer] = {}
        self._float: dict[int, FloatLayer] = {}
        self._affine: dict[int, tuple[int, int]] = {}

    def name(self, module: nn.Module) -> str:
        return self._names.get(module, type(module).__name__)

    def binary(self, conv: BinaryConv2d, **folded: Any) -> BinaryLayer:
        """:func:`~bnnzoo.runtime.layers.binary_layer` of ``conv`` with what is ``folded`` into it, once."""
        if id(conv) not in self._binary:
            self._binary[id(conv)] = binary_layer(self.blobs, conv, self.name(conv), **folded)
        return self._binary[id(conv)]

    def real(self, conv: nn.Conv2d, before: nn.BatchNorm2d | None, after: nn.BatchNorm2d | None) -> FloatLayer:
        if id(conv) not in self._float:
            self._float[id(conv)] = float_layer(self.blobs, conv, self.name(conv), before, after)
        return self._float[id(conv)]

    def affine(self, bn: nn.BatchNorm2d) -> tuple[int, int]:
        if id(bn) not in self._affine:
            scale, offset = batchnorm_affine(bn, self.name(bn))
            self._affine[id(bn)] = (self.blobs.add_params(scale), self.blobs.add_params(offset))
        return self._affine[id(bn)]


def conv_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pool_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """torch's pooling output size (``pooling_output_shape``)."""
    out = (size + 2 * padding - kernel + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


@dataclass
class Planner:
    """Emits the ops of one body for one input size."""

    layers: Layers
    ops: list[P.Op] = field(default_factory=list)

    # -- binary convolutions ------------------------------------------------------------------

    def pack(self, x: Tensor, layer: BinaryLayer) -> tuple[P.Buffer, int]:
        """Binarise ``x`` for ``layer``; returns the bits and the stride the convolution then runs at."""
        if layer.in_channels != x.C:
            raise ModelError(f"{layer.name}: expects {layer.in_channels} input channels, gets {x.C}")
        k, s, pad = layer.kernel, layer.stride, layer.padding
        sub = s if k == 1 and pad == 0 else 1  # a 1x1 strided convolution reads every s-th pixel only
        Hd = conv_size(x.H, 1, s, 0) if sub > 1 else x.H
        Wd = conv_size(x.W, 1, s, 0) if sub > 1 else x.W
        bits = P.Buffer(True, Hd + 2 * pad, Wd + 2 * pad, layer.groups * P.words(x.C // layer.groups))
        self.ops.append(
            P.Pack(
                src=x,
                dst=bits,
                groups=layer.groups,
                pad=pad,
                Hd=Hd,
                Wd=Wd,
                scale=layer.in_scale,
                offset=layer.in_offset,
                sub=sub,
            )
        )
        return bits, s // sub

    def bconv(
        self,
        bits: P.Buffer,
        stride: int,
        layer: BinaryLayer,
        *,
        out: Tensor | None = None,
        residual: Tensor | None = None,
        residual_mode: int = P.RES_MOD,
        residual_after_activation: bool = False,
        then: BinaryLayer | None = None,
    ) -> Tensor | P.Buffer:
        """The convolution of packed ``bits``; with ``then``, the sign bits of ``then``'s input instead of floats."""
        Ho = conv_size(bits.H, layer.kernel, stride, 0, layer.dilation)
        Wo = conv_size(bits.W, layer.kernel, stride, 0, layer.dilation)
        if Ho < 1 or Wo < 1:
            raise ModelError(f"{layer.name}: the input is too small for its kernel")
        if residual is not None and (Ho, Wo) != (residual.H, residual.W):
            raise ModelError(f"{layer.name}: its shortcut is {residual.H}x{residual.W}, its output {Ho}x{Wo}")
        op = P.BConv(
            src=bits,
            layer=layer,
            stride=stride,
            Ho=Ho,
            Wo=Wo,
            residual=residual,
            residual_mode=residual_mode if residual is not None else P.RES_NONE,
            residual_after_activation=residual_after_activation,
        )
        if then is not None:
            if then.kernel != 1 or then.padding != 0 or then.stride != 1 or then.in_channels != layer.out_channels:
                raise ModelError(f"internal: {then.name} cannot take packed input from {layer.name}")
            op.out_bits = P.Buffer(True, Ho, Wo, then.groups * P.words(layer.out_channels // then.groups))
            op.out_layer = then
            self.ops.append(op)
            return op.out_bits
        op.out = out if out is not None else Tensor.new(Ho, Wo, layer.out_channels)
        if op.out.shape != (Ho, Wo, layer.out_channels):
            raise ModelError(f"{layer.name}: output {op.out.shape} does not fit ({Ho}, {Wo}, {layer.out_channels})")
        self.ops.append(op)
        return op.out

    def conv_bn(self, x: Tensor, unit: BinaryConvBN, rprelu: RPReLU | None = None, **epilogue) -> Tensor:
        """``rprelu(unit(x) + residual)`` for a BinaryConv2d + BatchNorm unit."""
        layer = self.layers.binary(unit.conv, bn=unit.bn, rprelu=rprelu)
        bits, stride = self.pack(x, layer)
        return self.bconv(bits, stride, layer, **epilogue)

    def norm_conv(self, x: Tensor, unit: NormBinaryConv, **epilogue) -> Tensor:
        """``relu(conv(sign(bn(x)))) (+ residual)`` for BNAS's unit."""
        if not isinstance(unit.act, nn.ReLU):
            raise ModelError(f"{self.layers.name(unit)}: the runtime expects a ReLU, got {type(unit.act).__name__}")
        layer = self.layers.binary(unit.conv, input_bn=unit.bn, relu=True)
        bits, stride = self.pack(x, layer)
        return self.bconv(bits, stride, layer, residual_after_activation=True, **epilogue)

    # -- real-valued ops ---------------------------------------------------------------------

    def pool(self, x: Tensor, module: nn.Module, out: Tensor | None = None, accumulate: bool = False) -> Tensor:
        name = self.layers.name(module)
        if isinstance(module, nn.AvgPool2d):
            mode = P.AVG
            if module.divisor_override is not None or (module.count_include_pad and module.padding):
                raise ModelError(f"{name}: the runtime averages over the valid pixels only (count_include_pad=False)")
        elif isinstance(module, nn.MaxPool2d):
            mode = P.MAX
            if _square(module.dilation) != 1 or module.return_indices:
                raise ModelError(f"{name}: the runtime's max pooling has dilation 1 and no indices")
        else:
            raise ModelError(f"{name}: the runtime cannot run {type(module).__name__}")
        k = _square(module.kernel_size)
        s = _square(module.stride if module.stride is not None else k)
        pad = _square(module.padding)
        Ho, Wo = (pool_size(size, k, s, pad, bool(module.ceil_mode)) for size in (x.H, x.W))
        out = out if out is not None else Tensor.new(Ho, Wo, x.C)
        if out.shape != (Ho, Wo, x.C):
            raise ModelError(f"{name}: output {out.shape} does not fit ({Ho}, {Wo}, {x.C})")
        self.ops.append(P.Pool(x, mode, k, s, pad, out=out, accumulate=accumulate))
        return out

    def real_conv(
        self, x: Tensor, conv: nn.Conv2d, before: nn.BatchNorm2d | None, after: nn.BatchNorm2d | None
    ) -> Tensor:
        layer = self.layers.real(conv, before, after)
        if layer.in_channels != x.C:
            raise ModelError(f"{layer.name}: expects {layer.in_channels} input channels, gets {x.C}")
        Ho, Wo = (conv_size(size, layer.kernel, layer.stride, layer.padding) for size in (x.H, x.W))
        out = Tensor.new(Ho, Wo, layer.out_channels)
        self.ops.append(P.FConv(x, layer, Ho, Wo, out=out))
        return out

    def elementwise(self, kind: int, dst: Tensor, src: Tensor | None = None) -> Tensor:
        self.ops.append(P.Elementwise(kind, dst, src))
        return dst

    def reduction_residual(self, x: Tensor, module: ReductionResidual) -> Tensor:
        """BatchNorm, zero-pad an odd size at the bottom/right, real conv (stride 2): the BNAS cell residual."""
        scale, offset = self.layers.affine(module.bn)
        normed = Tensor.new(*x.shape)
        self.ops.append(P.Elementwise(P.AFFINE, normed, x, scale, offset))
        layer = self.layers.real(module.conv, None, None)
        if layer.in_channels != x.C or layer.padding:
            raise ModelError(f"{layer.name}: expects {layer.in_channels} unpadded input channels, gets {x.C}")
        Ho, Wo = (conv_size(2 * reduced_size(size), layer.kernel, layer.stride, 0) for size in (x.H, x.W))
        out = Tensor.new(Ho, Wo, layer.out_channels)
        self.ops.append(P.FConv(normed, layer, Ho, Wo, out=out))  # windows past the edge read zeros
        return out

    # -- modules -----------------------------------------------------------------------------

    def module(self, x: Tensor, module: nn.Module) -> Tensor:
        """A single-input module of a body."""
        if isinstance(module, nn.Identity):
            return x
        if isinstance(module, BinaryMBConv):
            return self.mbconv(x, module)
        if isinstance(module, BinaryBasicBlock):
            return self.basic_block(x, module)
        if isinstance(module, BinaryConvBN):
            return self.conv_bn(x, module)
        if isinstance(module, NormBinaryConv):
            return self.norm_conv(x, module)
        if isinstance(module, ReductionResidual):
            return self.reduction_residual(x, module)
        if isinstance(module, LayerListBody):
            for block in module.blocks:
                x = self.module(x, block)
            return x
        if isinstance(module, CellBody):
            s0 = s1 = x
            for cell in module.cells:
                s0, s1 = s1, self.cell(s0, s1, cell)
            return s1
        if isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)):
            return self.pool(x, module)
        if type(module) is nn.Sequential:
            return self.sequential(x, module)
        raise ModelError(f"{self.layers.name(module)}: the runtime cannot run {type(module).__name__}")

    def sequential(self, x: Tensor, seq: nn.Sequential) -> Tensor:
        """Pools, binary convolutions + BatchNorm, and real convolutions with BatchNorms around them."""
        children = list(seq.children())
        i = 0
        while i < len(children):
            child = children[i]
            following = children[i + 1] if i + 1 < len(children) else None
            if isinstance(child, BinaryConv2d):
                bn = following if isinstance(following, nn.BatchNorm2d) else None
                layer = self.layers.binary(child, bn=bn)
                bits, stride = self.pack(x, layer)
                x = self.bconv(bits, stride, layer)
                i += 2 if bn is not None else 1
            elif isinstance(child, nn.Conv2d) or (isinstance(child, nn.BatchNorm2d) and type(following) is nn.Conv2d):
                before = child if isinstance(child, nn.BatchNorm2d) else None
                conv = following if before is not None else child
                i += 2 if before is not None else 1
                after = children[i] if i < len(children) and isinstance(children[i], nn.BatchNorm2d) else None
                i += 1 if after is not None else 0
                x = self.real_conv(x, conv, before, after)
            else:
                x = self.module(x, child)
                i += 1
        return x

    def mbconv(self, x: Tensor, block: BinaryMBConv) -> Tensor:
        """expand (+ tiled x), group conv (+ pooled h) straight to the projection's bits, project (+ shortcut)."""
        h = self.conv_bn(x, block.expand, block.expand_act, residual=x)
        group = self.layers.binary(block.group_conv.conv, bn=block.group_conv.bn, rprelu=block.group_act)
        project = self.layers.binary(block.project.conv, bn=block.project.bn, rprelu=block.project_act)
        pooled = self.module(h, block.group_shortcut)
        bits, stride = self.pack(h, group)
        projected_bits = self.bconv(bits, stride, group, residual=pooled, then=project)
        shortcut, mode = self.shortcut(x, block.shortcut)
        return self.bconv(projected_bits, 1, project, residual=shortcut, residual_mode=mode)

    def shortcut(self, x: Tensor, module: nn.Module) -> tuple[Tensor, int]:
        """A parameter-free shortcut as an epilogue residual: the tensor and how channels map onto it."""
        if isinstance(module, nn.Identity):
            return x, P.RES_MOD
        if not isinstance(module, ReductionShortcut):
            raise ModelError(f"{self.layers.name(module)}: the runtime cannot run {type(module).__name__}")
        pooled = self.module(x, module.pool)
        if module.out_channels == module.in_channels or module.kind == "partial_duplicate":
            return pooled, P.RES_MOD  # extra channel j is pooled[j % C_in]
        if module.kind == "zero":
            return pooled, P.RES_ZEROFILL
        filled = Tensor.new(pooled.H, pooled.W, module.out_channels)
        return self.elementwise(P.MEANFILL, filled, pooled), P.RES_MOD

    def basic_block(self, x: Tensor, block: BinaryBasicBlock) -> Tensor:
        shortcut = self.module(x, block.downsample)
        h = self.conv_bn(x, block.conv1, block.act1, residual=shortcut)
        return self.conv_bn(h, block.conv2, block.act2, residual=h)

    def cell(self, s0: Tensor, s1: Tensor, cell: BinaryCell) -> Tensor:
        states = [self.module(s0, cell.preprocess0), self.module(s1, cell.preprocess1)]
        edges: list[list[tuple[int, nn.Module]]] = []
        op_index = 0
        for inputs in cell.edge_inputs:
            edges.append([(source, cell.ops[op_index + i]) for i, source in enumerate(inputs)])
            op_index += len(inputs)
        shapes = [states[0].shape, states[1].shape]
        for node in edges:
            node_shapes = {self.edge_shape(shapes[source], op) for source, op in node}
            if len(node_shapes) != 1:
                raise ModelError(f"{self.layers.name(cell)}: the edges of a node disagree in shape: {node_shapes}")
            shapes.append(node_shapes.pop())
        concat_shapes = {shapes[i][:2] for i in cell.concat}
        if len(concat_shapes) != 1:
            raise ModelError(f"{self.layers.name(cell)}: the concatenated states differ in size")
        (H, W) = concat_shapes.pop()
        out = Tensor.new(H, W, sum(shapes[i][2] for i in cell.concat))
        views, offset = [], 0
        for index in cell.concat:
            views.append(out.channels(offset, shapes[index][2]))
            offset += shapes[index][2]
        slots: dict[int, int] = {}  # node state -> the concat position it is written into directly
        for position, index in enumerate(cell.concat):
            if index >= 2:
                slots.setdefault(index, position)
        for node_index, node in enumerate(edges):
            state = node_index + 2
            target = views[slots[state]] if state in slots else Tensor.new(*shapes[state])
            written = False
            for source, op in node:
                if isinstance(op, Zero):
                    continue  # adds nothing
                self.edge(states[source], op, target, accumulate=written)
                written = True
            if not written:
                self.elementwise(P.ZERO, target)
            states.append(target)
        for position, index in enumerate(cell.concat):
            if slots.get(index) != position:  # an input state, or a node concatenated twice
                self.elementwise(P.COPY, views[position], states[index])
        if cell.residual is not None:
            residual = self.module(s1, cell.residual)
            if residual.shape != out.shape:
                raise ModelError(f"{self.layers.name(cell)}: residual {residual.shape} does not fit {out.shape}")
            self.elementwise(P.ADD, out, residual)
        return out

    def edge(self, x: Tensor, op: nn.Module, target: Tensor, accumulate: bool) -> None:
        if isinstance(op, NormBinaryConv):
            self.norm_conv(x, op, out=target, residual=target if accumulate else None)
        elif isinstance(op, BinaryConvBN):
            self.conv_bn(x, op, out=target, residual=target if accumulate else None)
        elif isinstance(op, (nn.AvgPool2d, nn.MaxPool2d)):
            self.pool(x, op, out=target, accumulate=accumulate)
        else:
            raise ModelError(f"{self.layers.name(op)}: the runtime cannot run {type(op).__name__} in a cell")

    def edge_shape(self, shape: tuple[int, int, int], op: nn.Module) -> tuple[int, int, int]:
        H, W, C = shape
        if isinstance(op, Zero):
            return (-(-H // op.stride), -(-W // op.stride), C)
        if isinstance(op, (BinaryConvBN, NormBinaryConv)):
            conv = op.conv
            k, s, p, d = (_square(v) for v in (conv.kernel_size, conv.stride, conv.padding, conv.dilation))
            return (conv_size(H, k, s, p, d), conv_size(W, k, s, p, d), conv.out_channels)
        if isinstance(op, (nn.AvgPool2d, nn.MaxPool2d)):
            k = _square(op.kernel_size)
            s, p = _square(op.stride if op.stride is not None else k), _square(op.padding)
            return (pool_size(H, k, s, p, bool(op.ceil_mode)), pool_size(W, k, s, p, bool(op.ceil_mode)), C)
        raise ModelError(f"{self.layers.name(op)}: the runtime cannot run {type(op).__name__} in a cell")


def _square(value: int | tuple[int, ...]) -> int:
    values = (value,) * 2 if isinstance(value, int) else tuple(value)
    if len(set(values)) != 1:
        raise ModelError(f"the runtime needs square kernels, strides and padding, got {values}")
    return int(values[0])


def fuse_binarisations(ops: list[P.Op]) -> list[P.Op]:
    """Where a pack binarises exactly the float output of the convolution that last wrote it, let that
    convolution's epilogue write the bits too (from the row it has in cache); the pack then only fills
    the +1 border, or disappears when there is none."""
    last_writer: dict[P.Buffer, P.Op] = {}
    fused: list[P.Op] = []
    for op in ops:
        producer = last_writer.get(op.src.buf) if isinstance(op, P.Pack) else None
        if (
            isinstance(op, P.Pack)
            and isinstance(producer, P.BConv)
            and producer.out is op.src
            and producer.next_pack is None
            and producer.out_bits is None
            and op.sub == 1
        ):
            producer.next_pack = op
            op.border_only = True
            if op.pad == 0:
                continue
        fused.append(op)
        for buf in op.writes():
            last_writer[buf] = op
    return fused


@dataclass
class CompiledPlan:
    """A validated plan for one input size, ready for the native executor."""

    table: np.ndarray
    ops: list[P.Op]
    limits: P.Limits
    in_shape: tuple[int, int, int]  # per image, HWC
    out_shape: tuple[int, int, int]


def plan_body(layers: Layers, body: nn.Module, in_shape: tuple[int, int, int]) -> CompiledPlan:
    """Plan ``body`` for NHWC images of ``in_shape`` (H, W, C); validate it before anything native sees it."""
    planner = Planner(layers)
    x = Tensor.new(*in_shape, space=P.INPUT)
    y = planner.module(x, body)
    if y.buf.space == P.ARENA and y.c0 == 0 and y.buf.width == y.C:
        y.buf.space = P.OUTPUT  # the last value is written straight into the caller's output
    else:  # the input itself (a body of skips) or a slice: copy it out
        result = Tensor.new(y.H, y.W, y.C, space=P.OUTPUT)
        planner.elementwise(P.COPY, result, y)
        y = result
    y.buf.offset = 0
    x.buf.offset = 0
    planner.ops = fuse_binarisations(planner.ops)
    arena = P.allocate(planner.ops)
    table = P.encode(planner.ops)
    blobs = layers.blobs
    if blobs.params is None or blobs.weights is None:
        blobs.freeze()  # the first plan made every layer; later plans only reuse them
    limits = P.Limits(
        arena=P.round_up(arena, P.ALIGN),
        scratch=P.scratch_bytes(planner.ops),
        in_bytes=x.buf.nbytes,
        out_bytes=y.buf.nbytes,
        n_weights=blobs.n_weights,
        n_params=blobs.n_params,
    )
    P.validate(table, limits)
    return CompiledPlan(table, planner.ops, limits, in_shape, y.shape)
