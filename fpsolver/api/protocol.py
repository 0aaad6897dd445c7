"""The public time-dependent model: :class:`TimeDependentFokkerPlanck`.

``fp.FokkerPlanck(grid, energy=lambda x, t: ..., temperature=lambda t: ...)``
returns one of these (any part with a parameter named ``t``, or a callable
temperature). It is the physics of
:class:`~fpsolver.core.protocol.TimeDependentModel` plus thin calls into
the numerics: :meth:`~TimeDependentFokkerPlanck.solve`
(:func:`fpsolver.integrate.protocol_run.solve_protocol`),
:meth:`~TimeDependentFokkerPlanck.generator` and
:meth:`~TimeDependentFokkerPlanck.simulate_particles`
(:func:`fpsolver.sampling.protocol.simulate_protocol`).
"""

from __future__ import annotations

from typing import Any

from ..core.protocol import TimeDependentModel
from ..discrete.protocol import TimeDependentGenerator
from ..integrate.protocol_run import solve_protocol
from ..sampling.protocol import simulate_protocol

__all__ = ["TimeDependentFokkerPlanck"]


class TimeDependentFokkerPlanck(TimeDependentModel):
    __doc__ = TimeDependentModel.__doc__

    def __init__(self, *args: Any, frozen_class: type | None = None, **kwargs: Any) -> None:
        if frozen_class is not None:
            self.frozen_class = frozen_class
        super().__init__(*args, **kwargs)

    def reversed(self, t_end: float) -> TimeDependentFokkerPlanck:
        """The time-reversed protocol (see :meth:`TimeDependentModel.reversed`)."""
        out = super().reversed(t_end)
        out.frozen_class = self.frozen_class
        return out

    def generator(self, t: float):
        """L(t) as a sparse CSC matrix (same values as ``model.at(t).generator()``)."""
        return TimeDependentGenerator(self)(t).L

    def solve(
        self,
        p0: Any,
        t_end: float,
        dt: float | None = None,
        method: str | None = None,
        **kwargs: Any,
    ):
        """Integrate; see :func:`~fpsolver.integrate.protocol_run.solve_protocol`."""
        return solve_protocol(self, p0, t_end, dt, method, **kwargs)

    def simulate_particles(self, p0: Any, n: int, t_end: float, dt: float, **kwargs: Any):
        """Particles with their work; see :func:`~fpsolver.sampling.protocol.simulate_protocol`."""
        return simulate_protocol(self, p0, n, t_end, dt, **kwargs)
