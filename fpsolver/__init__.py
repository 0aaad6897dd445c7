"""fpsolver: Fokker–Planck equations on structured grids, solved exactly right.

    ∂p/∂t = ∇·( K p ∇(T ln p + E) )

Scharfetter–Gummel finite volumes (exact Gibbs state, mass, positivity,
free-energy decay), implicit time stepping, and a particle backend that
checks the grid solution.

The package is layered; each layer imports only the layers below it
(see the architecture page of the docs):

``core``        grid, boundary, model (frozen physics), initial densities,
                save schedule, pure diagnostics and analytic solutions
``discrete``    the operator: Scharfetter–Gummel links, generator, symmetric
                form, null vectors, linear solvers
``integrate`` · ``analysis`` · ``sampling``
                time steppers, trackers and the loop · stationary, spectrum,
                passage, Lyapunov · particles and comparison
``io``          results and checkpoints on disk
``api``         :class:`FokkerPlanck` conveniences and :func:`solve`
``plotting`` · ``cli``
                figures (matplotlib, imported when drawing) · command line
"""

from . import plotting  # registers the ``ds.fp`` accessor; matplotlib loads on first plot
from ._compat import install_aliases
from ._version import __version__
from .analysis import hopfield
from .analysis.learning import ParametricEnergy
from .analysis.lyapunov import lyapunov
from .analysis.passage import committor, mean_first_passage_time
from .analysis.spectrum import spectrum
from .analysis.stationary import stationary
from .api.ensembles import simulate_particles, simulate_particles_distributed
from .api.fokker_planck import FokkerPlanck
from .api.latent import Conditional, condition
from .api.learning import LearningDiverged, recall_and_learn
from .api.meanfield import MeanFieldFokkerPlanck
from .api.protocol import TimeDependentFokkerPlanck
from .api.runs import solve
from .api.sweeps import sweep
from .core.grid import Grid
from .core.initial import as_density, gaussian, point_mass
from .core.model import Model
from .core.protocol import ProtocolError
from .core.schedule import SaveSchedule
from .discrete.operator import Operator, discretize
from .integrate.meanfield import MEANFIELD_METHODS, MeanFieldConvergenceError
from .integrate.steppers import METHODS
from .integrate.trackers import Tracker
from .io import open_result, save_result
from .sampling.compare import compare
from .sampling.fluctuation import crooks, jarzynski

__all__ = [
    "__version__",
    "Grid",
    "Model",
    "FokkerPlanck",
    "Operator",
    "discretize",
    "gaussian",
    "point_mass",
    "as_density",
    "solve",
    "METHODS",
    "SaveSchedule",
    "Tracker",
    "open_result",
    "save_result",
    "simulate_particles",
    "compare",
    "stationary",
    "spectrum",
    "mean_first_passage_time",
    "committor",
    "lyapunov",
    "condition",
    "Conditional",
    "recall_and_learn",
    "LearningDiverged",
    "ParametricEnergy",
    "hopfield",
    "sweep",
    "simulate_particles_distributed",
    "plotting",
    "TimeDependentFokkerPlanck",
    "MeanFieldFokkerPlanck",
    "MeanFieldConvergenceError",
    "MEANFIELD_METHODS",
    "ProtocolError",
    "jarzynski",
    "crooks",
]

install_aliases()
