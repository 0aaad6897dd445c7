r"""Fluctuation relations on per-trajectory work: Jarzynski and Crooks.

:func:`jarzynski` estimates ΔF = −T ln⟨e^{−W/T}⟩ (Jarzynski, PRL 78 (1997)
2690) with a delta-method standard error; :func:`crooks` combines a forward
and a time-reversed run by Bennett's acceptance ratio (Bennett, J. Comput.
Phys. 22 (1976) 245; Shirts et al., PRL 91 (2003) 140601 for the estimator
as the maximum-likelihood one and its asymptotic variance) and checks
Crooks' relation P_F(W)/P_R(−W) = e^{(W − ΔF)/T} (Crooks, PRE 60 (1999)
2721): the histograms cross at W = ΔF and ln(P_F/P_R) has slope 1/T.

Both take the Datasets of :func:`fpsolver.sampling.protocol.simulate_protocol`
(or plain arrays of work values with `temperature`) and, when the result
carries ``delta_f_grid`` (the exact ΔF of the discrete model), report the
z-score of the estimate against it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, logsumexp

__all__ = ["jarzynski", "crooks"]


def _work(obj: Any, temperature: float | None) -> tuple[np.ndarray, float, float | None]:
    """(work values, T, ΔF of the grid or None) from a particle result or an array."""
    if hasattr(obj, "attrs") and "work" in getattr(obj, "data_vars", {}):
        if not obj.attrs.get("isothermal", 1):
            raise ValueError("Jarzynski/Crooks here need an isothermal protocol (T constant)")
        T = float(obj.attrs["temperature"]) if temperature is None else float(temperature)
        ref = obj.attrs.get("delta_f_grid")
        return np.asarray(obj["work"].values, float).ravel(), T, None if ref is None else float(ref)
    if temperature is None:
        raise TypeError("`temperature` is required when the work is given as an array")
    return np.asarray(obj, float).ravel(), float(temperature), None


def jarzynski(parts: Any, temperature: float | None = None) -> dict[str, float]:
    r"""ΔF from Jarzynski's equality ⟨e^{−W/T}⟩ = e^{−ΔF/T}, with its standard error.

    Parameters
    ----------
    parts : xarray.Dataset or array
        A particle result with ``work`` (isothermal protocol), or work values.
    temperature : float, optional
        T (read from `parts` when it is a result).

    Returns
    -------
    dict
        ``delta_f`` = −T ln mean(e^{−W/T}) (log-sum-exp), ``stderr`` (delta
        method: T·sd(e^{−W/T})/(mean·sqrt(n))), ``mean_work``,
        ``dissipated_work`` = ⟨W⟩ − ΔF (≥ 0: the second law), ``n``; with a
        grid reference also ``delta_f_grid`` and ``z`` = (ΔF − ΔF_grid)/stderr.
        The estimator is biased by about T·var(e^{−W/T})/(2 n mean²) (the
        same order as stderr²/T); it is reliable while ⟨W⟩ − ΔF is a few T.

    Examples
    --------
    >>> import numpy as np
    >>> w = np.random.default_rng(0).normal(1.5, 1.0, 200_000)   # Gaussian work, T = 1
    >>> r = jarzynski(w, temperature=1.0)                        # ΔF = ⟨W⟩ − var/2T = 1.0
    >>> bool(abs(r["delta_f"] - 1.0) < 4 * r["stderr"])
    True
    """
    w, T, ref = _work(parts, temperature)
    n = w.size
    if n < 2:
        raise ValueError(f"`parts` must hold at least 2 work values, got {n}")
    x = -w / T
    dF = -T * (logsumexp(x) - np.log(n))
    e = np.exp(x - x.max())
    stderr = T * float(np.std(e, ddof=1) / (np.mean(e) * np.sqrt(n)))
    out = {
        "delta_f": float(dF),
        "stderr": stderr,
        "mean_work": float(w.mean()),
        "dissipated_work": float(w.mean() - dF),
        "n": float(n),
    }
    if ref is not None:
        out["delta_f_grid"] = ref
        out["z"] = (out["delta_f"] - ref) / stderr
    return out


def _bar(wf: np.ndarray, wr: np.ndarray, T: float) -> tuple[float, float]:
    """Bennett's ΔF and its asymptotic standard error (Shirts et al. 2003)."""
    nf, nr = wf.size, wr.size
    m = np.log(nf / nr)

    def score(df: float) -> float:
        return float(np.sum(expit(-(m + (wf - df) / T))) - np.sum(expit(-(-m + (wr + df) / T))))

    lo = min(wf.min(), -wr.max()) - 10 * T
    hi = max(wf.max(), -wr.min()) + 10 * T
    df = brentq(score, lo, hi, xtol=1e-12 * max(1.0, abs(hi - lo)))
    pooled = np.concatenate([m + (wf - df) / T, m - (wr + df) / T])
    f = 1.0 / (2.0 + 2.0 * np.cosh(pooled))
    var = (1.0 / np.mean(f) - (nf + nr) * (1.0 / nf + 1.0 / nr)) / (nf + nr)
    return float(df), T * float(np.sqrt(max(var, 0.0)))


def _crossing(wf: np.ndarray, wr: np.ndarray, T: float, bins: int) -> dict[str, float]:
    """Where the histograms of W_F and −W_R cross, and the slope of ln(P_F/P_R)."""
    lo, hi = max(wf.min(), -wr.max()), min(wf.max(), -wr.min())
    if not hi > lo:
        return {"crossing": np.nan, "slope": np.nan, "slope_stderr": np.nan}
    edges = np.linspace(lo, hi, bins + 1)
    cf, _ = np.histogram(wf, edges)
    cr, _ = np.histogram(-wr, edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    ok = (cf >= 20) & (cr >= 20)
    if ok.sum() < 3:
        return {"crossing": np.nan, "slope": np.nan, "slope_stderr": np.nan}
    y = np.log(cf[ok] / wf.size) - np.log(cr[ok] / wr.size)
    var = 1.0 / cf[ok] + 1.0 / cr[ok]  # Poisson counts: var(ln c) ≈ 1/c
    A = np.stack([mid[ok], np.ones(ok.sum())], axis=1) / np.sqrt(var)[:, None]
    coef, *_ = np.linalg.lstsq(A, y / np.sqrt(var), rcond=None)
    cov = np.linalg.inv(A.T @ A)
    slope, icept = coef
    return {
        "crossing": float(-icept / slope),
        "slope": float(slope),
        "slope_stderr": float(np.sqrt(cov[0, 0])),
    }


def crooks(
    forward: Any, backward: Any, temperature: float | None = None, bins: int = 40
) -> dict[str, float]:
    r"""ΔF from a forward and a time-reversed protocol (Bennett), and Crooks' relation.

    Parameters
    ----------
    forward, backward : xarray.Dataset or array
        Work values of the forward protocol (started in equilibrium at t0)
        and of its time reversal (``model.reversed(t_end)``, started in
        equilibrium at t_end).
    temperature : float, optional
    bins : int
        Histogram bins over the overlap of W_F and −W_R.

    Returns
    -------
    dict
        ``delta_f`` and ``stderr`` (Bennett's acceptance ratio), the
        ``crossing`` of the two histograms and the ``slope`` (expected 1/T)
        with ``slope_stderr`` of a weighted straight-line fit of
        ln P_F(W) − ln P_R(−W), ``n_forward``, ``n_backward``; with a grid
        reference (from `forward`) ``delta_f_grid`` and ``z``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)        # Gaussian work obeys Crooks with ΔF = μ − σ²/2T
    >>> r = crooks(rng.normal(1.5, 1.0, 50_000), rng.normal(-0.5, 1.0, 50_000), temperature=1.0)
    >>> bool(abs(r["delta_f"] - 1.0) < 4 * r["stderr"]), bool(abs(r["slope"] - 1) < 0.1)
    (True, True)
    """
    wf, T, ref = _work(forward, temperature)
    wr, T_r, _ = _work(backward, T)
    if abs(T_r - T) > 1e-12 * T:
        raise ValueError(f"forward and backward runs have different temperatures, {T} and {T_r}")
    df, err = _bar(wf, wr, T)
    out = {"delta_f": df, "stderr": err, "n_forward": float(wf.size), "n_backward": float(wr.size)}
    out.update(_crossing(wf, wr, T, int(bins)))
    if ref is not None:
        out["delta_f_grid"] = ref
        out["z"] = (df - ref) / err
    return out
