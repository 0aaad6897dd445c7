r"""The solve of a time-dependent model, with its stochastic thermodynamics.

:func:`solve_protocol` steps dp/dt = L(t) p with a stepper of
:mod:`fpsolver.integrate.protocol` through the save times and breakpoints,
and books, step by step, the energetics of the density (Sekimoto,
*Stochastic Energetics* (2010); Seifert, Rep. Prog. Phys. 75 (2012) 126001).
Sign convention: ``work`` W is done **on** the system, ``heat`` Q is
released **to** the bath, so the first law reads ΔU = W − Q with
U = ⟨E⟩ = Σ V p E.

Per step from (t_n, p^n) to (t_{n+1}, p^{n+1}), with E^n = E(t_n):

- first-order steppers (backward Euler): W += Σ V p^n (E^{n+1} − E^n) and
  Q −= Σ V E^{n+1} (p^{n+1} − p^n); the latter is exactly
  −h Σ V E^{n+1} L_{n+1} p^{n+1}, the heat flow of the scheme's own fluxes;
- second-order steppers: the same with the trapezoidal means
  (p^n + p^{n+1})/2 and (E^n + E^{n+1})/2, second-order accurate.

Either way U^{n+1} − U^n = W_step − Q_step holds to rounding for every
stepper (a telescoping identity). The medium's entropy gains Q_step / T
(T at t_{n+1}, or the mean of 1/T at both ends for second order), and
``total_entropy_production`` Σ_tot = ΔS + Σ Q_step / T. For backward Euler
with LU solves the convexity of p ln p gives, step by step,

    ΔS + Q_step / T_{n+1} ≥ h σ(t_{n+1}, p^{n+1}) ≥ 0,

so the discrete second law (and, at constant T, W − ΔF ≥ 0 with
F = U − T S) holds to rounding; for the second-order steppers it holds to
second order in h. A jump of the protocol at a breakpoint adds
Σ V p (E(t_b⁺) − E(t_b⁻)) to W (no heat: p does not change).

A protocol that becomes invalid (NaN, T ≤ 0) raises
:class:`~fpsolver.core.protocol.ProtocolError` naming the time; its
``partial`` attribute holds the Dataset of the frames saved so far, with
``attrs["stopped"]`` giving the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._version import __version__
from ..core import diagnostics as dg
from ..core.initial import density_array
from ..core.protocol import ProtocolError, TimeDependentModel
from ..core.schedule import SaveSchedule, positive
from ..core.threads import limit_threads
from ..discrete.protocol import TimeDependentGenerator, entropy_production, heat_rate
from .protocol import ProtocolStepper, make_protocol_stepper
from .trackers import Tracker, build_dataset

__all__ = ["THERMODYNAMICS", "Energetics", "solve_protocol"]

#: Variables a time-dependent result adds: name → (long_name, units).
THERMODYNAMICS: dict[str, tuple[str, str]] = {
    "temperature": ("temperature T(t)", "energy"),
    "work": ("work done on the system since t0, W", "energy"),
    "heat": ("heat released to the bath since t0, Q (dU = W - Q)", "energy"),
    "work_rate": ("mean work rate <dE/dt>", "energy/time"),
    "heat_rate": ("heat flow to the bath -sum(V E L p)", "energy/time"),
    "entropy_production": ("entropy production rate from the link fluxes (>= 0)", "1/time"),
    "total_entropy_production": ("entropy produced since t0, dS + sum(dQ/T)", "1"),
}


class Energetics:
    """Books work, heat and entropy production step by step (see the module notes).

    Parameters
    ----------
    gen : TimeDependentGenerator
    order : int
        The stepper's order: 1 uses end-point sums, 2 trapezoidal ones.
    """

    def __init__(self, gen: TimeDependentGenerator, order: int) -> None:
        self.gen = gen
        self.V = gen.volumes
        self.order = int(order)
        self.work = 0.0
        self.heat = 0.0
        self.medium_entropy = 0.0
        self._end: np.ndarray | None = None  # E at the end of the last step
        self._end_t: float | None = None
        self._s0: float | None = None

    def step(self, p: np.ndarray, new: np.ndarray, ta: float, tb: float) -> None:
        """Book one step from (ta, p) to (tb, new)."""
        V, sa, sb = self.V, self.gen(ta), self.gen(tb)
        Ea, Eb = sa.energy.ravel(), sb.energy.ravel()
        if self._end is not None and self._end_t != ta:
            self.work += float(np.sum(V * p * (Ea - self._end)))  # a jump at a breakpoint
        dp = new - p
        if self.order == 1:
            dw = float(np.sum(V * p * (Eb - Ea)))
            dq = -float(np.sum(V * Eb * dp))
            inv_t = 1.0 / sb.temperature
        else:
            dw = float(np.sum(V * 0.5 * (p + new) * (Eb - Ea)))
            dq = -float(np.sum(V * 0.5 * (Ea + Eb) * dp))
            inv_t = 0.5 / sa.temperature + 0.5 / sb.temperature
        self.work += dw
        self.heat += dq
        self.medium_entropy += dq * inv_t
        self._end, self._end_t = Eb, tb

    def frame(self, t: float, p: np.ndarray, model: TimeDependentModel) -> dict[str, Any]:
        """The diagnostics of one saved frame at time `t`."""
        snap = self.gen(t)
        V = self.gen.grid.volumes
        pg = np.reshape(p, V.shape)
        pp = np.where(pg < 0, 0.0, pg)
        T, E = snap.temperature, snap.energy
        S = dg.entropy(V, pp)
        U = dg.mean_energy(V, E, pg)
        log_q = dg.log_gibbs(E, T, V)
        out = {
            "mass": dg.mass(V, pg),
            "mean_energy": U,
            "entropy": S,
            "free_energy": U - T * S,
            "relative_entropy": dg.relative_entropy(V, log_q, pp),
            "negative_mass": float(np.sum(V * (pp - pg))),
            "temperature": T,
            "work": self.work,
            "heat": self.heat,
            "work_rate": _work_rate(model, t, V, pg),
            "heat_rate": heat_rate(snap, p, V),
            "entropy_production": entropy_production(snap, p),
        }
        if self._s0 is None:
            self._s0 = S
        out["total_entropy_production"] = S - self._s0 + self.medium_entropy
        return out


def _work_rate(model: TimeDependentModel, t: float, V: np.ndarray, p: np.ndarray) -> float:
    """Σ V p ∂E/∂t by a central difference of step ε = 1e-6 max(1, |t|) (one-sided at t0)."""
    if "energy" not in model.depends:
        return 0.0
    eps = 1e-6 * max(1.0, abs(t))
    lo = t - eps if t - eps >= model.t0 else t
    dE = model.energy_cells(t + eps) - model.energy_cells(lo)
    return float(np.sum(V * p * dE)) / (t + eps - lo)


def solve_protocol(
    model: TimeDependentModel,
    p0: Any,
    t_end: float,
    dt: float | None = None,
    method: str | None = None,
    *,
    save_every: float | None = None,
    save_at: Sequence[float] | None = None,
    breakpoints: Sequence[float] = (),
    rtol: float = 1e-4,
    atol: float = 1e-8,
    max_steps: int = 1_000_000,
    linear_solver: str = "auto",
    callback: Callable[[float, np.ndarray], Any] | None = None,
    threads: int | str | None = None,
    trackers: Sequence[Tracker] = (),
    progress: bool | None = None,
    unsupported: dict[str, Any] | None = None,
):
    """Integrate a time-dependent model from ``model.t0`` to `t_end` (see the module notes).

    Parameters are those of :func:`fpsolver.solve` (which calls this for a
    time-dependent model), plus `breakpoints`: times the protocol may jump
    at (added to ``model.breakpoints``); every step lands on them. `method`
    is a key of :data:`~fpsolver.integrate.protocol.PROTOCOL_METHODS`
    (default ``"tr_bdf2"`` with `dt`, ``"adaptive"`` without);
    `linear_solver` is ``"auto"``, ``"lu"`` or ``"reuse"``
    (:class:`~fpsolver.integrate.protocol.ProtocolLinearSolver`).
    `trackers` see every saved frame (``on_frame``) and are finalised at
    the end; `progress` is accepted and ignored (no progress bar here).
    Checkpoints, ``t_end="equilibrium"`` and ``t_max`` are not supported.

    Returns
    -------
    xarray.Dataset
        As :func:`fpsolver.solve` (``p``, ``mass``, ``mean_energy``,
        ``entropy``, ``free_energy`` = ⟨E⟩ − T S, ``relative_entropy`` to
        the Gibbs density frozen at each t, ``mean``, ``covariance``) plus
        :data:`THERMODYNAMICS`: ``temperature``, ``work``, ``heat``,
        ``work_rate``, ``heat_rate``, ``entropy_production`` and
        ``total_entropy_production``.

    Raises
    ------
    ProtocolError
        When the protocol is invalid at some time t; ``err.partial`` holds
        the frames saved before it.

    Examples
    --------
    >>> import fpsolver as fp
    >>> g = fp.Grid(x=(-6, 6, 120))
    >>> m = fp.FokkerPlanck(g, energy=lambda x, t: 0.5 * (x - 0.5 * t) ** 2)
    >>> ds = m.solve(fp.gaussian(g, 0.0, 1.0), t_end=1.0, dt=0.05, method="tr_bdf2",
    ...              save_every=0.5)
    >>> U = ds.mean_energy.values; W = ds.work.values; Q = ds.heat.values
    >>> bool(abs((U[-1] - U[0]) - (W[-1] - Q[-1])) < 1e-13)
    True
    >>> bool((ds.entropy_production >= 0).all())
    True
    """
    for key, value in (unsupported or {}).items():
        if value:
            raise ValueError(f"`{key}` is not supported for a time-dependent model (got {value!r})")
    if isinstance(t_end, str):
        raise ValueError(f"`t_end` must be a time for a time-dependent model, got {t_end!r}")
    t0 = model.t0
    t_end = float(t_end)
    if not (np.isfinite(t_end) and t_end > t0):
        raise ValueError(f"`t_end` must be finite and after t0={t0:g}, got {t_end}")
    method = method or ("adaptive" if dt is None else "tr_bdf2")
    gen = TimeDependentGenerator(model)
    stepper = make_protocol_stepper(
        method, gen, dt=dt, linear_solver=linear_solver, rtol=rtol, atol=atol
    )
    if save_every is None and save_at is None and not stepper.adaptive:
        save_every = stepper.dt
    schedule = SaveSchedule(
        t_end - t0,
        every=save_every,
        at=None if save_at is None else [s - t0 for s in save_at],
        every_step=stepper.adaptive,
    )
    breaks = sorted({float(b) for b in (*model.breakpoints, *breakpoints) if t0 < b < t_end})
    p = density_array(model.grid, p0, "p0").ravel()
    attrs = _attrs(model, stepper, method, t0, t_end, breaks)
    run = _Loop(model, gen, stepper, attrs, callback)
    run.trackers = list(trackers)
    try:
        with limit_threads(threads):
            run.go(p, schedule, breaks, positive(max_steps, "max_steps"))
    finally:
        for tr in run.trackers:
            tr.finalize()
    return run.dataset()


class _Loop:
    """One run: the loop over save times and breakpoints, frames and energetics."""

    def __init__(self, model, gen, stepper: ProtocolStepper, attrs, callback) -> None:
        self.model, self.gen, self.stepper, self.attrs = model, gen, stepper, attrs
        self.energetics = Energetics(gen, stepper.order)
        self.callback = callback
        self.trackers: list[Tracker] = []
        self.times: list[float] = []
        self.frames: list[np.ndarray] = []
        self.infos: list[dict[str, Any]] = []
        g = model.grid
        self._centers = [g._along(a, g.centers[a]) for a in range(g.ndim)]
        self._widths = [g._along(a, g.widths[a]) for a in range(g.ndim)]

    def frame(self, t: float, p: np.ndarray, t_eval: float | None = None) -> None:
        """Save a frame; the diagnostics use the model at `t_eval` (t_b⁻ at a breakpoint)."""
        info = self.energetics.frame(t if t_eval is None else t_eval, p, self.model)
        info["step_size"] = self.stepper.last_step
        V = self.model.grid.volumes
        info["mean"], info["covariance"] = dg.moments(
            V, self._centers, self._widths, np.reshape(p, V.shape)
        )
        frame = np.array(p, float).reshape(self.model.grid.shape)
        frame.setflags(write=False)
        self.times.append(float(t))
        self.frames.append(frame)
        self.infos.append(info)
        for tr in self.trackers:
            tr.on_frame(t, frame.ravel(), info)
        if self.callback is not None:
            self.callback(t, frame)

    def go(self, p: np.ndarray, schedule: SaveSchedule, breaks: list[float], max_steps: float):
        t0 = self.model.t0
        t = tb = t0
        try:
            self.frame(t, p)
            saves = [_snap_to(t0 + s, breaks) for s in schedule.targets()]
            stops = sorted(set(saves) | set(breaks))
            save_set, break_set = set(saves), set(breaks)
            for target in stops:
                while t < target:
                    after = t in break_set
                    if after:
                        self.stepper.reset()
                    t_new, new, ta, tb = self.stepper.step_to(
                        t, p, target, after_break=after, to_break=target in break_set
                    )
                    self.energetics.step(p, new, ta, tb)
                    t, p = t_new, new
                    if self.stepper.adaptive and t < target and schedule.every_step:
                        self.frame(t, p, tb)
                    if self.stepper.steps >= max_steps:
                        raise RuntimeError(f"`max_steps`={int(max_steps)} reached at t={t:g}")
                if target in save_set or schedule.every_step:
                    self.frame(t, p, tb)
        except ProtocolError as err:
            self.attrs["stopped"] = f"protocol invalid at t={err.t:g}: {err}"
            self.attrs["t_reached"] = self.times[-1] if self.times else t0
            err.partial = self.dataset()
            raise

    def dataset(self):
        import xarray as xr

        ds = build_dataset(self.model.grid, self.times, self.frames, self.infos, self._final())
        for name, (long_name, units) in THERMODYNAMICS.items():
            ds[name] = xr.Variable(
                "time",
                np.array([d[name] for d in self.infos], float),
                attrs={"long_name": long_name, "units": units},
            )
        return ds

    def _final(self) -> dict[str, Any]:
        s = self.stepper
        out = dict(self.attrs, factorizations=s.factorizations, steps=s.steps)
        out["assemblies"] = self.gen.assemblies
        if s.adaptive:
            out["rejected_steps"] = s.rejected_steps
        if s.linear.kind == "reuse" and s.refines_stale_solves:
            out["richardson_iterations"] = s.linear.iterations
        return out


def _snap_to(t: float, breaks: list[float]) -> float:
    """`t`, or the breakpoint within rounding of it (so the two stops merge)."""
    for b in breaks:
        if abs(b - t) <= 1e-12 * max(1.0, abs(t)):
            return b
    return t


def _attrs(model, stepper, method, t0, t_end, breaks) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "title": "Fokker-Planck solution of a time-dependent model (fpsolver)",
        "method": method,
        "dt": stepper.dt if stepper.dt is not None else math.nan,
        "t0": t0,
        "t_end": t_end,
        "time_dependent": 1,
        "depends_on_t": ",".join(sorted(model.depends)),
        "breakpoints": list(breaks) if breaks else "none",
        "linear_solver": stepper.linear.kind,
        "boundary": model.boundary.describe(model.grid.names),
        "sign_convention": "dU = W - Q (W on the system, Q to the bath)",
        **model.grid.to_attrs(),
    }
    attrs["fpsolver_version"] = __version__
    if stepper.adaptive:
        attrs.update(rtol=stepper.rtol, atol=stepper.atol)
    return attrs
