"""CPU throughput and peak memory of every zoo model: training steps and inference, NCHW and channels_last.

    python benchmarks/model_throughput.py [--batch 64] [--steps 1] [--warmup 1] [--models NAME_OR_GLOB ...]

Each (model, memory format, mode) runs in a fresh subprocess, so one measurement's allocations and
peak RSS do not leak into the next. A training step is forward + cross-entropy + backward + SGD step
(momentum 0.9) in train mode; inference is a forward in eval mode under ``torch.no_grad``. Throughput is
images per second over ``--steps`` timed steps after ``--warmup`` untimed ones. Peak memory is the rise of
the worker's resident set over its level once the model, optimizer and batch exist (Linux: ``VmHWM`` after
resetting it through ``/proc/self/clear_refs``; elsewhere the rise of ``ru_maxrss``, which misses a peak
lower than the import-time one). ``x base`` divides by the contiguous (NCHW) figure of the same model,
measured in the same run. No assertions: the numbers depend on the machine and on its load, which is
printed before and after the table.

The defaults are the least that still times a warmed-up step: at batch 64 one training step of a BNAS
cell model takes 5-15 s on two cores (binary layers run as float convolutions), so a full run over the
ten-model zoo takes about 7 minutes on an idle two-core machine, and more than twice that on a loaded one.
Raise ``--steps`` (and narrow ``--models``) for steadier figures.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import resource
import subprocess
import sys
import time

FORMATS = ("contiguous", "channels_last")
MODES = ("train", "infer")


# -- worker: one measurement in this process --------------------------------------------------------


def _rss_mib(field: str) -> float | None:
    """``VmRSS`` or ``VmHWM`` of this process in MiB, from ``/proc/self/status`` (Linux only)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _maxrss_mib() -> float:
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _measure(model_name: str, memory_format: str, mode: str, batch: int, steps: int, warmup: int) -> dict:
    import torch
    import torch.nn.functional as F

    import bnnzoo

    torch.manual_seed(0)
    model = bnnzoo.create_model(model_name)
    x = torch.randn(batch, *model.pretrained_cfg["input_size"])
    target = torch.randint(0, model.num_classes, (batch,))
    if memory_format == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def train_step() -> None:
        loss = F.cross_entropy(model(x), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def infer_step() -> None:
        with torch.no_grad():
            model(x)

    model.train(mode == "train")
    step = train_step if mode == "train" else infer_step

    exact_peak = _reset_peak_rss()
    base_rss = _rss_mib("VmRSS") if exact_peak else None
    base_maxrss = _maxrss_mib()
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter() - start
    if exact_peak and base_rss is not None and (peak := _rss_mib("VmHWM")) is not None:
        peak_delta = peak - base_rss
    else:
        peak_delta = _maxrss_mib() - base_maxrss
    return {
        "images_per_s": batch * steps / elapsed,
        "peak_mib": peak_delta,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "threads": torch.get_num_threads(),
    }


# -- driver: one subprocess per measurement, then the table -----------------------------------------


def _run_worker(args: argparse.Namespace, model: str, memory_format: str, mode: str) -> dict:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        f"{model}:{memory_format}:{mode}",
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
    ]
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout} s"}
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _select(patterns: list[str] | None, names: list[str]) -> list[str]:
    if not patterns:
        return names
    chosen: list[str] = []
    for pattern in (part for item in patterns for part in item.split(",") if part):
        matched = [name for name in names if fnmatch.fnmatch(name, pattern)]
        if not matched:
            raise SystemExit(f"no zoo model matches '{pattern}' (zoo: {', '.join(names)})")
        chosen += [name for name in matched if name not in chosen]
    return chosen


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else value / base


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    left = {0, 1}

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64, help="images per step (default 64)")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per measurement (default 1)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--models", nargs="+", metavar="NAME", help="zoo names or globs (default: all)")
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS for the workers (default: torch's)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per measurement (default 600)")
    parser.add_argument("--worker", metavar="MODEL:FORMAT:MODE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        model, memory_format, mode = args.worker.rsplit(":", 2)
        result = _measure(model, memory_format, mode, args.batch, args.steps, args.warmup)
        print(json.dumps(result))
        return 0

    import bnnzoo

    models = _select(args.models, bnnzoo.list_models())
    print(
        f"batch {args.batch}, {args.warmup} warmup + {args.steps} timed steps, CPU, "
        f"one subprocess per measurement; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs",
        flush=True,
    )
    started = time.perf_counter()
    rows: list[list[str]] = []
    threads = None
    for model in models:
        results = {(f, m): _run_worker(args, model, f, m) for f in FORMATS for m in MODES}
        base_train = results["contiguous", "train"].get("images_per_s")
        base_infer = results["contiguous", "infer"].get("images_per_s")
        for memory_format in FORMATS:
            train, infer = results[memory_format, "train"], results[memory_format, "infer"]
            params = train.get("params_m") or infer.get("params_m")
            threads = threads or train.get("threads") or infer.get("threads")
            rows.append(
                [
                    model,
                    memory_format,
                    _fmt(params, ".2f"),
                    _fmt(train.get("images_per_s"), ".1f"),
                    _fmt(_ratio(train.get("images_per_s"), base_train), ".2f"),
                    _fmt(infer.get("images_per_s"), ".1f"),
                    _fmt(_ratio(infer.get("images_per_s"), base_infer), ".2f"),
                    _fmt(train.get("peak_mib"), ".0f"),
                    _fmt(infer.get("peak_mib"), ".0f"),
                ]
            )
            for mode, result in (("train", train), ("infer", infer)):
                if "error" in result:
                    print(f"  {model} {memory_format} {mode}: {result['error']}", file=sys.stderr)
        print(f"  measured {model} ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    header = [
        "model",
        "format",
        "params M",
        "train img/s",
        "x base",
        "infer img/s",
        "x base",
        "train peak MiB",
        "infer peak MiB",
    ]
    print(_table(rows, header))
    print(
        f"torch threads per worker: {threads}; x base = this row / the same model's contiguous row; "
        f"peak MiB = RSS rise over model + optimizer + batch; load average {os.getloadavg()[0]:.2f}; "
        f"{time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
