"""The compiled engine, ``bnnzoo.runtime._engine``, if it was built; and which ISA it runs.

The extension is optional (setup.py): bnnzoo installs without a compiler, and then every runtime
entry point raises :class:`RuntimeUnavailableError` saying so.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from bnnzoo.errors import BnnzooError
from bnnzoo.runtime.program import ABI_VERSION, MAX_MR, OP_WIDTH

ISA_ENV = "BNNZOO_RUNTIME_ISA"
ISAS = ("avx512", "avx2", "scalar")

try:
    from bnnzoo.runtime import _engine as _loaded

    _engine: ModuleType | None = _loaded
    _import_error = ""
except ImportError as error:  # not built: no compiler at install time, or compiling failed
    _engine = None
    _import_error = str(error)


class RuntimeUnavailableError(BnnzooError):
    """bnnzoo was installed without its native runtime."""


def engine() -> ModuleType:
    """The native module; :class:`RuntimeUnavailableError` if it was not built or does not match."""
    if _engine is None:
        raise RuntimeUnavailableError(
            "bnnzoo.runtime is unavailable: its native extension (bnnzoo.runtime._engine) was not built when "
            "bnnzoo was installed, because no C++17 compiler was found or compiling failed (pip's build log says "
            "which). Install a compiler (e.g. `apt-get install g++`) and reinstall bnnzoo "
            f"(`pip install --force-reinstall --no-deps bnnzoo`). [{_import_error}]"
        )
    info = _engine.isa_info()
    if (info["abi"], info["op_width"], info["max_mr"]) != (ABI_VERSION, OP_WIDTH, MAX_MR):
        raise RuntimeUnavailableError(
            f"bnnzoo.runtime: the native extension was built from other sources (ABI {info['abi']}, this "
            f"package expects {ABI_VERSION}); reinstall bnnzoo to rebuild it"
        )
    return _engine


def available() -> bool:
    """Whether the native runtime was built and can run here."""
    try:
        engine()
    except RuntimeUnavailableError:
        return False
    return True


def info() -> dict[str, Any]:
    """The built ISAs, those this CPU supports, the automatic choice, OpenMP and its thread count."""
    return dict(engine().isa_info())


def resolve_isa(request: str | None = None) -> str:
    """The ISA a runtime loaded now would use: ``request``, else ``$BNNZOO_RUNTIME_ISA``, else the CPU's best."""
    native = engine()
    source = f"isa={request!r}" if request else f"{ISA_ENV}={os.environ.get(ISA_ENV, '')!r}"
    if request is not None and request not in (*ISAS, "auto"):
        raise BnnzooError(f"{source}: unknown ISA; expected auto, {', '.join(ISAS)}")
    try:
        return native.resolve_isa(request)
    except ValueError as error:
        raise BnnzooError(f"{source}: {error}") from None
