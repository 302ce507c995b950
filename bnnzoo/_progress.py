"""Progress bars: tqdm on stderr, gone once done, and a no-op bar when disabled."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(
    enabled: bool, total: int | None = None, desc: str | None = None, unit: str = "it", initial: int = 0
) -> Any:
    """A tqdm bar (``update``, ``close``, a context manager) starting at ``initial``; does nothing
    unless ``enabled``."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        initial=initial,
        disable=not enabled,
        leave=False,
        dynamic_ncols=True,
        file=sys.stderr,
    )
