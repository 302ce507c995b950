"""Hub publishing and loading: staged folders, the model card, a real loopback Hub, errors, the CLI."""

from __future__ import annotations

import json
import re
import time

import pytest
import timm
import torch
import yaml
from hub_server import hub_env
from safetensors.torch import save_file
from tiny import genotype_text, trained

import bnnzoo
import bnnzoo.zoo
from bnnzoo._checkpoint import save_checkpoint
from bnnzoo.cli import main
from bnnzoo.errors import GenotypeError, HubError, WeightsError
from bnnzoo.hub import create_from_hub, load_pretrained, read_checkpoint, stage_repo, top1_of, upload_repo

MBCONV = """# A tiny MBConv network for tests.
bnnzoo 1
name tiny_mb
space mbconv
input 3x16x16
classes 10
stem conv3x3 8
head avgpool fc

layers {
  MB3(2) 16 s2
  skip
  MB5(1) 16
}
"""

RESNET = genotype_text(
    "tiny_res",
    "resnet",
    """
layers {
  basic(binary) 8
  basic(real) 16 s2
}
""",
)


def train(text: str = MBCONV, steps: int = 3, seed: int = 0) -> torch.nn.Module:
    return trained(text, steps, seed)


def outputs_equal(a: torch.nn.Module, b: torch.nn.Module, channels: int = 3) -> bool:
    x = torch.randn(4, channels, 16, 16)
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


def front_matter(folder) -> tuple[dict, str]:
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


@pytest.fixture(scope="module")
def trained_model():
    return train()


@pytest.fixture(scope="module")
def staged(trained_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("staged") / "tiny"
    stage_repo(
        trained_model,
        folder,
        metrics={"top1": 0.425, "top5": 0.9, "loss": 1.7, "samples": 512},  # fractions, as bnnzoo writes them
        dataset="synthetic",
        recipe={"epochs": 1, "lr": 0.01, "optimizer": "adam"},
        repo_id="bnnzoo-test/tiny",
    )
    return folder


# -- staging --------------------------------------------------------------------------------------


def test_staged_folder_has_timm_config_and_files(staged, trained_model):
    names = {path.name for path in staged.iterdir()}
    assert {"config.json", "model.safetensors", "tiny_mb.bnn", "README.md"} <= names
    assert "tiny_mb.svg" in names or "tiny_mb.dot" in names
    config = json.loads((staged / "config.json").read_text())
    assert config["architecture"] == "bnnzoo_genotype"
    assert config["num_classes"] == 10 and config["num_features"] == trained_model.num_features
    assert bnnzoo.parse(config["model_args"]["genotype"]) == trained_model.genotype
    assert bnnzoo.load_genotype(staged / "tiny_mb.bnn") == trained_model.genotype
    cfg = config["pretrained_cfg"]
    assert cfg["input_size"] == [3, 16, 16] and cfg["first_conv"] == "stem.conv" and cfg["classifier"] == "fc"
    assert len(cfg["mean"]) == len(cfg["std"]) == 3
    assert not list(staged.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_local_dir_loads_with_timm_and_bnnzoo(staged, trained_model):
    by_timm = timm.create_model(f"local-dir:{staged}", pretrained=True)
    by_bnnzoo = bnnzoo.create_model(f"local-dir:{staged}", pretrained=True)
    assert outputs_equal(by_timm, trained_model)
    assert outputs_equal(by_bnnzoo, trained_model)
    assert outputs_equal(load_pretrained(staged), trained_model)


def test_local_dir_overrides_reset_classifier_and_adapt_stem(staged, trained_model):
    model = timm.create_model(f"local-dir:{staged}", pretrained=True, num_classes=5, in_chans=1)
    assert model.fc.out_features == 5 and model.stem.conv.weight.shape[1] == 1
    expected = trained_model.state_dict()
    got = model.state_dict()
    # The body is the published one; the stem is adapted (summed over the input channels) ...
    assert torch.equal(got["body.blocks.0.expand.conv.weight"], expected["body.blocks.0.expand.conv.weight"])
    assert torch.allclose(got["stem.conv.weight"][:, 0], expected["stem.conv.weight"].sum(dim=1))
    # ... and the classifier is new.
    assert got["fc.weight"].shape == (5, trained_model.num_features)


def test_model_card_front_matter_and_body(staged):
    meta, body = front_matter(staged)
    assert meta["library_name"] == "timm"
    assert meta["license"] == "apache-2.0"
    assert meta["tags"] == ["bnnzoo", "binary-neural-network", "image-classification", "timm"]
    assert meta["datasets"] == ["synthetic"]
    result = meta["model-index"][0]["results"][0]
    assert result["dataset"]["name"] == "synthetic"
    assert {"type": "accuracy", "value": 42.5, "name": "Top-1 accuracy"} in result["metrics"]  # percent
    assert {"type": "top_5_accuracy", "value": 90.0, "name": "Top-5 accuracy"} in result["metrics"]
    assert "| this model (" in body and "BOPs (G)" in body
    assert "Top-1 **42.50%** (top-5 90.00%) on 512 test images of synthetic" in body
    assert "optimizer: adam" in body  # the recipe
    assert 'bnnzoo.create_model("hf-hub:bnnzoo-test/tiny", pretrained=True)' in body
    assert 'timm.create_model("hf-hub:bnnzoo-test/tiny", pretrained=True)' in body
    assert "10.1109/WACV56688.2023.00244" in body and "Ahn, Daehyun and Kim, Hyungjun" in body


def test_card_without_metrics_says_no_trained_weights(tmp_path):
    folder = stage_repo(bnnzoo.create_model(bnnzoo.parse(RESNET)), tmp_path / "untrained")
    meta, body = front_matter(folder)
    assert meta["library_name"] == "timm" and "model-index" not in meta and "datasets" not in meta
    assert "No trained weights" in body
    assert "hf-hub:ORG/NAME" in body


def test_card_of_a_zoo_model_shows_published_figures(tmp_path):
    folder = stage_repo(bnnzoo.create_model("xnor_resnet18"), tmp_path / "xnor")
    _, body = front_matter(folder)
    assert "published (XNOR-Net" in body and "| difference |" in body
    assert "paper's claim" in body


def test_without_dot_the_card_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no Graphviz `dot` on PATH
    folder = stage_repo(bnnzoo.create_model(bnnzoo.parse(RESNET)), tmp_path / "nodot")
    assert not (folder / "tiny_res.svg").exists()
    assert (folder / "tiny_res.dot").is_file()
    _, body = front_matter(folder)
    assert "Graphviz" in body and "tiny_res.dot" in body


def test_top1_lookup():
    assert top1_of({"test_top1": 0.1875, "test_top5": 0.5}) == 0.1875  # bnnzoo's fractions
    assert top1_of({"acc1": 91.0}) == 0.91  # above 1: a percentage
    assert top1_of({"loss": 1.0, "test": {"top1": 0.8}}) == 0.8
    assert top1_of({"loss": 1.0}) is None and top1_of(None) is None


# -- errors, local -------------------------------------------------------------------------------


def _copy(staged, tmp_path, name):
    import shutil

    return shutil.copytree(staged, tmp_path / name)


def test_truncated_weights_in_a_folder(staged, tmp_path):
    folder = _copy(staged, tmp_path, "truncated")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="model.safetensors: not a valid safetensors file"):
        load_pretrained(folder)


def _tamper_genotype(folder):
    config = json.loads((folder / "config.json").read_text())
    config["model_args"]["genotype"] = config["model_args"]["genotype"].replace("MB5(1) 16", "MB4(1) 16")
    (folder / "config.json").write_text(json.dumps(config))


def test_tampered_genotype_names_config_json(staged, tmp_path):
    folder = _copy(staged, tmp_path, "tampered")
    _tamper_genotype(folder)
    with pytest.raises(GenotypeError) as info:
        load_pretrained(folder)
    assert re.search(r"tampered/config\.json \(model_args\.genotype\):14:3: kernel 4", str(info.value))
    assert "MB4(1) 16" in str(info.value)  # the excerpt of the offending line


def _tamper_num_classes(folder, num_classes):
    config = json.loads((folder / "config.json").read_text())
    config["num_classes"] = config["model_args"]["num_classes"] = num_classes
    config["pretrained_cfg"]["num_classes"] = num_classes
    (folder / "config.json").write_text(json.dumps(config))


def test_wrong_num_classes_names_the_tensor_and_the_fix(staged, tmp_path):
    folder = _copy(staged, tmp_path, "classes")
    _tamper_num_classes(folder, 7)
    with pytest.raises(WeightsError) as info:
        load_pretrained(folder)
    message = str(info.value)
    assert "fc.weight" in message and "(10, 16)" in message and "(7, 16)" in message
    assert "num_classes=" in message
    # The fix it names: another num_classes resets the classifier and loads the rest.
    assert load_pretrained(folder, num_classes=3).fc.out_features == 3


def test_not_a_model_folder(tmp_path):
    with pytest.raises(HubError, match="config.json: missing"):
        load_pretrained(f"local-dir:{tmp_path}")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(HubError, match="not valid JSON"):
        load_pretrained(tmp_path)


# -- a real Hub on loopback --------------------------------------------------------------------


def test_end_to_end_through_a_local_hub(local_hub, tmp_path):
    model = train(seed=1)
    folder = stage_repo(model, tmp_path / "repo", metrics={"top1": 0.11}, dataset="synthetic", repo_id="e2e/tiny")
    local_hub.add_repo("bnnzoo-test/e2e-tiny", folder)
    with hub_env(local_hub, tmp_path / "hf"):
        by_bnnzoo = bnnzoo.create_model("hf-hub:bnnzoo-test/e2e-tiny", pretrained=True)
        by_timm = timm.create_model("hf-hub:bnnzoo-test/e2e-tiny", pretrained=True)
        assert by_bnnzoo.pretrained_cfg["hf_hub_id"] == "bnnzoo-test/e2e-tiny"
    assert outputs_equal(by_bnnzoo, model)
    assert outputs_equal(by_timm, model)
    # Offline, the cached repository still loads.
    with hub_env(local_hub, tmp_path / "hf", offline=True):
        assert outputs_equal(create_from_hub("hf-hub:bnnzoo-test/e2e-tiny", pretrained=True), model)


def test_served_bad_inputs(local_hub, staged, tmp_path):
    truncated = _copy(staged, tmp_path, "truncated")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 3])
    local_hub.add_repo("bnnzoo-test/served-truncated", truncated)
    tampered = _copy(staged, tmp_path, "tampered")
    _tamper_genotype(tampered)
    local_hub.add_repo("bnnzoo-test/served-tampered", tampered)
    classes = _copy(staged, tmp_path, "classes")
    _tamper_num_classes(classes, 7)
    local_hub.add_repo("bnnzoo-test/served-classes", classes)
    with hub_env(local_hub, tmp_path / "hf"):
        with pytest.raises(WeightsError, match="served-truncated/model.safetensors: not a valid safetensors"):
            create_from_hub("hf-hub:bnnzoo-test/served-truncated", pretrained=True)
        with pytest.raises(GenotypeError, match=r"served-tampered/config.json \(model_args.genotype\):14:3"):
            create_from_hub("hf-hub:bnnzoo-test/served-tampered", pretrained=True)
        with pytest.raises(WeightsError, match=r"fc.weight has shape \(10, 16\)"):
            create_from_hub("hf-hub:bnnzoo-test/served-classes", pretrained=True)
        with pytest.raises(HubError, match="bnnzoo-test/not-there not found"):
            create_from_hub("hf-hub:bnnzoo-test/not-there", pretrained=True)


def test_offline_and_not_cached_fails_fast(local_hub, tmp_path):
    with hub_env(local_hub, tmp_path / "hf", offline=True):
        start = time.monotonic()
        with pytest.raises(HubError) as info:
            create_from_hub("hf-hub:bnnzoo-test/never-published", pretrained=True)
        assert time.monotonic() - start < 5
    message = str(info.value)
    assert "bnnzoo-test/never-published" in message and "HF_HUB_OFFLINE" in message and "online" in message


def test_bnnzoo_create_model_reports_hub_errors(local_hub, staged, tmp_path):
    with hub_env(local_hub, tmp_path / "hf", offline=True), pytest.raises(HubError, match="HF_HUB_OFFLINE"):
        bnnzoo.create_model("hf-hub:bnnzoo-test/never-published-either", pretrained=True)
    folder = _copy(staged, tmp_path, "tampered")
    _tamper_genotype(folder)
    with pytest.raises(GenotypeError, match=r"config.json \(model_args.genotype\)"):
        bnnzoo.create_model(f"local-dir:{folder}", pretrained=True)


def test_upload_errors_are_hub_errors(local_hub, staged, tmp_path):
    with pytest.raises(HubError, match="not a staged model folder"):
        upload_repo(tmp_path, "bnnzoo-test/upload")
    with pytest.raises(HubError, match="ORG/NAME"):
        upload_repo(staged, "no-slash")
    # The loopback server is read-only: creating the repository is refused, and reported.
    with hub_env(local_hub, tmp_path / "hf"), pytest.raises(HubError, match="create_repo"):
        upload_repo(staged, "bnnzoo-test/upload")


# -- the CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def genotype_file(tmp_path):
    path = tmp_path / "tiny_mb.bnn"
    path.write_text(MBCONV)
    return path


def test_publish_from_a_training_checkpoint(trained_model, genotype_file, tmp_path, capsys):
    stem = tmp_path / "run" / "last"
    save_checkpoint(
        stem,
        {
            "model": trained_model.state_dict(),
            "history": [
                {"test_top1": 0.5, "test_top5": 0.8, "test_samples": 64},
                {"test_top1": 0.5525, "test_top5": 0.9, "test_samples": 64},
            ],
            "config": {"dataset": "synthetic", "epochs": 3},
        },
    )
    assert read_checkpoint(stem).dataset == "synthetic"
    out = tmp_path / "out"
    assert main(["publish", str(genotype_file), "--checkpoint", str(stem), "--out", str(out)]) == 0
    assert f"staged {out}" in capsys.readouterr().out
    meta, body = front_matter(out)
    assert meta["datasets"] == ["synthetic"] and "epochs: 3" in body
    assert "Top-1 **55.25%** (top-5 90.00%) on 64 test images of synthetic" in body
    assert outputs_equal(timm.create_model(f"local-dir:{out}", pretrained=True), trained_model)


def test_publish_from_a_run_folder_with_final_weights(trained_model, genotype_file, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    save_file(trained_model.state_dict(), str(run / "final.safetensors"))
    final = {
        "format": "bnnzoo.final/1",
        "genotype": MBCONV,
        "dataset": "synthetic",
        "image_size": 16,
        "mean": [0.25, 0.5, 0.75],
        "std": [0.3, 0.3, 0.3],
        "test_top1": 0.3125,
        "test_top5": 0.75,
        "test_samples": 32,
        "recipe": {"epochs": 2, "lr": 0.001},
    }
    (run / "final.json").write_text(json.dumps(final))
    out = tmp_path / "out"
    assert main(["publish", str(genotype_file), "--checkpoint", str(run), "--out", str(out)]) == 0
    meta, body = front_matter(out)
    assert "Top-1 **31.25%** (top-5 75.00%) on 32 test images of synthetic" in body and meta["datasets"] == [
        "synthetic"
    ]
    config = json.loads((out / "config.json").read_text())
    assert config["pretrained_cfg"]["mean"] == [0.25, 0.5, 0.75] and config["pretrained_cfg"]["input_size"] == [
        3,
        16,
        16,
    ]


def test_publish_refuses_a_step_one_checkpoint_and_a_different_genotype(trained_model, genotype_file, tmp_path, capsys):
    stem = tmp_path / "step1"
    state = {"model": trained_model.state_dict(), "phase": 1, "config": {"two_step": True}}
    save_checkpoint(stem, state)
    assert main(["publish", str(genotype_file), "--checkpoint", str(stem), "--out", str(tmp_path / "a")]) == 1
    assert "step 1 of two-step training" in capsys.readouterr().err
    other = tmp_path / "other"
    save_checkpoint(other, {"model": trained_model.state_dict(), "genotype": MBCONV.replace("tiny_mb", "other_mb")})
    assert main(["publish", str(genotype_file), "--checkpoint", str(other), "--out", str(tmp_path / "b")]) == 1
    assert "trained for genotype 'other_mb'" in capsys.readouterr().err


def test_publish_from_a_weights_file_with_accuracy(trained_model, genotype_file, tmp_path, monkeypatch):
    weights = tmp_path / "weights.safetensors"
    save_file(trained_model.state_dict(), str(weights))
    monkeypatch.chdir(tmp_path)
    args = ["publish", str(genotype_file), "--checkpoint", str(weights), "--dataset", "cifar10", "--accuracy", "61"]
    assert main([*args, "--accuracy-images", "10000"]) == 0
    folder = tmp_path / "hub" / "tiny_mb"  # the default folder
    meta, _ = front_matter(folder)
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == 61.0


def test_publish_user_mistakes(trained_model, genotype_file, tmp_path, capsys):
    weights = tmp_path / "weights.safetensors"
    save_file(trained_model.state_dict(), str(weights))
    assert main(["publish", str(genotype_file), "--checkpoint", str(weights), "--accuracy", "61"]) == 1
    assert "--accuracy and --accuracy-images go together" in capsys.readouterr().err
    accuracy = ["--accuracy", "61", "--accuracy-images", "500"]
    assert main(["publish", str(genotype_file), "--checkpoint", str(weights), *accuracy]) == 1
    assert "--accuracy needs --dataset" in capsys.readouterr().err
    assert main(["publish", "xnor_resnet18", "--checkpoint", str(weights), "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "does not fit" in err or "missing" in err
    assert main(["publish", str(genotype_file), "--checkpoint", str(tmp_path / "nope")]) == 1
    assert "no such checkpoint" in capsys.readouterr().err


def test_export_command_prints_size_and_ratio(trained_model, genotype_file, tmp_path, capsys):
    weights = tmp_path / "weights.safetensors"
    save_file(trained_model.state_dict(), str(weights))
    out = tmp_path / "tiny.packed.safetensors"
    assert main(["export", str(genotype_file), "--checkpoint", str(weights), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.is_file() and "MB" in printed and "x the profiler's Params" in printed
    from bnnzoo.export import load_packed

    assert outputs_equal(load_packed(out), trained_model)
    assert main(["export", str(genotype_file), "--checkpoint", str(weights), "-o", str(tmp_path / "x.bin")]) == 1
