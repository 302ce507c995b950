"""Differentiable binary NAS with bimodal (architecture and weight) parameter perturbation.

The names below load on first use, so that reading a :class:`SearchConfig` needs no torch.
"""

from bnnzoo._lazy import lazy_attributes

_PUBLIC = {
    "SearchConfig": "bnnzoo.search.config",
    "SearchResult": "bnnzoo.search.engine",
    "run_search": "bnnzoo.search.engine",
}

__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_attributes(__name__, _PUBLIC)
