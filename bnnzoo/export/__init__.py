"""Export formats for deployment: ``bnnzoo.packed/1``, binary weights as sign bits (see docs/packed_format.md)."""

from bnnzoo.export.packed import (
    FORMAT,
    PackedBinaryConv2d,
    PackedSize,
    export_packed,
    load_packed,
    pack_signs,
    packed_size,
    read_packed_metadata,
    unpack_signs,
)

__all__ = [
    "FORMAT",
    "PackedBinaryConv2d",
    "PackedSize",
    "export_packed",
    "load_packed",
    "pack_signs",
    "packed_size",
    "read_packed_metadata",
    "unpack_signs",
]
