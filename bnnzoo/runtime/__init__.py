"""``bnnzoo.runtime``: a compiled CPU inference engine for packed bnnzoo models (see docs/runtime.md).

    import bnnzoo.runtime
    model = bnnzoo.runtime.load("mbconv_a.packed.safetensors")   # bnnzoo export NAME --checkpoint ... -o FILE
    logits = model(images)   # (N, C, H, W) torch tensor or numpy array

Binary convolutions run as XNOR-popcount on sign bits packed 64 channels to a word (AVX-512
VPOPCNTDQ, AVX2 or portable kernels, chosen by CPUID or ``BNNZOO_RUNTIME_ISA``), with BatchNorm,
RPReLU, shortcuts and the next RSign fused into their epilogues; the real-valued stem, pooling and
classifier run in torch. The logits match the float-simulated model's within float32 rounding.
"""

from __future__ import annotations

import os

from bnnzoo.runtime import _native
from bnnzoo.runtime._native import ISA_ENV, ISAS, RuntimeUnavailableError, available, info, resolve_isa
from bnnzoo.runtime.engine import OpTime, Runtime, compile_model
from bnnzoo.runtime.metadata import check_against_model, check_packed_metadata

__all__ = [
    "ISAS",
    "ISA_ENV",
    "OpTime",
    "Runtime",
    "RuntimeUnavailableError",
    "available",
    "compile_model",
    "info",
    "load",
    "resolve_isa",
]


def load(path: str | os.PathLike, *, isa: str | None = None, threads: int | None = None) -> Runtime:
    """Compile the packed file at ``path`` (``bnnzoo.packed/1``) into a :class:`Runtime`.

    The file is read and checked by :func:`bnnzoo.export.load_packed` (format, genotype, every
    tensor's shape) and its convolution metadata against the model its genotype builds; the runtime
    plans are then validated before the native engine sees them. ``isa``: ``"avx512"``, ``"avx2"``,
    ``"scalar"`` or ``"auto"`` (default: ``$BNNZOO_RUNTIME_ISA``, else auto).
    """
    from bnnzoo.export import load_packed, read_packed_metadata

    _native.engine()  # fail early, before reading the file, when the engine was not built
    resolve_isa(isa)
    metadata = read_packed_metadata(path)
    check_packed_metadata(metadata, path)
    model = load_packed(path)
    check_against_model(metadata, model, path)
    return Runtime(model, isa=isa, threads=threads)
