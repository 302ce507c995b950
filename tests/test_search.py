"""The search: tiny runs on both spaces, the bimodal perturbation, resume, torchrun, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import bnnzoo
from bnnzoo.cli import main
from bnnzoo.draw import draw_genotype
from bnnzoo.errors import SearchError
from bnnzoo.profile import profile
from bnnzoo.search import SearchConfig, run_search
from bnnzoo.search.derive import derive
from bnnzoo.search.engine import Searcher
from bnnzoo.search.perturb import perturbed
from bnnzoo.search.resource import ExpectedOps

TINY = {
    "mbconv": dict(widths=(8, 8, 16, 16), depths=(1, 2, 1, 1), stem_channels=8, expansions=(1, 2)),
    "bnas": dict(channels=4, layers=3),
}


def tiny(space: str, tmp_path: Path, **overrides) -> SearchConfig:
    settings = dict(
        space=space,
        dataset="synthetic",
        epochs=2,
        batch_size=8,
        limit=64,
        output=str(tmp_path / space),
        progress=False,
        **TINY[space],
    )
    return SearchConfig(**{**settings, **overrides})


@pytest.mark.parametrize("space", ["mbconv", "bnas"])
def test_tiny_search_emits_a_genotype_that_checks_builds_draws_and_profiles(space, tmp_path):
    result = run_search(tiny(space, tmp_path, eps_a=0.2, eps_w=0.25))
    text = result.genotype_path.read_text()
    assert bnnzoo.check(text) == []
    genotype = bnnzoo.load_genotype(result.genotype_path)
    assert genotype.space == space
    meta = genotype.metadata
    assert (meta["search.eps_a"], meta["search.eps_w"], meta["search.seed"]) == ("0.2", "0.25", "0")
    assert meta["search.epochs"] == "2" and float(meta["search.seconds"]) > 0
    assert "alpha.0" in meta["search.final_alpha"]
    model = bnnzoo.create_model(result.genotype_path)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert "digraph" in draw_genotype(genotype).source
    assert profile(genotype).bops > 0
    log = [line for line in result.log_path.read_text().splitlines() if line]
    assert len(log) == 2
    for key in ("train_loss", "val_acc", "alpha_entropy", "genotype", "eps_a", "eps_w"):
        assert key in result.history[0]


def _searchers(tmp_path, **overrides):
    first = Searcher(tiny("mbconv", tmp_path / "a", **overrides))
    second = Searcher(tiny("mbconv", tmp_path / "b", **overrides))
    second.model.load_state_dict(first.model.state_dict())
    return first, second


def _batch():
    generator = torch.Generator().manual_seed(3)
    return torch.randn(8, 3, 32, 32, generator=generator), torch.randint(0, 10, (8,), generator=generator)


def _grads(params):
    return [p.grad.clone() if p.grad is not None else None for p in params]


def test_eps_a_changes_the_weight_gradients_but_not_the_architecture_step(tmp_path):
    clean, noisy = _searchers(tmp_path)
    images, labels = _batch()
    # the architecture step is the same whatever the noise settings
    clean.arch_step(images, labels)
    noisy.arch_step(images, labels)
    for a, b in zip(clean.arch, noisy.arch):
        assert torch.equal(a.alpha, b.alpha)
    # the weight step's gradients differ under eps_A
    for searcher, eps_a in ((clean, 0.0), (noisy, 0.5)):
        searcher.weight_optimizer.zero_grad()
        with perturbed(searcher.arch, searcher.binary_weights, eps_a, 0.0, searcher.generator):
            torch.nn.functional.cross_entropy(searcher.model(images), labels).backward()
    differs = [
        not torch.equal(a, b) for a, b in zip(_grads(clean.weight_params), _grads(noisy.weight_params)) if a is not None
    ]
    assert any(differs)
    # and the mixing weights are clean again afterwards
    module = noisy.arch[0]
    assert module.eps_a == 0.0
    assert torch.equal(module.weights(), torch.softmax(module.alpha.masked_fill(~module.allowed, -torch.inf), -1))


def test_eps_w_perturbs_the_forward_and_restores_the_latent_weights_exactly(tmp_path):
    searcher = Searcher(tiny("mbconv", tmp_path))
    images, _ = _batch()
    saved = [w.detach().clone() for w in searcher.binary_weights]
    searcher.model.eval()
    with torch.no_grad():
        clean_out = searcher.model(images)
        with perturbed(searcher.arch, searcher.binary_weights, 0.0, 0.5, searcher.generator):
            moved = [not torch.equal(w, s) for w, s in zip(searcher.binary_weights, saved)]
            noisy_out = searcher.model(images)
    assert all(moved)
    assert not torch.equal(clean_out, noisy_out)
    assert all(torch.equal(w, s) for w, s in zip(searcher.binary_weights, saved))


def test_a_step_with_zero_eps_equals_the_unperturbed_step(tmp_path):
    perturbed_run, plain_run = _searchers(tmp_path)
    images, labels = _batch()
    perturbed_run.weight_step(images, labels, 0.0, 0.0)
    plain_run.weight_optimizer.zero_grad()
    torch.nn.functional.cross_entropy(plain_run.model(images), labels).backward()
    torch.nn.utils.clip_grad_norm_(plain_run.weight_params, plain_run.config.grad_clip)
    plain_run.weight_optimizer.step()
    for a, b in zip(perturbed_run.model.parameters(), plain_run.model.parameters()):
        assert torch.equal(a, b)


def test_weight_step_restores_weights_then_updates_them(tmp_path):
    searcher = Searcher(tiny("mbconv", tmp_path, weight_lr=0.0, weight_momentum=0.0, weight_decay=0.0))
    before = [w.detach().clone() for w in searcher.binary_weights]
    searcher.weight_step(*_batch(), eps_a=0.3, eps_w=0.5)
    assert all(torch.equal(w, b) for w, b in zip(searcher.binary_weights, before))  # lr 0: nothing moved


@pytest.mark.parametrize("space", ["mbconv", "bnas"])
def test_resume_after_an_interrupt_equals_an_uninterrupted_run(space, tmp_path):
    config = tiny(space, tmp_path / "whole", eps_a=0.2, eps_w=0.25, max_steps=3)
    whole = run_search(config)
    interrupted = replace(config, output=str(tmp_path / "split"))
    with pytest.raises(KeyboardInterrupt):
        Searcher(interrupted).run(stop_after_steps=4)  # mid-way through epoch 2
    assert (tmp_path / "split" / "checkpoint.json").exists()
    resumed = Searcher(interrupted, resume=True)
    assert (resumed.epoch, resumed.step) == (1, 1)
    result = resumed.run()
    assert (
        result.genotype_path.read_text().split("meta search.seconds")[0]
        == whole.genotype_path.read_text().split("meta search.seconds")[0]
    )
    for a, b in zip(resumed.arch, Searcher(config, resume=True).arch):
        assert torch.equal(a.alpha, b.alpha)


def test_ctrl_c_saves_a_checkpoint(tmp_path):
    searcher = Searcher(tiny("bnas", tmp_path))
    searcher.interrupt.handle(2, None)  # what SIGINT calls
    with pytest.raises(KeyboardInterrupt):
        searcher.run()
    assert (tmp_path / "bnas" / "checkpoint.json").exists()
    tensors = json.loads((tmp_path / "bnas" / "checkpoint.json").read_text())["tensors"]
    assert (tmp_path / "bnas" / tensors).exists()
    assert Searcher(tiny("bnas", tmp_path), resume=True).step == 1


def test_resume_refuses_changed_settings_and_missing_checkpoints(tmp_path):
    with pytest.raises(SearchError, match="nothing to resume"):
        Searcher(tiny("bnas", tmp_path), resume=True)
    with pytest.raises(KeyboardInterrupt):
        Searcher(tiny("bnas", tmp_path)).run(stop_after_steps=1)
    with pytest.raises(SearchError, match="settings differ.*eps_w"):
        Searcher(tiny("bnas", tmp_path, eps_w=0.5), resume=True)


@pytest.mark.parametrize("space", ["mbconv", "bnas"])
def test_expected_ops_match_the_profiler_for_a_decided_architecture(space, tmp_path):
    searcher = Searcher(tiny(space, tmp_path))
    with torch.no_grad():
        for module in searcher.arch:
            module.alpha.zero_()
            module.alpha[:, 1] = 100.0  # every choice point decides for candidate 1
    expected = ExpectedOps(searcher.model)().item()
    actual = profile(derive(searcher.model)).equiv_ops
    if space == "mbconv":
        assert expected == pytest.approx(actual, rel=1e-6)
    else:  # cells: each node keeps 2 of its edges; the expectation spreads that over all of them
        assert expected == pytest.approx(actual, rel=0.25)


def test_target_ops_pulls_the_expected_ops_towards_the_target(tmp_path):
    config = tiny("mbconv", tmp_path, target_weight=50.0, arch_lr=0.3, max_steps=4, epochs=3)
    start = ExpectedOps(Searcher(config).model)().item()
    target = start * 0.7
    searcher = Searcher(replace(config, target_ops=target))
    searcher.run()
    assert abs(searcher.expected_ops().item() - target) < abs(start - target) * 0.75
    assert "expected_equiv_ops" in searcher.history[-1]


def test_cli_search_writes_genotype_and_log(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["search", "--space", "bnas", "--dataset", "synthetic", "--epochs", "1", "--batch-size", "8"]
    args += ["--limit", "32", "--channels", "4", "--layers", "3", "--eps-a", "0.2", "--eps-w", "0.25", "-o", str(out)]
    assert main(args) == 0
    assert (out / "searched.bnn").exists() and (out / "search_log.jsonl").exists()
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--space", "darts"], "unknown search space 'darts'"),
        (["--eps-a", "-0.1"], "--eps-a must be between 0 and 1, got -0.1"),
        (["--eps-w", "0,1.5"], "--eps-w must be between 0 and 1, got 1.5"),
        (["--dataset", "cifar10", "--data-root", "/nonexistent/cifar"], "/nonexistent/cifar"),
        pytest.param(
            ["--device", "cuda"],
            "no CUDA device",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device"),
        ),
    ],
)
def test_cli_search_bad_input_is_a_clear_error(args, message, tmp_path, capsys):
    assert main(["search", "-o", str(tmp_path), "--dataset", "synthetic", *args]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_grid_search_scores_every_point_and_keeps_the_best(tmp_path):
    from bnnzoo.search.grid import ProxyConfig, grid_search

    config = tiny("bnas", tmp_path, epochs=1, max_steps=2)
    points, best = grid_search(
        config, [0.0, 0.2], [0.25], ProxyConfig(epochs=2, max_steps=2, batch_size=8, train_limit=32, test_limit=16)
    )
    assert [(p.eps_a, p.eps_w) for p in points] == [(0.0, 0.25), (0.2, 0.25)]
    assert best.proxy_top1 == max(p.proxy_top1 for p in points)
    table = (tmp_path / "bnas" / "grid_results.md").read_text()
    assert table.count("\n| 0") == 2 and table.count("(best)") == 1
    assert (tmp_path / "bnas" / "searched.bnn").read_text() == bnnzoo.to_text(best.genotype)
    csv = (tmp_path / "bnas" / "grid_results.csv").read_text().splitlines()
    assert csv[0] == "eps_a,eps_w,proxy_top1,equiv_ops,genotype_file,genotype" and len(csv) == 3


@pytest.mark.slow
def test_two_process_gloo_search_under_torchrun(tmp_path):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "bnnzoo.cli", "search", "--space", "bnas", "--dataset", "synthetic", "--epochs", "1"]
    command += ["--batch-size", "8", "--limit", "64", "--channels", "4", "--layers", "3", "-o", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert bnnzoo.check((out / "searched.bnn").read_text()) == []
    assert len((out / "search_log.jsonl").read_text().splitlines()) == 1
