"""What each search space allows: the one place the DSL, builder and search agree on.

- ``mbconv``: layer lists of binary MBConv blocks ``MB k (e)`` (binary k x k group conv, g = 2,
  expansion ratio e) and ``skip``; reduction blocks use the AvgPool shortcut of the supplement's
  Sec. 1, filled up by ``shortcut``.
- ``resnet``: layer lists of binary basic blocks (XNOR-Net and Bi-Real ResNet-18 baselines), each
  with a binary or real 1x1 downsample shortcut.
- ``bnas``: DARTS-style cells over the BNAS op set (Kim et al., ECCV 2020), no skip_connect.
"""

from __future__ import annotations

SPACES = ("mbconv", "resnet", "bnas")
LAYER_LIST_SPACES = ("mbconv", "resnet")

MBCONV_KERNELS = (3, 5, 7)
MBCONV_MAX_EXPANSION = 8
MBCONV_GROUPS = 2

BASIC_DOWNSAMPLES = ("binary", "real")
SHORTCUT_KINDS = ("partial_duplicate", "zero", "global_average")
DEFAULT_SHORTCUT = "partial_duplicate"

BNAS_OPS = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "bin_conv_3x3",
    "bin_conv_5x5",
    "bin_dil_conv_3x3",
    "bin_dil_conv_5x5",
)
BNAS_POOL_OPS = ("max_pool_3x3", "avg_pool_3x3")
CELL_KINDS = ("normal", "reduction")
CELL_INPUTS = 2  # c_{k-2} and c_{k-1}, numbered 0 and 1; intermediate nodes start at 2


def reduced_size(size: int) -> int:
    """A height or width after a stride-2 reduction, ceil(size / 2): what every strided op gives."""
    return -(-size // 2)


STEM_KINDS = ("conv3x3", "conv5x5", "conv7x7")
HEAD_POOLS = ("avgpool", "maxpool")
HEAD_CLASSIFIERS = ("fc",)

# Bounds that keep a downloaded file from making the builder allocate gigabytes.
MAX_CHANNELS = 4096
MAX_INPUT_CHANNELS = 64
MAX_INPUT_SIZE = 1024
MAX_CLASSES = 100_000
MAX_REPEAT = 64
MAX_LAYERS = 256
MAX_CELL_LAYERS = 100
MAX_CELL_NODES = 8
MAX_EDGES_PER_NODE = 8
MAX_PARAMETERS = 200_000_000  # parameters and buffers, as bounded by dsl.validate.estimate_parameters
MAX_ACTIVATIONS = 2**26  # values in one feature map of one image (256 MB in float32)

# The searchable MBConv space, shared by `bnnzoo search --space mbconv` and the fitting tool that
# reconstructed the zoo's MBConv models: per layer, MB k (e) for these kernels and expansions, or
# skip (not on the first layer of a stage, which changes the shape); a real 3x3 stem; stages of
# fixed depth whose first layer carries the stride; widths never narrow.
MBCONV_SEARCH_KERNELS = (3, 5)
MBCONV_SEARCH_EXPANSIONS = (1, 2, 3, 4, 6)
MBCONV_STAGE_DEPTHS = (2, 3, 4, 4)
MBCONV_STAGE_STRIDES = (1, 2, 2, 2)
