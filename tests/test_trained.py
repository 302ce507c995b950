"""bnnzoo.trained: the one reader of trained weights, as train, eval, the teacher, hub and export see it."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from tiny import genotype_text, trained

import bnnzoo.train.config
import bnnzoo.trained
from bnnzoo import dsl
from bnnzoo._checkpoint import save_checkpoint
from bnnzoo.errors import WeightsError
from bnnzoo.hub import model_from_checkpoint, read_checkpoint
from bnnzoo.train.weights import apply_weights, load_trained_weights
from bnnzoo.zoo import create_model

TEXT = genotype_text("tiny_trained", "mbconv", "layers {\n  MB3(2) 16 s2\n  skip\n  MB5(1) 16\n}\n")


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return trained(TEXT)


def bare_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    assert all(torch.equal(a[key], b[key]) for key in a)


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "_orig_mod.module.", "module._orig_mod."])
def test_a_wrapped_state_dict_loads_as_the_bare_model_in_every_reader(tmp_path, model, prefix) -> None:
    state = bare_state(model)
    path = tmp_path / "weights.safetensors"
    save_file({prefix + key: value for key, value in state.items()}, str(path))

    weights = load_trained_weights(path)
    assert weights.kind == "weights" and weights.source == path
    assert_same_state(weights.state_dict, state)
    assert_same_state(read_checkpoint(path).state_dict, state)
    fresh = create_model(dsl.parse(TEXT, "tiny.bnn")).eval()
    apply_weights(fresh, weights)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    loaded, _ = model_from_checkpoint(dsl.parse(TEXT, "tiny.bnn"), path)
    assert_same_state(loaded.state_dict(), state)


@pytest.mark.parametrize("given", ["epoch.5", "epoch.5.json"])
def test_a_dotted_checkpoint_stem_loads_in_every_reader(tmp_path, model, given) -> None:
    state = bare_state(model)
    save_checkpoint(
        tmp_path / "epoch.5",
        {
            "format": bnnzoo.trained.RUN_FORMAT,
            "model": state,
            "genotype": dsl.to_text(model.genotype),
            "phase": 1,
            "epoch": 5,
            "config": {"dataset": "synthetic", "image_size": 16, "two_step": True, "data_root": "/private"},
            "history": [{"test_top1": 10.0}, {"test_top1": 12.5}],
        },
    )
    assert (tmp_path / "epoch.5.json").is_file()

    weights = load_trained_weights(tmp_path / given)
    assert weights.kind == "checkpoint"
    assert_same_state(weights.state_dict, state)
    assert (weights.binary_weights, weights.image_size, weights.dataset) == (False, 16, "synthetic")
    assert weights.info == {"epoch": 5, "phase": 1, "complete": None}
    assert weights.metrics == {"test_top1": 12.5}

    published = read_checkpoint(tmp_path / given)
    assert_same_state(published.state_dict, state)
    assert (published.binary_weights, published.image_size, published.dataset) == (False, 16, "synthetic")
    assert published.metrics == {"test_top1": 12.5}
    assert "data_root" not in published.config and published.config["dataset"] == "synthetic"


def test_the_formats_and_file_names_have_one_definition() -> None:
    for name in ("FINAL_FORMAT", "RUN_FORMAT", "CHECKPOINT_NAME", "FINAL_WEIGHTS_NAME"):
        assert getattr(bnnzoo.train.config, name) is getattr(bnnzoo.trained, name)
    assert bnnzoo.trained.FINAL_FORMAT == "bnnzoo.final/1"


def test_weights_that_do_not_fit_name_the_tensor_and_the_fix(tmp_path, model) -> None:
    state = bare_state(model)
    state["fc.weight"] = torch.zeros(7, state["fc.weight"].shape[1])
    path = tmp_path / "weights.safetensors"
    save_file(state, str(path))
    fresh = create_model(dsl.parse(TEXT, "tiny.bnn"))
    with pytest.raises(
        WeightsError, match=r"fc.weight has shape \(7, \d+\) in the weights but \(10, \d+\).*num_classes="
    ):
        apply_weights(fresh, load_trained_weights(path))
    del state["fc.weight"]
    save_file(state, str(path))
    with pytest.raises(WeightsError, match="the weights do not fit the model: missing fc.weight$"):
        apply_weights(fresh, load_trained_weights(path))


def test_a_missing_file_or_folder_is_a_weights_error(tmp_path) -> None:
    with pytest.raises(WeightsError, match="no such checkpoint or weights file"):
        load_trained_weights(tmp_path / "nothing")
    with pytest.raises(WeightsError, match="no such checkpoint: a folder without final.safetensors"):
        load_trained_weights(tmp_path)
