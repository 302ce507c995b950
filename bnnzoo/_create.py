"""``bnnzoo.create_model``: a published repository through :mod:`bnnzoo.hub`, anything else through the zoo.

The dispatch lives here, above both, so that the zoo never imports the hub (docs/architecture.md).
"""

from __future__ import annotations

import os
from typing import Any

from bnnzoo.dsl.types import Genotype
from bnnzoo.hub.load import create_from_hub
from bnnzoo.zoo import HUB_PREFIXES
from bnnzoo.zoo import create_model as create_zoo_model

__all__ = ["create_model"]


def create_model(model: str | os.PathLike | Genotype, pretrained: bool = False, **kwargs: Any):
    """Build a zoo model by name (``"mbconv_a"``, ``"mbconv_a.fashion_mnist"``), a ``.bnn`` path,
    a :class:`Genotype`, or a published repo (``"hf-hub:ORG/NAME"``, ``"local-dir:PATH"``)."""
    if isinstance(model, str) and model.startswith(HUB_PREFIXES):
        return create_from_hub(model, pretrained=pretrained, **kwargs)
    return create_zoo_model(model, pretrained=pretrained, **kwargs)
