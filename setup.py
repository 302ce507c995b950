"""Build of bnnzoo's optional native runtime, ``bnnzoo.runtime._engine`` (see docs/runtime.md, "Build").

Everything else is in pyproject.toml. Why setuptools, and why this shape:

* the extension is a plain CPython module in C++17 with no third-party headers, so the isolated
  build environment needs only setuptools (no torch, numpy or pybind11 at build time);
* it is ``optional``: without a working compiler pip still installs bnnzoo, and ``bnnzoo.runtime``
  says at import time that the engine is unavailable and why;
* each ISA's kernels are a separate translation unit compiled with its own ``-m`` flags (a
  oneDNN/XNNPACK-style build), so the rest of the module stays baseline code and runs on any CPU; an
  ISA whose flags the compiler rejects is left out (the dispatcher is told with ``BNNZOO_NO_<ISA>``);
* floating-point contraction is off everywhere, so every ISA rounds the epilogues identically;
* OpenMP is used when the compiler has it (probed), otherwise the engine runs on one thread.
"""

from __future__ import annotations

import os
import platform
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CSRC = "bnnzoo/runtime/csrc"
X86 = platform.machine().lower() in {"x86_64", "amd64", "i386", "i686", "x86"}

# translation unit -> (gcc/clang flags, MSVC flags, the macro that drops it)
ISA_UNITS = {
    "isa_scalar.cpp": ([], [], None),
    "isa_avx2.cpp": (["-mavx2", "-mfma", "-mpopcnt"], ["/arch:AVX2"], "BNNZOO_NO_AVX2"),
    "isa_avx512.cpp": (
        [
            "-mavx512f",
            "-mavx512bw",
            "-mavx512vl",
            "-mavx512dq",
            "-mavx512vpopcntdq",
            "-mavx2",
            "-mfma",
            "-mpopcnt",
            "-mprefer-vector-width=512",
        ],
        ["/arch:AVX512"],
        "BNNZOO_NO_AVX512",
    ),
}
# Used where the compiler accepts them (probed): gcc's masked vector loop tails for AVX-512.
OPTIONAL_FLAGS = {"isa_avx512.cpp": ["--param=vect-partial-vector-usage=2"]}
COMMON_UNITS = ["module.cpp", "dispatch.cpp"]
PROBE = "int main() { return 0; }\n"
UNIX_FLAGS = ["-std=c++17", "-O3", "-ffp-contract=off", "-fvisibility=hidden", "-Wall"]
MSVC_FLAGS = ["/std:c++17", "/O2", "/fp:precise", "/EHsc"]


class BuildEngine(build_ext):
    """Compile the ISA units with their own flags, then link them into the extension."""

    def build_extension(self, ext: Extension) -> None:
        msvc = self.compiler.compiler_type == "msvc"
        common = list(MSVC_FLAGS if msvc else UNIX_FLAGS)
        link: list[str] = []
        openmp = ["/openmp"] if msvc else ["-fopenmp"]
        if self._compiles(openmp, "#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n"):
            common += openmp
            link += [] if msvc else openmp
        else:
            self.warn("bnnzoo runtime: the compiler has no OpenMP; the engine will run on one thread")
        objects, dropped = [], []
        for unit, (unix_flags, msvc_flags, macro) in ISA_UNITS.items():
            if macro and not X86:
                dropped.append(macro)
                continue
            flags = msvc_flags if msvc else unix_flags
            extra = [] if msvc else [flag for flag in OPTIONAL_FLAGS.get(unit, []) if self._compiles([flag], PROBE)]
            try:
                objects += self.compiler.compile(
                    [os.path.join(CSRC, unit)],
                    output_dir=self.build_temp,
                    extra_postargs=common + flags + extra,
                )
            except Exception as error:  # an old compiler without these -m flags: drop the ISA
                if macro is None:
                    raise
                self.warn(f"bnnzoo runtime: {unit} does not compile ({error}); built without it")
                dropped.append(macro)
        ext.sources = [os.path.join(CSRC, unit) for unit in COMMON_UNITS]
        ext.extra_objects = objects
        ext.define_macros = [(macro, "1") for macro in dropped]
        ext.extra_compile_args = common
        ext.extra_link_args = link
        super().build_extension(ext)

    def _compiles(self, flags: list[str], source: str) -> bool:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "probe.cpp")
            with open(path, "w") as handle:
                handle.write(source)
            try:
                objects = self.compiler.compile([path], output_dir=folder, extra_postargs=flags)
                self.compiler.link_executable(objects, "probe", output_dir=folder, extra_postargs=flags)
            except Exception:
                return False
        return True


setup(
    ext_modules=[
        Extension(
            "bnnzoo.runtime._engine",
            sources=[os.path.join(CSRC, unit) for unit in COMMON_UNITS],
            depends=[os.path.join(CSRC, name) for name in ("engine.h", "executor.inc", *ISA_UNITS)],
            language="c++",
            optional=True,
        )
    ],
    cmdclass={"build_ext": BuildEngine},
)
