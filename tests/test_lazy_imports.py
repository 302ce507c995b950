"""``import bnnzoo`` is light (no torch, no timm), its public names load on first use, and it still
registers the zoo with timm whichever of the two is imported first. Each case runs in a fresh
interpreter, since this test process has long imported torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import bnnzoo


def _probe(code: str) -> dict:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_bnnzoo_loads_neither_torch_nor_timm() -> None:
    report = _probe(
        "import json, sys, bnnzoo\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'timm': 'timm' in sys.modules, "
        "'lark': 'lark' in sys.modules, 'version': bnnzoo.__version__}))"
    )
    assert report == {"torch": False, "timm": False, "lark": False, "version": bnnzoo.__version__}


def test_genotype_functions_load_without_torch() -> None:
    report = _probe(
        "import json, sys, bnnzoo\n"
        "from bnnzoo.dsl.library import zoo_genotype_path\n"
        "g = bnnzoo.parse(zoo_genotype_path('mbconv_a').read_text())\n"
        "print(json.dumps({'name': g.name, 'errors': bnnzoo.check('bnnzoo 1'), 'torch': 'torch' in sys.modules,"
        " 'same': bnnzoo.parse(bnnzoo.to_text(g)) == g}, default=str))"
    )
    assert report["name"] == "mbconv_a" and report["same"] and report["errors"]
    assert report["torch"] is False


@pytest.mark.parametrize(
    "imports",
    ["import bnnzoo, timm", "import timm, bnnzoo", "import bnnzoo; from timm.models import create_model"],
)
def test_the_zoo_is_registered_with_timm_whichever_comes_first(imports: str) -> None:
    report = _probe(
        f"{imports}\nimport json, timm\n"
        "m = timm.create_model('mbconv_a')\n"
        "print(json.dumps({'registered': timm.is_model('xnor_resnet18'), 'cls': type(m).__name__,"
        " 'pretrained': timm.list_models('mbconv_a*', include_tags=True)}))"
    )
    assert report["registered"] and report["cls"] == "BinaryNet"
    assert "mbconv_a.untrained" in report["pretrained"]


def test_public_names_are_unchanged_and_resolve() -> None:
    expected = [
        "BnnzooError",
        "Genotype",
        "GenotypeError",
        "check",
        "create_model",
        "dump",
        "list_models",
        "load_genotype",
        "parse",
        "to_text",
    ]
    assert bnnzoo.__all__ == expected
    assert set(expected) <= set(dir(bnnzoo))
    from bnnzoo._create import create_model
    from bnnzoo.dsl import parse

    assert bnnzoo.parse is parse and bnnzoo.create_model is create_model
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        bnnzoo.not_a_name  # noqa: B018
