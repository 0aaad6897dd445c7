"""The public mean-field model: :class:`MeanFieldFokkerPlanck`.

``fp.FokkerPlanck(grid, energy=E0, interaction=W, temperature=T)`` (or with
``local=κ``) returns one of these: the physics of
:class:`~fpsolver.core.meanfield.MeanFieldModel` plus thin calls into the
numerics: :meth:`~MeanFieldFokkerPlanck.solve`
(:func:`fpsolver.integrate.meanfield.solve_meanfield`),
:meth:`~MeanFieldFokkerPlanck.stationary` (:func:`fpsolver.integrate.meanfield.relax`)
and :meth:`~MeanFieldFokkerPlanck.simulate_particles`
(:func:`fpsolver.sampling.meanfield.simulate_interacting`).
"""

from __future__ import annotations

from typing import Any

from ..core.meanfield import MeanFieldModel
from ..discrete.meanfield import MeanFieldGenerator
from ..integrate.meanfield import relax, solve_meanfield
from ..sampling.meanfield import simulate_interacting

__all__ = ["MeanFieldFokkerPlanck"]


class MeanFieldFokkerPlanck(MeanFieldModel):
    __doc__ = MeanFieldModel.__doc__

    def generator(self, p: Any):
        """L(E[p]): the generator of the model frozen at density `p` (sparse CSR)."""
        return MeanFieldGenerator(self).generator(self.effective_energy(self.density(p)))

    def solve(
        self,
        p0: Any,
        t_end: float,
        dt: float | None = None,
        method: str | None = None,
        **kwargs: Any,
    ):
        """Integrate; see :func:`~fpsolver.integrate.meanfield.solve_meanfield`.

        `method` is ``"backward_euler"`` (default: first order, positive and
        free-energy decreasing for every `dt`) or ``"bdf2"`` (second order;
        a step that comes out non-positive is redone by backward Euler).

        Examples
        --------
        >>> import numpy as np, fpsolver as fp
        >>> g = fp.Grid(theta=(0, 2 * np.pi, 32), periodic="theta")
        >>> m = fp.FokkerPlanck(g, interaction=lambda theta: -np.cos(theta), temperature=0.3)
        >>> p0 = (1 + 0.2 * np.cos(g.centers[0])) / (2 * np.pi)
        >>> ds = m.solve(p0, t_end=1.0, dt=0.1, save_every=0.5)
        >>> bool((ds.free_energy.diff("time") < 0).all()), bool(abs(ds.mass[-1] - 1) < 1e-13)
        (True, True)
        >>> ds2 = m.solve(p0, t_end=1.0, dt=0.1, method="bdf2", save_every=1.0)
        >>> ds2.attrs["method"], bool(abs(ds2.mass[-1] - 1) < 1e-13), ds2.attrs["bdf2_fallbacks"]
        ('bdf2', True, 0)
        """
        kwargs.pop("progress", None)  # a mean-field solve draws no progress bar
        return solve_meanfield(self, p0, t_end, dt, method, **kwargs)

    def stationary(self, p0: Any = None, **kwargs: Any):
        """A stationary state reached by relaxation from `p0` (default: the Gibbs density of E₀).

        The branch reached depends on `p0` (below a phase transition the
        uniform state may be stationary but unstable: perturb it). Keywords
        go to :func:`~fpsolver.integrate.meanfield.relax`; a run that does not
        converge is an error.

        Returns
        -------
        xarray.DataArray
            The density, with ``attrs`` ``t``, ``steps``, ``change`` and
            ``relative_entropy`` (KL(p‖q[p]), the self-consistency residual).

        Examples
        --------
        >>> import numpy as np, fpsolver as fp
        >>> g = fp.Grid(theta=(0, 2 * np.pi, 32), periodic="theta")
        >>> m = fp.FokkerPlanck(g, interaction=lambda theta: -np.cos(theta), temperature=0.3)
        >>> p = m.stationary((1 + 0.1 * np.cos(g.centers[0])) / (2 * np.pi), tol=1e-9)
        >>> r = abs(complex((g.volumes * p.values * np.exp(1j * g.centers[0])).sum()))
        >>> round(r, 6)          # r = I1(r/T)/I0(r/T)
        0.77313
        """
        if p0 is None:
            p0 = self.base.equilibrium().values
        p, info = relax(self, p0, **kwargs)
        if not info["converged"]:
            raise RuntimeError(
                f"stationary: relaxation did not converge in {info['steps']} steps (change "
                f"{info['change']:.3g}, KL(p||q[p]) {info['relative_entropy']:.3g}); raise "
                "`max_steps` or loosen `tol`"
            )
        da = self.grid.data_array(p, "p", long_name="stationary density", units="1/volume")
        da.attrs.update({k: float(v) for k, v in info.items()})
        return da

    def simulate_particles(self, p0: Any, n: int, t_end: float, dt: float, **kwargs: Any):
        """Interacting particles; see :func:`fpsolver.sampling.meanfield.simulate_interacting`."""
        return simulate_interacting(self, p0, n, t_end, dt, **kwargs)
