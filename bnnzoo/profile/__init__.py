"""Op counts as the paper's Table 3 counts them, the published figures, and genotype fitting."""

from bnnzoo.profile.counter import LayerCount, Profile, memory_mb, profile, profile_module
from bnnzoo.profile.published import PublishedRow, published_row, table3

__all__ = [
    "LayerCount",
    "Profile",
    "PublishedRow",
    "memory_mb",
    "profile",
    "profile_module",
    "published_row",
    "table3",
]
