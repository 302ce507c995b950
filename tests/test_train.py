"""Tests for the training recipe (bnnzoo.train.recipe), evaluation and the train/eval commands.

Every run is tiny: a two-block MBConv genotype on 16x16 synthetic images, a few steps per epoch.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import bnnzoo
from bnnzoo._checkpoint import load_checkpoint
from bnnzoo.build.binary import BinaryConv2d, set_binary_weights
from bnnzoo.cli import main
from bnnzoo.errors import BnnzooError, DataError, WeightsError
from bnnzoo.train.config import TrainConfig, TrainingError, TrainingInterrupted
from bnnzoo.train.data import DEFAULT_FASHION_MNIST_ROOT, load_dataset, make_loader, synthetic_dataset
from bnnzoo.train.evaluate import evaluate
from bnnzoo.train.optim import distillation_loss, lr_factor, make_optimizer, parameter_groups, train_step
from bnnzoo.train.recipe import train
from bnnzoo.train.weights import load_trained_weights

TINY = """\
bnnzoo 1
name tiny
space mbconv
input 3x16x16
classes 10
stem conv3x3 8
head avgpool fc

layers {
  MB3(1) 8
  MB3(2) 16 s2
}
"""
# The same body at Fashion-MNIST's padded size, with a strided stem to stay cheap.
TINY32 = TINY.replace("name tiny", "name tiny32").replace("3x16x16", "1x32x32").replace("conv3x3 8", "conv3x3 8 s2")
OTHER = TINY.replace("name tiny", "name other").replace("MB3(2) 16 s2", "MB5(2) 16 s2")
FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch):
    """One intra-op thread: tiny models run many times faster than with contended threads."""
    for var in ("BNNZOO_FASHION_MNIST", "BNNZOO_CIFAR10", "BNNZOO_CIFAR100", "BNNZOO_IMAGEFOLDER"):
        monkeypatch.delenv(var, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def genotypes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("genotypes")
    paths = {}
    for name, text in (("tiny", TINY), ("tiny32", TINY32), ("other", OTHER)):
        paths[name] = folder / f"{name}.bnn"
        paths[name].write_text(text, encoding="utf-8")
    return paths


def tiny_config(genotype: Path, output: Path, **overrides) -> TrainConfig:
    settings = dict(
        model=str(genotype),
        dataset="synthetic",
        epochs=3,
        batch_size=16,
        max_steps_per_epoch=2,
        train_limit=64,
        test_limit=32,
        output_dir=str(output),
        progress=False,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def binary_flags(model: nn.Module) -> tuple[set[bool], set[bool]]:
    convs = [m for m in model.modules() if isinstance(m, BinaryConv2d)]
    assert convs
    return {m.binary_weights for m in convs}, {m.binary_activations for m in convs}


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


def metrics_lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------- recipe pieces


def test_step_split_and_config_validation() -> None:
    assert TrainConfig("m", epochs=4).phases() == [(1, 0, 2), (2, 2, 2)]
    assert TrainConfig("m", epochs=2).phases() == [(1, 0, 1), (2, 1, 1)]
    assert TrainConfig("m", epochs=10, step1_fraction=0.95).phases() == [(1, 0, 9), (2, 9, 1)]
    assert TrainConfig("m", epochs=3, two_step=False).phases() == [(2, 0, 3)]
    for bad in (
        dict(epochs=1),  # two steps need two epochs
        dict(epochs=0, two_step=False),
        dict(schedule="step"),
        dict(lr=0.0),
        dict(kd_alpha=1.5),
        dict(amp=True),  # CPU
        dict(teacher_weights="w.safetensors"),
        dict(step1_fraction=1.0),
    ):
        with pytest.raises(TrainingError):
            TrainConfig("m", **bad).validate()


def test_weight_decay_applies_to_conv_weights_only(genotypes) -> None:
    model = bnnzoo.create_model(genotypes["tiny"])
    decay, no_decay = parameter_groups(model, 1e-5)
    assert decay["weight_decay"] == 1e-5 and no_decay["weight_decay"] == 0.0
    conv_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Conv2d)}
    assert {id(p) for p in decay["params"]} == conv_weights  # binary latent weights and the real stem
    names = {id(p): name for name, p in model.named_parameters()}
    undecayed = {names[id(p)] for p in no_decay["params"]}
    assert "fc.weight" in undecayed and "stem.bn.weight" in undecayed
    assert any(name.endswith("rsign.threshold") for name in undecayed)
    assert any(name.endswith("prelu.weight") for name in undecayed)
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_lr_schedules_decay_to_zero() -> None:
    for schedule in ("linear", "cosine"):
        assert lr_factor(schedule, 0, 10) == 1.0
        assert lr_factor(schedule, 10, 10) == pytest.approx(0.0, abs=1e-12)
        assert lr_factor(schedule, 5, 10) == pytest.approx(0.5)
    assert lr_factor("cosine", 2, 10) > lr_factor("linear", 2, 10)


def test_distillation_loss_is_scaled_kl() -> None:
    student, teacher = torch.randn(4, 10), torch.randn(4, 10)
    assert distillation_loss(teacher, teacher, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    t = 3.0
    p = torch.softmax(teacher / t, dim=1)
    expected = (p * (p.log() - torch.log_softmax(student / t, dim=1))).sum(1).mean() * t * t
    assert distillation_loss(student, teacher, t).item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("binary_weights", [False, True], ids=["step1", "step2"])
def test_training_lowers_the_loss_on_a_fixed_batch(genotypes, binary_weights: bool) -> None:
    data = synthetic_dataset(32, (3, 16, 16), 10, seed=1)
    images, labels = next(iter(make_loader(data, 32, shuffle=False)))
    torch.manual_seed(0)
    model = bnnzoo.create_model(genotypes["tiny"])
    set_binary_weights(model, binary_weights)
    optimizer = make_optimizer(model, 1e-2, 0.0)
    before = train_step(model, images, labels, optimizer)[0].item()
    for _ in range(30):
        train_step(model, images, labels, optimizer)
    with torch.no_grad():
        after = nn.functional.cross_entropy(model(images), labels).item()
    assert after < 0.75 * before, (before, after)


# --------------------------------------------------------------------------- train()


def test_two_step_hand_over_and_output_files(genotypes, tmp_path: Path) -> None:
    seen = []

    def on_epoch(record: dict, model: nn.Module) -> None:
        seen.append((record["phase"], *binary_flags(model)))

    result = train(tiny_config(genotypes["tiny"], tmp_path / "run", epochs=4), on_epoch=on_epoch)
    # Step 1: real weights, binary activations; step 2: fully binary.
    assert seen == [(1, {False}, {True})] * 2 + [(2, {True}, {True})] * 2
    assert binary_flags(result.model) == ({True}, {True})

    lines = metrics_lines(tmp_path / "run")
    assert [(r["phase"], r["epoch"]) for r in lines] == [(1, 1), (1, 2), (2, 3), (2, 4)]
    assert lines == result.metrics
    for record in lines:
        assert 0.0 <= record["test_top1"] <= record["test_top5"] <= 1.0
        assert record["train_samples"] == 32 and record["test_samples"] == 32
    # The lr restarts at step 2: the last step of each step ran at lr / (steps of that step).
    assert lines[1]["lr"] == pytest.approx(1e-3 / 4) and lines[3]["lr"] == pytest.approx(1e-3 / 4)
    assert lines[2]["lr"] > lines[1]["lr"]

    final = json.loads(result.final_info.read_text())
    assert final["test_top1"] == lines[-1]["test_top1"] and final["dataset"] == "synthetic"
    assert final["genotype"] == bnnzoo.to_text(bnnzoo.parse(TINY)) and final["binary_weights"] is True
    assert final["recipe"]["step1_epochs"] == 2 and final["recipe"]["weight_decay"]["step1"] == 1e-5
    weights = load_trained_weights(result.final_weights)
    assert weights.kind == "final" and weights.genotype == final["genotype"]
    assert all(torch.equal(weights.state_dict[k], v) for k, v in result.model.state_dict().items())

    state = load_checkpoint(result.checkpoint)
    assert state["epoch"] == 4 and state["phase"] == 2 and state["complete"] is True
    assert state["rng"]["torch"].dtype == torch.uint8 and state["rng"]["python"][0] == 3
    assert state["optimizer"]["state"] and state["scheduler"]["last_epoch"] == 4
    assert state["config"]["image_size"] == 16 and state["genotype"] == final["genotype"]


@pytest.mark.parametrize("stop_after", [1, 2], ids=["mid-step1", "step-boundary"])
def test_resume_gives_exactly_the_uninterrupted_weights(genotypes, tmp_path: Path, stop_after: int) -> None:
    full = train(tiny_config(genotypes["tiny"], tmp_path / "full", epochs=4))

    def stop(record: dict, model: nn.Module) -> None:
        if record["epoch"] == stop_after:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted) as caught:
        train(tiny_config(genotypes["tiny"], tmp_path / "cut", epochs=4), on_epoch=stop)
    assert "--resume" in str(caught.value) and caught.value.checkpoint == tmp_path / "cut" / "checkpoint.json"
    assert len(metrics_lines(tmp_path / "cut")) == stop_after

    resumed = train(tiny_config(genotypes["tiny"], tmp_path / "cut", epochs=4, resume=True))
    assert_same_weights(full.model, resumed.model)
    lines = metrics_lines(tmp_path / "cut")
    assert [r["epoch"] for r in lines] == [1, 2, 3, 4]
    for a, b in zip(lines, full.metrics):
        assert (a["train_loss"], a["test_loss"], a["lr"]) == (b["train_loss"], b["test_loss"], b["lr"])


def test_ctrl_c_mid_epoch_saves_a_checkpoint_and_resumes_exactly(genotypes, tmp_path: Path) -> None:
    full = train(tiny_config(genotypes["tiny"], tmp_path / "full", max_steps_per_epoch=3))
    training_forwards = []

    def press_ctrl_c_during_epoch_2(record: dict, model: nn.Module) -> None:
        def hook(module: nn.Module, inputs, output) -> None:
            if module.training:
                training_forwards.append(1)
                if len(training_forwards) == 2:
                    os.kill(os.getpid(), signal.SIGINT)

        if record["epoch"] == 1:
            model.register_forward_hook(hook)

    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as caught:
        train(
            tiny_config(genotypes["tiny"], tmp_path / "cut", max_steps_per_epoch=3),
            on_epoch=press_ctrl_c_during_epoch_2,
        )
    assert signal.getsignal(signal.SIGINT) is handler
    assert "2 of 3 batches into epoch 2" in str(caught.value)
    state = load_checkpoint(tmp_path / "cut" / "checkpoint")
    assert (state["epoch"], state["batches_done"], state["step"]) == (1, 2, 5)

    resumed = train(tiny_config(genotypes["tiny"], tmp_path / "cut", max_steps_per_epoch=3, resume=True))
    assert_same_weights(full.model, resumed.model)
    assert [r["train_loss"] for r in resumed.metrics] == [r["train_loss"] for r in full.metrics]


def test_resume_and_output_folder_errors(genotypes, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="no checkpoint"):
        train(tiny_config(genotypes["tiny"], tmp_path / "empty", resume=True))
    train(tiny_config(genotypes["tiny"], tmp_path / "run", epochs=2, max_steps_per_epoch=1))
    with pytest.raises(TrainingError, match="already holds a run"):
        train(tiny_config(genotypes["tiny"], tmp_path / "run", epochs=2, max_steps_per_epoch=1))
    with pytest.raises(WeightsError, match="genotype 'tiny'"):
        train(tiny_config(genotypes["other"], tmp_path / "run", epochs=2, max_steps_per_epoch=1, resume=True))
    with pytest.raises(TrainingError, match="epochs: checkpoint 2, now 3"):
        train(tiny_config(genotypes["tiny"], tmp_path / "run", epochs=3, max_steps_per_epoch=1, resume=True))
    with pytest.raises(DataError, match="unknown dataset"):
        train(tiny_config(genotypes["tiny"], tmp_path / "x", dataset="cifar-10"))
    with pytest.raises(BnnzooError, match="unknown model"):
        train(tiny_config("mbconv_zzz", tmp_path / "y"))


# --------------------------------------------------------------------------- evaluate()


def test_evaluate_reports_sensible_numbers(genotypes) -> None:
    torch.manual_seed(0)
    model = bnnzoo.create_model(genotypes["tiny"])
    model.train()
    data = load_dataset("synthetic", "test", limit=40)
    result = evaluate(model, data, batch_size=16)
    assert set(result) == {"top1", "top5", "loss", "images_per_second", "samples"}
    assert result["samples"] == 40 and model.training  # the mode is restored
    assert 0.0 <= result["top1"] <= result["top5"] <= 1.0
    assert result["loss"] > 0 and math.isfinite(result["loss"]) and result["images_per_second"] > 0
    again = evaluate(model, make_loader(data, 7, shuffle=False))
    assert again["top1"] == result["top1"] and again["loss"] == pytest.approx(result["loss"])
    assert evaluate(model, data, limit=8)["samples"] == 8
    with pytest.raises(DataError, match="empty"):
        evaluate(model, data, limit=0)


# --------------------------------------------------------------------------- the CLI


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_train_then_eval_and_distil(genotypes, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    tiny = genotypes["tiny"]
    common = ("--dataset", "synthetic", "--batch-size", "16", "--max-steps", "2", "--test-limit", "32")
    code, out, err = run_cli(capsys, "train", tiny, *common, "--epochs", "2", "-o", run)
    assert code == 0, err
    assert "epoch 1/2 (step 1)" in out and "epoch 2/2 (step 2)" in out and "done: test top-1" in out
    tensors = json.loads((run / "checkpoint.json").read_text())["tensors"]  # checkpoint.<hash>.safetensors
    assert {p.name for p in run.iterdir()} == {
        "checkpoint.json",
        tensors,
        "metrics.jsonl",
        "final.json",
        "final.safetensors",
    }
    for source in (run / "final.safetensors", run / "checkpoint", run / "checkpoint.json", run):
        code, out, err = run_cli(capsys, "eval", tiny, "--checkpoint", source, "--limit", "24", "--json")
        assert code == 0, err
        result = json.loads(out)
        assert result["samples"] == 24 and result["dataset"] == "synthetic"  # the weights' dataset
        assert 0.0 <= result["top1"] <= result["top5"] <= 1.0 and result["images_per_second"] > 0
    code, out, err = run_cli(capsys, "eval", tiny, "--checkpoint", run / "final.safetensors", "--dataset", "synthetic")
    assert code == 0 and "top-1" in out and "top-5" in out and "images/s" in out and "loss" in out

    # Knowledge distillation from the run just trained.
    code, out, err = run_cli(
        capsys, "train", tiny, *common, "--epochs", "1", "--no-two-step", "--teacher", run / "final.safetensors",
        "-o", tmp_path / "student",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads((tmp_path / "student" / "final.json").read_text())["recipe"]["kd_alpha"] == 0.9


@pytest.mark.skipif(
    not all((DEFAULT_FASHION_MNIST_ROOT / name).is_file() for name in FASHION_FILES),
    reason="apt-get install dataset-fashion-mnist",
)
def test_cli_trains_on_fashion_mnist_padded_to_32(genotypes, tmp_path: Path, capsys) -> None:
    args = ("--train-limit", "64", "--test-limit", "32", "--batch-size", "16", "--max-steps", "2", "--no-two-step")
    code, out, err = run_cli(capsys, "train", genotypes["tiny32"], *args, "--epochs", "1", "-o", tmp_path / "fm")
    assert code == 0, err
    final = json.loads((tmp_path / "fm" / "final.json").read_text())
    assert (final["dataset"], final["in_chans"], final["num_classes"], final["image_size"]) == (
        "fashion_mnist",
        1,
        10,
        32,
    )
    code, out, err = run_cli(capsys, "eval", genotypes["tiny32"], "--checkpoint", tmp_path / "fm", "--limit", "16")
    assert code == 0 and "fashion_mnist test (16 images" in out


def test_cli_bad_inputs_exit_1_without_traceback(genotypes, tmp_path: Path, capsys) -> None:
    tiny = genotypes["tiny"]
    run = tmp_path / "run"
    fast = ("--dataset", "synthetic", "--epochs", "2", "--max-steps", "1", "--test-limit", "8")
    assert run_cli(capsys, "train", tiny, *fast, "-o", run)[0] == 0
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes((run / "final.safetensors").read_bytes()[:500])
    broken = tmp_path / "broken"
    broken.mkdir()
    tensors = json.loads((run / "checkpoint.json").read_text())["tensors"]
    for name in ("checkpoint.json", tensors):
        data = (run / name).read_bytes()
        (broken / name).write_bytes(data[: len(data) // 2] if name.endswith(".safetensors") else data)
    cases = [
        (("train", tiny, "--dataset", "cifar10", "--data-root", tmp_path / "nowhere"), "cifar10 not found"),
        (("train", "mbconv_zzz", *fast), "unknown model"),
        (("train", tiny, *fast, "--resume", "-o", tmp_path / "none"), "no checkpoint"),
        (("train", tiny, *fast, "-o", run), "already holds a run"),
        (("train", tiny, "--dataset", "synthetic", "--amp"), "CUDA"),
        (("train", tiny, "--dataset", "imagenet"), "unknown dataset"),
        (("train", tiny, *fast, "--resume", "-o", broken), "truncated or replaced"),
        (("eval", tiny, "--checkpoint", truncated, "--dataset", "synthetic"), "truncated or corrupt"),
        (("eval", tiny, "--checkpoint", broken / "checkpoint.json"), "truncated or replaced"),
        (("eval", tiny, "--checkpoint", tmp_path / "missing.safetensors"), "no such"),
        (("eval", genotypes["other"], "--checkpoint", run / "final.safetensors"), "genotype 'tiny'"),
        (("eval", "mbconv_b", "--pretrained"), "no trained weights"),  # mbconv_a ships weights
    ]
    for argv, message in cases:
        code, out, err = run_cli(capsys, *argv)
        assert code == 1, (argv, out, err)
        assert message in err and "Traceback" not in err, (argv, err)


def test_cli_interrupt_exits_130_with_resume_hint(genotypes, tmp_path: Path, capsys, monkeypatch) -> None:
    from bnnzoo.cli import train_commands

    def interrupt(record, model):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_commands, "_print_epoch", interrupt)
    code, out, err = run_cli(
        capsys, "train", genotypes["tiny"], "--dataset", "synthetic", "--epochs", "2", "--max-steps", "1",
        "--test-limit", "8", "-o", tmp_path / "run",
    )  # fmt: skip
    assert code == 130
    assert "checkpoint saved" in err and "--resume" in err and "Traceback" not in err
    assert (tmp_path / "run" / "checkpoint.json").is_file()


# --------------------------------------------------------------------------- torchrun


@pytest.mark.slow
def test_torchrun_two_process_gloo_run(genotypes, tmp_path: Path) -> None:
    runner = tmp_path / "bnnzoo_main.py"
    runner.write_text("import sys\nfrom bnnzoo.cli import main\nsys.exit(main())\n", encoding="utf-8")
    output = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", str(runner),
        "train", str(genotypes["tiny"]), "--dataset", "synthetic", "--epochs", "1", "--no-two-step",
        "--batch-size", "8", "--max-steps", "3", "--test-limit", "20", "-o", str(output),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("epoch 1/1") == 1 and done.stdout.count("done: test top-1") == 1  # rank 0 only
    lines = metrics_lines(output)
    assert len(lines) == 1
    # Summed over both processes: 2 x 3 steps x 8 images; the 20 test images split 10 + 10.
    assert lines[0]["train_samples"] == 48 and lines[0]["test_samples"] == 20
    final = json.loads((output / "final.json").read_text())
    assert final["recipe"]["world_size"] == 2
    state = load_checkpoint(output / "checkpoint")
    assert state["world_size"] == 2 and state["complete"] is True
    assert not [p for p in output.iterdir() if p.name.endswith(".tmp")]


def test_teacher_weights_that_do_not_fit_name_the_tensor(genotypes, tmp_path: Path) -> None:
    """A timm teacher's --teacher-weights are compared key by key and shape by shape before loading."""
    import timm
    from safetensors.torch import save_file

    from bnnzoo.train.teacher import build_teacher

    five_classes = timm.create_model("resnet10t", num_classes=5, in_chans=3)
    save_file(five_classes.state_dict(), str(tmp_path / "teacher.safetensors"))
    config = tiny_config(genotypes["tiny"], tmp_path / "run", teacher="resnet10t")
    config.teacher_weights = str(tmp_path / "teacher.safetensors")
    with pytest.raises(
        WeightsError, match=r"\(teacher resnet10t\): fc.bias has shape \(5,\) in the weights but \(10,\) in the model"
    ):
        build_teacher(config, num_classes=10, in_chans=3, device=torch.device("cpu"))
    state = five_classes.state_dict()
    del state["fc.bias"]
    save_file(
        {**state, "fc.weight": torch.zeros(10, 512), "extra": torch.zeros(1)}, str(tmp_path / "teacher.safetensors")
    )
    with pytest.raises(WeightsError, match=r"the weights do not fit the model: missing fc.bias; unexpected extra"):
        build_teacher(config, num_classes=10, in_chans=3, device=torch.device("cpu"))
    state["fc.weight"], state["fc.bias"] = torch.zeros(10, 512), torch.zeros(10)
    save_file(state, str(tmp_path / "teacher.safetensors"))
    teacher = build_teacher(config, num_classes=10, in_chans=3, device=torch.device("cpu"))
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert torch.equal(teacher.fc.weight, torch.zeros(10, 512))
