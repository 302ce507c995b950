"""The search loop: alternating first-order bilevel updates with the bimodal perturbation.

Each step takes a training batch and a validation batch (the training set split in two):

1. architecture step on the validation batch, with clean mixing weights and clean latent weights
   (plus the expected-ops penalty when a target is set), Adam on alpha;
2. weight step on the training batch inside :func:`~bnnzoo.search.perturb.perturbed` (eps_A on
   the mixing weights, eps_W on the binary latent weights), SGD or Adam on the weights.

The first ``warmup`` epochs train the weights only (alpha stays uniform); the architecture rate is
matched to the number of architecture steps and decays with a cosine (docs/search.md). Every epoch
ends with one summary line and one row of ``search_log.jsonl``; the run ends with a verdict on
whether the search decided, and ``search_curves.png``.

Checkpoints (safetensors + JSON, atomic) are written after every epoch and on Ctrl-C; resuming
continues at the same step with the same data order and noise, so on CPU a resumed run ends with
exactly the alphas and genotype of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bnnzoo import _distributed as dist_utils
from bnnzoo._atomic import atomic_write_text
from bnnzoo._checkpoint import load_checkpoint, remove_leftovers, save_checkpoint
from bnnzoo._interrupt import StopRequest
from bnnzoo.dsl import dump, to_text
from bnnzoo.dsl.types import Genotype
from bnnzoo.errors import SearchError
from bnnzoo.search.cell_supernet import CellSupernet
from bnnzoo.search.config import SearchConfig
from bnnzoo.search.curves import plot_search_curves
from bnnzoo.search.derive import derive
from bnnzoo.search.mbconv_supernet import MBConvSupernet
from bnnzoo.search.perturb import perturbed
from bnnzoo.search.resource import ExpectedOps

CHECKPOINT = "checkpoint"
LOG = "search_log.jsonl"
CURVES = "search_curves.png"
DECIDED_ENTROPY = 0.5  # mean normalised alpha entropy at or below which a search has decided


@dataclass
class SearchResult:
    genotype: Genotype
    genotype_path: Path
    log_path: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    curves_path: Path | None = None
    verdict: str = ""

    @property
    def decided(self) -> bool:
        """Whether the final mean normalised alpha entropy is at most :data:`DECIDED_ENTROPY`."""
        return bool(self.history) and self.history[-1]["alpha_entropy_normalized"] <= DECIDED_ENTROPY


def build_supernet(config: SearchConfig, in_chans: int, num_classes: int, image_size: int) -> nn.Module:
    if config.space == "bnas":
        return CellSupernet(
            config.channels,
            config.layers,
            num_classes,
            in_chans,
            input_size=image_size,
            op_norm=config.op_norm,
            centre_inputs=config.centre_inputs,
        )
    return MBConvSupernet(
        config.widths,
        config.depths,
        config.stage_strides(),
        stem_channels=config.stem_channels,
        kernels=config.kernels,
        expansions=config.expansions,
        num_classes=num_classes,
        in_chans=in_chans,
        input_size=image_size,
    )


class Searcher:
    """One search run; ``run()`` trains the supernet and emits the derived genotype."""

    def __init__(self, config: SearchConfig, resume: bool = False, echo: Callable[[str], None] | None = print) -> None:
        from bnnzoo.train import data

        self.config = config.validate()
        self.device = torch.device(config.device)
        self.dist = dist_utils.init_distributed(self.device)
        self.output = Path(config.output)
        self.echo = echo if self.dist.is_main else None
        if not resume:
            self._claim_output()
        torch.manual_seed(config.seed)
        info = data.dataset_info(config.dataset)
        self.image_size = config.image_size or (224 if config.dataset == "imagefolder" else 32)
        dataset = data.load_dataset(
            config.dataset, "train", config.data_root, image_size=self.image_size, limit=config.limit
        )
        self.train_set, self.val_set = data.split_train_val(dataset, 1 - config.train_portion, seed=config.seed)
        num_classes = getattr(dataset, "num_classes", info.num_classes)
        self.model = build_supernet(config, info.input_shape[0], num_classes, self.image_size).to(self.device)
        self.arch = self.model.arch_modules()
        arch_params = [module.alpha for module in self.arch]
        arch_ids = {id(p) for p in arch_params}
        self.weight_params = [p for p in self.model.parameters() if id(p) not in arch_ids]
        self.binary_weights = self.model.binary_weights()
        self.weight_optimizer = self._weight_optimizer()
        self.arch_steps = (config.epochs - config.warmup) * self.steps_per_epoch()
        self.arch_lr = config.arch_lr_for(self.arch_steps)
        self.arch_optimizer = torch.optim.Adam(
            arch_params, lr=self.arch_lr, betas=(0.5, 0.999), weight_decay=config.arch_weight_decay
        )
        self.arch_scheduler = torch.optim.lr_scheduler.LambdaLR(self.arch_optimizer, self._arch_factor)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.weight_optimizer, config.epochs, eta_min=config.weight_lr_min
        )
        self.expected_ops = ExpectedOps(self.model) if config.target_ops else None
        self.generator = torch.Generator().manual_seed(config.seed + 1)
        self.epoch, self.step, self.elapsed = 0, 0, 0.0
        self.totals = torch.zeros(6, dtype=torch.float64)  # train loss/correct/count, val loss/correct/count
        self.history: list[dict[str, Any]] = []
        self.interrupt = StopRequest()  # Ctrl-C once: save and stop after this step; again: stop at once
        self.net = self._wrap_ddp()
        if resume:
            self._load()

    # -- setup -------------------------------------------------------------------------------

    def _claim_output(self) -> None:
        """Refuse a folder that holds a run, unless ``overwrite``; then clear that run's files."""
        # checkpoint.json first: it names the run, and removing it first removes the checkpoint at once
        checkpoint = sorted(self.output.glob(f"{CHECKPOINT}*"), key=lambda path: (path.suffix != ".json", path.name))
        previous = checkpoint + sorted(self.output.glob(LOG))
        if not previous:
            return
        if not self.config.overwrite:
            finished = (self.output / f"{self.config.name}.bnn").exists()
            state = "a finished" if finished else "an unfinished"
            raise SearchError(
                f"{self.output} already holds {state} search ({previous[0].name}); pass --resume to continue it, "
                "--overwrite to start again, or choose another output folder with -o"
            )
        if self.dist.is_main:
            for path in previous:
                path.unlink(missing_ok=True)

    def _arch_factor(self, step: int) -> float:
        """The architecture rate's factor at architecture step ``step``: cosine to 0, or constant."""
        if self.config.arch_schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min(step, self.arch_steps) / max(self.arch_steps, 1)))

    def _weight_optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        if c.weight_optimizer == "adam":
            return torch.optim.Adam(self.weight_params, lr=c.weight_lr, weight_decay=c.weight_decay)
        return torch.optim.SGD(
            self.weight_params, lr=c.weight_lr, momentum=c.weight_momentum, weight_decay=c.weight_decay
        )

    def _wrap_ddp(self) -> nn.Module:
        if not self.dist.enabled:
            return self.model
        from torch.nn.parallel import DistributedDataParallel

        ignored = [name for name, _ in self.model.named_parameters() if name.endswith("alpha")]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self.model, ignored)
        device_ids = [self.dist.local_rank] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=device_ids)

    def _loaders(self, epoch: int):
        from bnnzoo.train.data import make_loader

        c = self.config
        loaders = []
        for offset, dataset in enumerate((self.train_set, self.val_set)):
            seed = c.seed * 1000 + 2 * epoch + offset
            if self.dist.enabled:
                sampler = torch.utils.data.DistributedSampler(
                    dataset, self.dist.world_size, self.dist.rank, shuffle=True, seed=seed
                )
                sampler.set_epoch(epoch)
                loaders.append(make_loader(dataset, c.batch_size, shuffle=False, sampler=sampler, drop_last=True))
            else:
                loaders.append(make_loader(dataset, c.batch_size, shuffle=True, seed=seed, drop_last=True))
        return loaders

    def steps_per_epoch(self) -> int:
        per_rank = min(len(self.train_set), len(self.val_set)) // self.dist.world_size
        steps = per_rank // self.config.batch_size
        if self.config.max_steps is not None:
            steps = min(steps, self.config.max_steps)
        if steps < 1:
            raise SearchError(
                f"the dataset is too small for batch size {self.config.batch_size}: "
                f"{len(self.train_set)} training and {len(self.val_set)} validation images"
            )
        return steps

    # -- one step ----------------------------------------------------------------------------

    def _autocast(self):
        enabled = self.config.amp and self.device.type == "cuda"
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=enabled)

    def arch_step(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
        """One clean step on alpha; returns the validation loss and number correct."""
        self.arch_optimizer.zero_grad(set_to_none=True)
        no_sync = self.net.no_sync() if self.dist.enabled else contextlib.nullcontext()
        with no_sync, self._autocast():
            logits = self.net(images)
            loss = F.cross_entropy(logits, labels)
            objective = loss
            if self.expected_ops is not None:
                objective = loss + self.expected_ops.penalty(self.config.target_ops, self.config.target_weight)
        objective.backward()
        dist_utils.average_gradients([module.alpha for module in self.arch], self.dist)
        self.arch_optimizer.step()
        self.arch_scheduler.step()
        return float(loss.detach()), int((logits.argmax(1) == labels).sum())

    @torch.no_grad()
    def val_forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
        """The validation loss and number correct without a step (the warm-up's architecture side)."""
        with self._autocast():
            logits = self.model(images)
            loss = F.cross_entropy(logits, labels)
        return float(loss), int((logits.argmax(1) == labels).sum())

    def weight_step(self, images: torch.Tensor, labels: torch.Tensor, eps_a: float, eps_w: float) -> tuple[float, int]:
        """One perturbed step on the weights; returns the training loss and number correct."""
        self.weight_optimizer.zero_grad(set_to_none=True)
        with perturbed(self.arch, self.binary_weights, eps_a, eps_w, self.generator):
            with self._autocast():
                logits = self.net(images)
                loss = F.cross_entropy(logits, labels)
            loss.backward()
        nn.utils.clip_grad_norm_(self.weight_params, self.config.grad_clip)
        self.weight_optimizer.step()
        return float(loss.detach()), int((logits.argmax(1) == labels).sum())

    # -- the run -----------------------------------------------------------------------------

    def run(self, stop_after_steps: int | None = None) -> SearchResult:
        """Search until the last epoch; ``stop_after_steps`` simulates an interrupt (for tests)."""
        c = self.config
        steps = self.steps_per_epoch()
        done_steps = 0
        if self.dist.is_main:
            remove_leftovers(self.output / CHECKPOINT, others=(LOG, f"{c.name}.bnn"))  # of a killed run
        with self.interrupt.installed(self.dist.is_main):
            while self.epoch < c.epochs:
                eps_a, eps_w = c.eps_at(self.epoch)
                searching = self.epoch >= c.warmup
                for module in self.arch:
                    module.temperature = c.temperature_at(self.epoch)
                train_loader, val_loader = self._loaders(self.epoch)
                batches = zip(train_loader, val_loader)
                for _ in range(self.step):  # resuming mid-epoch: replay the data order
                    next(batches)
                bar = self._progress(steps)
                started = time.perf_counter()
                for (x_t, y_t), (x_v, y_v) in batches:
                    if self.step >= steps:
                        break
                    x_t, y_t, x_v, y_v = (t.to(self.device) for t in (x_t, y_t, x_v, y_v))
                    step_on_alpha = self.arch_step if searching else self.val_forward
                    val_loss, val_correct = step_on_alpha(x_v, y_v)
                    train_loss, train_correct = self.weight_step(x_t, y_t, eps_a, eps_w)
                    n = len(y_t)
                    self.totals += torch.tensor(
                        [train_loss * n, train_correct, n, val_loss * n, val_correct, n], dtype=torch.float64
                    )
                    self.step += 1
                    done_steps += 1
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{train_loss:.3f}", acc=f"{train_correct / n:.3f}")
                    if self.interrupt.stop_requested or (
                        stop_after_steps is not None and done_steps >= stop_after_steps
                    ):
                        self.elapsed += time.perf_counter() - started
                        self._save()
                        raise KeyboardInterrupt
                if bar is not None:
                    bar.close()
                self.elapsed += time.perf_counter() - started
                self._end_epoch(eps_a, eps_w)
        return self._finish()

    def _progress(self, steps: int):
        if not (self.config.progress and self.dist.is_main):
            return None
        from tqdm import tqdm

        phase = "warm-up" if self.epoch < self.config.warmup else "search"
        return tqdm(
            total=steps, initial=self.step, desc=f"epoch {self.epoch + 1}/{self.config.epochs} ({phase})", leave=False
        )

    def _say(self, line: str) -> None:
        if self.echo is None:
            return
        if self.config.progress:
            from tqdm import tqdm

            tqdm.write(line)
        else:
            self.echo(line)

    def _end_epoch(self, eps_a: float, eps_w: float) -> None:
        totals = dist_utils.all_reduce_sum(self.totals, self.dist)
        genotype = derive(self.model, self.config.name)
        text = to_text(genotype)
        changed = not self.history or self.history[-1]["genotype"] != text
        row = {
            "epoch": self.epoch + 1,
            "phase": "warmup" if self.epoch < self.config.warmup else "search",
            "train_loss": float(totals[0] / totals[2]),
            "train_acc": float(totals[1] / totals[2]),
            "val_loss": float(totals[3] / totals[5]),
            "val_acc": float(totals[4] / totals[5]),
            "alpha_entropy": sum(module.entropy() for module in self.arch) / len(self.arch),
            "alpha_entropy_normalized": sum(module.normalized_entropy() for module in self.arch) / len(self.arch),
            "derived_equiv_ops": _equiv_ops(genotype),
            "genotype_changed": changed,
            "eps_a": eps_a,
            "eps_w": eps_w,
            "lr": self.weight_optimizer.param_groups[0]["lr"],
            "arch_lr": self.arch_optimizer.param_groups[0]["lr"],
            "temperature": self.arch[0].temperature,
            "seconds": self.elapsed,
            "mixing": [
                [[round(v, 4) for v in row] for row in module.clean_weights().detach().cpu().tolist()]
                for module in self.arch
            ],
            "genotype": text,
        }
        if self.expected_ops is not None:
            row["expected_equiv_ops"] = self.expected_ops().item()
        if self.config.sharpness and self.dist.is_main:
            from bnnzoo.search.sharpness import measure_sharpness

            sharpness = measure_sharpness(
                self.model, self.arch, self.binary_weights, self.val_set, self.config, self.device
            )
            row.update(sharpness)
        self.history.append(row)
        self._say(summary_line(row, self.config.epochs))
        if self.dist.is_main:
            self._write_log()
        self.scheduler.step()
        self.epoch, self.step = self.epoch + 1, 0
        self.totals.zero_()
        self._save()

    def _write_log(self) -> None:
        lines = "".join(json.dumps(row) + "\n" for row in self.history)
        atomic_write_text(self.output / LOG, lines)

    def _finish(self) -> SearchResult:
        c = self.config
        alphas = {
            f"alpha.{index}": [[round(float(v), 4) for v in row] for row in module.alpha.detach().cpu()]
            for index, module in enumerate(self.arch)
        }
        header = {
            "comments": (
                f"Searched by `bnnzoo search` ({c.space} space) on {c.dataset}.",
                "A genotype found by this package's own search, not one of the paper's.",
            ),
            "meta": (
                ("search.space", c.space),
                ("search.dataset", c.dataset),
                ("search.seed", str(c.seed)),
                ("search.eps_a", str(c.eps_a)),
                ("search.eps_w", str(c.eps_w)),
                ("search.ramp", str(c.ramp).lower()),
                ("search.epochs", str(c.epochs)),
                ("search.steps_per_epoch", str(self.steps_per_epoch())),
                ("search.seconds", f"{self.elapsed:.1f}"),
                ("search.final_alpha", json.dumps(alphas)),
            ),
        }
        genotype = derive(self.model, c.name, **header)
        path = self.output / f"{c.name}.bnn"
        curves = self.output / CURVES
        if self.dist.is_main:
            dump(genotype, path)
            plot_search_curves(self.history, curves, [(m.label, m.point_names, m.choice_names) for m in self.arch])
        dist_utils.barrier(self.dist)
        result = SearchResult(genotype, path, self.output / LOG, self.history, curves)
        result.verdict = verdict(self.history)
        self._say(result.verdict)
        return result

    # -- checkpoints -------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "weight_optimizer": self.weight_optimizer.state_dict(),
            "arch_optimizer": self.arch_optimizer.state_dict(),
            "arch_scheduler": self.arch_scheduler.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "elapsed": self.elapsed,
            "totals": self.totals.clone(),
            "history": self.history,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def _save(self) -> None:
        if self.dist.is_main:
            save_checkpoint(self.output / CHECKPOINT, self._state())

    def _load(self) -> None:
        path = self.output / CHECKPOINT
        if not path.with_suffix(".json").exists():
            raise SearchError(f"nothing to resume: no checkpoint at {path}.json (run without --resume first)")
        state = load_checkpoint(path)
        saved = {k: v for k, v in state["config"].items() if k not in _RESUMABLE}
        current = {k: v for k, v in self.config.to_dict().items() if k not in _RESUMABLE}
        changed = sorted(k for k in current if _plain(saved.get(k)) != _plain(current[k]))
        if changed:
            raise SearchError(f"cannot resume {path}: settings differ from the interrupted run: {', '.join(changed)}")
        self.model.load_state_dict(state["model"])
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        self.arch_scheduler.load_state_dict(state["arch_scheduler"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.step, self.elapsed = state["epoch"], state["step"], state["elapsed"]
        self.totals = state["totals"].to(torch.float64)
        self.history = state["history"]
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        where = f"epoch {self.epoch + 1}, step {self.step}" if self.epoch < self.config.epochs else "its end"
        self._say(
            f"resumed {path}.json at {where} of {self.config.epochs} epochs ({self.elapsed:.0f} s searched so far)"
        )


# Settings a resumed run may change: they do not change what the search does (sharpness only measures).
_RESUMABLE = {"progress", "num_workers", "output", "device", "amp", "overwrite"}
_RESUMABLE |= {"sharpness", "sharpness_images", "sharpness_rho", "sharpness_draws"}


def _equiv_ops(genotype: Genotype) -> float:
    from bnnzoo.profile import profile

    return float(profile(genotype).equiv_ops)


def summary_line(row: dict[str, Any], epochs: int) -> str:
    """One epoch in one line: losses, accuracies, normalised entropy, the derived genotype's ops."""
    changed = "genotype changed" if row["genotype_changed"] else "genotype unchanged"
    return (
        f"epoch {row['epoch']}/{epochs} ({row['phase']}): "
        f"train loss {row['train_loss']:.3f} acc {100 * row['train_acc']:.1f}% | "
        f"val loss {row['val_loss']:.3f} acc {100 * row['val_acc']:.1f}% | "
        f"alpha entropy {row['alpha_entropy_normalized']:.3f} (1 = uniform) | "
        f"derived {row['derived_equiv_ops'] / 1e6:.2f} M Equiv. Ops, {changed}"
        + (
            f" | sharpness alpha {row['sharpness_alpha']:.3g}, weights {row['sharpness_weights']:.3g}"
            if "sharpness_alpha" in row
            else ""
        )
    )


def verdict(history: list[dict[str, Any]]) -> str:
    """Whether the search decided, in words, with what to change if it did not."""
    entropy = history[-1]["alpha_entropy_normalized"]
    stable_since = len(history)
    while stable_since > 1 and not history[stable_since - 1]["genotype_changed"]:
        stable_since -= 1
    if entropy <= DECIDED_ENTROPY:
        return (
            f"the search decided: final mean normalised alpha entropy {entropy:.3f} (<= {DECIDED_ENTROPY}; "
            f"1 = uniform); the derived genotype last changed at epoch {stable_since} of {len(history)}"
        )
    return (
        f"the search did NOT decide: final mean normalised alpha entropy {entropy:.3f} > {DECIDED_ENTROPY} "
        "(1 = uniform), so this genotype is close to a random draw from the space. Give the architecture more "
        "steps (--epochs, --limit), a larger --arch-lr, or a lower --final-temperature (e.g. 0.1)"
    )


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def run_search(config: SearchConfig, resume: bool = False, echo: Callable[[str], None] | None = print) -> SearchResult:
    """Run a search and return its derived genotype, the file it was written to, and the log.

    ``echo`` receives the per-epoch summary lines and the final verdict (None: silent).
    """
    return Searcher(config, resume=resume, echo=echo).run()
