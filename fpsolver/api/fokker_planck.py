"""The public model class: physics (:class:`~fpsolver.core.model.Model`) plus thin conveniences.

:class:`FokkerPlanck` *is* the frozen physics of
:class:`~fpsolver.core.model.Model`; it adds only calls that hand the work
to the numerics (``model.solve``, ``model.spectrum``, ...) and keeps the
model's discretisation (:attr:`FokkerPlanck.operator`), built once on first
use. The numerics themselves take a model or an operator and never import
this module.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from ..analysis.passage import committor, mean_first_passage_time
from ..analysis.spectrum import spectrum
from ..analysis.stationary import stationary
from ..core.model import Model
from ..core.protocol import is_time_dependent
from ..discrete.operator import Operator
from .meanfield import MeanFieldFokkerPlanck
from .protocol import TimeDependentFokkerPlanck
from .runs import solve

__all__ = ["FokkerPlanck", "without_operator"]

#: Where a model keeps its operator, and where the operator's copy of the
#: model keeps a weak reference to that operator.
_OPERATOR, _OWNER = "_operator", "_operator_owner"


def without_operator(model: Model, copy: bool = False) -> Model:
    """`model`'s physics without its cached operator (every field shared, not copied).

    Parameters
    ----------
    model : Model
    copy : bool
        Return a new instance even when `model` carries no operator.

    Returns
    -------
    Model
        `model` itself when it carries no operator and `copy` is False.
    """
    state = {k: v for k, v in vars(model).items() if k not in (_OPERATOR, _OWNER)}
    if len(state) == len(vars(model)) and not copy:
        return model
    light = object.__new__(type(model))
    vars(light).update(state)
    return light


class FokkerPlanck(Model):
    __doc__ = (Model.__doc__ or "").replace(
        "A Fokker–Planck model on a structured grid: the physics only.",
        "A Fokker–Planck model on a structured grid (its discretisation: :attr:`operator`).",
    )

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # Any part with a parameter named t (or a callable temperature): a protocol.
        parts = dict(zip(("grid", "energy", "temperature"), args), **kwargs)
        names = ("energy", "temperature", "mobility", "force")
        if parts.get("interaction") is not None or parts.get("local") is not None:
            return MeanFieldFokkerPlanck(*args, frozen_class=cls, **kwargs)  # E[p]
        if is_time_dependent(*(parts.get(k) for k in names)):
            return TimeDependentFokkerPlanck(*args, frozen_class=cls, **kwargs)
        return super().__new__(cls)

    @property
    def operator(self) -> Operator:
        """The discretised operator of this model (built once, on first use).

        The operator holds a copy of this model that shares every field
        (:func:`without_operator`) and refers back to the operator weakly,
        so a model and its operator form no reference cycle: dropping the
        model frees the operator's matrices at once, not at the next run of
        the garbage collector (which a loop over large models may not reach
        for many iterations).

        Examples
        --------
        >>> import fpsolver as fp
        >>> m = fp.FokkerPlanck(fp.Grid(x=(0, 1, 5)), energy=lambda x: 3 * x)
        >>> op = m.operator
        >>> op is m.operator, op.model.operator is op, op.model.energy is m.energy
        (True, True, True)
        """
        own = vars(self)
        op = own.get(_OPERATOR)
        if op is None and own.get(_OWNER) is not None:
            op = own[_OWNER]()  # the operator whose copy this is, if still alive
        if op is None:
            twin = without_operator(self, copy=True)
            op = Operator(twin)
            vars(twin)[_OWNER] = weakref.ref(op)
            own[_OPERATOR] = op  # the instance is frozen: set in its dict
        return op

    def __getstate__(self) -> dict[str, Any]:
        """The physics only: a pickled model leaves its operator behind."""
        return vars(without_operator(self))

    # -- derived quantities (read from the operator) -----------------------
    def generator(self):
        """The sparse generator L with dp/dt = L p (cells in C order).

        Returns
        -------
        scipy.sparse.csr_array
            Square matrix of size ``grid.size``; see :attr:`fpsolver.Operator.generator`.

        Examples
        --------
        >>> import fpsolver as fp
        >>> m = fp.FokkerPlanck(fp.Grid(x=(0, 1, 5)), energy=lambda x: 3 * x)
        >>> m.generator().shape
        (5, 5)
        """
        return self.operator.generator

    @property
    def reversible(self) -> bool:
        """True when the dynamics is a gradient flow (no force, no tilt across a wrap)."""
        return self.operator.reversible

    def log_equilibrium(self) -> np.ndarray:
        """ln q on the cells, computed with log-sum-exp (never overflows)."""
        return self.operator.log_equilibrium

    def log_partition(self) -> float:
        """ln Z_h = ln Σ V exp(−E/T) of the discrete Gibbs density.

        Examples
        --------
        >>> import numpy as np, fpsolver as fp
        >>> m = fp.FokkerPlanck(fp.Grid(x=(-8, 8, 400)), energy=lambda x: x**2 / 2)
        >>> bool(abs(m.log_partition() - 0.5 * np.log(2 * np.pi)) < 1e-4)
        True
        """
        return self.operator.log_partition

    @property
    def equilibrium_free_energy(self) -> float:
        """F_eq = −T ln Z_h, the free energy of the discrete Gibbs density."""
        return self.operator.equilibrium_free_energy

    def equilibrium(self):
        """The discrete Gibbs density q ∝ exp(−E/T), normalised so Σ V q = 1.

        For reversible models this is the exact null vector of the
        generator. With a force or a tilt use :meth:`stationary`.

        Returns
        -------
        xarray.DataArray

        Examples
        --------
        >>> import fpsolver as fp
        >>> g = fp.Grid(x=(-2.5, 2.5, 64))
        >>> q = fp.FokkerPlanck(g, energy=lambda x: (x**2 - 1)**2, temperature=0.5).equilibrium()
        >>> round(float((q * g.volumes).sum()), 12)
        1.0
        """
        return self.grid.data_array(
            np.exp(self.operator.log_equilibrium),
            "q",
            long_name="equilibrium density",
            units="1/volume",
        )

    def relative_entropy(self, p: Any) -> float:
        """KL(p‖q_h) = Σ V p ln(p/q_h) to the discrete Gibbs state."""
        return self.operator.relative_entropy(p)

    def current(self, p: Any):
        """Probability current of density `p`: the scheme's own face fluxes.

        Returns
        -------
        xarray.Dataset
            ``J_<axis>`` per axis, per unit face area, on that axis's faces
            (coordinate ``<axis>_face``); walls included on bounded axes.
        """
        return self.operator.current(p)

    # -- numerics (thin calls) ---------------------------------------------
    def solve(
        self, p0: Any, t_end: Any, dt: float | None = None, method: str | None = None, **kwargs: Any
    ):
        """Integrate from `p0` to `t_end`; see :func:`fpsolver.solve`."""
        return solve(self, p0, t_end, dt=dt, method=method, **kwargs)

    def stationary(self, **kwargs: Any):
        """Stationary density of the model; see :func:`fpsolver.stationary`."""
        return stationary(self, **kwargs)

    def spectrum(self, k: int = 6, **kwargs: Any):
        """Slowest relaxation rates and modes; see :func:`fpsolver.spectrum`."""
        return spectrum(self, k, **kwargs)

    def mean_first_passage_time(self, target: Any = None):
        """Mean first-passage time to `target`; see :func:`fpsolver.mean_first_passage_time`."""
        return mean_first_passage_time(self, target)

    def committor(self, a: Any, b: Any):
        """Committor between sets `a` and `b`; see :func:`fpsolver.committor`."""
        return committor(self, a, b)
