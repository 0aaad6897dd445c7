r"""The discretised operator: everything derived from a model on its grid.

:func:`discretize` turns a :class:`~fpsolver.core.model.Model` (frozen
physics) into an :class:`Operator`, which owns every derived quantity as a
named cached property:

=============================  ==============================================
``links``, ``walls``           Scharfetter–Gummel link weights and potential
                               differences (:mod:`fpsolver.discrete.sg`)
``generator``                  L, with dp/dt = L p (cells in C order)
``reversible``                 whether the links derive from cell potentials
``log_equilibrium``            ln q of the discrete Gibbs density, Σ V q = 1
``log_partition``              ln Z_h = ln Σ V exp(−E/T)
``equilibrium_free_energy``    F_eq = −T ln Z_h
``symmetrizer``                ln d, d = sqrt(V/q), with S = D L D⁻¹ symmetric
``symmetric``                  S (reversible models only)
``backward``                   L* = V⁻¹ Lᵀ V, acting on functions (L* 1 = 0)
``stationary_density``         p_ss: the Gibbs density when reversible, the
                               null vector of L otherwise (no absorbing walls)
``separable``                  the one-axis factors L_a with L = ⊕_a L_a, or
                               None (:mod:`fpsolver.discrete.separable`)
=============================  ==============================================

Nothing else writes these: the numerics (steppers, linear solvers,
stationary, spectrum, passage, particles) read them from the operator.
Models are immutable, so an operator never goes stale.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..core import diagnostics as dg
from ..core.grid import cell_array
from ..core.model import Model
from . import antisymmetric, selling, sg
from .nullspace import null_vector
from .separable import SeparableGenerator, factorize

__all__ = ["Model", "Operator", "discretize", "as_operator"]


class Operator:
    """The discretisation of one model on its grid (see the module notes).

    Build it with :func:`discretize`. Every property is computed on first
    use and then kept; the model is immutable, so none goes stale.

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> g = fp.Grid(x=(-3, 3, 40))
    >>> op = fp.discretize(fp.FokkerPlanck(g, energy=lambda x: x**2 / 2))
    >>> L = op.generator
    >>> float(abs(g.volumes @ L).max()) < 1e-13, op.reversible
    (True, True)
    >>> bool(np.abs(L @ np.exp(op.log_equilibrium).ravel()).max() < 1e-12)
    True
    """

    def __init__(self, model: Model) -> None:
        if not isinstance(model, Model):
            raise TypeError(f"`model` must be an fpsolver.FokkerPlanck, got {type(model).__name__}")
        self.model = model
        self.grid = model.grid
        self.temperature = model.temperature

    def __repr__(self) -> str:
        return f"Operator({self.model!r})"

    # -- links and matrices ------------------------------------------------
    @cached_property
    def links(self) -> tuple[sg.AxisLinks, ...]:
        """The links along every axis, or along Selling offsets for a tensor mobility."""
        if self.model.is_tensor:
            return selling.tensor_links(self.model)
        return sg.all_links(self.model)

    @cached_property
    def walls(self) -> tuple[Any, ...]:
        """``(axis, side, cells, weight, delta)`` of each absorbing wall."""
        return sg.absorbing_walls(self.model)

    @cached_property
    def generator(self) -> sp.csr_array:
        """The sparse generator L with dp/dt = L p (cells in C order)."""
        faces = self.antisymmetric_faces
        if faces is None:
            return sg.generator_matrix(self.grid.volumes, self.links, self.walls)
        # A's face fluxes act as extra rates on the unit-offset links: one link set.
        groups = antisymmetric.merged_rates(self.links, faces)
        return sg.rate_matrix(self.grid.volumes, groups, self.walls)

    @cached_property
    def antisymmetric_faces(self) -> list[dict] | None:
        """Face coefficients of the mobility's antisymmetric part, or None without one.

        See :mod:`fpsolver.discrete.antisymmetric`.
        """
        if not self.model.has_antisymmetric:
            return None
        if not self.gibbs_stationary:
            raise ValueError(
                "a mobility with an antisymmetric part needs an energy whose Gibbs density "
                "is defined on the grid: no force, no tilt across a periodic wrap"
            )
        return antisymmetric.face_coefficients(self.model, self.log_equilibrium, self.links)

    @cached_property
    def gibbs_stationary(self) -> bool:
        """True when the Gibbs density exp(−E/T)/Z is stationary: no force, no tilt.

        Also true with an antisymmetric mobility, which is not reversible.
        """
        if self.model.is_tensor:
            return selling.links_reversible(self.model, self.links)
        if not self.model.has_force and not any(self.grid.periodic):
            return True  # no wrap to carry a tilt: no links needed (the separable path has none)
        return sg.links_reversible(self.model, self.links)

    @cached_property
    def reversible(self) -> bool:
        """True when the dynamics is a gradient flow (no force, no tilt, symmetric K)."""
        return self.gibbs_stationary and not self.model.has_antisymmetric

    @cached_property
    def absorbing(self) -> bool:
        """True when a wall absorbs (mass leaves; no stationary density)."""
        return self.model.boundary.absorbing

    @cached_property
    def log_equilibrium(self) -> np.ndarray:
        """ln q on the cells (grid shape), by log-sum-exp: never overflows."""
        return _frozen(dg.log_gibbs(self.model.energy, self.temperature, self.grid.volumes))

    @cached_property
    def log_partition(self) -> float:
        """ln Z_h = ln Σ V exp(−E/T), overflow-free."""
        return dg.log_partition(self.model.energy, self.temperature, self.grid.volumes)

    @cached_property
    def equilibrium_free_energy(self) -> float:
        """F_eq = −T ln Z_h, the free energy of the discrete Gibbs density."""
        return -self.temperature * self.log_partition

    @cached_property
    def symmetrizer(self) -> np.ndarray:
        """ln of the diagonal scaling d = sqrt(V/q) (flat), with S = D L D⁻¹ symmetric."""
        return _frozen(0.5 * (np.log(self.grid.volumes) - self.log_equilibrium).ravel())

    @cached_property
    def symmetric(self) -> sp.csr_array:
        """The symmetric form S = D L D⁻¹ of a reversible model.

        Raises
        ------
        ValueError
            If the model has a force or a tilt (not reversible).
        """
        if not self.reversible:
            raise ValueError("the symmetric form exists only for reversible models (no force/tilt)")
        return sg.symmetric_matrix(self.grid.volumes, self.links, self.walls)

    @cached_property
    def separable(self) -> SeparableGenerator | None:
        """The Kronecker-sum structure L = Σ_a I ⊗ … ⊗ L_a ⊗ … ⊗ I, or None.

        Detected from the model (no flag): additively separable energy,
        mobility and force components that vary along their own axis only;
        see :mod:`fpsolver.discrete.separable`. The object propagates
        exactly (``propagate(p, t)``) and solves (I − cL) x = b by fast
        diagonalisation (``solver()``), without assembling L.

        Examples
        --------
        >>> import fpsolver as fp
        >>> g = fp.Grid(x=(-3, 3, 16), y=(-3, 3, 12))
        >>> fp.discretize(fp.FokkerPlanck(g, lambda x, y: x**2 + y**2)).separable
        SeparableGenerator(x: 16, y: 12)
        >>> fp.discretize(fp.FokkerPlanck(g, lambda x, y: x * y)).separable is None
        True
        """
        if self.model.is_tensor:
            return None
        return factorize(self.model)

    @cached_property
    def backward(self) -> sp.csr_array:
        """The backward generator L* = V⁻¹ Lᵀ V (acts on functions, L* 1 = 0)."""
        vol = self.grid.volumes.ravel()
        return sp.csr_array(sp.diags_array(1.0 / vol) @ self.generator.T @ sp.diags_array(vol))

    # -- stationary density ------------------------------------------------
    def _require_closed(self, what: str) -> None:
        if self.absorbing:
            raise ValueError(
                f"{what} needs a model without absorbing walls: with "
                f"{self.model.boundary.describe(self.grid.names)!r} all mass eventually "
                "leaves, so the only stationary density is zero. Use "
                "mean_first_passage_time() or spectrum() (its slowest rate is the decay "
                "rate of the survival probability)."
            )

    @cached_property
    def stationary_direct(self) -> np.ndarray:
        """p_ss (grid shape) from the linear algebra, whatever the model.

        See :mod:`fpsolver.discrete.nullspace`: tails are resolved to
        relative accuracy.
        """
        self._require_closed("stationary()")
        p = null_vector(self.generator, self.grid.volumes.ravel())
        return _frozen(p.reshape(self.grid.shape))

    @cached_property
    def stationary_density(self) -> np.ndarray:
        """p_ss (grid shape): the Gibbs density when it is stationary, else the null vector."""
        self._require_closed("stationary()")
        if self.gibbs_stationary:
            return _frozen(np.exp(self.log_equilibrium))
        return self.stationary_direct

    # -- functionals of a density -----------------------------------------
    def density(self, p: Any, name: str = "p") -> np.ndarray:
        """Validate `p` as a non-negative array of the grid shape."""
        arr = cell_array(self.grid, p, name)
        if np.any(arr < 0):
            raise ValueError(f"`{name}` must be non-negative; min is {arr.min():g}")
        return arr

    def relative_entropy(self, p: Any) -> float:
        """KL(p‖q_h) = Σ V p ln(p/q_h) to the discrete Gibbs state."""
        return dg.relative_entropy(self.grid.volumes, self.log_equilibrium, self.density(p))

    def face_fluxes(self, p: Any) -> list[np.ndarray]:
        """The scheme's own face fluxes per unit area (see :mod:`fpsolver.discrete.sg`)."""
        if np.ndim(p) == 1 and np.size(p) == self.grid.size:
            p = np.reshape(p, self.grid.shape)
        arr = cell_array(self.grid, p, "p")
        if self.model.is_tensor:
            out = selling.offset_fluxes(self.grid, self.links, arr.ravel(), _sg_flux)
            _add_wall_fluxes(self.grid, self.walls, arr.ravel(), out)
        else:
            out = sg.face_fluxes(self.grid, self.links, self.walls, arr)
        if self.antisymmetric_faces is not None:
            extra = antisymmetric.antisymmetric_fluxes(self.grid, self.antisymmetric_faces, arr)
            out = [f + e for f, e in zip(out, extra)]
        return out

    def current(self, p: Any):
        """Probability current of `p` as an xarray Dataset (``J_<axis>`` on faces)."""
        return sg.current_dataset(self.grid, self.face_fluxes(p))


def discretize(model: Model) -> Operator:
    """The discretised operator of `model` (see :class:`Operator`).

    A model built with :class:`fpsolver.FokkerPlanck` keeps its operator,
    so ``discretize(model)`` returns the same object every time; pass the
    operator itself to the numerics to make the reuse explicit.

    Examples
    --------
    >>> import fpsolver as fp
    >>> m = fp.FokkerPlanck(fp.Grid(x=(0, 1, 8)), energy=0.0)
    >>> fp.discretize(m) is fp.discretize(m)
    True
    """
    return as_operator(model)


def as_operator(obj: Model | Operator) -> Operator:
    """`obj` if it is an operator, else the operator of the model `obj`.

    A model that carries its own cached ``operator`` (as
    :class:`fpsolver.FokkerPlanck` does) is reused; a bare model is
    discretised afresh.
    """
    if isinstance(obj, Operator):
        return obj
    if not isinstance(obj, Model):
        raise TypeError(f"`model` must be an fpsolver.FokkerPlanck, got {type(obj).__name__}")
    own = getattr(type(obj), "operator", None)
    if own is not None:
        op = obj.operator
        if isinstance(op, Operator):
            return op
    return Operator(obj)


def _sg_flux(ln: Any, p: np.ndarray) -> np.ndarray:
    """The Scharfetter–Gummel flux src → dst of every link."""
    return ln.weight * (sg.bernoulli(ln.delta) * p[ln.src] - sg.bernoulli(-ln.delta) * p[ln.dst])


def _add_wall_fluxes(grid, walls, p: np.ndarray, out: list[np.ndarray]) -> None:
    """Add the outflow through absorbing walls (:func:`sg.wall_fluxes`) to face-flux arrays."""
    for a in range(grid.ndim):
        if grid.periodic[a]:
            continue
        for side, end in enumerate(sg.wall_fluxes(grid, walls, p, a)):
            face = [slice(None)] * grid.ndim
            face[a] = slice(0, 1) if side == 0 else slice(-1, None)
            out[a][tuple(face)] += end


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a
