"""Images per second of one network three ways, measured interleaved in one process.

* ``simulated``: the float-simulated bnnzoo model in PyTorch eager (sign() and float convolutions);
* ``real``: the same network with real-valued weights and activations, every BinaryConv2d a plain
  ``nn.Conv2d`` (the "why not just use float" baseline);
* ``runtime``: :mod:`bnnzoo.runtime` on the model's packed file.

Each repeat times every variant once, one after the other (interleaved), so that a change of load
on a shared machine hits all of them alike; a sample runs a variant until ``min_seconds`` pass, and
the figure is the median sample. ``bnnzoo bench`` and benchmarks/runtime_vs_float.py print these.
"""

from __future__ import annotations

import copy
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bnnzoo.build.binary import BinaryConv2d
from bnnzoo.build.network import BinaryNet
from bnnzoo.errors import ModelError
from bnnzoo.runtime.engine import Runtime

VARIANTS = ("simulated", "real", "runtime")
TITLES = {
    "simulated": "(a) float-simulated bnnzoo model, eager PyTorch",
    "real": "(b) real-valued twin, plain nn.Conv2d",
    "runtime": "(c) bnnzoo.runtime",
}


def real_valued_twin(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every BinaryConv2d replaced by an ``nn.Conv2d`` of the same geometry
    and latent weights: real weights, real (zero-padded) activations, no sign()."""
    twin = copy.deepcopy(model)
    for parent in list(twin.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, BinaryConv2d):
                conv = nn.Conv2d(
                    child.in_channels,
                    child.out_channels,
                    child.kernel_size,
                    stride=child.stride,
                    padding=child.padding,
                    dilation=child.dilation,
                    groups=child.groups,
                    bias=child.bias is not None,
                )
                conv.load_state_dict({k: v for k, v in child.state_dict().items() if k in ("weight", "bias")})
                setattr(parent, name, conv)
    return twin.eval()


def resident_bytes(module: nn.Module) -> int:
    """Bytes of a module's parameters and buffers (each tensor once)."""
    seen = {t.data_ptr(): t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers())}
    return sum(seen.values())


@dataclass
class Subjects:
    """The three variants of one network, and what the figures are about."""

    name: str
    input_shape: tuple[int, int, int]
    simulated: nn.Module
    real: nn.Module
    runtime: Runtime
    packed_bytes: int

    def resident(self) -> dict[str, int]:
        return {
            "simulated": resident_bytes(self.simulated),
            "real": resident_bytes(self.real),
            "runtime": self.runtime.weight_bytes,
        }


def prepare(model: str | os.PathLike, isa: str | None = None) -> Subjects:
    """The three variants of NAME (a zoo name or .bnn file: random weights) or FILE (a packed file)."""
    from bnnzoo.dsl.library import resolve_genotype
    from bnnzoo.export import export_packed, load_packed
    from bnnzoo.runtime import load

    path = Path(model)
    if path.name.endswith(".safetensors"):
        simulated: nn.Module = load_packed(path)
        runtime = load(path, isa=isa)
        packed_bytes = path.stat().st_size
    else:
        torch.manual_seed(0)
        simulated = BinaryNet(resolve_genotype(model)).eval()
        with tempfile.TemporaryDirectory() as folder:  # the way in: the packed export
            packed = export_packed(simulated, Path(folder) / "model.packed.safetensors")
            runtime = load(packed, isa=isa)
            packed_bytes = packed.stat().st_size
    genotype = runtime.genotype
    shape = (runtime.in_chans, *genotype.input_shape[1:])
    return Subjects(genotype.name, shape, simulated.eval(), real_valued_twin(simulated), runtime, packed_bytes)


@dataclass(frozen=True)
class Measurement:
    variant: str
    batch: int
    threads: int
    images_per_s: float
    samples: int


def all_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _timed(run: Callable[[], object], min_seconds: float) -> float:
    """Seconds per call: calls ``run`` until ``min_seconds`` have passed."""
    calls, start = 0, time.perf_counter()
    while True:
        run()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / calls


def measure(
    subjects: Subjects,
    batches: Sequence[int] = (1, 64),
    threads: Sequence[int] | None = None,
    repeats: int = 5,
    warmup: int = 1,
    min_seconds: float = 0.2,
    variants: Sequence[str] = VARIANTS,
    progress: Callable[[str], None] | None = None,
) -> list[Measurement]:
    """Median images/s of each variant at each batch size and thread count, interleaved."""
    if repeats < 1 or warmup < 0 or min(batches, default=1) < 1:
        raise ModelError("repeats must be >= 1, warmup >= 0 and batch sizes >= 1")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ModelError(f"unknown variants {sorted(unknown)}; expected some of {', '.join(VARIANTS)}")
    runners = {"simulated": subjects.simulated, "real": subjects.real, "runtime": subjects.runtime}
    saved_threads, saved_runtime_threads = torch.get_num_threads(), subjects.runtime.threads
    results: list[Measurement] = []
    try:
        for count in threads or (1, all_threads()):
            torch.set_num_threads(count)
            subjects.runtime.threads = count
            for batch in batches:
                x = torch.randn(batch, *subjects.input_shape, generator=torch.Generator().manual_seed(batch))
                calls = {name: (lambda run=runners[name], x=x: run(x)) for name in variants}
                samples: dict[str, list[float]] = {name: [] for name in variants}
                with torch.no_grad():
                    for call in calls.values():
                        for _ in range(warmup):
                            call()
                    for _ in range(repeats):
                        for name, call in calls.items():
                            samples[name].append(_timed(call, min_seconds))
                for name in variants:
                    rate = batch / statistics.median(samples[name])
                    results.append(Measurement(name, batch, count, rate, repeats))
                if progress:
                    progress(f"batch {batch}, {count} thread(s) done")
    finally:
        torch.set_num_threads(saved_threads)
        subjects.runtime.threads = saved_runtime_threads
    return results


def load_average() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f} (5 min {five:.2f}) on {os.cpu_count()} CPUs"


def report(subjects: Subjects, results: list[Measurement]) -> str:
    """The table ``bnnzoo bench`` prints: images/s of each variant, the runtime's speed-ups, resident weights."""
    rate = {(m.variant, m.batch, m.threads): m.images_per_s for m in results}
    variants = [v for v in VARIANTS if any(m.variant == v for m in results)]
    letters = {"simulated": "a", "real": "b", "runtime": "c"}
    header = ["batch", "threads", *(f"({letters[v]}) img/s" for v in variants)]
    bases = [v for v in ("simulated", "real") if v in variants] if "runtime" in variants else []
    header += [f"c / {letters[v]}" for v in bases]
    rows = [header]
    for batch, count in sorted({(m.batch, m.threads) for m in results}):
        row = [str(batch), str(count), *(f"{rate[v, batch, count]:.1f}" for v in variants)]
        row += [f"{rate['runtime', batch, count] / rate[v, batch, count]:.1f}x" for v in bases]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines += [f"  ({letters[v]}) {TITLES[v][4:]}" for v in variants]
    resident = subjects.resident()
    lines.append(
        "resident weights: "
        + ", ".join(f"({letters[v]}) {resident[v] / 1e6:.3f} MB" for v in VARIANTS)
        + f"; packed file {subjects.packed_bytes / 1e6:.3f} MB, runtime / file = "
        f"{resident['runtime'] / subjects.packed_bytes:.3f}"
    )
    return "\n".join(lines)
