"""fpsolver: Fokker–Planck equations on structured grids, solved exactly right.

    ∂p/∂t = ∇·( K p ∇(T ln p + E) )

Scharfetter–Gummel finite volumes (exact Gibbs state, mass, positivity,
free-energy decay), implicit time stepping, and a particle backend that
checks the grid solution.
"""

from ._version import __version__
from .compare import compare
from .grid import Grid
from .initial import as_density, gaussian
from .io import open_result, save_result
from .lyapunov import lyapunov
from .model import FokkerPlanck
from .particles import simulate_particles
from .passage import committor, mean_first_passage_time
from .solve import solve
from .spectral import spectrum
from .stationary import stationary
from .steppers import METHODS

__all__ = [
    "__version__",
    "Grid",
    "FokkerPlanck",
    "gaussian",
    "as_density",
    "solve",
    "METHODS",
    "open_result",
    "save_result",
    "simulate_particles",
    "compare",
    "stationary",
    "spectrum",
    "mean_first_passage_time",
    "committor",
    "lyapunov",
]


def __getattr__(name: str):
    """``fp.plotting`` on first use, so ``import fpsolver`` stays free of matplotlib."""
    if name == "plotting":
        import importlib

        return importlib.import_module(".plotting", __name__)
    raise AttributeError(f"module 'fpsolver' has no attribute {name!r}")
