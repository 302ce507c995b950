"""bnnzoo: searched binary neural networks as a model zoo.

Genotypes are text in a small DSL (``bnnzoo.parse``), built into timm-compatible binary PyTorch
models (``bnnzoo.create_model``), profiled as the paper counts ops (``bnnzoo.profile``), drawn,
searched, trained and published. Importing bnnzoo registers the zoo with timm.
"""

from bnnzoo.dsl import check, dump, load_genotype, parse, to_text
from bnnzoo.dsl.types import Genotype
from bnnzoo.errors import BnnzooError, GenotypeError
from bnnzoo.zoo import create_model, list_models

__version__ = "0.1.0"

__all__ = [
    "BnnzooError",
    "Genotype",
    "GenotypeError",
    "check",
    "create_model",
    "dump",
    "list_models",
    "load_genotype",
    "parse",
    "to_text",
]
