"""Start-up time of the light ``bnnzoo`` commands, against baselines measured in the same run.

Each command runs as a fresh process (the console script's own code path: ``bnnzoo.cli.main``),
``--repeats`` times, interleaved with two baselines: a bare ``python -c pass`` (the floor) and
``python -c "import torch, timm"`` (what every command paid before the imports became lazy). Prints
the median wall time of each and its ratio to the torch baseline. The target is under 1 s for
``--help``, ``check`` and ``fmt``. Timings depend on the machine's load: the script prints it.

    python benchmarks/cli_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from bnnzoo.dsl.library import zoo_genotype_path

BASELINES = {"python -c pass": ["-c", "pass"], "import torch, timm": ["-c", "import torch, timm"]}


def commands() -> dict[str, list[str]]:
    genotype = str(zoo_genotype_path("bnas_a"))
    cli = ["-c", "import sys; from bnnzoo.cli import main; sys.exit(main())"]
    return {
        "bnnzoo --help": [*cli, "--help"],
        "bnnzoo --version": [*cli, "--version"],
        "bnnzoo check FILE": [*cli, "check", genotype],
        "bnnzoo check mbconv_a": [*cli, "check", "mbconv_a"],
        "bnnzoo fmt --check FILE": [*cli, "fmt", "--check", genotype],
    }


def run_once(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    cases = {**BASELINES, **commands()}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for argv in cases.values():  # warm the file cache
        run_once(argv)
    for _ in range(args.repeats):
        for name, argv in cases.items():
            times[name].append(run_once(argv))
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; median of {args.repeats} runs")
    torch_time = statistics.median(times["import torch, timm"])
    for name, values in times.items():
        median = statistics.median(values)
        target = "" if name in BASELINES else ("  under 1 s" if median < 1 else "  OVER 1 s")
        print(f"{name:28s} {median:6.3f} s   {median / torch_time:5.2f}x import torch, timm{target}")


if __name__ == "__main__":
    main()
