"""Tiny genotypes and a quickly trained model, shared by the tests."""

from __future__ import annotations

import torch

import bnnzoo

# Two small cells for bnas-space test genotypes: each op kind once, a pool and a conv in each cell.
TWO_CELLS = """
cell normal {
  node 2 = bin_conv_3x3(0) + none(1)
  node 3 = bin_dil_conv_3x3(1) + avg_pool_3x3(2)
  concat 2 3
}

cell reduction {
  node 2 = max_pool_3x3(0) + bin_conv_5x5(1)
  node 3 = none(2) + bin_conv_3x3(1)
  concat 2 3
}
"""


def genotype_text(name: str, space: str, body: str, *, input: str = "3x16x16", stem: str = "conv3x3 8") -> str:
    """A genotype file with the usual tiny header (10 classes, avgpool fc head) and ``body``."""
    return f"bnnzoo 1\nname {name}\nspace {space}\ninput {input}\nclasses 10\nstem {stem}\nhead avgpool fc\n{body}"


def trained(text: str, steps: int = 3, seed: int = 0, **kwargs) -> torch.nn.Module:
    """A tiny model after a few Adam steps on random data, so weights, BatchNorm statistics and
    thresholds have all moved; returned in eval mode."""
    torch.manual_seed(seed)
    model = bnnzoo.create_model(bnnzoo.parse(text), **kwargs)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    size = model.genotype.input_shape[1]
    for _ in range(steps):
        x = torch.randn(8, model.in_chans, size, size)
        y = torch.randint(0, model.num_classes, (8,))
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()
