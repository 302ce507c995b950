"""A damaged packed file or plan is a clear bnnzoo error, never a crash in native code.

The fuzzers run in a subprocess, so that a native crash fails the test (with the subprocess's exit
status) instead of killing pytest.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from test_runtime import CELLS, MBCONV, RESNET, runtime_built  # noqa: F401  (the fixture skips or fails)
from tiny import trained

import bnnzoo.runtime as rt
from bnnzoo.errors import BnnzooError, WeightsError
from bnnzoo.export import export_packed
from bnnzoo.runtime import program as P
from bnnzoo.runtime.engine import Body

TESTS = Path(__file__).resolve().parent


def _rewrite(path: Path, out: Path, tensors=None, metadata=None) -> Path:
    with safe_open(str(path), framework="pt") as handle:
        data = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        meta = dict(handle.metadata())
    data.update(tensors or {})
    meta.update(metadata or {})
    save_file(data, str(out), metadata=meta)
    return out


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> Path:
    return export_packed(trained(MBCONV, steps=1), tmp_path_factory.mktemp("safety") / "m.packed.safetensors")


def test_truncated_file(packed, tmp_path):
    broken = tmp_path / "cut.safetensors"
    broken.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    with pytest.raises(WeightsError, match="not a valid safetensors file"):
        rt.load(broken)


def test_wrong_format(packed, tmp_path):
    with pytest.raises(WeightsError, match="not a bnnzoo packed file"):
        rt.load(_rewrite(packed, tmp_path / "f.safetensors", metadata={"format": "bnnzoo.packed/9"}))


def test_bits_of_the_wrong_shape(packed, tmp_path):
    name = "body.blocks.1.group_conv.conv.weight.bits"
    with safe_open(str(packed), framework="pt") as handle:
        bits = handle.get_tensor(name)
    short = bits[:, :-1].contiguous()
    with pytest.raises(WeightsError, match=r"bits of shape .* do not fit"):
        rt.load(_rewrite(packed, tmp_path / "b.safetensors", tensors={name: short}))


def test_metadata_that_disagrees_with_the_genotype(packed, tmp_path):
    with safe_open(str(packed), framework="pt") as handle:
        entries = json.loads(handle.metadata()["packed"])
    key = "body.blocks.0.group_conv.conv.weight"
    lying = {**entries, key: {**entries[key], "stride": [2, 2]}}
    with pytest.raises(WeightsError, match=r"says stride \[2, 2\], but the genotype builds \[1, 1\]"):
        rt.load(_rewrite(packed, tmp_path / "s.safetensors", metadata={"packed": json.dumps(lying)}))
    odd = {**entries, key: {**entries[key], "groups": "two"}}
    with pytest.raises(WeightsError, match="groups 'two' is not well-formed"):
        rt.load(_rewrite(packed, tmp_path / "g.safetensors", metadata={"packed": json.dumps(odd)}))
    scalar = {**entries, key: 7}
    with pytest.raises(WeightsError, match="is not a JSON object"):
        rt.load(_rewrite(packed, tmp_path / "o.safetensors", metadata={"packed": json.dumps(scalar)}))


def test_another_genotype_in_the_metadata(packed, tmp_path):
    from bnnzoo.dsl import parse, to_text

    other = to_text(parse(RESNET))
    with pytest.raises(BnnzooError, match="do not fit the model"):
        rt.load(_rewrite(packed, tmp_path / "r.safetensors", metadata={"genotype": other}))


def test_non_finite_weights_run_like_the_float_model(packed, tmp_path):
    """A NaN scale: the expansion's outputs are NaN, which the next sign turns into -1 (in both)."""
    from bnnzoo.export import load_packed

    name = "body.blocks.0.expand.conv.weight.scale"
    with safe_open(str(packed), framework="pt") as handle:
        scale = handle.get_tensor(name)
    path = _rewrite(packed, tmp_path / "n.safetensors", tensors={name: torch.full_like(scale, float("nan"))})
    x = torch.randn(2, 3, 15, 15)
    with torch.no_grad():
        expected = load_packed(path)(x)
    assert torch.allclose(rt.load(path)(x), expected, rtol=1e-5, atol=1e-5, equal_nan=True)


FUZZ_FILE = textwrap.dedent(
    """
    import random, sys, torch
    import bnnzoo.runtime as rt
    from bnnzoo.errors import BnnzooError
    source, folder = sys.argv[1], sys.argv[2]
    data = open(source, "rb").read()
    header = int.from_bytes(data[:8], "little") + 8
    rng = random.Random(0)
    outcomes = {"refused": 0, "ran": 0}
    for case in range(int(sys.argv[3])):
        damaged = bytearray(data)
        for _ in range(rng.choice([1, 2, 8])):
            where = rng.randrange(8, header) if rng.random() < 0.7 else rng.randrange(header, len(data))
            damaged[where] = rng.randrange(256)
        path = f"{folder}/case{case}.safetensors"
        open(path, "wb").write(bytes(damaged))
        try:
            runtime = rt.load(path)
            runtime(torch.randn(2, 3, 15, 15))
            outcomes["ran"] += 1
        except BnnzooError:
            outcomes["refused"] += 1
    print(outcomes)
    """
)


def _run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=600, cwd=TESTS
    )
    assert result.returncode == 0, f"exit status {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result.stdout


@pytest.mark.slow
def test_damaged_files_are_refused_or_run(packed, tmp_path):
    """Random byte damage in the header (JSON, metadata) and the tensors: a BnnzooError or a clean run."""
    outcome = eval(_run(FUZZ_FILE, str(packed), str(tmp_path), "60").strip().splitlines()[-1])  # a dict literal
    assert outcome["refused"] + outcome["ran"] == 60
    assert outcome["refused"] > 0 and outcome["ran"] > 0


FUZZ_PLAN = textwrap.dedent(
    """
    import random, sys
    import numpy as np, torch
    from tiny import genotype_text, trained
    import test_runtime as T
    from bnnzoo.runtime import program as P
    from bnnzoo.runtime.engine import Body
    rng = random.Random(1)
    counts = {"refused": 0, "ran": 0}
    for text in (T.MBCONV, T.RESNET, T.CELLS):
        model = trained(text, steps=1)
        body = Body(model.body)
        stem = model.stem(torch.randn(1, 3, *model.genotype.input_shape[1:])).detach().permute(0, 2, 3, 1)
        plan, _ = body.plan(tuple(stem.shape[1:]))
        blobs, limits = body.layers.blobs, plan.limits
        images = stem.contiguous().numpy()
        for case in range(int(sys.argv[1])):
            table = plan.table.copy()
            for _ in range(rng.choice([1, 1, 3])):
                row, field = rng.randrange(len(table)), rng.randrange(1, 48)
                value = int(table[row, field])
                table[row, field] = rng.choice([value + 1, value - 1, value * 2, -value, 1 << 30, -1, 0, value + 64])
            try:
                P.validate(table, limits)
            except P.PlanError:
                counts["refused"] += 1
                continue
            native = body._engine.Plan(table, blobs.weights, blobs.params, limits.arena, limits.scratch,
                                       limits.in_bytes, limits.out_bytes, body.isa)
            out = np.empty(limits.out_bytes // 4, np.float32)
            work = np.zeros(limits.arena + limits.scratch + 64, np.uint8)
            start = -work.ctypes.data % 64
            native.run(images, out, 1, work[start:start + limits.arena + limits.scratch], 1)
            counts["ran"] += 1
    print(counts)
    """
)


@pytest.mark.slow
def test_damaged_plans_are_refused_before_native_code(tmp_path):
    """Every mutated plan the validator passes runs in bounds (else the subprocess would crash)."""
    outcome = eval(_run(FUZZ_PLAN, "400").strip().splitlines()[-1])  # a dict literal
    assert outcome["refused"] > outcome["ran"] > 0


def test_the_native_boundary_checks_its_buffers():
    body = Body(torch.nn.Sequential(trained(MBCONV, steps=1).body.blocks[0]))
    plan, native = body.plan((15, 15, 8))
    limits = plan.limits
    images = np.zeros(limits.in_bytes // 4, np.float32)
    out = np.zeros(limits.out_bytes // 4, np.float32)
    raw = np.zeros(limits.arena + limits.scratch + 64, np.uint8)
    start = -raw.ctypes.data % 64
    work = raw[start : start + limits.arena + limits.scratch]
    native.run(images, out, 1, work, 1)
    with pytest.raises(ValueError, match="input is smaller than n images"):
        native.run(images, out, 2, work, 1)
    with pytest.raises(ValueError, match="workspace is smaller"):
        native.run(images, out, 1, work, 2)
    with pytest.raises(ValueError, match="not 64-byte aligned"):
        native.run(images, out, 1, raw[start + 1 : start + 1 + limits.arena + limits.scratch], 1)
    with pytest.raises(TypeError, match="4-byte items"):
        native.run(images.astype(np.float64), out, 1, work, 1)
    with pytest.raises(ValueError, match="ISA 'sse9'"):
        body._engine.Plan(plan.table, body.layers.blobs.weights, body.layers.blobs.params, 0, 64, 4, 4, "sse9")


def test_the_validator_names_the_problem():
    body = Body(trained(CELLS, steps=1).body)
    plan, _ = body.plan((16, 16, 18))
    table = plan.table.copy()
    table[0, 2] = plan.limits.arena + 4  # the first op's source offset: past its space
    with pytest.raises(P.PlanError, match=r"plan op 0 \(kind \d\): tensor at field 1: ends at byte"):
        P.validate(table, plan.limits)
    table = plan.table.copy()
    table[0, 0] = 99
    with pytest.raises(P.PlanError, match="unknown op kind"):
        P.validate(table, plan.limits)
