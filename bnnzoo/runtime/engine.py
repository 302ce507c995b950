"""The runtime objects: :class:`Body` runs a compiled body natively; :class:`Runtime` adds the torch stem and head."""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from bnnzoo.build.network import BinaryNet
from bnnzoo.errors import ModelError
from bnnzoo.runtime import _native
from bnnzoo.runtime.compile import CompiledPlan, Layers, plan_body

MAX_PLANS = 8  # input sizes kept planned per body
MAX_WORKSPACE = 16 << 30


@dataclass(frozen=True)
class OpTime:
    """One op of a profile: what it is, its binary or real MACs per image, and its seconds per image."""

    label: str
    macs: int
    seconds: float


def _check_threads(value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096):
        raise ModelError(f"threads must be an integer from 1 to 4096 (or None for torch's), got {value!r}")
    return value


class Body:
    """A body module (a block, a layer list, cells) compiled for the native engine; runs NHWC float32 images.

    Its layers are folded on the first plan; plans for further input sizes reuse them. After
    :meth:`release`, the module's own weights are gone and only the folded ones remain.
    """

    def __init__(self, module: nn.Module, isa: str | None = None, names: dict[nn.Module, str] | None = None) -> None:
        self._engine = _native.engine()
        self.isa = _native.resolve_isa(isa)
        self.module = module.eval()
        self.layers = Layers(names or {m: n for n, m in module.named_modules()})
        self._plans: OrderedDict[tuple[int, int, int], tuple[CompiledPlan, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._workspace = np.zeros(0, dtype=np.uint8)

    @property
    def weight_bytes(self) -> int:
        return self.layers.blobs.nbytes

    def release(self) -> None:
        """Drop the module's float weights (every layer must be folded already)."""
        self.module.to_empty(device="meta")

    def plan(self, shape: tuple[int, int, int]) -> tuple[CompiledPlan, Any]:
        """The validated plan and its native counterpart for images of ``shape`` (H, W, C)."""
        if shape not in self._plans:
            compiled = plan_body(self.layers, self.module, shape)
            blobs, limits = self.layers.blobs, compiled.limits
            native = self._engine.Plan(
                compiled.table,
                blobs.weights,
                blobs.params,
                limits.arena,
                limits.scratch,
                limits.in_bytes,
                limits.out_bytes,
                self.isa,
            )
            self._plans[shape] = (compiled, native)
            if len(self._plans) > MAX_PLANS:
                self._plans.popitem(last=False)
        self._plans.move_to_end(shape)
        return self._plans[shape]

    def run(self, images: torch.Tensor, threads: int, times: np.ndarray | None = None) -> torch.Tensor:
        """``(N, H, W, C)`` float32 images in, ``(N, Ho, Wo, Co)`` out; ``times`` (per op) forces one thread."""
        n = images.shape[0]
        plan, native = self.plan(tuple(images.shape[1:]))
        images = images.detach().to("cpu", torch.float32).contiguous()
        out = torch.empty((n, *plan.out_shape), dtype=torch.float32)
        threads = 1 if times is not None else threads
        need = threads * (plan.limits.arena + plan.limits.scratch)
        if need > MAX_WORKSPACE:
            raise ModelError(f"images of {tuple(images.shape[1:3])} need {need / 2**30:.1f} GiB of runtime workspace")
        with self._lock:
            native.run(images.numpy(), out.numpy(), n, self._workspace_of(need), threads, times)
        return out

    def run_nchw(self, images: torch.Tensor, threads: int = 1) -> torch.Tensor:
        """:meth:`run` on NCHW images; the result is NCHW too (a view of NHWC memory)."""
        return self.run(images.permute(0, 2, 3, 1), threads).permute(0, 3, 1, 2)

    def _workspace_of(self, size: int) -> np.ndarray:
        if self._workspace.size < size:
            raw = np.zeros(size + 64, dtype=np.uint8)
            start = -raw.ctypes.data % 64
            self._workspace = raw[start : start + size]
        return self._workspace


class Runtime:
    """A bnnzoo model compiled for the CPU: call it on ``(N, C, H, W)`` images to get ``(N, classes)`` logits.

    Takes a torch tensor (returns a tensor) or a numpy array (returns an array). ``threads`` is the
    native engine's thread count (``None``: torch's ``get_num_threads()`` at each call); the stem and
    the head run in torch with torch's own setting. Made by :func:`bnnzoo.runtime.load`.
    """

    def __init__(self, model: BinaryNet, *, isa: str | None = None, threads: int | None = None) -> None:
        """Compile ``model``, which this takes over: its body's float weights are released once folded."""
        if not isinstance(model, BinaryNet):
            raise ModelError(f"the runtime runs bnnzoo BinaryNet models, got {type(model).__name__}")
        model.eval()
        self.threads = threads
        self.genotype = model.genotype
        self.in_chans = model.in_chans
        self.num_classes = model.num_classes
        self._stem = model.stem
        self._head = nn.Sequential(model.global_pool, model.head_drop, model.fc)
        self._body = Body(model.body, isa, {module: name for name, module in model.named_modules()})
        self.isa = self._body.isa
        _, height, width = self.genotype.input_shape
        with torch.no_grad():
            stem_out = self._stem(torch.zeros(1, self.in_chans, height, width))
        self._body.plan((stem_out.shape[2], stem_out.shape[3], stem_out.shape[1]))  # folds every layer
        self._body.release()

    @property
    def threads(self) -> int | None:
        return self._threads

    @threads.setter
    def threads(self, value: int | None) -> None:
        self._threads = _check_threads(value)

    @property
    def weight_bytes(self) -> int:
        """Resident weights: the folded binary panels and epilogues, plus the stem and head in float32."""
        tensors = [*self._stem.parameters(), *self._stem.buffers(), *self._head.parameters(), *self._head.buffers()]
        return self._body.weight_bytes + sum(t.numel() * t.element_size() for t in tensors)

    def __call__(self, images: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        as_numpy = isinstance(images, np.ndarray)
        x = self._check(images)
        with torch.no_grad():
            stem = self._stem(x).permute(0, 2, 3, 1)
            features = self._body.run(stem, self._threads or torch.get_num_threads())
            # NCHW-contiguous, as in the float model, so that torch pools in the same order
            logits = self._head(features.permute(0, 3, 1, 2).contiguous())
        return logits.numpy() if as_numpy else logits

    def profile(self, images: torch.Tensor | np.ndarray, repeats: int = 1) -> list[OpTime]:
        """Run the body ``repeats`` times on one thread, op by op: each op's median seconds per image."""
        x = self._check(images)
        with torch.no_grad():
            stem = self._stem(x).permute(0, 2, 3, 1)
        plan, _ = self._body.plan(tuple(stem.shape[1:]))
        times = np.zeros((max(1, repeats), len(plan.ops)))
        for row in times:
            self._body.run(stem, 1, row)
        seconds = np.median(times, axis=0) / max(1, x.shape[0])
        return [OpTime(op.label, op.macs, float(t)) for op, t in zip(plan.ops, seconds)]

    def ops(self, height: int, width: int) -> list:
        """The plan's ops for ``height`` x ``width`` images (what :meth:`profile` times, in order)."""
        with torch.no_grad():
            stem = self._stem(torch.zeros(1, self.in_chans, height, width))
        return self._body.plan((stem.shape[2], stem.shape[3], stem.shape[1]))[0].ops

    def _check(self, images: Any) -> torch.Tensor:
        if isinstance(images, np.ndarray):
            if images.dtype.kind not in "fiu":
                raise ModelError(f"the runtime takes real-valued images, got a numpy array of {images.dtype}")
            images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        if not isinstance(images, torch.Tensor):
            raise ModelError(f"the runtime takes a torch.Tensor or numpy.ndarray, got {type(images).__name__}")
        if images.dim() != 4 or images.shape[1] != self.in_chans:
            raise ModelError(f"the runtime takes images of shape (N, {self.in_chans}, H, W), got {tuple(images.shape)}")
        if images.is_complex():
            raise ModelError("the runtime takes real-valued images, got a complex tensor")
        return images.detach().to("cpu", torch.float32)

    def __repr__(self) -> str:
        return (
            f"Runtime({self.genotype.name}, isa={self.isa}, threads={self._threads or 'torch'}, "
            f"weights={self.weight_bytes / 1e6:.2f} MB)"
        )


def compile_model(model: BinaryNet, *, isa: str | None = None, threads: int | None = None) -> Runtime:
    """A runtime for an in-memory model (compiled from a copy: ``model`` itself is left as it is)."""
    return Runtime(copy.deepcopy(model).cpu(), isa=isa, threads=threads)
