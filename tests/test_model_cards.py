"""Honest model cards and tags: every accuracy with its split and image count, op counts compared with
the paper only at the paper's input shape, the staged genotype at the shape the model was trained
for, and bnnzoo's own "no trained weights" error for a tag that is named but has no weights."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import timm
import torch
import yaml
from safetensors.torch import save_file
from tiny import genotype_text, trained

import bnnzoo
from bnnzoo.cli import main
from bnnzoo.errors import ModelError
from bnnzoo.hub import stage_repo
from bnnzoo.hub.card import measurements
from bnnzoo.profile import profile, published_row
from bnnzoo.profile.report import info_dict
from bnnzoo.zoo.models import unpublished_tags

README = Path(__file__).resolve().parents[1] / "README.md"
TINY = genotype_text("card_mb", "mbconv", "layers {\n  MB3(2) 16 s2\n  MB5(2) 24 s2\n}\n")

# What the README's Fashion-MNIST run measured: `bnnzoo eval` on the whole test split, and the
# training run's own last test pass on the first 256 test images (--test-limit 256).
RUN_METRICS = {
    "top1": 0.7789,
    "top5": 0.9954,
    "samples": 10_000,
    "split": "test",
    "test_top1": 0.78,
    "test_top5": 0.996,
    "test_samples": 256,
}


def _card(folder: Path) -> tuple[dict, str]:
    head, body = (folder / "README.md").read_text(encoding="utf-8")[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


def test_every_accuracy_states_its_split_and_images(tmp_path: Path) -> None:
    model = bnnzoo.create_model(bnnzoo.parse(TINY), in_chans=1)
    meta, body = _card(stage_repo(model, tmp_path / "card", metrics=RUN_METRICS, dataset="fashion_mnist"))
    assert "Top-1 **77.89%** (top-5 99.54%) on all 10,000 test images of fashion_mnist" in body
    assert "| bnnzoo eval, after training | fashion_mnist, test split | all 10,000 | 77.89% | 99.54% |" in body
    assert "| the training run's last test pass | fashion_mnist, test split | 256 of 10,000 | 78.00% | 99.60% |" in body
    # The front matter's top-1 and top-5 come from one measurement, not from two.
    result = meta["model-index"][0]["results"][0]
    assert [m["value"] for m in result["metrics"]] == [77.89, 99.54]
    assert result["dataset"] == {"name": "fashion_mnist", "type": "fashion_mnist", "split": "test"}


def test_an_accuracy_without_an_image_count_says_so(tmp_path: Path) -> None:
    model = bnnzoo.create_model(bnnzoo.parse(TINY))
    _, body = _card(stage_repo(model, tmp_path / "card", metrics={"acc1": 61.0}, dataset="cifar10"))
    assert "Top-1 **61.00%** (the images it was measured on were not recorded)" in body
    assert "| recorded with the weights | cifar10 | not recorded | 61.00% | - |" in body
    assert [(m.images, m.split) for m in measurements({"acc1": 61.0})] == [(None, None)]


def test_op_counts_are_compared_with_the_paper_at_its_input_shape(tmp_path: Path) -> None:
    model = bnnzoo.create_model("xnor_resnet18", in_chans=1)
    _, body = _card(stage_repo(model, tmp_path / "gray"))
    paper = info_dict("xnor_resnet18", "resnet", profile("xnor_resnet18"), published_row("xnor_resnet18"))
    own = profile(model, (1, 32, 32)).totals()
    assert f"| this model (1x32x32 input) | {own['bops'] / 1e9:.3f} | {own['flops'] / 1e6:.2f} |" in body
    assert f"| this genotype at the paper's 3x32x32 input | {paper['ours']['bops'] / 1e9:.3f} |" in body
    errors = paper["relative_error"]
    assert f"| difference | {errors['bops'] * 100:+.1f}% | {errors['flops'] * 100:+.1f}% |" in body
    assert "The paper counts its models at 3x32x32 input; this model takes 1x32x32 images" in body
    assert "(figures that differ from the genotype's at the paper's input: FLOPs, Equiv. Ops and Params)" in body


def test_at_the_papers_shape_the_model_itself_is_compared(tmp_path: Path) -> None:
    _, body = _card(stage_repo(bnnzoo.create_model("xnor_resnet18"), tmp_path / "rgb"))
    assert "| this model (3x32x32 input) |" in body and "| difference |" in body
    assert "at the paper's" not in body


def test_a_genotype_named_like_a_paper_model_but_different_is_not_compared(tmp_path: Path) -> None:
    impostor = bnnzoo.parse(TINY.replace("name card_mb", "name mbconv_a"))
    _, body = _card(stage_repo(bnnzoo.create_model(impostor), tmp_path / "impostor"))
    assert "differs from bnnzoo's 'mbconv_a', so its op counts are not compared" in body
    assert "| difference |" not in body and "published (" not in body


def test_the_staged_genotype_has_the_trained_input_shape(tmp_path: Path) -> None:
    model = bnnzoo.create_model("mbconv_a", in_chans=1, num_classes=7)
    folder = stage_repo(model, tmp_path / "gray", data_config={"input_size": (1, 28, 28)})
    staged = bnnzoo.load_genotype(folder / "mbconv_a.bnn")
    assert (staged.input_shape, staged.num_classes) == ((1, 28, 28), 7)
    assert "Staged for input 1x28x28 and 7 classes, as trained; the genotype file 'mbconv_a' has input 3x32x32" in (
        "\n".join(staged.comments)
    )
    config = json.loads((folder / "config.json").read_text())
    assert bnnzoo.parse(config["model_args"]["genotype"]) == staged
    assert config["pretrained_cfg"]["input_size"] == [1, 28, 28] and config["pretrained_cfg"]["pool_size"] == [4, 4]
    assert "input 1x28x28" in _card(folder)[1]
    loaded = timm.create_model(f"local-dir:{folder}", pretrained=True)
    assert (loaded.in_chans, loaded.num_classes, loaded.genotype.input_shape) == (1, 7, (1, 28, 28))


def test_publish_states_the_images_of_a_bnnzoo_eval_result(tmp_path: Path, capsys) -> None:
    genotype = tmp_path / "card_mb.bnn"
    genotype.write_text(TINY)
    weights = tmp_path / "weights.safetensors"
    save_file(trained(TINY).state_dict(), str(weights))
    evaluate = ["eval", str(genotype), "--checkpoint", str(weights), "--dataset", "synthetic", "--test-limit", "24"]
    assert main([*evaluate, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["samples"], result["split"], result["dataset"]) == (24, "test", "synthetic")
    (tmp_path / "eval.json").write_text(json.dumps(result))
    publish = ["publish", str(genotype), "--checkpoint", str(weights), "-o", str(tmp_path / "hub")]
    assert main([*publish, "--eval", str(tmp_path / "eval.json")]) == 0
    _, body = _card(tmp_path / "hub")
    assert f"Top-1 **{result['top1'] * 100:.2f}%** (top-5 {result['top5'] * 100:.2f}%) on 24 test images" in body
    # An eval of another model, or a file that is not an eval result, is refused.
    (tmp_path / "other.json").write_text(json.dumps({**result, "model": "mbconv_b"}))
    assert main([*publish, "--eval", str(tmp_path / "other.json")]) == 1
    assert "measured model 'mbconv_b', not 'card_mb'" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text(json.dumps({"top1": 0.5}))
    assert main([*publish, "--eval", str(tmp_path / "bad.json")]) == 1
    assert "it needs top1 and samples" in capsys.readouterr().err


def _readme_tags() -> list[str]:
    """The ``name.tag`` entries of the README's table of pretrained tags."""
    section = README.read_text(encoding="utf-8").split("### Pretrained weights", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `([a-z0-9_]+\.[a-z0-9_]+)` \|", section, re.M)


def test_every_readme_tag_has_weights_or_says_it_has_none() -> None:
    tags = _readme_tags()
    assert "mbconv_a.fashion_mnist" in tags
    with_weights = set(bnnzoo.list_models(pretrained=True))
    named = {f"{name}.{tag}" for name, tags_ in unpublished_tags().items() for tag in tags_}
    assert named <= set(tags), "a tag listed as unpublished is missing from the README"
    for tag in tags:
        if tag in with_weights:
            continue
        assert tag in named
        for create, kwargs in (
            (timm.create_model, {}),
            (timm.create_model, {"pretrained": True}),
            (bnnzoo.create_model, {"pretrained": True}),
        ):
            with pytest.raises(ModelError, match=rf"'{re.escape(tag)}' has no trained weights: .*not uploaded"):
                create(tag, **kwargs)


def test_an_unknown_tag_is_a_bnnzoo_error() -> None:
    with pytest.raises(ModelError, match="'mbconv_a' has no tag 'fashion_mnis'; did you mean 'fashion_mnist'?"):
        timm.create_model("mbconv_a.fashion_mnis")
    with pytest.raises(ModelError, match="'mbconv_a' has no tag 'cifar10'"):
        bnnzoo.create_model("mbconv_a.cifar10", pretrained=True)
    assert isinstance(timm.create_model("mbconv_a.untrained"), torch.nn.Module)
