"""Sharpness during search: the alpha Hessian's dominant eigenvalue and the weight-perturbation rise."""

from __future__ import annotations

import json
import math

import pytest
import torch

from bnnzoo.cli import main
from bnnzoo.errors import SearchError
from bnnzoo.search import SearchConfig, run_search
from bnnzoo.search.cell_supernet import CellSupernet
from bnnzoo.search.mbconv_supernet import MBConvSupernet
from bnnzoo.search.sharpness import alpha_eigenvalue, validation_loss, weight_sharpness

SHARPNESS_FIELDS = {
    "sharpness_alpha",
    "sharpness_logits",
    "sharpness_alpha_iterations",
    "sharpness_weights",
    "sharpness_val_loss",
    "sharpness_images",
    "sharpness_seconds",
}


def _batches(seed: int = 1, size: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(16, 3, size, size, generator=generator), torch.randint(0, 10, (16,), generator=generator))
        for _ in range(2)
    ]


def _tiny_supernet(space: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if space == "bnas":  # 2 cells x 5 edges x 7 ops = 70 alpha entries
        net = CellSupernet(4, 3, 10, 3, nodes=2, input_size=8)
    else:  # 2 layers x 3 candidates = 6 alpha entries
        net = MBConvSupernet((8, 8), (1, 1), (1, 2), stem_channels=8, kernels=(3,), expansions=(1, 2), input_size=8)
    with torch.no_grad():
        for module in net.arch_modules():
            module.alpha.normal_(0, 1)
    return net


def _dense_hessian(net: torch.nn.Module, batches) -> torch.Tensor:
    names = [name for name, _ in net.named_parameters() if name.endswith("alpha")]
    params = dict(net.named_parameters())

    def loss(*alphas):
        return validation_loss(lambda x: torch.func.functional_call(net, dict(zip(names, alphas)), (x,)), batches)

    blocks = torch.autograd.functional.hessian(loss, tuple(params[name].detach() for name in names))
    sizes = [params[name].numel() for name in names]
    count = len(sizes)
    rows = [torch.cat([blocks[i][j].reshape(sizes[i], sizes[j]) for j in range(count)], 1) for i in range(count)]
    return torch.cat(rows, 0)


@pytest.mark.parametrize("space", ["bnas", "mbconv"])
def test_power_iteration_finds_the_dominant_eigenvalue_of_the_dense_alpha_hessian(space):
    net, batches = _tiny_supernet(space), _batches()
    dense = _dense_hessian(net, batches)
    assert torch.allclose(dense, dense.T, atol=1e-5 * dense.abs().max().item())
    eigenvalues = torch.linalg.eigvalsh(dense.double())
    dominant = float(eigenvalues[eigenvalues.abs().argmax()])
    buffers = [b.clone() for b in net.buffers()]
    params = [module.alpha for module in net.arch_modules()]
    estimate, iterations = alpha_eigenvalue(net, params, batches, torch.Generator().manual_seed(0), 200, 1e-7)
    assert estimate == pytest.approx(dominant, rel=1e-3)
    assert 1 < iterations <= 200
    assert all(torch.equal(a, b) for a, b in zip(buffers, net.buffers()))  # BatchNorm statistics restored
    assert all(p.grad is None for p in net.parameters())  # no .grad touched
    assert all(p.requires_grad for p in net.parameters())


def test_weight_sharpness_is_zero_at_rho_zero_and_grows_with_rho_on_a_fitted_model():
    net, batches = _tiny_supernet("bnas"), _batches()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-2)
    for _ in range(150):  # fit the 32 images: a minimum, around which the loss can only rise
        loss = validation_loss(net, batches)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weights = net.binary_weights()
    saved = [w.detach().clone() for w in weights]
    rises = []
    for rho in (0.0, 0.05, 0.2, 0.5, 1.0, 2.0):
        clean, rise = weight_sharpness(net, weights, batches, rho, 4, torch.Generator().manual_seed(0))
        rises.append(rise)
    assert rises[0] == 0.0
    assert all(a < b for a, b in zip(rises, rises[1:])), rises
    assert clean < 0.01 and rises[-1] > 1.0
    assert all(torch.equal(w, s) for w, s in zip(weights, saved))  # restored bit for bit


def _tiny_search(tmp_path, name, **overrides) -> SearchConfig:
    settings = dict(
        space="bnas",
        dataset="synthetic",
        epochs=3,
        warmup_epochs=1,
        batch_size=8,
        limit=64,
        channels=4,
        layers=3,
        image_size=16,
        output=str(tmp_path / name),
        progress=False,
    )
    return SearchConfig(**{**settings, **overrides})


def test_a_search_with_sharpness_logs_it_every_epoch_and_searches_exactly_as_without(tmp_path):
    lines: list[str] = []
    plain = run_search(_tiny_search(tmp_path, "plain", eps_a=0.2, eps_w=0.25), echo=None)
    sharp = run_search(
        _tiny_search(tmp_path, "sharp", eps_a=0.2, eps_w=0.25, sharpness=True, sharpness_images=20), echo=lines.append
    )
    assert [row["mixing"] for row in sharp.history] == [row["mixing"] for row in plain.history]
    assert sharp.genotype.body == plain.genotype.body
    final_alpha = "search.final_alpha"
    assert sharp.genotype.metadata[final_alpha] == plain.genotype.metadata[final_alpha]
    rows = [json.loads(line) for line in sharp.log_path.read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert set(row) >= SHARPNESS_FIELDS
        assert row["sharpness_images"] == 20  # batches of 8, 8 and 4
        assert row["sharpness_seconds"] > 0 and math.isfinite(row["sharpness_weights"])
        assert row["sharpness_logits"] == pytest.approx(row["sharpness_alpha"] * row["temperature"] ** 2)
    assert not SHARPNESS_FIELDS & set(plain.history[0])
    assert sum("| sharpness alpha " in line for line in lines) == 3


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"sharpness_images": 0}, "--sharpness-images"),
        ({"sharpness_draws": 0}, "--sharpness-draws"),
        ({"sharpness_rho": -0.1}, "--sharpness-rho"),
    ],
)
def test_bad_sharpness_settings_are_clear_errors(overrides, message):
    with pytest.raises(SearchError, match=message):
        SearchConfig(**overrides).validate()


def test_cli_search_sharpness_flag(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        ["search", "--dataset", "synthetic", "--space", "bnas", "--channels", "4", "--layers", "3", "--epochs", "2"]
        + ["--batch-size", "8", "--train-limit", "32", "--sharpness", "--sharpness-images", "8", "-o", str(out)]
        + ["--sharpness-rho", "0.3", "--sharpness-draws", "2", "--no-progress"]
    )
    assert code == 0
    rows = [json.loads(line) for line in (out / "search_log.jsonl").read_text().splitlines()]
    assert [row["sharpness_images"] for row in rows] == [8, 8]
    checkpoint = json.loads((out / "checkpoint.json").read_text())
    assert "sharpness_rho" in json.dumps(checkpoint)
