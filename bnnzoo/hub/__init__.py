"""Publishing to and loading from the Hugging Face Hub (see docs/hub.md).

* :func:`stage_repo` writes a repository folder: timm's ``config.json`` (architecture
  ``bnnzoo_genotype``, the genotype text in ``model_args``), ``model.safetensors``, the ``.bnn``
  genotype, a diagram and a model card;
* :func:`upload_repo` uploads it;
* :func:`create_from_hub` / :func:`load_pretrained` load ``hf-hub:ORG/NAME`` or a folder through timm,
  with :class:`~bnnzoo.errors.HubError` / :class:`~bnnzoo.errors.WeightsError` /
  :class:`~bnnzoo.errors.GenotypeError` instead of raw exceptions.
"""

from bnnzoo.hub.card import model_card, top1_of, top5_of
from bnnzoo.hub.checkpoint import TrainedState, model_from_checkpoint, read_checkpoint
from bnnzoo.hub.load import HubSource, create_from_hub, load_pretrained, read_config
from bnnzoo.hub.stage import hub_config, stage_repo
from bnnzoo.hub.upload import upload_repo

__all__ = [
    "HubSource",
    "TrainedState",
    "create_from_hub",
    "hub_config",
    "load_pretrained",
    "model_card",
    "model_from_checkpoint",
    "read_checkpoint",
    "read_config",
    "stage_repo",
    "top1_of",
    "top5_of",
    "upload_repo",
]
