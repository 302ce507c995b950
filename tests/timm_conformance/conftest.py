"""Run timm's own ``tests/test_models.py`` (vendored beside this file) over the zoo's models only.

timm's test module builds its parameter lists at import time from ``timm.list_models`` and
``timm.list_pretrained``; while pytest collects (imports) that module, this conftest narrows both
to the zoo, so every list-driven test runs for every zoo model (the rest of the session sees
timm's own functions). timm's ``module=`` filter (the timm model files known
to support ``forward_intermediates``) does not name bnnzoo's module, so it is not applied: every
zoo model supports ``forward_intermediates``. Tests that name timm's own models, not a list, are
deselected. No test's assertions are changed.

``test_prune_intermediate_layers_contract`` (which timm itself keeps out of its CI as slow) is marked
``slow`` here; it still runs in bnnzoo's CI.

TorchScript is not supported (README, "timm compatibility"): the two tests that script a model are
expected to fail with bnnzoo's :class:`~bnnzoo.errors.ModelError` (``strict``: any other error, or a
pass, fails the run).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import timm

import bnnzoo
from bnnzoo.errors import ModelError

ZOO = frozenset(bnnzoo.list_models())
HERE = Path(__file__).parent
VENDORED = HERE / "test_models.py"
_list_models, _list_pretrained = timm.list_models, timm.list_pretrained

# timm's markers (from its pyproject.toml); ``timeout`` is honoured only under pytest-timeout.
_MARKERS = ("base", "forward", "backward", "cfg", "cfg_nonstd", "torchscript", "features", "fxforward", "fxbackward")


_TORCHSCRIPT_TESTS = ("test_model_forward_torchscript", "test_model_forward_fx_torchscript")
_SLOW_TESTS = ("test_prune_intermediate_layers_contract",)
_NOT_SCRIPTABLE = "bnnzoo models do not support TorchScript; scripting raises bnnzoo's ModelError"


def _in_zoo(name: str) -> bool:
    return name.split(".")[0] in ZOO


def zoo_list_models(
    filter="", module="", pretrained=False, exclude_filters="", name_matches_cfg=False, include_tags=None
):
    """``timm.list_models`` restricted to the zoo (``module`` ignored, see above)."""
    names = _list_models(filter, "", pretrained, exclude_filters, name_matches_cfg, include_tags)
    return [name for name in names if _in_zoo(name)]


def zoo_list_pretrained(filter="", exclude_filters=""):
    return [name for name in _list_pretrained(filter, exclude_filters) if _in_zoo(name)]


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """Collect the vendored module with timm's model lists narrowed to the zoo."""
    if Path(str(getattr(collector, "path", ""))) != VENDORED or not isinstance(collector, pytest.Module):
        return (yield)
    timm.list_models, timm.list_pretrained = zoo_list_models, zoo_list_pretrained
    try:
        return (yield)
    finally:
        timm.list_models, timm.list_pretrained = _list_models, _list_pretrained


def pytest_configure(config):
    for marker in _MARKERS:
        config.addinivalue_line("markers", f"{marker}: timm's test marker")
    config.addinivalue_line("markers", "timeout(seconds): timm's per-test limit (honoured by pytest-timeout)")


def pytest_collection_modifyitems(config, items):
    """Keep the tests parametrized with a zoo model; deselect those that name timm's own models."""
    keep, drop = [], []
    for item in items:
        if Path(str(item.path)) != VENDORED:
            keep.append(item)
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        (keep if _in_zoo(str(params.get("model_name", ""))) else drop).append(item)
        if item.originalname in _SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
        if item.originalname in _TORCHSCRIPT_TESTS:
            item.add_marker(pytest.mark.xfail(raises=ModelError, strict=True, reason=_NOT_SCRIPTABLE))
            item.add_marker(pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning"))
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
