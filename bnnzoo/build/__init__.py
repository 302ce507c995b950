"""Binary layers, blocks, cells and networks built from genotypes."""
