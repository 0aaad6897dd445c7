"""fpsolver: Fokker–Planck equations on structured grids, solved exactly right.

    ∂p/∂t = ∇·( K p ∇(T ln p + E) )

Scharfetter–Gummel finite volumes (exact Gibbs state, mass, positivity,
free-energy decay), implicit time stepping, and a particle backend that
checks the grid solution.
"""

from ._version import __version__
from .grid import Grid
from .initial import as_density, gaussian
from .model import FokkerPlanck

__all__ = ["__version__", "Grid", "FokkerPlanck", "gaussian", "as_density"]
