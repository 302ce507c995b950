"""The way in and the benchmark from the command line: bnnzoo export, then bnnzoo.runtime.load and bnnzoo bench."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from test_runtime import MBCONV, runtime_built  # noqa: F401  (the fixture skips or fails)
from tiny import trained

import bnnzoo.runtime as rt
from bnnzoo.cli import main
from bnnzoo.export import load_packed


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    genotype = folder / "tiny_mb.bnn"
    genotype.write_text(MBCONV)
    model = trained(MBCONV, steps=2)
    checkpoint = folder / "weights.safetensors"
    save_file({key: value.contiguous() for key, value in model.state_dict().items()}, str(checkpoint))
    packed = folder / "tiny.packed.safetensors"
    assert main(["export", str(genotype), "--checkpoint", str(checkpoint), "-o", str(packed)]) == 0
    return genotype, packed


def test_export_then_load(exported):
    _, packed = exported
    x = torch.randn(3, 3, 15, 15)
    with torch.no_grad():
        expected = load_packed(packed)(x)
    assert torch.allclose(rt.load(packed)(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("which", ["genotype", "packed"])
def test_bench_prints_images_per_second_and_resident_weights(exported, capsys, which):
    genotype, packed = exported
    target = genotype if which == "genotype" else packed
    code = main(
        ["bench", str(target), "--batch", "1", "2", "--threads", "1", "--repeats", "1", "--warmup", "0"]
        + ["--min-seconds", "0.01"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "bnnzoo bench rt_mb: 3x15x15 images, runtime ISA" in out and "load average" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[:2] for row in rows] == [["1", "1"], ["2", "1"]]
    for row in rows:  # batch, threads, (a), (b), (c), c/a, c/b
        assert len(row) == 7 and all(float(v) > 0 for v in row[2:5]) and row[5].endswith("x")
    assert "(a) float-simulated bnnzoo model" in out and "(c) bnnzoo.runtime" in out
    assert "resident weights: (a)" in out and "runtime / file = " in out


def test_bench_refuses_bad_options(exported, capsys):
    genotype, _ = exported
    assert main(["bench", str(genotype), "--batch", "0"]) == 1
    assert "--batch and --threads must be >= 1" in capsys.readouterr().err
    assert main(["bench", "no_such_model"]) == 1
    assert "bnnzoo bench: error:" in capsys.readouterr().err
