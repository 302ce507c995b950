"""The settings of one search run, validated up front."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from bnnzoo.dsl.spaces import MBCONV_SEARCH_EXPANSIONS, MBCONV_SEARCH_KERNELS
from bnnzoo.errors import SearchError

SEARCH_SPACES = ("mbconv", "bnas")
ARCH_SCHEDULES = ("cosine", "constant")
OP_NORMS = ("scale", "batchnorm")  # bnnzoo/search/cell_supernet.py
DARTS_ARCH_LR = 3e-4  # DARTS's Adam rate for alpha (REFERENCE.md)
DARTS_ARCH_TRAVEL = DARTS_ARCH_LR * 50 * 391  # lr x steps of a DARTS search: 50 epochs of 391 steps
MAX_AUTO_ARCH_LR = 0.3


@dataclass
class SearchConfig:
    """Everything a search needs; defaults follow DARTS/BNAS where they exist (REFERENCE.md)."""

    space: str = "bnas"
    dataset: str = "fashion_mnist"
    data_root: str | None = None
    output: str = "runs/search"
    name: str = "searched"
    epochs: int = 50
    batch_size: int = 64
    limit: int | None = None  # use only the first N training images (quick runs)
    image_size: int | None = None  # default: 32 (Fashion-MNIST is padded from 28), 224 for image folders
    train_portion: float = 0.5
    max_steps: int | None = None  # cap the steps per epoch (quick runs)
    # BNAS macro (bnas space)
    channels: int = 16
    layers: int = 8
    op_norm: str = "scale"  # how the mixed ops are balanced: 1/sqrt(fan_in) kernels, or DARTS's per-op BatchNorm
    centre_inputs: bool = True  # binarize the cell states after a BatchNorm, as the built cells do
    # MBConv skeleton (mbconv space)
    widths: tuple[int, ...] = (16, 24, 32, 64)
    depths: tuple[int, ...] = (1, 2, 2, 2)
    strides: tuple[int, ...] | None = None  # per stage; None: 1 then 2 for every later stage
    stem_channels: int = 16
    kernels: tuple[int, ...] = MBCONV_SEARCH_KERNELS
    expansions: tuple[int, ...] = MBCONV_SEARCH_EXPANSIONS
    # optimisation
    weight_optimizer: str = "sgd"
    weight_lr: float = 0.025
    weight_lr_min: float = 0.001
    weight_momentum: float = 0.9
    weight_decay: float = 3e-4
    arch_lr: float | None = None  # None: matched to the number of architecture steps (arch_lr_for)
    arch_schedule: str = "cosine"  # cosine to 0 over the architecture steps, or constant (DARTS)
    arch_weight_decay: float = 1e-3
    warmup_epochs: int | None = None  # weight-only epochs before alpha moves; None: epochs // 4
    temperature: float = 1.0  # softmax temperature of the mixing weights at the first search epoch
    final_temperature: float | None = 0.2  # annealed geometrically to this by the last epoch; None: constant
    grad_clip: float = 5.0
    # bimodal perturbation
    eps_a: float = 0.0
    eps_w: float = 0.0
    ramp: bool = False  # ramp eps linearly from 0 over the epochs
    # resource-aware search
    target_ops: float | None = None
    target_weight: float = 1.0
    # sharpness along alpha and the weights, logged per epoch (bnnzoo/search/sharpness.py); off: it costs time
    sharpness: bool = False
    sharpness_images: int = 256  # the fixed validation subset
    sharpness_rho: float = 0.1  # relative radius of the weight perturbation
    sharpness_draws: int = 4  # random directions averaged
    # running
    seed: int = 0
    device: str = "cpu"
    amp: bool = False
    num_workers: int = 0
    progress: bool = True
    overwrite: bool = False  # start again in a folder that holds a run
    extra: dict = field(default_factory=dict)

    def validate(self) -> SearchConfig:
        from bnnzoo._suggest import did_you_mean

        if self.space not in SEARCH_SPACES:
            raise SearchError(f"unknown search space '{self.space}'{did_you_mean(self.space, SEARCH_SPACES)}")
        for name in ("eps_a", "eps_w"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise SearchError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")
        if self.epochs < 1 or self.batch_size < 1:
            raise SearchError("epochs and batch size must be positive")
        if not 0 < self.train_portion < 1:
            raise SearchError(f"train portion must be between 0 and 1, got {self.train_portion}")
        if self.weight_optimizer not in ("sgd", "adam"):
            raise SearchError(f"unknown weight optimizer '{self.weight_optimizer}'; use sgd or adam")
        if self.device not in ("cpu", "cuda"):
            raise SearchError(f"unknown device '{self.device}'; use cpu or cuda")
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise SearchError("--device cuda was asked for, but no CUDA device is available")
        if self.arch_schedule not in ARCH_SCHEDULES:
            raise SearchError(f"unknown architecture schedule '{self.arch_schedule}'; use cosine or constant")
        if self.arch_lr is not None and self.arch_lr <= 0:
            raise SearchError(f"--arch-lr must be positive, got {self.arch_lr}")
        if self.warmup_epochs is not None and not 0 <= self.warmup_epochs < self.epochs:
            raise SearchError(
                f"--warmup-epochs must be at least 0 and below --epochs ({self.epochs}), got {self.warmup_epochs}: "
                "the architecture needs at least one epoch to move"
            )
        for name in ("temperature", "final_temperature"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 100:
                raise SearchError(f"--{name.replace('_', '-')} must be in (0, 100], got {value}")
        if self.op_norm not in OP_NORMS:
            raise SearchError(f"unknown --op-norm '{self.op_norm}'; use {' or '.join(OP_NORMS)}")
        if self.space == "mbconv" and self.op_norm != "scale":
            raise SearchError("--op-norm applies to the bnas space; the mbconv supernet's blocks have their own BN")
        if self.space == "mbconv":
            self._validate_stages()
        if self.target_ops is not None and self.target_ops <= 0:
            raise SearchError("--target-ops must be positive")
        if self.sharpness_images < 1 or self.sharpness_draws < 1 or not self.sharpness_rho >= 0:
            raise SearchError(
                "--sharpness-images and --sharpness-draws must be at least 1 and --sharpness-rho at least 0, got "
                f"{self.sharpness_images}, {self.sharpness_draws} and {self.sharpness_rho}"
            )
        return self

    def stage_strides(self) -> tuple[int, ...]:
        """The stride of each MBConv stage's first layer: given, or 1 then 2 (the zoo's skeleton)."""
        if self.strides is not None:
            return tuple(self.strides)
        return tuple(1 if index == 0 else 2 for index in range(len(self.widths)))

    def _validate_stages(self) -> None:
        stages = len(self.widths)
        if stages < 1 or len(self.depths) != stages:
            raise SearchError(
                f"--widths and --depths need one entry per stage: got {len(self.widths)} widths and "
                f"{len(self.depths)} depths (e.g. --widths 8,16 --depths 1,1)"
            )
        strides = self.stage_strides()
        if len(strides) != stages:
            raise SearchError(
                f"--strides needs one entry per stage ({stages}), got {len(strides)}: "
                f"e.g. --strides {','.join(['1'] + ['2'] * (stages - 1))}"
            )
        if any(s not in (1, 2) for s in strides) or any(d < 1 for d in self.depths):
            raise SearchError(f"every stride must be 1 or 2 and every depth at least 1, got {strides} / {self.depths}")
        if list(self.widths) != sorted(self.widths) or self.widths[0] < self.stem_channels:
            raise SearchError(
                f"stage widths must not narrow (stem {self.stem_channels}, widths {tuple(self.widths)}): "
                "an MB block's shortcut can only keep or add channels"
            )

    @property
    def warmup(self) -> int:
        """Weight-only epochs at the start: given, or a quarter of the run."""
        return self.epochs // 4 if self.warmup_epochs is None else self.warmup_epochs

    def arch_lr_for(self, arch_steps: int) -> float:
        """The architecture learning rate: given, or the one whose total Adam travel equals DARTS's.

        Adam moves each logit by at most about ``lr`` per step, so DARTS's 50 epochs of 391 steps at
        3e-4 let a logit travel about 5.9. A run with fewer architecture steps gets a larger rate with
        the same travel (twice as large under the cosine schedule, whose mean factor is one half).
        """
        if self.arch_lr is not None:
            return self.arch_lr
        mean_factor = 0.5 if self.arch_schedule == "cosine" else 1.0
        matched = DARTS_ARCH_TRAVEL / (mean_factor * max(arch_steps, 1))
        return min(MAX_AUTO_ARCH_LR, max(DARTS_ARCH_LR, matched))

    def temperature_at(self, epoch: int) -> float:
        """The softmax temperature at ``epoch``: constant, or geometric from ``temperature`` to the final one."""
        if self.final_temperature is None or epoch < self.warmup:
            return self.temperature
        span = max(self.epochs - 1 - self.warmup, 1)
        progress = min((epoch - self.warmup) / span, 1.0)
        return self.temperature * (self.final_temperature / self.temperature) ** progress

    def eps_at(self, epoch: int) -> tuple[float, float]:
        """eps_A and eps_W at ``epoch``: constant, or ramped linearly up to the full value."""
        factor = (epoch + 1) / self.epochs if self.ramp else 1.0
        return self.eps_a * factor, self.eps_w * factor

    def to_dict(self) -> dict:
        return asdict(self)
