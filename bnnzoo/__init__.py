"""bnnzoo."""
