"""Op counts: hand-countable layers, Table 3's baselines, the reconstructed zoo, info --json, the fitter."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import bnnzoo
from bnnzoo.build.binary import BinaryConv2d, set_binary_weights
from bnnzoo.build.shortcuts import ReductionShortcut
from bnnzoo.cli import main
from bnnzoo.dsl.library import zoo_genotype, zoo_genotype_names
from bnnzoo.fit import CellFitter, CellSpace, MBConvFitter, MBConvSpace, relative_errors
from bnnzoo.profile import profile, profile_module, published_row
from bnnzoo.profile.counter import memory_mb

FIGURES = ("bops", "flops", "equiv_ops", "params_mb")


def errors(name: str) -> dict[str, float]:
    totals = profile(name).totals()
    return relative_errors(totals, published_row(name).targets())


# -- hand-countable layers ------------------------------------------------------------------------


def test_binary_3x3_conv_counts_bops_and_one_bit_weights():
    result = profile_module(BinaryConv2d(16, 32, 3, padding=1), (16, 8, 8))
    assert (result.bops, result.flops) == (32 * 8 * 8 * 16 * 9, 0)
    assert (result.binary_params, result.real_params) == (32 * 16 * 9, 32)  # + one scale per output channel
    assert result.params_mb == pytest.approx((32 * 16 * 9 / 8 + 32 * 4) / 1e6)


def test_grouped_strided_binary_conv():
    result = profile_module(BinaryConv2d(16, 16, 5, stride=2, padding=2, groups=2), (16, 8, 8))
    assert result.bops == 16 * 4 * 4 * 8 * 25
    assert result.binary_params == 16 * 8 * 25


def test_real_conv_linear_and_pooling():
    conv = profile_module(nn.Conv2d(3, 8, 3, padding=1, bias=True), (3, 4, 4))
    assert (conv.bops, conv.flops, conv.real_params) == (0, 8 * 16 * 27, 8 * 27 + 8)
    linear = profile_module(nn.Linear(20, 10), (20,))
    assert (linear.flops, linear.real_params) == (200, 210)
    pool = profile_module(nn.AvgPool2d(2), (4, 8, 8))
    assert (pool.bops, pool.flops, pool.real_params) == (0, 0, 0)
    assert [layer.kind for layer in pool.layers] == ["pool"]


def test_binary_conv_with_real_weights_counts_as_flops():
    conv = BinaryConv2d(4, 4, 3, padding=1)
    set_binary_weights(conv, False)
    result = profile_module(conv, (4, 4, 4))
    assert (result.bops, result.flops) == (0, 4 * 16 * 4 * 9)
    assert result.layers[0].input_precision == "1-bit"


@pytest.mark.parametrize("kind", ["zero", "partial_duplicate", "global_average"])
def test_reduction_shortcuts_add_no_ops(kind):
    result = profile_module(ReductionShortcut(8, 16, 2, kind), (8, 8, 8))
    assert (result.bops, result.flops, result.binary_params, result.real_params) == (0, 0, 0, 0)


def test_memory_is_one_bit_per_binary_and_32_per_real_parameter():
    assert memory_mb(8_000_000, 250_000) == pytest.approx(2.0)


def test_profile_accepts_models_genotypes_names_and_paths(tmp_path):
    by_name = profile("xnor_resnet18").totals()
    assert profile(zoo_genotype("xnor_resnet18")).totals() == by_name
    assert profile(bnnzoo.create_model("xnor_resnet18"), (3, 32, 32)).totals() == by_name
    path = tmp_path / "x.bnn"
    bnnzoo.dump(zoo_genotype("xnor_resnet18"), path)
    assert profile(path).totals() == by_name


# -- Table 3 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["xnor_resnet18", "bireal_resnet18"])
def test_table3_baselines_within_2_percent(name):
    for figure, error in errors(name).items():
        assert abs(error) <= 0.02, f"{name} {figure}: {error:+.2%}"


def test_bnas_a_baseline_within_2_percent_as_the_official_code_counts():
    """As the official BNAS network counts (tests/test_bnas_template.py): 0.6967 G, 87.93 M, 98.81 M, 4.094 MB."""
    for figure, error in errors("bnas_a_baseline").items():
        assert abs(error) <= 0.02, f"bnas_a_baseline {figure}: {error:+.2%}"
    totals = profile("bnas_a_baseline").totals()
    assert (totals["bops"], totals["flops"]) == (696_729_600, 87_926_400)
    assert totals["equiv_ops"] == pytest.approx(98_812_800)
    assert (totals["binary_params"], totals["real_params"]) == (4_708_368, 876_358)
    assert totals["params_mb"] == pytest.approx(4.093978, abs=1e-6)


RECONSTRUCTED = [name for name in zoo_genotype_names() if zoo_genotype(name).metadata.get("reconstruction") == "true"]


def test_every_searched_model_of_table3_is_reconstructed():
    assert sorted(RECONSTRUCTED) == ["bnas_a", "bnas_cm", "bnas_mini", "mbconv_a", "mbconv_b", "mbconv_c", "mbconv_d"]


@pytest.mark.parametrize("name", RECONSTRUCTED)
def test_reconstructions_within_3_percent_and_say_so(name):
    for figure, error in errors(name).items():
        assert abs(error) <= 0.03, f"{name} {figure}: {error:+.2%}"
    genotype = zoo_genotype(name)
    header = "\n".join(genotype.comments)
    assert "RECONSTRUCTION" in header and "bnnzoo fit --published" in header
    for figure in ("BOPs", "FLOPs", "Equiv. Ops", "Params"):
        assert figure in header


@pytest.mark.parametrize("name", [n for n in RECONSTRUCTED if n.startswith("mbconv")])
def test_mbconv_reconstructions_follow_the_supplement(name):
    layers = [layer for layer in zoo_genotype(name).body.expanded() if hasattr(layer, "kernel")]
    widths = [layer.channels for layer in layers]
    assert widths == sorted(widths), "later layers are at least as wide"
    assert sum(layer.kernel == 3 for layer in layers) > len(layers) / 2, "weight noise prefers k = 3"


@pytest.mark.parametrize("name", [n for n in RECONSTRUCTED if n.startswith("bnas")])
def test_bnas_reconstructions_lean_as_the_supplement_says(name):
    body = zoo_genotype(name).body

    def count(cell, prefix):
        return sum(edge.op.startswith(prefix) for node in cell.nodes for edge in node.edges)

    assert count(body.normal, "bin_") <= count(body.normal, "max_") + count(body.normal, "avg_")
    assert count(body.reduction, "bin_") > count(body.reduction, "max_") + count(body.reduction, "avg_")


# -- bnnzoo info ----------------------------------------------------------------------------------


def test_info_json_schema(capsys):
    assert main(["info", "mbconv_b", "--json", "--layers"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert list(info) == ["schema", "name", "space", "input_size", "ours", "published", "relative_error", "layers"]
    assert info["schema"] == "bnnzoo.info/1" and info["input_size"] == [3, 32, 32]
    assert list(info["ours"]) == [
        "bops", "flops", "equiv_ops", "binary_params", "real_params", "params_mb", "binary_mac_share",
    ]  # fmt: skip
    assert list(info["published"]) == [
        "model", "bops", "flops", "equiv_ops", "params_mb", "cifar10_top1", "cifar100_top1",
    ]  # fmt: skip
    assert info["published"]["bops"] == 0.703e9 and info["published"]["model"] == "Ours (MBConv-B)"
    assert set(info["relative_error"]) == set(FIGURES)
    assert list(info["layers"][0]) == [
        "name", "kind", "input_precision", "weight_precision", "output_shape",
        "bops", "flops", "binary_params", "real_params", "memory_mb",
    ]  # fmt: skip
    assert sum(layer["bops"] for layer in info["layers"]) == info["ours"]["bops"]


def test_info_text_and_files_without_published_figures(capsys, tmp_path):
    assert main(["info", "xnor_resnet18"]) == 0
    out = capsys.readouterr().out
    assert "published" in out and "0.554" in out and "paper's claim" in out
    path = tmp_path / "mine.bnn"
    text = bnnzoo.to_text(zoo_genotype("xnor_resnet18")).replace("name xnor_resnet18", "name mine")
    path.write_text(text)
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["published"] is None and info["relative_error"] is None


def test_info_unknown_model_is_a_clear_error(capsys):
    assert main(["info", "mbconv_z"]) == 1
    assert "unknown zoo model 'mbconv_z'" in capsys.readouterr().err


# -- the fitting tool -----------------------------------------------------------------------------


def test_mbconv_fitter_recovers_the_figures_of_a_known_genotype():
    space = MBConvSpace(
        stem_channels=(16, 24),
        stage_widths=((24, 32), (32, 48), (48, 64), (64, 96)),
        stage_depths=(1, 1, 2, 2),
        expansions=(1, 2, 3),
    )
    probe = MBConvFitter(space, {})
    known = probe.random_candidate(__import__("random").Random(5))
    known = type(known)(known.stem, tuple(sorted(known.widths)), known.layers)
    targets = probe.counts(known).figures()
    fitter = MBConvFitter(space, targets)
    result = fitter.fit(iterations=600, restarts=2, seed=1)
    worst = max(abs(e) for e in relative_errors(result.figures, targets).values())
    assert worst < 0.03
    genotype = fitter.genotype(result.state, "fitted")
    assert profile(genotype).totals()["bops"] == pytest.approx(result.figures["bops"])  # sums == full profile


def test_cell_fitter_lands_on_targets_and_builds():
    space = CellSpace(layers=5, channels=8)
    probe = CellFitter(space, {})
    import random

    rng = random.Random(3)
    from bnnzoo.fit import CellCandidate

    known = CellCandidate(probe.random_cell(rng), probe.random_cell(rng))
    targets = probe.counts(known).figures()
    fitter = CellFitter(space, targets)
    result = fitter.fit(iterations=800, restarts=2, seed=0)
    assert max(abs(e) for e in relative_errors(result.figures, targets).values()) < 0.05
    genotype = fitter.genotype(result.state, "cells")
    assert bnnzoo.check(bnnzoo.to_text(genotype)) == []
    assert profile(genotype).totals()["bops"] == pytest.approx(result.figures["bops"])
    for node in genotype.body.normal.nodes:
        assert len({edge.input for edge in node.edges}) == 2, "two distinct inputs per node"


def test_fit_cli_refuses_models_without_figures(capsys):
    assert main(["fit", "--published", "xnor_resnet18"]) == 1
    assert "no published figures to fit" in capsys.readouterr().err


def test_zoo_models_build_with_the_profiled_counts():
    model = bnnzoo.create_model("mbconv_a")
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    assert profile(model, (3, 32, 32)).totals() == profile("mbconv_a").totals()
