"""The settings of one search run, validated up front."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from bnnzoo.dsl.spaces import MBCONV_SEARCH_EXPANSIONS, MBCONV_SEARCH_KERNELS
from bnnzoo.errors import SearchError

SEARCH_SPACES = ("mbconv", "bnas")


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
    # MBConv skeleton (mbconv space)
    widths: tuple[int, ...] = (16, 24, 32, 64)
    depths: tuple[int, ...] = (1, 2, 2, 2)
    stem_channels: int = 16
    kernels: tuple[int, ...] = MBCONV_SEARCH_KERNELS
    expansions: tuple[int, ...] = MBCONV_SEARCH_EXPANSIONS
    # optimisation
    weight_optimizer: str = "sgd"
    weight_lr: float = 0.025
    weight_lr_min: float = 0.001
    weight_momentum: float = 0.9
    weight_decay: float = 3e-4
    arch_lr: float = 3e-4
    arch_weight_decay: float = 1e-3
    grad_clip: float = 5.0
    # bimodal perturbation
    eps_a: float = 0.0
    eps_w: float = 0.0
    ramp: bool = False  # ramp eps linearly from 0 over the epochs
    # resource-aware search
    target_ops: float | None = None
    target_weight: float = 1.0
    # running
    seed: int = 0
    device: str = "cpu"
    amp: bool = False
    num_workers: int = 0
    progress: bool = True
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
        if self.target_ops is not None and self.target_ops <= 0:
            raise SearchError("--target-ops must be positive")
        return self

    def eps_at(self, epoch: int) -> tuple[float, float]:
        """eps_A and eps_W at ``epoch``: constant, or ramped linearly up to the full value."""
        factor = (epoch + 1) / self.epochs if self.ramp else 1.0
        return self.eps_a * factor, self.eps_w * factor

    def to_dict(self) -> dict:
        return asdict(self)
