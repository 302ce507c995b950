"""bnnzoo: searched binary neural networks as a model zoo.

Genotypes are text in a small DSL (``bnnzoo.parse``), built into timm-compatible binary PyTorch
models (``bnnzoo.create_model``), profiled as the paper counts ops (``bnnzoo.profile``), drawn,
searched, trained and published. Importing bnnzoo registers the zoo with timm.

The names below load on first use, so ``import bnnzoo`` (and the light CLI commands) start
without torch; registration with timm happens when timm itself is imported (see ``_lazy``).
"""

from bnnzoo._lazy import lazy_attributes, register_zoo_with_timm

__version__ = "0.1.0"

_PUBLIC = {
    "BnnzooError": "bnnzoo.errors",
    "Genotype": "bnnzoo.dsl.types",
    "GenotypeError": "bnnzoo.errors",
    "check": "bnnzoo.dsl",
    "create_model": "bnnzoo._create",
    "dump": "bnnzoo.dsl",
    "list_models": "bnnzoo.zoo",
    "load_genotype": "bnnzoo.dsl",
    "parse": "bnnzoo.dsl",
    "to_text": "bnnzoo.dsl",
}

__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_attributes(__name__, _PUBLIC)
register_zoo_with_timm()
