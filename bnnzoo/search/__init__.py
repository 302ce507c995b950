"""Differentiable binary NAS with bimodal (architecture and weight) parameter perturbation."""

from bnnzoo.search.config import SearchConfig
from bnnzoo.search.engine import SearchResult, run_search

__all__ = ["SearchConfig", "SearchResult", "run_search"]
