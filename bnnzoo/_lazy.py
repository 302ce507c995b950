"""Lazy imports: public names that load on first use, and the zoo's registration with timm.

``import bnnzoo`` must stay light (``bnnzoo --help`` should not load torch), yet it has always
registered the zoo with timm, so that ``import bnnzoo, timm; timm.create_model("mbconv_a")``
works. :func:`register_zoo_with_timm` keeps that promise without importing timm: if timm is
already imported it registers now; otherwise it registers right after timm's own import finishes.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

_TIMM = "timm"
_ZOO = "bnnzoo.zoo"


def lazy_attributes(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` (PEP 562) that import ``names[attr]`` on first use."""
    module = sys.modules[package]

    def __getattr__(attr: str) -> Any:
        if attr not in names:
            raise AttributeError(f"module {package!r} has no attribute {attr!r}")
        value = getattr(importlib.import_module(names[attr]), attr)
        setattr(module, attr, value)  # later look-ups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(module)) | set(names))

    return __getattr__, __dir__


class _AfterTimmImport(importlib.abc.MetaPathFinder):
    """A one-shot finder: lets timm import as usual, then imports the zoo (which registers it)."""

    def find_spec(self, fullname: str, path: Any = None, target: ModuleType | None = None) -> Any:
        if fullname != _TIMM:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(_TIMM)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module: ModuleType) -> None:
            exec_module(module)
            importlib.import_module(_ZOO)

        spec.loader.exec_module = exec_then_register  # type: ignore[method-assign]
        return spec


def register_zoo_with_timm() -> None:
    """Register the zoo's models with timm now if timm is loaded, else as soon as it is imported."""
    if _TIMM in sys.modules:
        importlib.import_module(_ZOO)
    elif not any(isinstance(finder, _AfterTimmImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterTimmImport())
