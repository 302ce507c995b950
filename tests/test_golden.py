"""Numbers a refactor must not change: op counts checked by an independent counter, and seeded logits.

* The profiler counts BOPs and FLOPs by forward hooks on bnnzoo's own modules (and the fitter uses the
  same counter), so it is checked here against torch's ``FlopCounterMode``, which knows nothing of
  bnnzoo: its multiply-accumulates (FLOPs / 2) must equal BOPs + FLOPs for every zoo model.
* Golden logits (as timm keeps for its models): each zoo model built under ``torch.manual_seed(0)``
  and run in eval mode on a seeded input must give the stored logits. Regenerate them only for an
  intended numerical change: ``python tests/test_golden.py --write``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import bnnzoo
from bnnzoo.profile import profile

GOLDEN = Path(__file__).with_name("golden_logits.json")
ZOO = bnnzoo.list_models()


def seeded_logits(name: str) -> torch.Tensor:
    torch.manual_seed(0)
    model = bnnzoo.create_model(name).eval()
    x = torch.randn(2, *model.genotype.input_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model(x)


def test_the_zoo_is_the_golden_files_zoo() -> None:
    assert sorted(json.loads(GOLDEN.read_text())) == sorted(ZOO)
    assert len(ZOO) == 10


@pytest.mark.parametrize("name", ZOO)
def test_macs_by_torch_equal_bops_plus_flops(name: str) -> None:
    model = bnnzoo.create_model(name).eval()
    shape = tuple(model.genotype.input_shape)
    counted = profile(model, shape)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, *shape))
    assert counter.get_total_flops() % 2 == 0
    assert counter.get_total_flops() // 2 == counted.bops + counted.flops
    assert counted.bops > 0 and counted.flops > 0


@pytest.mark.parametrize("name", ZOO)
def test_seeded_logits_are_the_golden_ones(name: str) -> None:
    expected = torch.tensor(json.loads(GOLDEN.read_text())[name])
    got = seeded_logits(name)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    GOLDEN.write_text(json.dumps({name: seeded_logits(name).tolist() for name in ZOO}, indent=1) + "\n")
