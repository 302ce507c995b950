"""Reading trained weights back for training and evaluation: :mod:`bnnzoo.trained` is the one reader.

:func:`load_trained_weights` reads a model state dict (and what is known about it) from a training
checkpoint, a run's final weights, a plain safetensors file or a run folder; :func:`apply_weights`
loads one into a model after checking the genotype, and sets its binary mode.
"""

from bnnzoo.trained import TrainedWeights, apply_weights, canonical_text, genotype_name, load_trained_weights

__all__ = ["TrainedWeights", "apply_weights", "canonical_text", "genotype_name", "load_trained_weights"]
