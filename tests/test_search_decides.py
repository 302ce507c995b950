"""The search decides and shows its work: liveness of derived cells, schedules, summary, curves, refusals."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import matplotlib.image
import pytest
import torch

import bnnzoo
from bnnzoo.cli import main
from bnnzoo.dsl.library import resolve_genotype
from bnnzoo.dsl.spaces import BNAS_OPS
from bnnzoo.dsl.types import Cell, Edge, Node
from bnnzoo.errors import SearchError
from bnnzoo.profile import profile
from bnnzoo.search import SearchConfig, run_search
from bnnzoo.search.cell_supernet import edge_index, num_edges
from bnnzoo.search.curves import search_figure
from bnnzoo.search.derive import derive_cell, is_dead_free
from bnnzoo.search.engine import DECIDED_ENTROPY, Searcher, summary_line, verdict
from bnnzoo.search.mixing import ArchParameters

OPS = {name: index for index, name in enumerate(BNAS_OPS)}
NODES = 4


def _weights(choices: dict[tuple[int, int], tuple[str, float]], default: str = "none") -> torch.Tensor:
    """Mixing weights that put ``weight`` on ``op`` for (node, source) and ``default`` elsewhere."""
    weights = torch.full((num_edges(NODES), len(BNAS_OPS)), 0.01)
    for node in range(NODES):
        for source in range(2 + node):
            op, weight = choices.get((node, source), (default, 0.5))
            weights[edge_index(node, source), OPS[op]] = weight
    return weights


def _ops(cell) -> list[list[tuple[str, int]]]:
    return [[(edge.op, edge.input) for edge in node.edges] for node in cell.nodes]


def test_plain_argmax_would_read_from_a_dead_node_and_the_rule_forbids_it():
    # node 2 (index 0) is all none; node 3 (index 1) would put a conv on state 2 under argmax
    weights = _weights({(1, 2): ("bin_conv_3x3", 0.9), (1, 0): ("avg_pool_3x3", 0.6)})
    cell = derive_cell(weights, "normal", NODES)
    ops = _ops(cell)
    assert ops[0] == [("none", 0), ("none", 1)]
    assert ("bin_conv_3x3", 2) not in ops[1] and ("none", 2) not in ops[1]
    assert ops[1] == [("avg_pool_3x3", 0), ("none", 1)]  # the dead edge lost to a live one
    assert is_dead_free(cell)


def test_an_all_none_cell_gets_its_strongest_path_from_an_input():
    weights = _weights({})  # argmax is none everywhere
    weights[edge_index(2, 1), OPS["max_pool_3x3"]] = 0.3  # the strongest non-none op on an input edge
    weights[edge_index(3, 4), OPS["bin_conv_5x5"]] = 0.45  # stronger, but it reads from a node
    cell = derive_cell(weights, "reduction", NODES)
    ops = _ops(cell)
    assert ops[2] == [("none", 0), ("max_pool_3x3", 1)]
    assert all(op == "none" for node in (0, 1, 3) for op, _ in ops[node])
    assert is_dead_free(cell)
    plain = [[BNAS_OPS[int(weights[edge_index(n, s)].argmax())] for s in range(2 + n)] for n in range(NODES)]
    assert all(op == "none" for row in plain for op in row)  # plain argmax: a dead cell


def test_is_dead_free_detects_dead_reads_and_dead_outputs():
    live = derive_cell(_weights({(0, 0): ("bin_conv_3x3", 0.9)}), "normal", NODES)
    assert is_dead_free(live)
    published = resolve_genotype("bnas_a_baseline").body  # BNAS-A: many none edges, none of them fatal
    assert is_dead_free(published.normal) and is_dead_free(published.reduction)

    def cell(*nodes):
        return Cell(
            "normal", tuple(Node(2 + i, tuple(Edge(op, s) for op, s in n)) for i, n in enumerate(nodes)), (2, 3)
        )

    assert not is_dead_free(cell([("none", 0), ("none", 1)], [("bin_conv_3x3", 2), ("none", 0)]))
    assert not is_dead_free(cell([("none", 0), ("none", 1)], [("none", 2), ("none", 0)]))
    assert is_dead_free(cell([("none", 0), ("max_pool_3x3", 1)], [("bin_conv_3x3", 2), ("none", 0)]))


def test_derived_cells_are_dead_free_for_random_alphas():
    generator = torch.Generator().manual_seed(0)
    for _ in range(300):
        logits = torch.randn(num_edges(NODES), len(BNAS_OPS), generator=generator) * 3
        logits[:, OPS["none"]] += 2.0  # make none dominant, the hard case
        assert is_dead_free(derive_cell(torch.softmax(logits, -1), "normal", NODES))


def test_normalized_entropy_is_one_when_uniform_and_zero_when_decided():
    arch = ArchParameters(3, 4, torch.tensor([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]]))
    with torch.no_grad():
        arch.alpha.zero_()
    assert arch.normalized_entropy() == pytest.approx(1.0)
    with torch.no_grad():
        arch.alpha[:, 0] = 50.0
    assert arch.normalized_entropy() == pytest.approx(0.0, abs=1e-6)
    arch.temperature = 1000.0  # a hot softmax is uniform again
    assert arch.normalized_entropy() == pytest.approx(1.0, abs=1e-3)


def test_the_architecture_rate_is_matched_to_the_steps_and_darts_settings_stay_reachable():
    auto = SearchConfig(epochs=8)
    assert auto.warmup == 2
    darts_steps = 50 * 391
    assert auto.arch_lr_for(darts_steps) == pytest.approx(6e-4)  # cosine halves the mean rate
    assert auto.arch_lr_for(200) == pytest.approx(3e-4 * darts_steps * 2 / 200)
    assert auto.arch_lr_for(1) == 0.3  # capped
    assert [round(auto.temperature_at(e), 4) for e in (0, 1, 2, 7)] == [1.0, 1.0, 1.0, 0.2]  # anneals after warm-up
    darts = SearchConfig(epochs=50, arch_lr=3e-4, warmup_epochs=0, arch_schedule="constant", final_temperature=1.0)
    assert (darts.warmup, darts.arch_lr_for(10), darts.temperature_at(49)) == (0, 3e-4, 1.0)
    annealed = SearchConfig(epochs=5, warmup_epochs=1, temperature=1.0, final_temperature=0.25)
    assert [round(annealed.temperature_at(e), 4) for e in range(5)] == [1.0, 1.0, 0.6300, 0.3969, 0.25]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(warmup_epochs=2, epochs=2), "--warmup-epochs must be at least 0 and below --epochs (2)"),
        (dict(arch_schedule="linear"), "unknown architecture schedule 'linear'"),
        (dict(final_temperature=0.0), "--final-temperature must be in (0, 100]"),
        (dict(space="mbconv", widths=(8, 16), depths=(1, 1), strides=(1, 2, 2)), "--strides needs one entry per"),
        (dict(space="mbconv", widths=(8, 16), depths=(1,)), "one entry per stage: got 2 widths and 1 depths"),
        (dict(space="mbconv", widths=(16, 8), depths=(1, 1), stem_channels=8), "stage widths must not narrow"),
    ],
)
def test_bad_schedules_and_stages_are_clear_errors(overrides, message):
    with pytest.raises(SearchError) as error:
        SearchConfig(**overrides).validate()
    assert message in str(error.value)


def tiny_fmnist(tmp_path, **overrides) -> SearchConfig:
    settings = dict(
        space="bnas",
        dataset="fashion_mnist",
        channels=4,
        layers=3,
        image_size=16,
        limit=640,
        batch_size=16,
        epochs=4,
        output=str(tmp_path / "decides"),
        progress=False,
    )
    return SearchConfig(**{**settings, **overrides})


@pytest.mark.slow
def test_a_short_search_decides_and_emits_a_live_genotype(tmp_path):
    lines: list[str] = []
    result = run_search(tiny_fmnist(tmp_path, seed=0), echo=lines.append)
    final = result.history[-1]["alpha_entropy_normalized"]
    assert final <= DECIDED_ENTROPY, final  # the same criterion the CLI's verdict uses
    assert result.decided and result.verdict.startswith("the search decided")
    assert [row["phase"] for row in result.history] == ["warmup", "search", "search", "search"]
    assert result.history[0]["alpha_entropy_normalized"] == pytest.approx(1.0, abs=1e-3)  # warm-up: alpha still
    genotype = result.genotype
    assert is_dead_free(genotype.body.normal) and is_dead_free(genotype.body.reduction)
    assert bnnzoo.check(result.genotype_path.read_text()) == []
    model = bnnzoo.create_model(result.genotype_path)
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 10)
    assert len(lines) == 5 and lines[-1] == result.verdict


def _tiny_synthetic(tmp_path, **overrides) -> SearchConfig:
    settings = dict(
        space="bnas", dataset="synthetic", channels=4, layers=3, epochs=2, batch_size=8, limit=48,
        output=str(tmp_path / "run"), progress=False,
    )  # fmt: skip
    return SearchConfig(**{**settings, **overrides})


def test_each_epoch_prints_a_summary_line_and_the_curves_are_written(tmp_path):
    lines: list[str] = []
    result = run_search(_tiny_synthetic(tmp_path), echo=lines.append)
    pattern = (
        r"epoch (\d)/2 \(search\): train loss \d+\.\d{3} acc \d+\.\d% \| val loss \d+\.\d{3} acc \d+\.\d% \| "
        r"alpha entropy [01]\.\d{3} \(1 = uniform\) \| derived \d+\.\d\d M Equiv\. Ops, genotype (un)?changed"
    )
    assert [re.fullmatch(pattern, line).group(1) for line in lines[:2]] == ["1", "2"]
    assert "genotype changed" in lines[0]  # the first epoch has nothing to compare with
    assert len(lines) == 3 and lines[2] == result.verdict == verdict(result.history)
    row = result.history[-1]
    assert row["derived_equiv_ops"] == pytest.approx(profile(result.genotype).equiv_ops)
    assert len(row["mixing"]) == 2 and len(row["mixing"][0]) == num_edges(NODES)
    assert all(sum(weights) == pytest.approx(1, abs=1e-3) for weights in row["mixing"][1])
    image = matplotlib.image.imread(result.curves_path)
    assert result.curves_path.name == "search_curves.png" and image.ndim == 3 and image.shape[0] > 300
    arch = [
        ("normal", [f"e{i}" for i in range(14)], list(BNAS_OPS)),
        ("reduction", [f"e{i}" for i in range(14)], list(BNAS_OPS)),
    ]
    figure = search_figure(result.history, arch)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[:3] == ["alpha entropy (1 = uniform)", "loss", "accuracy (%)"]
    assert len(figure.axes) == 3 + 28 and titles[3] == "normal: e0" and titles[-1] == "reduction: e13"
    assert [len(ax.get_lines()) for ax in figure.axes[3:]] == [len(BNAS_OPS)] * 28
    assert list(figure.axes[0].get_lines()[0].get_xdata()) == [1, 2]


def test_summary_line_and_verdict_formats():
    row = dict(
        epoch=3, phase="search", train_loss=1.23456, train_acc=0.5, val_loss=2.0, val_acc=0.25,
        alpha_entropy_normalized=0.4567, derived_equiv_ops=12.345e6, genotype_changed=False,
    )  # fmt: skip
    assert summary_line(row, 5) == (
        "epoch 3/5 (search): train loss 1.235 acc 50.0% | val loss 2.000 acc 25.0% | "
        "alpha entropy 0.457 (1 = uniform) | derived 12.35 M Equiv. Ops, genotype unchanged"
    )
    history = [dict(row, epoch=e, genotype_changed=e <= 2) for e in (1, 2, 3)]
    assert verdict(history).startswith("the search decided: final mean normalised alpha entropy 0.457")
    assert "last changed at epoch 2 of 3" in verdict(history)
    undecided = [dict(history[-1], alpha_entropy_normalized=0.9)]
    assert "did NOT decide" in verdict(undecided) and "--final-temperature" in verdict(undecided)


def test_a_folder_with_a_run_is_refused_unless_resumed_or_overwritten(tmp_path, capsys):
    config = _tiny_synthetic(tmp_path, epochs=1, max_steps=2)
    with pytest.raises(KeyboardInterrupt):
        Searcher(config, echo=None).run(stop_after_steps=1)
    with pytest.raises(SearchError) as error:
        Searcher(config, echo=None)
    assert str(error.value) == (
        f"{config.output} already holds an unfinished search (checkpoint.json); pass --resume to continue it, "
        "--overwrite to start again, or choose another output folder with -o"
    )
    lines: list[str] = []
    resumed = Searcher(config, resume=True, echo=lines.append)
    assert len(lines) == 1
    assert re.fullmatch(
        rf"resumed {config.output}/checkpoint.json at epoch 1, step 1 of 1 epochs \(\d+ s searched so far\)", lines[0]
    )
    resumed.run()
    with pytest.raises(SearchError, match="already holds a finished search"):
        Searcher(config, echo=None)
    fresh = Searcher(replace(config, overwrite=True), echo=None)
    assert fresh.epoch == 0 and not (tmp_path / "run" / "search_log.jsonl").exists()
    args = ["search", "--dataset", "synthetic", "--limit", "48", "--batch-size", "8", "--channels", "4"]
    args += ["--layers", "3", "--epochs", "1", "--max-steps", "1", "-o", str(tmp_path / "cli"), "--no-progress"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "--resume" in err and "--overwrite" in err and "Traceback" not in err
    assert main([*args, "--overwrite"]) == 0


def test_a_two_stage_mbconv_space_runs_from_the_command_line(tmp_path, capsys):
    args = ["search", "--space", "mbconv", "--dataset", "synthetic", "--limit", "32", "--batch-size", "8"]
    args += ["--widths", "8,16", "--depths", "1,1", "--stem-channels", "8", "--expansions", "1,2"]
    args += ["--epochs", "1", "--max-steps", "1", "--no-progress", "-o", str(tmp_path / "two")]
    assert main(args) == 0
    genotype = bnnzoo.load_genotype(tmp_path / "two" / "searched.bnn")
    assert [layer.stride for layer in genotype.body.layers] == [1, 2]
    assert main([*args[:-2], "--strides", "1,2,2", "-o", str(tmp_path / "bad")]) == 1
    assert "--strides needs one entry per stage (2), got 3: e.g. --strides 1,2" in capsys.readouterr().err
    assert main([*args[:-2], "--strides", "2,2", "-o", str(tmp_path / "s22")]) == 0
    strided = bnnzoo.load_genotype(tmp_path / "s22" / "searched.bnn")
    assert [layer.stride for layer in strided.body.layers] == [2, 2]


def test_warmup_keeps_alpha_still_and_the_cosine_schedule_ends_at_zero(tmp_path):
    config = _tiny_synthetic(tmp_path, epochs=3, warmup_epochs=1, max_steps=3)
    searcher = Searcher(config, echo=None)
    start = [module.alpha.detach().clone() for module in searcher.arch]
    assert searcher.arch_steps == 6 and searcher.arch_lr == pytest.approx(0.3)
    searcher.run()
    assert searcher.history[0]["phase"] == "warmup"
    assert searcher.history[0]["arch_lr"] == pytest.approx(0.3)  # no architecture step yet
    assert searcher.arch_optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    moved = [not torch.equal(a, module.alpha) for a, module in zip(start, searcher.arch)]
    assert all(moved)
    expected_mid = 0.3 * 0.5 * (1 + math.cos(math.pi * 3 / 6))
    assert searcher.history[1]["arch_lr"] == pytest.approx(expected_mid)


@pytest.mark.parametrize("space", ["bnas", "mbconv"])
def test_random_draws_are_uniform_live_and_leave_alpha_alone(space, tmp_path):
    from bnnzoo.search.engine import build_supernet
    from bnnzoo.search.sample import random_genotype

    overrides = dict(widths=(8, 16), depths=(2, 1), stem_channels=8, expansions=(1, 2)) if space == "mbconv" else {}
    config = _tiny_synthetic(tmp_path, space=space, **overrides)
    net = build_supernet(config, 3, 10, 32)
    before = [module.alpha.detach().clone() for module in net.arch_modules()]
    generator = torch.Generator().manual_seed(0)
    draws = [random_genotype(net, generator, f"r{i}") for i in range(60)]
    assert all(torch.equal(a, m.alpha) for a, m in zip(before, net.arch_modules()))
    assert all(bnnzoo.check(bnnzoo.to_text(g)) == [] for g in draws[:5])
    if space == "bnas":
        assert all(is_dead_free(g.body.normal) and is_dead_free(g.body.reduction) for g in draws)
        ops = {e.op for g in draws for n in g.body.normal.nodes for e in n.edges}
        assert ops == set(BNAS_OPS)  # 480 uniform draws reach every op
    else:
        last = {(g.body.layers[-1].kernel, g.body.layers[-1].expansion) for g in draws}
        assert last == {(3, 1), (3, 2), (5, 1), (5, 2)}  # the stride-2 layer can never be a skip
    assert len({bnnzoo.to_text(g) for g in draws}) > 40


def test_the_command_line_defaults_are_the_configs_defaults():
    import argparse

    from bnnzoo.cli.search_command import _config, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    config, defaults = _config(parser.parse_args(["search"])), SearchConfig()
    for name in ("arch_lr", "arch_schedule", "warmup_epochs", "temperature", "final_temperature", "epochs"):
        assert getattr(config, name) == getattr(defaults, name), name
