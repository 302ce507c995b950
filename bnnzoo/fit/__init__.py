"""Fit genotypes to published op counts: a budget-constrained search driven by the profiler.

The paper's searched genotypes exist only as figures we do not have, so the zoo's searched models
are reconstructed by searching a documented space for a genotype whose BOPs, FLOPs, Equiv. Ops and
Params land on the published figures. The cost of every candidate block, cell op and fixed part is
measured by the profiler on the modules the builder makes (:mod:`bnnzoo.profile.candidates`, the
cost model the search's resource penalty uses too), so no second formula exists.

Modules: :mod:`~bnnzoo.fit.anneal` (objective, annealer), :mod:`~bnnzoo.fit.spaces` (the two spaces and
their fitters), :mod:`~bnnzoo.fit.published` (the Table 3 driver). Two spaces (see docs/reconstruction.md):

* :class:`MBConvSpace`: a real stem, four resolution stages with a fixed depth each, every layer a
  binary ``MB k (e)`` block or ``skip`` (not the first layer of a stage, which changes the shape);
  stage widths from a grid, never narrowing.
* :class:`CellSpace`: the BNAS template with fixed macro settings; each cell has 4 nodes with 2
  edges over the BNAS op set.

The objective is the largest relative error over the four figures plus small preference terms
that encode the supplement's qualitative findings (Sec. 3-4).
"""

from bnnzoo.fit.anneal import FIGURES, FitResult, anneal, relative_errors, worst_error
from bnnzoo.fit.published import CELL_MACROS, fit_published, reconstruction_comments
from bnnzoo.fit.spaces import CellCandidate, CellFitter, CellSpace, MBConvCandidate, MBConvFitter, MBConvSpace

__all__ = [
    "CELL_MACROS",
    "FIGURES",
    "CellCandidate",
    "CellFitter",
    "CellSpace",
    "FitResult",
    "MBConvCandidate",
    "MBConvFitter",
    "MBConvSpace",
    "anneal",
    "fit_published",
    "reconstruction_comments",
    "relative_errors",
    "worst_error",
]
