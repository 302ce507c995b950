"""Evaluate a classifier: top-1, top-5, mean cross-entropy and throughput on a dataset or loader.

``evaluate`` works for any model that maps ``(N, C, H, W)`` images to ``(N, classes)`` logits. The
model is put in eval mode for the pass (BatchNorm uses its running statistics) and restored to its
previous mode afterwards. Under ``torchrun`` pass ``dist_info`` and a loader over this process's
shard: the sums are added over all processes, so every process gets the global numbers.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from bnnzoo._distributed import DistInfo, all_reduce_sum
from bnnzoo._progress import progress_bar
from bnnzoo.errors import DataError
from bnnzoo.train.data import make_loader

__all__ = ["evaluate"]


def evaluate(
    model: nn.Module,
    data: Dataset[Any] | DataLoader[Any],
    device: str | torch.device = "cpu",
    *,
    batch_size: int = 256,
    num_workers: int = 0,
    limit: int | None = None,
    amp_dtype: torch.dtype | None = None,
    dist_info: DistInfo | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Evaluate ``model`` on ``data`` (a Dataset, read in order, or a ready DataLoader).

    Returns ``{"top1", "top5", "loss", "images_per_second", "samples"}``: accuracies as fractions in
    [0, 1] (top-5 is top-k with k = min(5, classes)), the mean cross-entropy, images per second of
    wall time for the whole pass (data loading included) and the number of images seen.
    ``limit`` keeps the first N images of a Dataset. ``amp_dtype`` runs the forward pass under
    autocast (CUDA only). ``progress`` shows a progress bar on stderr.
    """
    device = torch.device(device)
    if isinstance(data, DataLoader):
        if limit is not None:
            raise DataError("limit applies to a Dataset; pass a smaller loader instead")
        loader = data
    else:
        if limit is not None:
            if limit < 0:
                raise DataError(f"limit must be zero or more, got {limit}")
            data = Subset(data, range(min(limit, len(data))))  # type: ignore[arg-type]
        loader = make_loader(data, batch_size, shuffle=False, num_workers=num_workers)
    was_training = model.training
    model.eval()
    # loss sum, top-1 hits, top-5 hits, samples
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    start = time.perf_counter()
    bar = progress_bar(progress, total=len(loader), desc="eval", unit="batch")
    try:
        with torch.no_grad():
            for images, labels in loader:
                images = images.to(device, non_blocking=True)
                labels = labels.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                    logits = model(images)
                logits = logits.float()
                k = min(5, logits.shape[1])
                hits = logits.topk(k, dim=1).indices.eq(labels[:, None])
                sums[0] += F.cross_entropy(logits, labels, reduction="sum").double()
                sums[1] += hits[:, 0].sum()
                sums[2] += hits.any(dim=1).sum()
                sums[3] += labels.shape[0]
                bar.update()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    finally:
        bar.close()
        model.train(was_training)
    elapsed = time.perf_counter() - start
    if dist_info is not None:
        sums = all_reduce_sum(sums, dist_info)
    loss_sum, top1, top5, samples = sums.tolist()
    if samples == 0:
        raise DataError("nothing to evaluate: the dataset is empty")
    return {
        "top1": top1 / samples,
        "top5": top5 / samples,
        "loss": loss_sum / samples,
        "images_per_second": samples / max(elapsed, 1e-9),
        "samples": int(samples),
    }
