"""Time to reach an L¹ accuracy: every method against the default ``solve(p0, t_end)``.

Usage::

    python benchmarks/accuracy.py [--quick] [--out accuracy.md] [--repeat 3]
                                  [--problems P1,P2,P4,P5,P6] [--merge]

``--merge`` (with ``--problems``) replaces only those problems' sections of
``--out`` and their rows of the README summary, keeping the others: a rerun
of one problem after a change that touches only it.

For P1, P2, P4, P5 and P6 (``benchmarks/problems.py``) and each L¹ error
level ε, finds the fastest option that reaches ε at t_end, against a
reference, and the fastest grid on which the default call reaches it:

- options: every fixed-step method on a ladder dt = t_end/2^k, the adaptive
  method on a ladder of rtol, the exact ``exponential`` step (and
  ``separable`` where the model allows it), each on the grids of a ladder;
- the L¹ error Σ V |p − p_ref| is taken on the run's own cells and holds the
  spatial error, so a grid is tried for ε only when its spatial error (the
  same grid integrated exactly in time) is below 0.9 ε; the two coarsest
  such grids are tried;
- the best option and the default are then run again in fresh processes,
  interleaved, ``--repeat`` times: median wall time (building the model and
  solving) and peak memory (growth of ru_maxrss over the fresh process).

References: P1 and P4 are exact (cell averages of the Ornstein–Uhlenbeck
Gaussian). P2, P5 and P6 are integrated exactly in time (a Chebyshev
expansion of exp(t S) on the symmetrised generator, independent of the
package's steppers) on a fine grid and on coarser partners that it refines
by an integer factor, restricted onto the benchmark grids by aggregating
cell masses, and Richardson-extrapolated in h² (the scheme is second order;
the table gives the observed order and the estimated error of the
reference). They are cached in ``benchmarks/data/`` (recomputed when the
problem or its discretisation changes).

Writes the tables to ``--out`` (default ``benchmarks/accuracy.md``).
``--quick``: small grids, one level per problem, one repeat.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import gc
import hashlib
import inspect
import json
import math
import multiprocessing as mp
import queue as queue_module
import re
import resource
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.special import ive

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import problems as P  # the sibling module (benchmarks/ is not a package)

import fpsolver as fp
from fpsolver.discrete.linsolve import lu_2d_bytes

DATA = HERE / "data"
#: Largest reference file kept in ``benchmarks/data`` (bytes); larger ones go to
#: ``benchmarks/data/local/``, which is not committed.
CACHE_LIMIT = 5 * 2**20
#: A grid is tried for level ε when its spatial error is below this fraction of ε.
MARGIN = 0.9
#: Confirmation runs shorter than this many seconds get SHORT_ROUNDS rounds (at
#: least): runs of milliseconds move by ±40 % between fresh processes.
SHORT_RUN = 0.3
SHORT_ROUNDS = 9
#: Bumped when the way references are computed changes.
REFERENCE_VERSION = 1


# ----------------------------------------------------------------------------
# Exact time integration on a grid: Chebyshev expansion of exp(t S)
# ----------------------------------------------------------------------------
def symmetric_form(model: fp.FokkerPlanck) -> tuple[sp.csr_matrix, np.ndarray]:
    """The symmetrised generator S = D L D⁻¹ with D = diag(sqrt(V/q)).

    Detailed balance V_i L_ij q_j = V_j L_ji q_i makes S symmetric with
    S_ij = sqrt(L_ij L_ji) off the diagonal and S_ii = L_ii, so S is built
    without forming D (which spans many orders of magnitude).

    Parameters
    ----------
    model : fpsolver.FokkerPlanck
        A reversible model.

    Returns
    -------
    S : scipy.sparse.csr_matrix
        Symmetric negative semi-definite.
    log_d : numpy.ndarray
        ln D on the cells (flattened in C order).
    """
    L = sp.csr_matrix(model.generator())
    S = L.multiply(L.T).sqrt().tocsr()
    S.setdiag(L.diagonal())
    log_q = np.asarray(model.log_equilibrium()).ravel()
    log_d = 0.5 * (np.log(model.grid.volumes.ravel()) - log_q)
    return S, log_d


def chebyshev_expm(model: fp.FokkerPlanck, p0: np.ndarray, t: float, tol: float = 1e-14):
    """p(t) = exp(t L) p0, exactly in time, by a Chebyshev expansion on S.

    The spectrum of S lies in [−ρ, 0] with ρ the largest absolute row sum
    (Gershgorin); on it e^{tx} = e^{−z} [I₀(z) + 2 Σ_k I_k(z) T_k(1 + 2x/ρ)]
    with z = tρ/2. The coefficients e^{−z} I_k(z) fall below `tol` after
    about sqrt(2 z ln(1/tol)) terms (a few thousand matrix-vector products
    on a 768² grid, where a Taylor or Krylov method needs ~tρ). With
    y = D p0 and ‖T_k‖ ≤ 1, the L¹ error of p is at most the truncated
    tail times ‖y‖₂ (Cauchy–Schwarz with Σ V q = 1).

    Parameters
    ----------
    model : fpsolver.FokkerPlanck
    p0 : numpy.ndarray
        Initial density (grid shape).
    t : float
        Final time.
    tol : float
        Target L¹ truncation error.

    Returns
    -------
    p : numpy.ndarray
        The density at `t` (grid shape).
    terms : int
        Number of matrix-vector products.
    """
    S, log_d = symmetric_form(model)
    rho = float(abs(S).sum(axis=1).max())
    z = t * rho / 2.0
    y = np.exp(log_d) * np.asarray(p0, dtype=float).ravel()
    cutoff = tol / max(float(np.linalg.norm(y)), 1.0)

    def apply(v: np.ndarray) -> np.ndarray:
        return (2.0 / rho) * (S @ v) + v

    prev, cur = y, apply(y)
    acc = ive(0, z) * prev + 2.0 * ive(1, z) * cur
    k = 1
    while True:
        k += 1
        prev, cur = cur, 2.0 * apply(cur) - prev
        c = 2.0 * ive(k, z)
        acc += c * cur
        if c < cutoff:
            break
    return (np.exp(-log_d) * acc).reshape(model.grid.shape), k


# ----------------------------------------------------------------------------
# References on the benchmark grids
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Setup:
    """What is measured for one problem.

    Attributes
    ----------
    name : str
        Problem key in :data:`problems.PROBLEMS`.
    grids : tuple of int
        Ladder of cells per axis.
    levels : tuple of float
        L¹ error levels ε.
    fine : int
        Reference grid (0: exact reference).
    partners : tuple of int
        Coarser reference grids (divisors of `fine`) for the extrapolation.
    """

    name: str
    grids: tuple
    levels: tuple
    fine: int = 0
    partners: tuple = ()

    @property
    def problem(self) -> P.Problem:
        """The problem definition."""
        return P.PROBLEMS[self.name]


#: 2-D grid ladder: divisors of the 1152² reference with a partner among 576², 384².
GRIDS_2D = (32, 48, 64, 96, 128, 192, 288, 384, 576)
#: P2 (separable, so its exact path reaches 3456²) goes on to 1728² for 1e-5:
#: divisors of its 3456² reference with a partner among 1728², 1152².
GRIDS_P2 = (*GRIDS_2D, 864, 1152, 1728)
FULL = (
    Setup("P1", (100, 200, 400, 800, 1600, 3200, 6400), (1e-3, 1e-4, 1e-5)),
    Setup("P2", GRIDS_P2, (1e-2, 1e-3, 1e-4, 1e-5), 3456, (1728, 1152)),
    Setup("P5", GRIDS_2D, (1e-2, 1e-3, 1e-4, 1e-5), 1152, (576, 384)),
    Setup("P4", (16, 24, 32, 48, 96, 144, 432), (3e-2, 1e-2, 1e-3, 1e-4)),
    Setup("P6", (16, 32, 64, 128), (3e-2, 1e-2, 1e-3, 1e-4), 256, (128, 64)),
)
QUICK = (
    Setup("P1", (100, 200, 400, 800), (1e-3,)),
    Setup("P2", (24, 32, 48), (1e-2,), 192, (96,)),
    Setup("P5", (24, 32, 48), (3e-2,), 192, (96,)),
    Setup("P4", (8, 16), (1e-1,)),
    Setup("P6", (8, 16), (1e-1,), 32, (16,)),
)


@dataclass
class Reference:
    """Reference densities on the partner grids and their provenance.

    Attributes
    ----------
    arrays : dict
        Partner cells per axis → extrapolated reference on that grid.
    info : dict
        How it was made and its estimated error.
    """

    arrays: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def on(self, setup: Setup, n: int) -> np.ndarray:
        """The reference cell averages on the n-cells grid of `setup`."""
        problem = setup.problem
        if not setup.fine:
            grid = problem.grid(n)
            return P.ou_cell_averages(grid, problem.mean, problem.variance, problem.t_end)
        for a in sorted(self.arrays, reverse=True):
            if a % n == 0:
                return P.restrict(self.arrays[a], problem.grid(a), a // n)
        raise ValueError(f"{setup.name}: no reference grid is a refinement of {n} cells")


def l1(grid: fp.Grid, p: np.ndarray, q: np.ndarray) -> float:
    """Σ V |p − q| on `grid`."""
    return float(np.sum(grid.volumes * np.abs(p - q)))


def exact_solution(problem: P.Problem, n: int) -> tuple[np.ndarray, int, float]:
    """The n-grid solution at t_end, exact in time: (p, terms, seconds).

    A separable model is propagated along each axis by its 1-D
    eigendecompositions (nothing assembled: P2 reaches 3456², P4 432³;
    terms = 0); the others by :func:`chebyshev_expm` (terms: its products).
    """
    model = problem.model(n)
    p0 = problem.initial(model).values
    t0 = time.perf_counter()
    sep = fp.discretize(model).separable
    if sep is None:
        p, terms = chebyshev_expm(model, p0, problem.t_end)
    else:
        p, terms = sep.propagate(p0, problem.t_end), 0
    return p, terms, time.perf_counter() - t0


def grid_solution(problem: P.Problem, n: int) -> np.ndarray:
    """The n-grid solution at t_end, exact in time, for the table of spatial errors."""
    return exact_solution(problem, n)[0]


#: The two exact integrations of a separable reference are compared on the
#: finest ladder grid of at most this many cells.
CROSS_CHECK_CELLS = 50_000


def cross_check(setup: Setup) -> dict:
    """L¹ distance of separable propagation and Chebyshev on one small grid."""
    problem = setup.problem
    n = max(m for m in setup.grids if m**problem.ndim <= CROSS_CHECK_CELLS)
    model = problem.model(n)
    p0 = problem.initial(model).values
    sep = fp.discretize(model).separable.propagate(p0, problem.t_end)
    cheb, _ = chebyshev_expm(model, p0, problem.t_end)
    return {"check_grid": n, "check_l1": l1(model.grid, sep, cheb)}


def fingerprint(setup: Setup) -> str:
    """Hash of everything a reference depends on.

    The problem's numbers and energy source, the reference grids, and the
    generator itself on a 6-cell grid (so a change of discretisation
    invalidates the cache).
    """
    problem = setup.problem
    small = problem.model(6).generator().tocsr()
    parts = [
        REFERENCE_VERSION, problem.name, problem.temperature, problem.box, problem.mean,
        problem.variance, problem.t_end, setup.fine, setup.partners,
        inspect.getsource(problem.energy), np.round(small.data, 10).tolist(),
    ]  # fmt: skip
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def extrapolate(problem: P.Problem, fine_p: np.ndarray, fine: int, a: int, pa: np.ndarray):
    """Richardson in h²: R_a(fine) + (R_a(fine) − p_a)/(r² − 1), r = fine/a."""
    r = fine // a
    restricted = P.restrict(fine_p, problem.grid(fine), r)
    return restricted + (restricted - pa) / (r * r - 1)


def compute_reference(setup: Setup) -> Reference:
    """Exact-in-time solutions on the fine and partner grids, extrapolated.

    The estimated error of each extrapolation is its L¹ distance to the
    other partner's extrapolation on their common coarsest grid, and the
    observed order comes from the plain restrictions of the three grids.
    """
    problem = setup.problem
    fine_p, terms, secs = exact_solution(problem, setup.fine)
    ref = Reference(
        info={
            "fine": setup.fine,
            "partners": list(setup.partners),
            "terms": terms,
            "seconds": round(secs, 1),
        }
    )
    if not terms:  # separable: checked against the Chebyshev expansion
        ref.info.update(cross_check(setup))
    plain = {}
    for a in setup.partners:
        pa, _, s = exact_solution(problem, a)
        ref.info["seconds"] += round(s, 1)
        ref.arrays[a] = extrapolate(problem, fine_p, setup.fine, a, pa)
        plain[a] = pa
    ref.info.update(reference_errors(setup, fine_p, plain, ref))
    return ref


def reference_errors(setup: Setup, fine_p, plain: dict, ref: Reference) -> dict:
    """Estimated L¹ errors of the plain fine solution and of the extrapolation."""
    problem = setup.problem
    a = max(setup.partners)
    grid_a = problem.grid(a)
    fine_on_a = P.restrict(fine_p, problem.grid(setup.fine), setup.fine // a)
    r = setup.fine // a
    out = {"plain_error": l1(grid_a, fine_on_a, ref.arrays[a]), "pair": [a, setup.fine]}
    out["plain_error_estimate"] = l1(grid_a, fine_on_a, plain[a]) / (r * r - 1)
    if len(setup.partners) > 1:
        b = min(setup.partners)
        g = math.gcd(a, b)
        grid_g = problem.grid(g)
        ea = P.restrict(ref.arrays[a], grid_a, a // g)
        eb = P.restrict(ref.arrays[b], problem.grid(b), b // g)
        out["extrapolation_spread"] = l1(grid_g, ea, eb)
        out["spread_grid"] = g
        # observed order from the three plain solutions restricted to grid g
        f = P.restrict(fine_p, problem.grid(setup.fine), setup.fine // g)
        da = l1(grid_g, P.restrict(plain[a], grid_a, a // g), f)
        db = l1(grid_g, P.restrict(plain[b], problem.grid(b), b // g), f)
        ha, hb, hf = 1 / a, 1 / b, 1 / setup.fine
        out["observed_order"] = _order(db / da, hb, ha, hf)
    return out


def _order(ratio: float, hb: float, ha: float, hf: float) -> float:
    """The order s with (hb^s − hf^s)/(ha^s − hf^s) = ratio (bisection)."""
    lo, hi = 0.5, 6.0
    for _ in range(60):
        s = 0.5 * (lo + hi)
        if (hb**s - hf**s) / (ha**s - hf**s) < ratio:
            lo = s
        else:
            hi = s
    return round(0.5 * (lo + hi), 2)


def cache_path(setup: Setup, local: bool = False) -> Path:
    """Where the reference of `setup` is cached (``local``: the uncommitted cache)."""
    return (DATA / "local" if local else DATA) / f"reference_{setup.name}_{setup.fine}.npz"


def load_reference(setup: Setup) -> Reference | None:
    """The cached reference if it exists and matches :func:`fingerprint`."""
    path = next((p for p in (cache_path(setup), cache_path(setup, True)) if p.exists()), None)
    if path is None:
        return None
    with np.load(path, allow_pickle=False) as data:
        info = json.loads(str(data["info"]))
        if info.get("fingerprint") != fingerprint(setup):
            return None
        arrays = {int(k[4:]): data[k] for k in data.files if k.startswith("ref_")}
    return Reference(arrays, info)


def save_reference(setup: Setup, ref: Reference) -> Path:
    """Cache `ref` as compressed .npz (``data/local/`` above :data:`CACHE_LIMIT`)."""
    (DATA / "local").mkdir(parents=True, exist_ok=True)
    path = cache_path(setup)
    tmp = path.with_suffix(".tmp.npz")
    info = dict(ref.info, fingerprint=fingerprint(setup))
    arrays = {f"ref_{a}": v for a, v in ref.arrays.items()}
    np.savez_compressed(tmp, info=json.dumps(info), **arrays)
    if tmp.stat().st_size > CACHE_LIMIT:
        path = cache_path(setup, local=True)
    tmp.replace(path)
    return path


def full_setup(setup: Setup) -> Setup:
    """The full-mode setup of the same problem (whose reference is cached)."""
    return next(s for s in FULL if s.name == setup.name)


def reference_for(setup: Setup, write_cache: bool) -> Reference:
    """The reference of `setup`: exact, cached, or computed (and cached).

    A quick setup uses the full setup's cached reference when it exists and
    refines all of its grids, and otherwise computes its own small one.
    """
    if not setup.fine:
        return Reference(info={"exact": True})
    for candidate in dict.fromkeys((setup, full_setup(setup))):
        cached = load_reference(candidate)
        if cached is not None and all(any(a % n == 0 for a in cached.arrays) for n in setup.grids):
            cached.info["cached"] = True
            return cached
    print(f"{setup.name}: computing the reference on {setup.fine} cells per axis …", flush=True)
    ref = compute_reference(setup)
    ref.info["cached"] = False
    if write_cache:
        save_reference(setup, ref)
    return ref


# ----------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One way of calling ``solve``.

    Attributes
    ----------
    family : str
        "default" (``solve(p0, t_end)``), a method name, or "adaptive".
    n : int
        Cells per axis.
    dt : float or None
        Fixed step (fixed-step methods; the one step of ``exponential``).
    rtol : float or None
        Adaptive tolerance.
    every_step : bool
        A method family with ``solve``'s default output (every step saved)
        instead of ``save_at=[]``.
    """

    family: str
    n: int
    dt: float | None = None
    rtol: float | None = None
    every_step: bool = False

    def kwargs(self, t_end: float) -> dict:
        """Keyword arguments of ``solve`` besides p0 and t_end."""
        if self.family == "default":
            return {}
        if self.family == "default_nosave":
            return {"save_at": []}
        kw: dict = {"method": self.family}
        if not self.every_step:
            kw["save_at"] = []
        if self.dt is not None:
            kw["dt"] = self.dt
        if self.rtol is not None:
            kw["rtol"] = self.rtol
        return kw

    def describe(self) -> str:
        """The option as text for the tables."""
        if self.family == "default":
            return "`solve(p0, t_end)`"
        if self.family == "default_nosave":
            return "`solve(p0, t_end, save_at=[])`"
        if self.rtol is not None:
            return f"adaptive, rtol = {self.rtol:.0e}"
        if self.dt is not None and self.family != "exponential":
            return f"{self.family}, dt = {self.dt:.3g}"
        return self.family


def run_option(problem: P.Problem, option: Option) -> tuple[float, np.ndarray, dict]:
    """Build the model and solve: (wall seconds, density at t_end, step counts)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        model = problem.model(option.n)
        ds = model.solve(problem.initial(model), problem.t_end, **option.kwargs(problem.t_end))
        wall = time.perf_counter() - t0
    counts = {k: int(ds.attrs.get(k, 0) or 0) for k in ("steps", "factorizations")}
    p = ds.p[-1].values.copy()
    del model, ds
    gc.collect()  # the model's reference cycles hold its arrays (≈ 4 GB at 432³) until then
    return wall, p, counts


def _measure(name: str, option: Option, queue) -> None:
    """In a fresh process: run `option` once and report time, memory and density."""
    problem = P.PROBLEMS[name]
    try:
        try:  # imports and first-call costs before the baseline
            import pyamg  # noqa: F401
        except ImportError:
            pass
        run_option(problem, Option(option.family, 4, option.dt, option.rtol))
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        wall, p, counts = run_option(problem, option)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
        queue.put({"wall": wall, "memory": grown / 1024.0, "p": p, **counts})
    except Exception as exc:  # reported, not raised: the parent waits on the queue
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def fresh_context():
    """The multiprocessing context for measurements: a fork server.

    A spawned or forked child inherits its parent's peak resident set in
    ``ru_maxrss`` (Linux keeps it across fork and exec), and this process
    grows large; children of a fork server started early, while this
    process is small, start from the server's small peak.
    """
    ctx = mp.get_context("forkserver")
    proc = ctx.Process(target=_noop)
    proc.start()
    proc.join()
    return ctx


def _noop() -> None:
    """Starts the fork server."""


def measure(ctx, name: str, option: Option, timeout: float) -> dict:
    """Run `option` of problem `name` in a fresh process from `ctx`."""
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(name, option, queue))
    proc.start()
    try:
        result = queue.get(timeout=timeout)
    except queue_module.Empty:
        proc.terminate()
        result = {"error": f"no result within {timeout:.0f} s"}
    proc.join()
    return result


# ----------------------------------------------------------------------------
# Scanning the options for one level
# ----------------------------------------------------------------------------
def work_text(steps: int, factorizations: int) -> str:
    """ "8 steps, 1 fact." (factorisations or preconditioner set-ups)."""
    return f"{steps} step{'s' * (steps != 1)}, {factorizations} fact."


@dataclass
class Trial:
    """One scanned run."""

    option: Option
    wall: float
    error: float
    counts: dict = field(default_factory=dict)

    def work(self) -> str:
        """Steps and factorisations as text."""
        return work_text(self.counts.get("steps", 0), self.counts.get("factorizations", 0))


RTOLS = tuple(10.0 ** (-k / 2) for k in range(3, 17))  # 3e-2 … 1e-8


def families() -> list[str]:
    """Everything scanned, the default first, then the usually fastest.

    The scan gives up on a ladder once a run takes 3× the fastest success
    so far, so scanning fast families first keeps the slow ones short.
    """
    out = ["default"] + (["separable"] if "separable" in fp.METHODS else [])
    return out + ["tr_bdf2", "crank_nicolson", "bdf2", "backward_euler", "adaptive", "exponential"]


def options_for(family: str, n: int, t_end: float, kmax: int) -> list[Option]:
    """The ladder of `family` on grid `n`, cheapest first."""
    if family in ("default", "separable"):
        return [Option(family, n)]
    if family == "exponential":
        return [Option(family, n, dt=t_end)]
    if family == "adaptive":
        return [Option(family, n, rtol=r) for r in RTOLS]
    return [Option(family, n, dt=t_end / 2**k) for k in range(2, kmax + 1)]


def scan_family(
    problem, family, grids, level, refs, budget, log, failures, skipped=None
) -> list[Trial]:
    """Walk `family`'s ladder on each grid until it reaches `level` or runs too long.

    A ladder stops at its first success, at a failure (a method that does
    not apply), or when a run took longer than ``budget()`` seconds: a
    finer dt or rtol would only take longer. ``exponential`` is not run on
    a grid where its estimated time exceeds the budget; why goes into the
    dict `skipped` (family → text), for the table.
    """
    trials = []
    for n in grids:
        grid = problem.grid(n)
        if family == "exponential":
            estimate = exponential_seconds(problem, n)
            if estimate > budget():
                log(f"  exponential on {n}: skipped (estimated {estimate:.0f} s)")
                if skipped is not None:
                    skipped[family] = (
                        f"not run on N = {n}: estimated {estimate:.0f} s (about 2 t_end "
                        f"max|L_ii| products), over the {budget():.0f} s budget"
                    )
                continue
        for option in options_for(family, n, problem.t_end, kmax=16):
            try:
                wall, p, counts = run_option(problem, option)
            except (ValueError, NotImplementedError) as exc:
                log(f"  {option.describe()} on {n}: not applicable ({exc})"[:160])
                return trials
            except (RuntimeError, ArithmeticError, MemoryError) as exc:
                log(f"  {option.describe()} on {n}: failed ({type(exc).__name__}: {exc})"[:160])
                failures.append(f"{option.describe()}, N = {n}: {type(exc).__name__}")
                break
            trial = Trial(option, wall, l1(grid, p, refs[n]), counts)
            trials.append(trial)
            log(f"  {option.describe():34s} n={n:<5d} {wall:8.2f} s  L1 {trial.error:.2e}")
            if trial.error <= level or wall > budget():
                break
    return trials


#: Peak resident bytes per cell of a run that assembles L: the generator, its
#: symmetric form, CG's vectors and history (P6 at 128³ with CG: 1813 MiB for
#: 2.1 M cells). The exact separable path assembles nothing (P4 at 192³: 157).
ASSEMBLED_BYTES_PER_CELL = 900

#: A run that would need more than this share of the machine's memory is skipped.
MEMORY_SHARE = 0.5


def memory_need(problem: P.Problem, family: str, n: int) -> tuple[float, str]:
    """Estimated peak bytes of `family` on grid `n`, and what they are for."""
    cells = problem.grid(n).size
    if family == "separable" or (
        family == "default" and fp.discretize(problem.model(8)).separable is not None
    ):
        return 0.0, ""  # nothing assembled (the default's exact path on a separable model)
    if problem.ndim == 2 and family != "exponential":
        return lu_2d_bytes(cells), "the sparse LU"  # the estimate of linear_solver="auto"
    return ASSEMBLED_BYTES_PER_CELL * cells, "assembling L"


def memory_skip(problem: P.Problem, family: str, n: int) -> str | None:
    """Why `family` is not run on grid `n` (too large for this machine), or None."""
    need, what = memory_need(problem, family, n)
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need <= MEMORY_SHARE * have:
        return None
    return (
        f"not run on N = {n}: {what} needs about {need / 2**30:.0f} GiB, "
        f"more than half of this machine's {have / 2**30:.0f} GiB"
    )


def exponential_seconds(problem: P.Problem, n: int) -> float:
    """Rough cost of one ``expm_multiply`` over t_end: ~2 t_end max|L_ii| products."""
    L = problem.model(n).generator()
    products = 2.0 * problem.t_end * float(np.max(np.abs(L.diagonal()))) + 20.0
    return products * L.nnz * 3e-9


@dataclass
class LevelResult:
    """The outcome for one error level."""

    level: float
    grids: list
    best: dict = field(default_factory=dict)  # family → fastest successful Trial
    stopped: dict = field(default_factory=dict)  # family → its unsuccessful trials
    skipped: dict = field(default_factory=dict)  # family → why it was not run
    final: dict = field(default_factory=dict)  # "best"/"default" → measured medians
    failures: list = field(default_factory=list)  # options that raised


def feasible_grids(setup: Setup, spatial: dict, level: float) -> list[int]:
    """The two coarsest grids whose spatial error is below MARGIN·level."""
    return [n for n in setup.grids if spatial[n] < MARGIN * level][:2]


def scan_level(setup: Setup, level: float, spatial: dict, refs: dict, cap: float, log):
    """Scan every family for `level`; returns a :class:`LevelResult`."""
    problem = setup.problem
    result = LevelResult(level, feasible_grids(setup, spatial, level))
    if not result.grids:
        return result
    fastest = [math.inf]

    def budget() -> float:
        return min(cap, max(3.0 * fastest[0], 1.0))

    for family in families():
        log(f"{setup.name} ε = {level:.0e}: {family}")
        grids = []
        for n in result.grids:
            why = memory_skip(problem, family, n)
            if why:
                log(f"  {why}")
                result.skipped[family] = why
            else:
                grids.append(n)
        trials = scan_family(
            problem, family, grids, level, refs, budget, log, result.failures, result.skipped
        )
        hits = [t for t in trials if t.error <= level]
        if hits:  # the default on its coarsest grid that reaches the level
            key = (lambda t: (t.option.n, t.wall)) if family == "default" else (lambda t: t.wall)
            best = min(hits, key=key)
            result.best[family] = best
            if family != "default":
                fastest[0] = min(fastest[0], best.wall)
        elif trials:
            result.stopped[family] = trials
    return result


def chosen_options(result: LevelResult) -> dict:
    """What :func:`confirm` re-runs: the best option and the default, each with both outputs.

    ``best`` is timed as scanned (``save_at=[]``) and ``best_out`` with
    ``solve``'s default output (every step saved, as the default call);
    ``default`` saves every step and ``nosave`` passes ``save_at=[]``.
    """
    candidates = [t for f, t in result.best.items() if f != "default"]
    if not candidates:
        return {}
    best = min(candidates, key=lambda t: t.wall).option
    chosen = {"best": best, "best_out": replace(best, every_step=True)}
    if "default" in result.best:
        n = result.best["default"].option.n
        chosen["default"] = Option("default", n)
        chosen["nosave"] = Option("default_nosave", n)
    return chosen


def confirm(
    ctx, setup: Setup, result: LevelResult, refs: dict, repeat: int, cap: float, short: int = 0
):
    """Re-run the chosen options in fresh processes, interleaved, `repeat` times.

    (`short` times when a run is shorter than :data:`SHORT_RUN`.)

    Stores the median wall time and memory (and the error of the last run)
    in ``result.final``; an option whose run fails is left out and its
    error recorded in ``result.failures``.
    """
    chosen = chosen_options(result)
    runs: dict = {k: [] for k in chosen}
    done, rounds = 0, repeat if chosen else 0
    while done < rounds:
        for key, option in chosen.items():
            for earlier in runs[key]:  # only the last run's density is read: 645 MB at 432³
                earlier.pop("p", None)
            runs[key].append(measure(ctx, setup.name, option, timeout=20 * cap))
        done += 1
        walls = [r["wall"] for rs in runs.values() for r in rs if "error" not in r]
        if walls and min(walls) < SHORT_RUN:  # short runs are noisy: more rounds
            rounds = max(repeat, short)
    for key, option in chosen.items():
        ok = [r for r in runs[key] if "error" not in r]
        if len(ok) < len(runs[key]):
            bad = next(r["error"] for r in runs[key] if "error" in r)
            result.failures.append(f"{option.describe()}, N = {option.n}: {bad}"[:200])
        if not ok:
            continue
        result.final[key] = {
            "option": option,
            "wall": float(np.median([r["wall"] for r in ok])),
            "memory": float(np.median([r["memory"] for r in ok])),
            "error": l1(setup.problem.grid(option.n), ok[-1]["p"], refs[option.n]),
            "work": work_text(ok[-1]["steps"], ok[-1]["factorizations"]),
        }


# ----------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------
def spatial_table(setup: Setup, spatial: dict) -> list[str]:
    """Spatial error of every grid (exact time integration)."""
    rows = ["| cells per axis | cells | L¹ error, exact in time |", "|---:|---:|---:|"]
    for n in setup.grids:
        rows.append(f"| {n} | {n**setup.problem.ndim:,} | {spatial[n]:.2e} |")
    return rows


def needed_cells(setup: Setup, spatial: dict, level: float) -> int:
    """Cells per axis for a spatial error of MARGIN·level (second order)."""
    n = setup.grids[-1]
    return int(math.ceil(n * math.sqrt(spatial[n] / (MARGIN * level))))


def ratios(r: LevelResult) -> tuple[float, float] | None:
    """Default / best with the same output: (every step saved, ``save_at=[]``)."""
    f = r.final
    if not all(k in f for k in ("best", "best_out", "default", "nosave")):
        return None
    return f["default"]["wall"] / f["best_out"]["wall"], f["nosave"]["wall"] / f["best"]["wall"]


def level_table(setup: Setup, spatial: dict, results: list) -> list[str]:
    """Best option against the default, one row per level."""
    rows = [
        "| L¹ level | best option (work) | N | time [s] | ΔRSS [MiB] | default: N (work) "
        "| time [s] | ΔRSS [MiB] | L¹ error | **default / best** | "
        "`save_at=[]`: best, default [s] | default / best |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "best" not in r.final:
            rows.append(f"| {r.level:.0e} | {not_reached(setup, spatial, r)} |" + " |" * 10)
            continue
        f, q = r.final, ratios(r)
        b, bo, d, ns = f["best"], f.get("best_out"), f.get("default"), f.get("nosave")
        if d and q:
            dcols = (
                f"{d['option'].n} ({d['work']}) | {d['wall']:.3f} | {d['memory']:.0f} |"
                f" {d['error']:.1e} | **{q[0]:.2f}** | {b['wall']:.3f}, {ns['wall']:.3f} |"
                f" {q[1]:.2f}"
            )
        else:
            dcols = (
                f"{missed(r.stopped['default'])} | | | | | |"
                if "default" in r.stopped
                else ("not run | | | | | |")
            )
        bwall = bo or b
        rows.append(
            f"| {r.level:.0e} | {b['option'].describe()} ({b['work']}) | {b['option'].n} |"
            f" {bwall['wall']:.3f} | {bwall['memory']:.0f} | {dcols} |"
        )
    return rows


def not_reached(setup: Setup, spatial: dict, r: LevelResult) -> str:
    """Why level `r` has no result."""
    if not r.grids:
        return (
            f"not reached: every grid up to {setup.grids[-1]} has a spatial error ≥ "
            f"{MARGIN:g} ε (≈ {needed_cells(setup, spatial, r.level)} cells per axis needed)"
        )
    return f"not reached on {', '.join(map(str, r.grids))} within the time cap"


def missed(trials: list) -> str:
    """A family that did not reach the level: its smallest error and longest run."""
    best = min(trials, key=lambda t: t.error)
    grids = ", ".join(str(n) for n in dict.fromkeys(t.option.n for t in trials))
    return (
        f"not reached on N = {grids}: smallest error {best.error:.1e} "
        f"({best.option.describe()}, N = {best.option.n}); longest run "
        f"{max(t.wall for t in trials):.2f} s"
    )


def family_table(results: list) -> list[str]:
    """Fastest scanned option of every family, per level (single runs)."""
    rows = [
        "| L¹ level | method | fastest option reaching it | N | wall [s] | L¹ error |",
        "|---:|---|---|---:|---:|---:|",
    ]
    for r in results:
        if not r.grids:
            continue
        for family in families():
            if family in r.best:
                t = r.best[family]
                rows.append(
                    f"| {r.level:.0e} | {family} | {t.option.describe()} ({t.work()}) |"
                    f" {t.option.n} |"
                    f" {t.wall:.3f} | {t.error:.2e} |"
                )
            elif family in r.stopped:
                rows.append(f"| {r.level:.0e} | {family} | {missed(r.stopped[family])} | | | |")
            elif family in r.skipped:
                rows.append(f"| {r.level:.0e} | {family} | {r.skipped[family]} | | | |")
    return rows


def reference_text(setup: Setup, ref: Reference) -> str:
    """One paragraph on how the reference was made and how accurate it is."""
    if not setup.fine:
        return (
            "Reference: the exact Ornstein–Uhlenbeck Gaussian averaged over each cell "
            "(the reflecting walls hold the ≈ 1e-6 of mass the free-space solution puts "
            "outside the box)."
        )
    i = ref.info
    a, f = i["pair"]
    power = "²³"[setup.problem.ndim - 2]
    how = (
        f"Chebyshev, {i['terms']} products, truncation < 1e-14"
        if i["terms"]
        else "separable: 1-D eigendecompositions per axis, which agree with the Chebyshev "
        f"expansion to {i['check_l1']:.0e} in L¹ on {i['check_grid']}{power}"
    )
    text = (
        f"Reference: {f}{power} cells integrated exactly in time "
        f"({how}), Richardson-extrapolated "
        f"with {a}{power} (computed in {i['seconds']:.0f} s"
        f"{', read from the cache' if i.get('cached') else ''}). Estimated L¹ error of the "
        f"plain {f} solution: "
        f"{i['plain_error_estimate']:.1e}"
    )
    if "extrapolation_spread" in i:
        text += (
            f"; observed order {i['observed_order']:.2f}; the two extrapolations "
            f"(partners {', '.join(map(str, i['partners']))}) differ by "
            f"{i['extrapolation_spread']:.1e} on {i['spread_grid']} cells per axis, an "
            "estimate of the reference's error"
        )
    return text + "."


def summary_rows(setup: Setup, results: list) -> list[str]:
    """Rows of the README summary: each level's best and default."""
    rows = []
    for r in results:
        if "best" not in r.final:
            continue
        b, d, q = r.final.get("best_out", r.final["best"]), r.final.get("default"), ratios(r)
        dtext = (
            f"{d['wall']:.2f} s, {d['memory']:.0f} MiB, N = {d['option'].n}, L¹ {d['error']:.1e}"
            f" ({d['work']})"
            if d
            else default_missed(r)
        )
        ratio = f"{q[0]:.2f} ({q[1]:.2f})" if q else "—"
        rows.append(
            f"| {setup.name} | {r.level:.0e} | {dtext} | {b['option'].describe()}, "
            f"N = {b['option'].n}: {b['wall']:.2f} s, {b['memory']:.0f} MiB ({b['work']}) |"
            f" {ratio} |"
        )
    return rows


def failure_lines(results: list) -> list[str]:
    """Options that raised instead of returning a result."""
    failed = [f"{r.level:.0e}: {f}" for r in results for f in r.failures]
    return ["", "Runs that failed: " + "; ".join(failed) + "."] if failed else []


def default_missed(r: LevelResult) -> str:
    """The default's smallest error when it did not reach the level."""
    trials = r.stopped.get("default")
    if not trials:
        return "not run"
    best = min(trials, key=lambda t: t.error)
    return f"not reached: its smallest error is {best.error:.1e} (N = {best.option.n})"


def goal_line(results: list) -> str:
    """Whether the default is within 1.5× of the best at each reached level."""
    parts = []
    for r in results:
        if "best" in r.final:
            q = ratios(r)
            if q is None:
                parts.append(f"{r.level:.0e}: default did not reach it")
            else:
                verdict = "met" if q[0] <= 1.5 else "NOT met"
                parts.append(f"{r.level:.0e}: {verdict} ({q[0]:.2f}; with `save_at=[]` {q[1]:.2f})")
    return (
        "Goal default ≤ 1.5 × best, both called with the same output: "
        + ("; ".join(parts) if parts else "no level reached")
        + "."
    )


# ----------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------
def run_setup(ctx, setup: Setup, repeat: int, cap: float, quick: bool, log) -> dict:
    """Reference, spatial errors, scans and confirmations for one problem."""
    problem = setup.problem
    ref = reference_for(setup, not quick)
    refs = {n: ref.on(setup, n) for n in setup.grids}
    spatial = {}
    for n in setup.grids:
        spatial[n] = l1(problem.grid(n), grid_solution(problem, n), refs[n])
    results = []
    for level in setup.levels:
        result = scan_level(setup, level, spatial, refs, cap, log)
        confirm(ctx, setup, result, refs, repeat, cap, short=0 if quick else SHORT_ROUNDS)
        results.append(result)
    return {"setup": setup, "ref": ref, "spatial": spatial, "results": results}


def section(out: dict) -> list[str]:
    """The markdown section of one problem."""
    setup, results = out["setup"], out["results"]
    p = setup.problem
    return [
        f"## {p.name}: {p.title}",
        "",
        f"E = {p.formula}, T = {p.temperature:g}, p₀ = {p.describe()}, t_end = {p.t_end:g}.",
        "",
        reference_text(setup, out["ref"]),
        "",
        *level_table(setup, out["spatial"], results),
        "",
        goal_line(results),
        *failure_lines(results),
        "",
        "<details><summary>Spatial error of each grid, and the fastest option of every "
        "method</summary>",
        "",
        *spatial_table(setup, out["spatial"]),
        "",
        *family_table(results),
        "",
        "</details>",
        "",
    ]


def header(quick: bool, repeat: int) -> list[str]:
    """Title and method notes."""
    return [
        f"# Time to reach an L¹ accuracy{' (quick)' if quick else ''}",
        "",
        f"Machine: {P.machine_line()}. One thread.",
        "",
        "For each L¹ level ε, the fastest option found (method, N cells per axis, dt or "
        "rtol; dt ladder t_end/2^k, rtol ladder 10^(−k/2)) against the default call "
        "`solve(p0, t_end)` (the exact `separable` path where the model allows it, "
        "otherwise the adaptive method with its global time-error control, saving every "
        "step) on the coarsest "
        f"grid where it reaches ε. A grid is tried when its spatial error is below {MARGIN:g} ε "
        "(the two coarsest such grids). Times: median of "
        f"{repeat} fresh processes"
        + ("" if quick else f" ({max(repeat, SHORT_ROUNDS)} when one takes under {SHORT_RUN:g} s)")
        + ", building the model and solving; ΔRSS: growth of the "
        "peak resident set of that process. The default and the best option are compared "
        "as called with the same output: `solve`'s own, every step saved with its "
        "diagnostics (the ratio in bold, the goal), and `save_at=[]` (the last columns; "
        "the scan itself runs with `save_at=[]`). The scan's own single-run times are in "
        "the details. Problem definitions: [problems.md](problems.md).",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grids, one level")
    parser.add_argument("--repeat", type=int, default=None, help="fresh-process repeats")
    parser.add_argument("--problems", default=None, help="comma-separated subset, e.g. P2,P5")
    parser.add_argument("--out", default=str(HERE / "accuracy.md"))
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="with --problems: replace only those problems' sections and summary rows",
    )
    args = parser.parse_args(argv)
    setups = QUICK if args.quick else FULL
    if args.problems:
        keep = set(args.problems.split(","))
        setups = tuple(s for s in setups if s.name in keep)
    repeat = args.repeat or (1 if args.quick else 3)
    cap = 5.0 if args.quick else 90.0

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, flush=True)

    t0 = time.perf_counter()
    ctx = fresh_context()  # before this process grows
    outs = [run_setup(ctx, s, repeat, cap, args.quick, log) for s in setups]
    sections = {out["setup"].name: section(out) for out in outs}
    rows = {out["setup"].name: summary_rows(out["setup"], out["results"]) for out in outs}
    seconds = time.perf_counter() - t0
    trailer = f"Total run time of this script: {seconds:.0f} s."
    if args.merge:
        old_sections, old_rows = committed_tables(Path(args.out))
        sections, rows = {**old_sections, **sections}, {**old_rows, **rows}
        pattern = r"(?m)(?:^Total run time of this script: |\(which took )(\d+) s"
        earlier = re.search(pattern, Path(args.out).read_text())
        trailer = (
            f"Run time of this script for {', '.join(s.name for s in setups)}: {seconds:.0f} s, "
            "merged into the tables of an earlier full run on the same machine"
            + (f" (which took {earlier.group(1)} s)." if earlier else ".")
        )
    order = [s.name for s in FULL if s.name in sections]
    lines = header(args.quick, repeat)
    for name in order:
        lines += sections[name]
    lines.append(trailer)
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    if Path(args.out).resolve() == (HERE / "accuracy.md").resolve():
        summary = [r for name in order for r in rows.get(name, [])]
        P.update_readme("accuracy", summary_table(summary) + "\n\n" + ratio_line(summary))
    print(text)
    return 0


def committed_tables(path: Path) -> tuple[dict, dict]:
    """The per-problem sections of `path` and the README summary rows, for ``--merge``."""
    sections: dict = {}
    for part in re.split(r"(?m)^(?=## P\d)", path.read_text())[1:]:
        body = re.split(r"(?m)^(?:Total run time|Run time) of this script", part)[0]
        sections[part[3:].split(":")[0]] = body.rstrip("\n").split("\n") + [""]
    readme = (HERE / "README.md").read_text()
    block = readme.split("<!-- accuracy -->")[1].split("<!-- /accuracy -->")[0]
    rows: dict = {}
    for line in block.splitlines():
        if re.match(r"\| P\d \|", line):
            rows.setdefault(line.split("|")[1].strip(), []).append(line)
    return sections, rows


def ratio_line(rows: list[str]) -> str:
    """How far the default is from the best over every level both reached (summary rows)."""
    cells = [row.rstrip(" |").rsplit("|", 1)[1].strip() for row in rows]
    pairs = [tuple(float(x) for x in re.findall(r"[\d.]+", c)) for c in cells if c != "—"]
    missed_levels = sum(c == "—" for c in cells)
    if not pairs:
        return "The default reached none of the levels."
    saved, bare = np.array([q[0] for q in pairs]), np.array([q[1] for q in pairs])
    return (
        f"Default / best, both saving every step: {saved.min():.2f} to {saved.max():.2f} "
        f"(median {float(np.median(saved)):.2f}) over the {len(pairs)} levels both reached; "
        f"within 1.5× at {int(np.sum(saved <= 1.5))} of them. Both with `save_at=[]`: "
        f"{bare.min():.2f} to {bare.max():.2f} (median {float(np.median(bare)):.2f}), within "
        f"1.5× at {int(np.sum(bare <= 1.5))}. Levels the best option reached and the default "
        f"did not: {missed_levels}."
    )


def summary_table(rows: list[str]) -> str:
    """The README's summary table."""
    head = [
        "| problem | L¹ level | default `solve(p0, t_end)`: time, memory, grid, error "
        "| best option: time, memory | default / best (both `save_at=[]`) |",
        "|---|---:|---|---|---:|",
    ]
    return "\n".join(head + rows)


if __name__ == "__main__":
    raise SystemExit(main())
