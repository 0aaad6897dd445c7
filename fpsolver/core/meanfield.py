r"""Mean-field (density-dependent) models: the physics only.

A :class:`MeanFieldModel` holds

.. math::

    \partial_t p = \nabla\cdot\bigl(K p \nabla(T \ln p + E[p])\bigr),\qquad
    E[p] = E_0 + W * p + \varphi'(p),

with a frozen :class:`~fpsolver.core.model.Model` for E₀, T, K and the
walls, an even pair interaction W (:class:`~fpsolver.core.interaction.Interaction`)
and a local term φ (e.g. the porous-medium pressure φ(p) = κ p²/2). Its
free energy, the Lyapunov function of the dynamics, is

.. math::

    F[p] = \sum V p E_0 + \tfrac12 \sum V p\,(W * p) + T \sum V p \ln p
           + \sum V \varphi(p)

(Carrillo, McCann & Villani, Rev. Mat. Iberoam. 19 (2003) 971–1018).
Time-dependent parts, forces, tensor mobilities and absorbing walls are
refused: the mean-field scheme relies on the gradient-flow structure and on
mass conservation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .diagnostics import entropy
from .grid import Grid, cell_array
from .interaction import Interaction
from .model import Model
from .protocol import is_time_dependent

__all__ = ["MeanFieldModel", "parse_local"]


def parse_local(local: Any) -> tuple[Callable, Callable, float] | None:
    """The local term as ``(phi, dphi, kappa)``: a number κ ≥ 0 or a pair of callables.

    A number κ means φ(p) = κ p²/2 (porous-medium pressure φ'(p) = κ p);
    a pair ``(phi, dphi)`` gives φ and φ' (φ should be convex for the
    free-energy inequality of the implicit scheme).

    Examples
    --------
    >>> phi, dphi, kappa = parse_local(2.0)
    >>> float(phi(3.0)), float(dphi(3.0)), kappa
    (9.0, 6.0, 2.0)
    """
    if local is None:
        return None
    if isinstance(local, (tuple, list)):
        if len(local) != 2 or not all(callable(f) for f in local):
            raise TypeError(
                "`local` must be a number κ ≥ 0 (φ = κ p²/2) or a pair of callables "
                f"(phi, dphi); got {local!r}"
            )
        return local[0], local[1], float("nan")
    try:
        kappa = float(local)
    except (TypeError, ValueError):
        raise TypeError(
            "`local` must be a number κ ≥ 0 (φ = κ p²/2) or a pair of callables "
            f"(phi, dphi); got {type(local).__name__}"
        ) from None
    if not np.isfinite(kappa) or kappa < 0:
        raise ValueError(f"`local` κ must be finite and ≥ 0 (a convex φ = κ p²/2), got {kappa}")
    return (lambda p: 0.5 * kappa * np.square(p)), (lambda p: kappa * np.asarray(p)), kappa


class MeanFieldModel:
    """A Fokker–Planck model whose energy depends on the density (see the module notes).

    Parameters
    ----------
    grid : Grid
    energy : callable, array or float
        The external energy E₀.
    temperature : float
    interaction : callable, optional
        The pair interaction W of the separations, one array per axis
        (e.g. ``lambda dx: -J * np.cos(dx)``); must be even.
    local : float or (callable, callable), optional
        κ for φ(p) = κ p²/2, or ``(phi, dphi)``.
    mobility, boundary, energy_gradient, mobility_kind
        As for :class:`~fpsolver.core.model.Model` (scalar or diagonal
        mobility; reflecting or periodic walls).
    frozen_class : type, optional
        The class of the frozen models built by :meth:`at` (the public
        :class:`fpsolver.FokkerPlanck` when built through it).

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> g = fp.Grid(theta=(0, 2 * np.pi, 64), periodic="theta")
    >>> m = MeanFieldModel(g, interaction=lambda theta: -np.cos(theta), temperature=0.4)
    >>> p = np.full(64, 1 / (2 * np.pi))
    >>> round(float(m.free_energy(p) + 0.4 * np.log(2 * np.pi)), 12)  # uniform: -T ln 2π
    0.0
    """

    mean_field = True
    time_dependent = False

    def __init__(
        self,
        grid: Grid,
        energy: Any = 0.0,
        temperature: float = 1.0,
        *,
        interaction: Callable[..., Any] | None = None,
        local: Any = None,
        frozen_class: type | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("force") is not None:
            raise ValueError("a mean-field model takes no `force` (it is a gradient flow)")
        kwargs.pop("force", None)
        if is_time_dependent(energy, temperature, kwargs.get("mobility")):
            raise ValueError(
                "a mean-field model cannot depend on t (time-dependent interacting models "
                "are not supported); give E0, T and K without a parameter t"
            )
        if interaction is None and local is None:
            raise ValueError("a mean-field model needs `interaction` or `local`")
        self.frozen_class = frozen_class or Model
        self._kwargs = dict(kwargs)
        self.base = self.frozen_class(grid, energy, temperature, **kwargs)
        if self.base.is_tensor:
            raise ValueError("a mean-field model takes a scalar or diagonal `mobility`")
        if any(k == "absorbing" for sides in self.base.boundary.sides for k in sides):
            raise ValueError("a mean-field model conserves mass: absorbing walls are not supported")
        self.grid = grid
        self.temperature = self.base.temperature
        self.boundary = self.base.boundary
        self.energy = self.base.energy
        self.interaction = None if interaction is None else Interaction(grid, interaction)
        self.interaction_function = interaction
        self.local = parse_local(local)
        if self.local is not None:
            self._check_local()

    def _check_local(self) -> None:
        probe = np.linspace(0.0, 10.0 / float(np.sum(self.grid.volumes)), 7)
        for name, f in zip(("phi", "dphi"), self.local[:2]):
            try:
                out = np.asarray(f(probe), dtype=float)
            except Exception as err:
                raise ValueError(f"`local` {name} failed on densities: {err}") from err
            if out.shape != probe.shape or not np.all(np.isfinite(out)):
                raise ValueError(
                    f"`local` {name} must return finite values of its argument's shape; "
                    f"got {out.tolist()} for p = {probe.tolist()}"
                )

    def __repr__(self) -> str:
        parts = [
            "interaction" if self.interaction is not None else "",
            "local" if self.local else "",
        ]
        return (
            f"MeanFieldFokkerPlanck({self.grid!r}, T={self.temperature:g}, "
            f"{' + '.join(p for p in parts if p)})"
        )

    # -- the energy and free energy at a density ---------------------------
    def density(self, p: Any) -> np.ndarray:
        """`p` as a non-negative cell array (validated)."""
        arr = cell_array(self.grid, p, "p")
        if np.any(arr < 0):
            raise ValueError(f"`p` must be non-negative; min is {arr.min():g}")
        return arr

    def interaction_potential(self, p: Any) -> np.ndarray:
        """W * p on the cells (zero without an interaction)."""
        if self.interaction is None:
            return np.zeros(self.grid.shape)
        return self.interaction(np.reshape(p, self.grid.shape))

    def local_potential(self, p: Any) -> np.ndarray:
        """φ'(p) on the cells (zero without a local term)."""
        if self.local is None:
            return np.zeros(self.grid.shape)
        return np.asarray(self.local[1](np.reshape(p, self.grid.shape)), float)

    def effective_energy(self, p: Any) -> np.ndarray:
        """E[p] = E₀ + W * p + φ'(p) on the cells."""
        p = np.reshape(np.asarray(p, float), self.grid.shape)
        return self.energy + self.interaction_potential(p) + self.local_potential(p)

    def interaction_energy(self, p: Any) -> float:
        """½ Σ V p (W * p) + Σ V φ(p): the part of F beyond E₀ and the entropy."""
        p = np.reshape(np.asarray(p, float), self.grid.shape)
        V = self.grid.volumes
        out = 0.0 if self.interaction is None else self.interaction.energy(p)
        if self.local is not None:
            out += float(np.sum(V * self.local[0](p)))
        return out

    def free_energy(self, p: Any) -> float:
        """F[p] = Σ V p E₀ + ½ Σ V p (W * p) + T Σ V p ln p + Σ V φ(p)."""
        p = self.density(p)
        V = self.grid.volumes
        U0 = float(np.sum(V * p * self.energy))
        return U0 + self.interaction_energy(p) - self.temperature * entropy(V, p)

    def at(self, p: Any) -> Model:
        """The frozen model with the array energy E[p] (same T, mobility and walls)."""
        E = self.effective_energy(self.density(p))
        kwargs = {k: v for k, v in self._kwargs.items() if k != "energy_gradient"}
        return self.frozen_class(self.grid, E, self.temperature, **kwargs)
