"""Training: data, the two-step BNN recipe (config, optim, weights, recipe) and evaluation."""
