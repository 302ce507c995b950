"""export/packed.py's bit packing (numpy.packbits, LSB first) against a reference written out bit by bit."""

from __future__ import annotations

import pytest
import torch

from bnnzoo.errors import WeightsError
from bnnzoo.export.packed import pack_signs, unpack_signs


def reference_pack(weight: torch.Tensor) -> list[list[int]]:
    rows = (weight >= 0).reshape(weight.shape[0], -1).tolist()
    packed = []
    for row in rows:
        row = row + [False] * (-len(row) % 8)
        packed.append([sum(1 << bit for bit in range(8) if row[byte + bit]) for byte in range(0, len(row), 8)])
    return packed


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 5, 3, 3), (16, 7, 1, 1), (8, 3, 5, 5), (2, 9), (4, 8)])
def test_pack_signs_is_lsb_first_zero_padded_and_round_trips(shape) -> None:
    weight = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    weight.view(-1)[0] = -0.0  # the sign bit of zero: >= 0 packs as +1
    bits = pack_signs(weight)
    assert bits.dtype == torch.uint8
    assert bits.tolist() == reference_pack(weight)
    signs = unpack_signs(bits, weight.shape)
    assert signs.dtype == torch.float32 and signs.shape == weight.shape
    assert torch.equal(signs, torch.where(weight >= 0, 1.0, -1.0))


def test_unpack_ignores_padding_bits_and_refuses_a_wrong_shape() -> None:
    bits = torch.tensor([[0b1111_0101, 0xFF]], dtype=torch.uint8)  # 9 weights: the second byte's 7 pad bits set
    assert unpack_signs(bits, (1, 9)).tolist() == [[1.0, -1.0, 1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]
    with pytest.raises(WeightsError, match=r"do not fit a weight of shape \(1, 17\): expected uint8 \(1, 3\)"):
        unpack_signs(bits, (1, 17))
