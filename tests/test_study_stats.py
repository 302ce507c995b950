"""The study's measures on known genotypes and histories, and its decision rule on known numbers."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from tiny import genotype_text

import bnnzoo
from bnnzoo.dsl.types import Edge
from bnnzoo.study.claims import CONTRADICTS, SUPPORTS, UNDECIDED, decide, format_mean_std, mean_std, t95
from bnnzoo.study.genotype_stats import genotype_distance, genotype_stats, pairwise_distances, stable_epochs
from bnnzoo.study.shortcut import even_channels, scaled_genotype

CELLS = """layers 3
channels 4
cell normal {
  node 2 = none(1) + bin_dil_conv_3x3(0)
  node 3 = bin_conv_3x3(1) + avg_pool_3x3(2)
  node 4 = bin_conv_5x5(2) + none(3)
  node 5 = none(3) + none(4)
  concat 2 3 4 5
}
cell reduction {
  node 2 = max_pool_3x3(0) + none(1)
  node 3 = max_pool_3x3(0) + bin_dil_conv_5x5(2)
  node 4 = none(3) + none(2)
  node 5 = none(3) + none(4)
  concat 2 3 4 5
}
"""
LAYERS = """shortcut partial_duplicate
layers {
  MB3(2) 8
  MB5(1) 16 s2
  skip
  MB3(6) 32 s2
  MB5(4) 32 x2
}
"""


def _cells():
    return bnnzoo.parse(genotype_text("cells", "bnas", CELLS))


def _layers():
    return bnnzoo.parse(genotype_text("layers", "mbconv", LAYERS))


def test_cell_statistics_count_ops_pools_convolutions_and_kernels():
    stats = genotype_stats(_cells())
    assert stats["normal.ops"] == 4 and stats["normal.pool"] == 1 and stats["normal.conv"] == 3
    assert stats["normal.pool_share"] == pytest.approx(1 / 4)
    assert stats["normal.conv_share"] == pytest.approx(3 / 4)
    assert stats["normal.k3_share"] == pytest.approx(2 / 3)  # dil 3x3 and 3x3 of 3 convolutions
    assert stats["reduction.ops"] == 3 and stats["reduction.pool_share"] == pytest.approx(2 / 3)
    assert stats["reduction.k3_share"] == 0.0
    assert stats["cells.ops"] == 3.5
    assert stats["cells.k3_share"] == pytest.approx(2 / 4)


def test_layer_statistics_count_blocks_kernels_and_late_widths():
    stats = genotype_stats(_layers())  # stem 8; MB3(6) 32 s2 starts the last resolution
    assert stats["layers.blocks"] == 5
    assert stats["layers.k3_share"] == pytest.approx(2 / 5)
    assert stats["layers.late_expansion"] == pytest.approx((6 + 4 + 4) / 3)
    assert stats["layers.late_channels"] == pytest.approx((6 * 16 + 4 * 32 + 4 * 32) / 3)


def test_genotype_distance_is_the_share_of_differing_decisions():
    cells = _cells()
    assert genotype_distance(cells, cells) == 0.0
    node = cells.body.normal.nodes[0]
    changed_node = replace(node, edges=(node.edges[0], Edge("bin_conv_5x5", 0)))
    normal = replace(cells.body.normal, nodes=(changed_node, *cells.body.normal.nodes[1:]))
    other = replace(cells, body=replace(cells.body, normal=normal))
    assert genotype_distance(cells, other) == pytest.approx(0.5 / 8)  # one of two edges in one of 8 nodes
    layers = _layers()
    body = layers.body
    swapped = replace(layers, body=replace(body, layers=(body.layers[1], *body.layers[1:])))
    assert genotype_distance(layers, swapped) == pytest.approx(1 / 6)  # 6 layers once x2 is written out
    assert pairwise_distances([cells, cells, other]) == pytest.approx([0.0, 0.5 / 8, 0.5 / 8])


def test_stable_epochs_counts_back_to_the_last_change():
    def history(changes):
        return [{"epoch": i + 1, "genotype_changed": changed} for i, changed in enumerate(changes)]

    assert stable_epochs(history([True, True, False, False, False])) == 3
    assert stable_epochs(history([True, False, True, False])) == 1
    assert stable_epochs(history([True, True, True])) == 0
    assert stable_epochs(history([True])) == 0


def test_the_decision_rule_on_known_numbers():
    assert t95(1) == 12.706 and t95(4) == 2.776 and t95(1000) == 1.96
    mean, std, count = mean_std([1.0, 2.0, 3.0, float("nan")])
    assert (mean, std, count) == (2.0, 1.0, 3)
    # well separated: difference 10, se = sqrt(1/3 + 1/3), df = 4
    decision = decide([11, 12, 13], [1, 2, 3], "higher")
    assert decision.verdict == SUPPORTS and decision.difference == 10
    assert decision.threshold == pytest.approx(2.776 * math.sqrt(2 / 3))
    assert decide([11, 12, 13], [1, 2, 3], "lower").verdict == CONTRADICTS
    assert decide([1.0, 2.5, 3.0], [1, 2, 3], "higher").verdict == UNDECIDED
    assert decide([5.0], [1, 2, 3], "higher").verdict == UNDECIDED  # one seed has no spread
    paired = decide([0.01, 0.02, 0.03, 0.02], [0.0] * 4, "higher")  # a one-sample t test against 0
    assert paired.threshold == pytest.approx(3.182 * mean_std([0.01, 0.02, 0.03, 0.02])[1] / 2)
    assert paired.verdict == SUPPORTS
    assert format_mean_std([0.5, 0.7], 100, 1) == "60.0 ± 14.1" and format_mean_std([]) == "n/a"


def test_scaled_genotypes_keep_even_non_narrowing_widths_and_drop_published_figures():
    assert [even_channels(c, 0.25) for c in (50, 64, 96, 256, 4)] == [12, 16, 24, 64, 2]
    scaled = scaled_genotype(bnnzoo.load_genotype(bnnzoo.dsl.library.zoo_genotype_path("mbconv_a")), 0.25, "R1", 1, 16)
    assert scaled.name == "R1" and scaled.input_shape == (1, 16, 16) and scaled.stem.channels == 12
    widths = [layer.channels for layer in scaled.body.layers if hasattr(layer, "channels")]
    assert widths == sorted(widths) and widths[-1] == 64
    meta = dict(scaled.meta)
    assert meta["study.scaled_from"] == "mbconv_a" and meta["study.width_multiplier"] == "0.25"
    assert not any(key.startswith("published.") for key in meta)
    assert "reconstruction" in " ".join(scaled.comments)
    with pytest.raises(bnnzoo.errors.BnnzooError, match="needs mbconv genotypes"):
        scaled_genotype(_cells(), 0.5, "R1", 3, None)
