"""The BNN training recipe as a library: two-step training, Adam with lr decay to 0, optional KD.

Follows REFERENCE.md, "BNN training practice" (ReActNet, Bi-Real Net). What is decided here:

Two steps (``two_step=True``, the default)
    Step 1 (``phase`` 1): every :class:`~bnnzoo.build.binary.BinaryConv2d` binarizes its input
    activations but convolves with its real latent weights (``set_binary_weights(model, False)``);
    weight decay ``weight_decay`` (1e-5). Step 2 (``phase`` 2): the same module, carrying on from
    step 1's weights, with every BinaryConv2d fully binary (``set_binary_weights(model, True)``);
    weight decay ``weight_decay_step2`` (0). Step 1 gets ``round(epochs * step1_fraction)`` epochs
    (half by default; at least one epoch each step), step 2 the rest: ``epochs`` is the total.
    **The optimizer and the schedule restart at step 2**: fresh Adam moments and the learning rate
    back at ``lr``, decaying to 0 over step 2's epochs, as in ReActNet, whose step 2 is a new run
    initialised from step 1's weights. With ``two_step=False`` the whole run is one fully binary
    step with step 2's settings (weight decay 0).

Optimizer and schedule
    Adam (betas 0.9, 0.999) with learning rate ``lr``, default 1e-3 for a batch of 128 per
    process (not rescaled for other batch sizes or process counts). The rate decays every
    optimizer step, linearly ``lr * (1 - t / T)`` or by a cosine ``lr * (1 + cos(pi t / T)) / 2``,
    ``T`` being the number of steps of the current training step, so it reaches 0 at its end.

Weight decay: where it applies
    Adam's L2 weight decay (added to the gradient, as ReActNet's code does) applies to the weight of
    every ``nn.Conv2d``: the latent real weights of the binary convolutions and the real convs (the
    stem, a real 1x1 downsample). It never applies to BatchNorm, biases, RPReLU (gamma, slope,
    zeta), RSign thresholds or the final fc (ReActNet decays 4-D tensors only, so its fc is not
    decayed either; we select by module type so the (1, C, 1, 1) thresholds are not caught).

Loss
    Cross-entropy. With a ``teacher`` (knowledge distillation):
    ``(1 - kd_alpha) * CE + kd_alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))``,
    ``T = kd_temperature``; defaults alpha 0.9, T 1 (ReActNet distils at T = 1). The teacher sees
    the same normalised images as the student and stays in eval mode. ``teacher`` is a timm model
    name (``timm.create_model(name, pretrained=True)``, whose head must already have the dataset's
    classes; with ``teacher_weights=FILE.safetensors`` the model is built for the dataset and loads
    that file instead), or the path of a bnnzoo run's ``final.safetensors`` or ``checkpoint``.

Data and determinism
    The image size defaults to the genotype's input size; Fashion-MNIST's 1x28x28 images are padded
    to 32 (resized for other sizes), and the model is built with the dataset's channels and classes.
    Training images are augmented (random crop with 4 px padding, plus flips except on
    Fashion-MNIST). Each epoch's order is a permutation seeded with ``seed + epoch`` (a
    ``DistributedSampler`` with ``set_epoch``, also in a single process), and torch's global RNG,
    which draws the augmentation, is reseeded at the start of every epoch from (seed, epoch, rank).
    ``batch_size`` is per process.

Files in ``output_dir`` (only the main process writes)
    ``checkpoint.json`` + the ``checkpoint.<hash>.safetensors`` it names (via
    :func:`bnnzoo._checkpoint.save_checkpoint`, never pickle; at every instant the pair on disk is
    complete, whenever the process is killed): model, optimizer, scheduler and GradScaler states,
    completed epochs, step, phase, RNG states (torch CPU, CUDA, Python ``random``), the config, the
    genotype text and the metrics history; written after every epoch and when training is
    interrupted. ``metrics.jsonl``: one JSON line per epoch (phase, epoch, step, train loss/acc,
    test loss/top-1/top-5, samples seen, lr of the epoch's last step, seconds), appended and
    flushed; on resume it is rewritten from the checkpoint's history, so earlier lines are kept
    and no line is duplicated. At the end ``final.safetensors`` (the model
    state dict only) and ``final.json`` (genotype text, dataset, test top-1/top-5/loss, recipe).

Interrupting and resuming
    Ctrl-C (SIGINT, in the main thread) lets the current optimizer step finish, saves the
    checkpoint (mid-epoch if need be) and raises :class:`TrainingInterrupted`, a
    ``KeyboardInterrupt``; a second Ctrl-C aborts at once and saves nothing (the state may be half
    a step), keeping the previous checkpoint, however many more presses follow. Start and resume
    remove what a killed run left (temporary files, unnamed checkpoint tensors). An
    ``on_epoch`` callback that raises ``KeyboardInterrupt`` has the same effect at the end of an
    epoch. ``resume=True`` continues from ``output_dir/checkpoint``: the genotype and the recipe
    fields (:data:`RECIPE_FIELDS`) must match, the runtime fields (device, workers, data root,
    output dir, test limit) may change. On CPU with the same seed, a run resumed at an epoch
    boundary ends with exactly the same weights as an uninterrupted one; a mid-epoch resume is exact
    too when ``num_workers=0`` in a single process.

Distributed
    Under ``torchrun`` every process runs ``train``; :func:`bnnzoo._distributed.init_distributed`
    joins the group (gloo on CPU, nccl on CUDA), the model is wrapped in DDP, each process reads its
    shard of every epoch's permutation, training and test metrics are summed over processes and only
    rank 0 writes files and shows progress.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, Sampler, Subset
from torch.utils.data.distributed import DistributedSampler

from bnnzoo import __version__, dsl
from bnnzoo._atomic import atomic_write_text
from bnnzoo._checkpoint import save_checkpoint
from bnnzoo._distributed import DistInfo, all_reduce_sum, init_distributed
from bnnzoo._interrupt import StopRequest
from bnnzoo._progress import progress_bar
from bnnzoo.build.binary import BinaryConv2d, set_binary_weights
from bnnzoo.errors import DataError
from bnnzoo.train.config import (
    AMP_DTYPES,
    FINAL_FORMAT,
    RUN_FORMAT,
    TrainConfig,
    TrainingError,
    TrainingInterrupted,
    TrainResult,
)
from bnnzoo.train.data import dataset_info, load_dataset, make_loader
from bnnzoo.train.evaluate import evaluate
from bnnzoo.train.optim import make_optimizer, make_scheduler, train_step
from bnnzoo.train.run_state import EpochProgress, RunFiles, restore_optimizer, restore_rng, rng_state, sums_tensor
from bnnzoo.train.teacher import build_teacher
from bnnzoo.trained import write_final_weights

STOP_NOTICE = "stopping after this step and saving a checkpoint (Ctrl-C again to abort)"


def train(
    config: TrainConfig,
    *,
    on_epoch: Callable[[dict[str, Any], nn.Module], None] | None = None,
) -> TrainResult:
    """Run the recipe ``config`` describes; see the module docstring.

    ``on_epoch(record, model)`` is called in the main process after each epoch's checkpoint and
    metrics line are written, with the metrics record and the (unwrapped) model; raising
    ``KeyboardInterrupt`` there stops training like Ctrl-C. Raises :class:`TrainingInterrupted`
    when interrupted, a :class:`~bnnzoo.errors.BnnzooError` for bad inputs.
    """
    config = dataclasses.replace(config)
    config.validate()
    device = _resolve_device(config.device)
    info = init_distributed(device)
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
    return TrainingRun(config, device, info, on_epoch).run()


def _resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrainingError(f"unknown device {name!r} (choose cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda, but CUDA is not available on this machine")
    return device


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + rank * 104_729) % (2**63)


class _ListSampler(Sampler[int]):
    def __init__(self, indices: Sequence[int]) -> None:
        self.indices = list(indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class TrainingRun:
    """One process's part of a training run, from setup to ``final.json``.

    :meth:`run` builds the model (and teacher) and the datasets, resumes from the checkpoint if
    asked, trains phase by phase and epoch by epoch, checkpoints after every epoch and on Ctrl-C
    (:class:`~bnnzoo._interrupt.StopRequest`), and writes the final weights and summary. Its
    fields are the run's state: ``phase``, ``epoch`` (completed), ``step``, ``progress`` of the
    current epoch, ``history`` of metrics records, the optimizer, scheduler and GradScaler.
    ``in_update`` is true while a step changes that state, which must not be saved then.
    """

    def __init__(
        self,
        config: TrainConfig,
        device: torch.device,
        info: DistInfo,
        on_epoch: Callable[[dict[str, Any], nn.Module], None] | None,
    ) -> None:
        self.config = config
        self.device = device
        self.info = info
        self.on_epoch = on_epoch
        self.amp_dtype = AMP_DTYPES[config.amp_dtype] if config.amp else None
        self.interrupt = StopRequest(STOP_NOTICE if info.is_main else None)
        self.in_update = False  # the state is being changed: not consistent until the change is complete
        self.show_progress = info.is_main and (config.progress if config.progress is not None else sys.stderr.isatty())

    # -- setup -----------------------------------------------------------------------------

    def _setup(self) -> None:
        config = self.config
        ds_info = dataset_info(config.dataset)
        self.model = self._build_model(ds_info.input_shape[0], ds_info.num_classes)
        genotype = getattr(self.model, "genotype", None)
        if genotype is None:
            raise TrainingError(f"{config.model!r} is not a bnnzoo genotype model; bnnzoo trains genotypes only")
        self.genotype_text = dsl.to_text(genotype)
        if config.image_size is None:
            config.image_size = genotype.input_shape[-1]
        if config.output_dir is None:
            config.output_dir = str(Path("runs") / f"{genotype.name}-{config.dataset}")
        self.files = RunFiles(Path(config.output_dir))
        self.files.check(config.resume, config.overwrite)

        self.train_set = load_dataset(
            config.dataset,
            "train",
            config.data_root,
            image_size=config.image_size,
            augment=config.augment,
            limit=config.train_limit,
            seed=config.seed,
        )
        self.test_set = load_dataset(
            config.dataset,
            "test",
            config.data_root,
            image_size=config.image_size,
            limit=config.test_limit,
            seed=config.seed,
        )
        if len(self.train_set) == 0:  # type: ignore[arg-type]
            raise DataError(f"the {config.dataset} training set is empty")
        if len(self.test_set) == 0:  # type: ignore[arg-type]
            raise DataError(f"the {config.dataset} test set is empty")
        self.num_classes = _dataset_classes(self.train_set, ds_info.num_classes)
        self.in_chans = ds_info.input_shape[0]
        if self.num_classes != ds_info.num_classes:
            self.model = self._build_model(self.in_chans, self.num_classes)
        self.model.to(self.device)
        self.teacher = build_teacher(config, self.num_classes, self.in_chans, self.device) if config.teacher else None

        per_process = math.ceil(len(self.train_set) / self.info.world_size)  # type: ignore[arg-type]
        self.steps_per_epoch = math.ceil(per_process / config.batch_size)
        if config.max_steps_per_epoch is not None:
            self.steps_per_epoch = min(self.steps_per_epoch, config.max_steps_per_epoch)
        if self.info.enabled:
            self.ddp_model: nn.Module = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        else:
            self.ddp_model = self.model

    def _build_model(self, in_chans: int, num_classes: int) -> nn.Module:
        from bnnzoo.zoo import create_model

        torch.manual_seed(self.config.seed)
        return create_model(self.config.model, num_classes=num_classes, in_chans=in_chans)

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> TrainResult:
        """Train to the last epoch (or resume to it) and write the final files; see the module docstring."""
        self._setup()
        config = self.config
        resume_state = (
            self.files.load_resume_state(config, self.genotype_text, self.model, self.info.world_size)
            if config.resume
            else None
        )
        self.history: list[dict[str, Any]] = list(resume_state.get("history", [])) if resume_state else []
        self.epoch = int(resume_state["epoch"]) if resume_state else 0  # completed epochs
        self.step = int(resume_state["step"]) if resume_state else 0
        self.progress = EpochProgress.of_checkpoint(resume_state, self.info.is_main)
        self.last_lr = float(resume_state.get("last_lr", config.lr)) if resume_state else config.lr
        if self.info.is_main:
            self.files.prepare(config.overwrite, self.history)
        self.phase = config.phase_of_epoch(min(self.epoch, config.epochs - 1))
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
        self.scaler: torch.amp.GradScaler | None = None

        with self.interrupt.installed():
            try:
                for phase, first, count in config.phases():
                    if self.epoch >= first + count:
                        continue
                    self._start_phase(phase, count, resume_state)
                    if resume_state is not None:
                        # A mid-epoch resume continues from these; an epoch start reseeds anyway.
                        restore_rng(resume_state.get("rng", {}))
                        resume_state = None
                    while self.epoch < first + count:
                        self._run_epoch()
            except KeyboardInterrupt as exc:
                raise self._interrupted(exc) from None
        return self._finish()

    def _start_phase(self, phase: int, epochs: int, resume_state: dict[str, Any] | None) -> None:
        config = self.config
        self.phase = phase
        set_binary_weights(self.model, phase == 2)
        decay = config.weight_decay if phase == 1 else config.weight_decay_step2
        self.optimizer = make_optimizer(self.model, config.lr, decay)
        self.scheduler = make_scheduler(self.optimizer, config.schedule, epochs * self.steps_per_epoch)
        use_scaler = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type) if use_scaler else None
        if resume_state is not None and resume_state.get("phase") == phase and resume_state.get("optimizer"):
            restore_optimizer(resume_state, self.optimizer, self.scheduler, self.scaler)

    def _epoch_indices(self, epoch: int, skip_batches: int) -> list[int]:
        """This process's sample indices for ``epoch``: a permutation seeded with seed + epoch."""
        sampler = DistributedSampler(
            self.train_set,  # type: ignore[arg-type]
            num_replicas=self.info.world_size,
            rank=self.info.rank,
            shuffle=True,
            seed=self.config.seed,
        )
        sampler.set_epoch(epoch)
        indices = list(sampler)[: self.steps_per_epoch * self.config.batch_size]
        return indices[skip_batches * self.config.batch_size :]

    def _run_epoch(self) -> None:
        config = self.config
        epoch = self.epoch
        progress = self.progress
        assert self.optimizer is not None and self.scheduler is not None
        seed = _epoch_seed(config.seed, epoch, self.info.rank)
        if progress.batches == 0:
            torch.manual_seed(seed)
            random.seed(seed)
        self.model.train()
        loader = make_loader(
            self.train_set,
            config.batch_size,
            shuffle=False,
            sampler=_ListSampler(self._epoch_indices(epoch, progress.batches)),
            seed=seed,
            num_workers=config.num_workers,
        )
        sums = sums_tensor(progress.sums, self.device)
        started = time.perf_counter() - progress.seconds
        bar = progress_bar(
            self.show_progress,
            total=self.steps_per_epoch,
            desc=f"step {self.phase} epoch {epoch + 1}/{config.epochs}",
            unit="batch",
            initial=progress.batches,
        )
        try:
            for images, labels in loader:
                images = images.to(self.device, non_blocking=True)
                labels = labels.to(self.device, non_blocking=True)
                lr = self.optimizer.param_groups[0]["lr"]
                self.in_update = True
                loss, correct = train_step(
                    self.ddp_model,
                    images,
                    labels,
                    self.optimizer,
                    teacher=self.teacher,
                    kd_alpha=config.kd_alpha,
                    kd_temperature=config.kd_temperature,
                    scaler=self.scaler,
                    amp_dtype=self.amp_dtype,
                )
                self.scheduler.step()
                count = float(labels.shape[0])
                sums[0] += loss.double() * count
                sums[1] += correct.double()
                sums[2] += count
                self.step += 1
                self.last_lr = lr
                progress.batches += 1
                progress.sums = sums  # type: ignore[assignment]  # a tensor until the epoch ends
                progress.seconds = time.perf_counter() - started
                self.in_update = False
                if self.show_progress:  # (the sums' tolist() waits for the device)
                    loss_sum, correct_sum, seen = sums.tolist()
                    bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct_sum / seen:.3f}", refresh=False)
                    bar.update(1)
                if self._should_stop():
                    raise KeyboardInterrupt
        finally:  # in_update stays True when a step was cut short: that state must not be saved
            bar.close()
        self._end_epoch(time.perf_counter() - started)

    def _end_epoch(self, seconds: float) -> None:
        config = self.config
        train_sums = all_reduce_sum(sums_tensor(self.progress.sums, self.device), self.info)
        loss_sum, correct, count = train_sums.tolist()
        test = self._evaluate_test()
        record = {
            "phase": self.phase,
            "epoch": self.epoch + 1,
            "epochs": config.epochs,
            "step": self.step,
            "train_loss": loss_sum / count,
            "train_acc": correct / count,
            "test_loss": test["loss"],
            "test_top1": test["top1"],
            "test_top5": test["top5"],
            "train_samples": int(count),
            "test_samples": int(test["samples"]),
            "lr": self.last_lr,
            "seconds": round(seconds, 3),
        }
        self.in_update = True
        self.epoch += 1
        self.progress = EpochProgress()
        self.history.append(record)
        self.in_update = False
        if self.info.is_main:
            self._save_checkpoint()
            self.files.append_metrics(record)
            if self.on_epoch is not None:
                try:
                    self.on_epoch(dict(record), self.model)
                except KeyboardInterrupt:
                    self.interrupt.stop_requested = True
        if self._should_stop():
            raise KeyboardInterrupt

    def _evaluate_test(self) -> dict[str, float]:
        config = self.config
        shard = Subset(self.test_set, range(self.info.rank, len(self.test_set), self.info.world_size))  # type: ignore[arg-type]
        loader = make_loader(shard, config.batch_size, shuffle=False, num_workers=config.num_workers)
        return evaluate(self.model, loader, self.device, amp_dtype=self.amp_dtype, dist_info=self.info)

    def _should_stop(self) -> bool:
        """Whether any process was asked to stop (a Ctrl-C or ``on_epoch``), agreed over all processes."""
        flag = self.interrupt.stop_requested
        if self.info.enabled:
            value = torch.tensor([1.0 if flag else 0.0], device=self.device)
            flag = bool(all_reduce_sum(value, self.info).item() > 0)
        self.interrupt.stop_requested = flag
        return flag

    # -- the checkpoint and the final files --------------------------------------------------

    def _state(self) -> dict[str, Any]:
        progress = self.progress
        return {
            "format": RUN_FORMAT,
            "bnnzoo_version": __version__,
            "config": dataclasses.asdict(self.config),
            "genotype": self.genotype_text,
            "num_classes": self.num_classes,
            "in_chans": self.in_chans,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "phase": self.phase,
            "epoch": self.epoch,
            "step": self.step,
            "last_lr": self.last_lr,
            "batches_done": progress.batches,
            "epoch_sums": sums_tensor(progress.sums, torch.device("cpu")).tolist(),
            "epoch_seconds": progress.seconds,
            "steps_per_epoch": self.steps_per_epoch,
            "world_size": self.info.world_size,
            "complete": self.epoch >= self.config.epochs,
            "history": self.history,
            "rng": rng_state(self.device),
        }

    def _save_checkpoint(self) -> Path:
        return save_checkpoint(self.files.checkpoint_base, self._state())

    def _interrupted(self, exc: BaseException) -> TrainingInterrupted:
        """Save the state if it is that of completed steps (a first Ctrl-C); never after a later one."""
        if isinstance(exc, TrainingInterrupted):
            return exc
        self.interrupt.finishing = True
        progress = self.progress
        where = f"{self.epoch} of {self.config.epochs} epochs done"
        if progress.batches:
            where += f", {progress.batches} of {self.steps_per_epoch} batches into epoch {self.epoch + 1}"
        checkpoint: Path | None = self.files.checkpoint
        saved = False
        if not (self.interrupt.aborted or self.in_update):
            if self.info.enabled:
                progress.sums = all_reduce_sum(sums_tensor(progress.sums, self.device), self.info).tolist()
            try:
                if self.info.is_main:
                    self._save_checkpoint()
                saved = True
            except KeyboardInterrupt:  # Ctrl-C again while saving: the previous checkpoint stays complete
                pass
        if saved:
            message = f"training interrupted ({where}); checkpoint saved to {checkpoint}"
        else:
            last = checkpoint if checkpoint is not None and checkpoint.is_file() else None
            message = "training aborted before a checkpoint of the last steps was complete; " + (
                f"the last checkpoint is {last}" if last else "no checkpoint was written"
            )
            checkpoint = last
        if checkpoint is not None:
            message += (
                f"; resume by running the same command again with --resume (output folder {self.files.output_dir})"
            )
        return TrainingInterrupted(message, checkpoint, is_main=self.info.is_main)

    def _finish(self) -> TrainResult:
        config = self.config
        last = self.history[-1] if self.history else None
        if last is None:  # nothing was trained (cannot happen with epochs >= 1), evaluate anyway
            test = self._evaluate_test()
            last = {"test_top1": test["top1"], "test_top5": test["top5"], "test_loss": test["loss"]}
        files = self.files
        if self.info.is_main:
            write_final_weights(self.model, files.final_weights)
            summary = {
                "format": FINAL_FORMAT,
                "bnnzoo_version": __version__,
                "model": config.model,
                "genotype_name": self.model.genotype.name,
                "genotype": self.genotype_text,
                "dataset": config.dataset,
                "num_classes": self.num_classes,
                "in_chans": self.in_chans,
                "image_size": config.image_size,
                "mean": list(dataset_info(config.dataset).mean),
                "std": list(dataset_info(config.dataset).std),
                "binary_weights": all(m.binary_weights for m in self.model.modules() if isinstance(m, BinaryConv2d)),
                "test_top1": last["test_top1"],
                "test_top5": last["test_top5"],
                "test_loss": last["test_loss"],
                "test_samples": len(self.test_set),  # type: ignore[arg-type]
                "epochs_trained": self.epoch,
                "steps": self.step,
                "recipe": self._recipe_summary(),
            }
            atomic_write_text(files.final_info, json.dumps(summary, indent=1) + "\n")
        return TrainResult(
            output_dir=files.output_dir,
            checkpoint=files.checkpoint,
            final_weights=files.final_weights,
            final_info=files.final_info,
            metrics=list(self.history),
            test_top1=float(last["test_top1"]),
            test_top5=float(last["test_top5"]),
            test_loss=float(last["test_loss"]),
            config=self.config,
            model=self.model,
        )

    def _recipe_summary(self) -> dict[str, Any]:
        config = self.config
        return {
            "optimizer": "Adam(betas=(0.9, 0.999))",
            "lr": config.lr,
            "schedule": f"{config.schedule} decay to 0 per optimizer step, restarted at each step",
            "epochs": config.epochs,
            "two_step": config.two_step,
            "step1_epochs": config.step1_epochs,
            "step2_epochs": config.epochs - config.step1_epochs,
            "weight_decay": {
                "step1": config.weight_decay if config.two_step else None,
                "step2": config.weight_decay_step2,
                "applies_to": "nn.Conv2d weights (binary latent weights and real convs)",
            },
            "batch_size_per_process": config.batch_size,
            "world_size": self.info.world_size,
            "steps_per_epoch": self.steps_per_epoch,
            "augment": config.augment,
            "teacher": config.teacher,
            "teacher_weights": config.teacher_weights,
            "kd_alpha": config.kd_alpha if config.teacher else None,
            "kd_temperature": config.kd_temperature if config.teacher else None,
            "seed": config.seed,
            "amp": config.amp_dtype if config.amp else None,
            "max_steps_per_epoch": config.max_steps_per_epoch,
            "train_limit": config.train_limit,
            "train_samples": len(self.train_set),  # type: ignore[arg-type]
        }


def _dataset_classes(dataset: Dataset[Any], default: int) -> int:
    """The class count of a loaded dataset: an image folder's folders, else the dataset's own."""
    base = dataset.dataset if isinstance(dataset, Subset) else dataset
    classes = getattr(base, "classes", None)
    if classes:
        return len(classes)
    return int(getattr(base, "num_classes", default))
