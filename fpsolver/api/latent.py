r"""Condition a model on its visible axes: :func:`condition` and :class:`Conditional`.

``fp.condition(model, visible={"v": 0.7})`` returns q(h | v) as a model on
the hidden axes — a :class:`~fpsolver.FokkerPlanck` with energy E(v, ·)
— so everything a model does works on it: ``cond.equilibrium()`` is
q(h | v), ``cond.log_partition()`` is ln Z(v), ``cond.free_energy(p_h)``
is F[p_h | v] = ⟨E(v, ·)⟩_p − T H[p] = T KL(p ‖ q(· ∣ v)) − T ln Z(v), and
``cond.solve(p0, ...)`` relaxes a hidden density towards q(h | v).

Given a data set ``{"v": samples}``, the model has the averaged energy
Ē = (1/n) Σ_i E(v_i, ·): its free energy is the average conditional free
energy (1/n) Σ_i F[p | v_i] and its equilibrium is the one density on the
hidden axes that minimises it. The per-sample quantities (each q(h | v_i)
and ln Z(v_i), the clamped phase of learning) are
:meth:`Conditional.posterior` and :meth:`Conditional.sample_log_partition`.
The numbers come from :mod:`fpsolver.analysis.latent`, where the
interpolation rule for v between cell centres is stated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..analysis.latent import Conditioning, conditioning, hidden_boundary, hidden_mobility
from ..core.model import Model
from .fokker_planck import FokkerPlanck

__all__ = ["Conditional", "condition"]


class Conditional(FokkerPlanck):
    """A model conditioned on visible values: a FokkerPlanck on the hidden axes.

    Build it with :func:`condition`. Besides every method of
    :class:`~fpsolver.FokkerPlanck` it keeps the per-sample numbers.

    Attributes
    ----------
    conditioning : fpsolver.analysis.latent.Conditioning
        The hidden grid, the visible samples and E(v_i, ·) per sample.
    visible : dict
        The visible values, ``{axis: array of samples}``.
    parent : Model
        The model that was conditioned.
    """

    def __init__(self, model: Model, cond: Conditioning) -> None:
        # set before Model.__init__ freezes the instance
        self.conditioning = cond
        self.visible = {n: cond.samples[:, j].copy() for j, n in enumerate(cond.names)}
        self.parent = model
        super().__init__(
            cond.grid,
            cond.mean_energy_field,
            model.temperature,
            mobility=hidden_mobility(model, cond),
            boundary=hidden_boundary(model, cond),
        )

    def __repr__(self) -> str:
        n = self.conditioning.samples.shape[0]
        given = ", ".join(self.conditioning.names)
        what = f"{n} samples of {given}" if n > 1 else given
        return f"Conditional({self.grid!r}, T={self.temperature:g}, given {what})"

    @property
    def samples(self) -> int:
        """Number of visible samples conditioned on."""
        return int(self.conditioning.samples.shape[0])

    def sample_log_partition(self) -> np.ndarray:
        """ln Z(v_i) for every sample, shape ``(n,)`` (one value for one point).

        For one point this is :meth:`log_partition`; for a data set
        (1/n) Σ_i F[p | v_i] = T (1/n) Σ_i KL(p ‖ q(· ∣ v_i)) − T mean(ln Z(v_i)).
        """
        return self.conditioning.log_partition()

    def posterior(self):
        """q(h | v_i) for every sample, an xarray.DataArray with dims ``("sample", *hidden)``.

        Examples
        --------
        >>> import numpy as np
        >>> import fpsolver as fp
        >>> from fpsolver.api.latent import condition
        >>> g = fp.Grid(v=(-3, 3, 30), h=(-4, 4, 40))
        >>> m = fp.FokkerPlanck(g, energy=lambda v, h: 0.5 * (h - v) ** 2)
        >>> q = condition(m, {"v": [0.1, -0.5, 1.2]}).posterior()
        >>> q.dims, np.allclose((q * g.widths[1]).sum("h"), 1.0)
        (('sample', 'h'), True)
        """
        import xarray as xr

        q = np.exp(self.conditioning.log_posterior())
        coords: dict[str, Any] = dict(self.grid.coords())
        for n, values in self.visible.items():
            coords[n] = ("sample", values)
        return xr.DataArray(
            q,
            dims=("sample", *self.grid.names),
            coords=coords,
            name="q",
            attrs={"long_name": "conditional Gibbs density q(h | v)", "units": "1/volume"},
        )


def condition(model: Model, visible: Any, *, names: Sequence[str] | None = None) -> Conditional:
    """The conditional model q(h | v) of `model` on its hidden axes.

    Parameters
    ----------
    model : FokkerPlanck or Model
        A gradient model (no force) on axes (v..., h...).
    visible : mapping or array
        ``{axis: value}`` for one visible point (a cell centre or any point
        in between: the energy is interpolated linearly between the two
        neighbouring cell layers, exact at centres), ``{axis: array}`` for a
        data set of samples (the free energy is then averaged over them),
        or an array of shape ``(n, n_visible)`` with `names`.
    names : sequence of str, optional
        The visible axes when `visible` is an array.

    Returns
    -------
    Conditional
        A :class:`~fpsolver.FokkerPlanck` on the hidden axes with energy
        E(v, ·) (the sample average Ē for a data set), the model's
        temperature, the hidden components of its mobility and its walls.

    Examples
    --------
    >>> import numpy as np
    >>> import fpsolver as fp
    >>> from fpsolver.api.latent import condition
    >>> g = fp.Grid(v=(-3, 3, 30), h=(-4, 4, 40))
    >>> m = fp.FokkerPlanck(g, energy=lambda v, h: 0.5 * (h - v) ** 2 + 0.5 * v**2)
    >>> cond = condition(m, {"v": 0.7})
    >>> cond.grid.names
    ('h',)
    >>> q = cond.equilibrium()                  # q(h | v = 0.7)
    >>> bool(abs(cond.free_energy(q) + cond.temperature * cond.log_partition()) < 1e-12)
    True
    """
    return Conditional(model, conditioning(model, visible, names))
