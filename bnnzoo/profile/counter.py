"""Count BOPs, FLOPs, equivalent ops and memory from the modules that were actually built.

Conventions (the supplement's Table 3; see docs/profiling.md):

* BOPs: multiply-accumulates of binary convolutions, whose weights AND activations are 1 bit.
* FLOPs: multiply-accumulates of real-valued convolutions and linear layers. BatchNorm, pooling,
  RPReLU, RSign thresholds, shortcut additions and channel fill-ups are not counted.
* Equiv. Ops = FLOPs + BOPs / 64.
* Params (MB): 1 bit per binary weight, 32 bits per real weight or bias of a convolution or linear
  layer, and 32 bits per output-channel scale of a binary convolution; in 10^6 bytes. BatchNorm,
  RPReLU and RSign parameters are folded at deployment and are not counted, except the affine
  weights and biases of a :func:`~bnnzoo.build.cell_ops.counted_batchnorm` (the BNAS template's:
  Table 3's BNAS-A figure includes them).

Counting runs one forward pass at batch size 1 on the ``meta`` device, with hooks on every leaf op.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.func import functional_call

from bnnzoo.build.binary import BinaryConv2d
from bnnzoo.build.cell_ops import is_counted_batchnorm

EQUIV_DIVISOR = 64
_POOLS = (nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@dataclass(frozen=True)
class LayerCount:
    """The counts of one op: a convolution, a linear layer or a pooling."""

    name: str
    kind: str
    input_precision: str  # "1-bit" or "32-bit"
    weight_precision: str  # "1-bit", "32-bit" or "-" for ops without weights
    output_shape: tuple[int, ...]
    bops: int
    flops: int
    binary_params: int
    real_params: int

    @property
    def memory_mb(self) -> float:
        return memory_mb(self.binary_params, self.real_params)


@dataclass(frozen=True)
class Profile:
    """Per-layer records and totals of a model at one input size."""

    input_size: tuple[int, int, int]
    layers: tuple[LayerCount, ...] = field(repr=False)

    @property
    def bops(self) -> int:
        return sum(layer.bops for layer in self.layers)

    @property
    def flops(self) -> int:
        return sum(layer.flops for layer in self.layers)

    @property
    def equiv_ops(self) -> float:
        return self.flops + self.bops / EQUIV_DIVISOR

    @property
    def binary_params(self) -> int:
        return sum(layer.binary_params for layer in self.layers)

    @property
    def real_params(self) -> int:
        return sum(layer.real_params for layer in self.layers)

    @property
    def params_mb(self) -> float:
        return memory_mb(self.binary_params, self.real_params)

    @property
    def binary_share(self) -> float:
        """The share of binary MACs among all MACs."""
        total = self.bops + self.flops
        return self.bops / total if total else 0.0

    def totals(self) -> dict[str, float]:
        return {
            "bops": self.bops,
            "flops": self.flops,
            "equiv_ops": self.equiv_ops,
            "binary_params": self.binary_params,
            "real_params": self.real_params,
            "params_mb": self.params_mb,
            "binary_mac_share": self.binary_share,
        }

    def layer_dicts(self) -> list[dict]:
        return [asdict(layer) | {"memory_mb": layer.memory_mb} for layer in self.layers]


def memory_mb(binary_params: int, real_params: int) -> float:
    """Model size in 10^6 bytes: 1 bit per binary and 32 bits per real parameter."""
    return (binary_params / 8 + real_params * 4) / 1e6


def is_fully_binary(module: nn.Module) -> bool:
    return isinstance(module, BinaryConv2d) and module.binary_weights and module.binary_activations


def _count(name: str, module: nn.Module, inputs: tuple, output: torch.Tensor) -> LayerCount | None:
    shape = tuple(output.shape[1:])
    out_elements = output[0].numel()
    if isinstance(module, nn.Conv2d):
        macs = out_elements * (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
        weights = module.weight.numel()
        bias = module.bias.numel() if module.bias is not None else 0
        if is_fully_binary(module):
            return LayerCount(name, "conv", "1-bit", "1-bit", shape, macs, 0, weights, module.out_channels + bias)
        binary_input = isinstance(module, BinaryConv2d) and module.binary_activations
        return LayerCount(
            name, "conv", "1-bit" if binary_input else "32-bit", "32-bit", shape, 0, macs, 0, weights + bias
        )
    if isinstance(module, nn.Linear):
        bias = module.bias.numel() if module.bias is not None else 0
        macs = module.in_features * module.out_features
        return LayerCount(name, "linear", "32-bit", "32-bit", shape, 0, macs, 0, module.weight.numel() + bias)
    if isinstance(module, _POOLS):
        return LayerCount(name, "pool", "32-bit", "-", shape, 0, 0, 0, 0)
    if is_counted_batchnorm(module):
        return LayerCount(name, "norm", "32-bit", "32-bit", shape, 0, 0, 0, 2 * module.num_features)
    return None


def profile_module(module: nn.Module, input_size: tuple[int, ...], prefix: str = "") -> Profile:
    """Count a module's ops at ``input_size`` (C, H, W) from one forward pass on the ``meta`` device.

    Counting needs shapes, not values: the module runs with meta stand-ins for its parameters and
    buffers (``torch.func.functional_call``) on a meta input, so no activation is ever allocated,
    whatever the input size, and the module itself is left as it was.
    """
    records: list[LayerCount] = []
    handles = []
    for name, sub in module.named_modules():
        if isinstance(sub, (nn.Conv2d, nn.Linear, *_POOLS)) or is_counted_batchnorm(sub):
            full_name = f"{prefix}{name}" if name else prefix.rstrip(".") or type(sub).__name__

            def hook(mod, inputs, output, full_name=full_name):
                record = _count(full_name, mod, inputs, output)
                if record is not None:
                    records.append(record)

            handles.append(sub.register_forward_hook(hook))
    stand_ins = {
        name: torch.empty_like(tensor, device="meta")
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]
    }
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            functional_call(module, stand_ins, (torch.zeros(1, *input_size, device="meta"),), strict=True)
    finally:
        module.train(was_training)
        for handle in handles:
            handle.remove()
    return Profile(tuple(input_size), tuple(records))


def profile(model_or_genotype, input_size: tuple[int, int, int] | None = None) -> Profile:
    """Profile a model, a :class:`~bnnzoo.dsl.types.Genotype`, a zoo name or a ``.bnn`` path.

    ``input_size`` is (C, H, W); it defaults to the genotype's input shape.
    """
    if isinstance(model_or_genotype, nn.Module):
        model = model_or_genotype
    else:
        from bnnzoo.build.network import BinaryNet
        from bnnzoo.dsl.library import resolve_genotype

        genotype = resolve_genotype(
            os.fspath(model_or_genotype) if isinstance(model_or_genotype, os.PathLike) else model_or_genotype
        )
        with torch.device("meta"):
            model = BinaryNet(genotype)
    if input_size is None:
        genotype = getattr(model, "genotype", None)
        if genotype is None:
            raise ValueError("input_size is required for a model that has no genotype")
        channels = getattr(model, "in_chans", genotype.input_shape[0])
        input_size = (channels, *genotype.input_shape[1:])
    return profile_module(model, tuple(input_size))
