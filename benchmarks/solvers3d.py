"""Cost of the 3-D linear solvers: which one `linear_solver="auto"` should pick.

Usage::

    python benchmarks/solvers3d.py [--quick] [--sizes 32,64,96,128] [--out FILE]

Problem P4: E = |x|²/2, T = 1, K = 1 on [−5, 5]³ with N³ cells,
p0 = N((1, 1, 1), 0.25 I), 20 TR-BDF2 steps of dt = 0.05 to t = 1, compared
with the exact Gaussian (:func:`fpsolver.core.analytic.ou_density`). Every
option solves the same 40 systems (I − c L) x = b, c = γ dt / 2. The cost of
the whole solve (building the solver, AMG set-up and all 20 steps) is
reported as wall time and as the equivalent number of products L·p: wall
divided by the median time of one product L·p measured in the same
process, between the options (so the ratio, not the seconds, is what
carries over between machines; the machine is shared, so seconds are
noisy). The two rows the goals are judged on (the default CG and
``fp.solve``, at N = 96 and 128) are the median of three runs. Rows:

* the previous default (scipy CG on the symmetric form + smoothed-
  aggregation AMG built per c, relative 2-norm residual 1e-10) and
  previous plain CG, replicated here;
* CG started from the previous step's density (as the stepper passes it),
  unpreconditioned, Jacobi or Chebyshev(4) preconditioned, and AMG with one
  hierarchy reused for every step;
* CG and AMG started from the Galerkin projection onto the last two
  (this contains the linear extrapolation in time) or four solutions
  (the new default), at several tolerances: the L¹ residual
  Σ V|r| ≤ rtol Σ V|b|, which bounds the L¹ error of each solve, default
  1e-7 (the 2-norm rows of the previous solver are not comparable);
* ``fp.solve`` as a user calls it, with the tolerance it passes today
  (``linear_rtol=1e-10``) and with ``linear_rtol=None`` (the solver's
  default);
* sparse LU on the smaller grids.

P6 (coupled quartic wells, not separable; ``benchmarks/problems.py``)
checks the choice on a model that separation of variables cannot
shortcut, against a CG solve to 1e-12. Two more tables: a non-reversible
3-D model (P4 with a rotating drift,
f = (−x − y, x − y, −z), built by ``FokkerPlanck.from_drift``), where
BiCGStab with a Jacobi or AMG preconditioner is compared with LU; and the
stationary density of that model, sparse LU against the AMG-preconditioned
GMRES path of :mod:`fpsolver.discrete.nullspace`. Each size runs in its
own spawned process, one thread.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import time
from pathlib import Path

import numpy as np
from problems import in_fresh_process  # the sibling module

DT, STEPS = 0.05, 20
#: (label, LinearSolver options or a special key, tolerance); None: the solver's default.
P4_OPTIONS = [
    ("previous default: scipy CG + AMG per c, 2-norm 1e-10", "previous-amg", None),
    ("previous plain CG: scipy CG, 2-norm 1e-10", "previous-cg", None),
    ("CG, x0 = previous step", dict(kind="cg", history=0), None),
    ("CG + Jacobi, x0 = previous step", dict(kind="cg", history=0, preconditioner="jacobi"), None),
    (
        "CG + Chebyshev(4), x0 = previous step",
        dict(kind="cg", history=0, preconditioner="chebyshev"),
        None,
    ),
    ("AMG (one hierarchy), x0 = previous step", dict(kind="amg", history=0), None),
    ("AMG (one hierarchy), projected x0", dict(kind="amg"), None),
    ("CG, x0 projected on 2 solutions (linear extrapolation)", dict(kind="cg", history=2), None),
    ("CG, projected x0 (**default**)", dict(kind="cg"), None),
    ("CG, projected x0, rtol 1e-6", dict(kind="cg"), 1e-6),
    ("CG, projected x0, rtol 1e-8", dict(kind="cg"), 1e-8),
    ("CG, projected x0, rtol 1e-10", dict(kind="cg"), 1e-10),
    ("`fp.solve` as today (linear_rtol=1e-10)", "solve", 1e-10),
    ("`fp.solve(linear_rtol=None)`", "solve", None),
    ("sparse LU", dict(kind="lu"), None),
]
LU_MAX = 24  # LU rows only up to this N (32³ LU: 8 s and 0.2 GiB per factorisation)
PREVIOUS_AMG_MAX = 96  # the previous default costs ~10⁴ products; skip it beyond
GOALS = {96: 800, 128: 1000}  # products L·p of the whole default solve; L¹ error ≤ 1e-3
#: The rows the goals are judged on, and how many timed runs each gets (the
#: median is reported: one run on a shared machine can be 30 % slow).
GOAL_LABELS = ("CG, projected x0 (**default**)", "`fp.solve(linear_rtol=None)`")
GOAL_REPEATS = 3


def _p4(n: int):
    import fpsolver as fp

    grid = fp.Grid(x=(-5, 5, n), y=(-5, 5, n), z=(-5, 5, n))
    return fp.FokkerPlanck(grid, energy=lambda x, y, z: (x**2 + y**2 + z**2) / 2, temperature=1.0)


def _rotating(n: int):
    import fpsolver as fp

    grid = fp.Grid(x=(-5, 5, n), y=(-5, 5, n), z=(-5, 5, n))
    return fp.FokkerPlanck.from_drift(grid, lambda x, y, z: (-x - y, x - y, -z))


class _Clock:
    """Median time of one product L·p, sampled between the timed runs."""

    def __init__(self, L, p: np.ndarray) -> None:
        self.L, self.p, self.samples = L, p, []

    def sample(self, k: int = 9) -> None:
        for _ in range(k):
            t0 = time.perf_counter()
            self.L @ self.p
            self.samples.append(time.perf_counter() - t0)

    @property
    def product(self) -> float:
        return float(np.median(self.samples))


class _Previous:
    """The solver that `linear_solver="auto"` (and "cg") used before, replicated.

    scipy CG on the symmetric form, relative 2-norm residual 1e-10 of the
    scaled system, x0 = the stepper's guess, a smoothed-aggregation
    hierarchy built for every c (``amg=True``), mass correction as now.
    """

    def __init__(self, op, amg: bool) -> None:
        import scipy.sparse as sp

        self.S = sp.csr_array(op.symmetric)
        log_d = np.asarray(op.symmetrizer)
        self.d = np.exp(log_d - log_d.max())
        self.amg, self.cache = amg, {}
        self.iterations = self.factorizations = self.hierarchies = 0
        V = op.grid.volumes.ravel()
        self.V, self.outflow = V, V @ op.generator

    def _get(self, c: float):
        if c not in self.cache:
            import scipy.sparse as sp

            A = sp.csr_matrix(sp.identity(self.S.shape[0], format="csr") - c * self.S)
            M = None
            if self.amg:
                import pyamg

                M = pyamg.smoothed_aggregation_solver(A, symmetry="symmetric").aspreconditioner()
                self.hierarchies += 1
            self.cache[c] = (A, M)
            self.factorizations += 1
        return self.cache[c]

    def solve(self, c, b, x0=None, *, conserve=True):
        import scipy.sparse.linalg as spla

        A, M = self._get(c)
        count = [0]

        def tick(_) -> None:
            count[0] += 1

        y0 = None if x0 is None else self.d * x0
        y, info = spla.cg(A, self.d * b, x0=y0, rtol=1e-10, atol=0.0, M=M, callback=tick)
        self.iterations += count[0]
        x = y / self.d
        if conserve:
            x *= float(self.V @ b) / float((self.V - c * self.outflow) @ x)
        return x


def _linear(op, spec, rtol):
    from fpsolver.discrete.linsolve import LinearSolver

    if spec in ("previous-amg", "previous-cg"):
        return _Previous(op, amg=spec == "previous-amg")
    spec = dict(spec)
    kind = spec.pop("kind")
    if kind == "lu":
        lin = LinearSolver(op.generator, "lu")
    elif kind == "bicgstab":
        lin = LinearSolver(op.generator, "bicgstab", rtol=rtol, **spec)
    else:
        lin = LinearSolver(
            op.generator, kind, symmetric=op.symmetric, log_scale=op.symmetrizer, rtol=rtol, **spec
        )
    lin.set_volumes(op.grid.volumes)
    return lin


def _march(op, spec, rtol, p0: np.ndarray) -> tuple[float, np.ndarray, dict]:
    """Wall time of building the solver and 20 TR-BDF2 steps; the result; counters."""
    from fpsolver.integrate.steppers import TRBDF2

    t0 = time.perf_counter()
    lin = _linear(op, spec, rtol)
    stepper = TRBDF2(op.generator, lin, dt=DT)
    p = p0.copy()
    for _ in range(STEPS):
        p = stepper.step(p, DT)
    wall = time.perf_counter() - t0
    info = {
        "iterations": getattr(lin, "iterations", 0),
        "hierarchies": getattr(lin, "hierarchies", 0),
        "factorizations": lin.factorizations,
    }
    return wall, p, info


def _solve_call(model, p0, rtol) -> tuple[float, np.ndarray, dict]:
    import fpsolver as fp

    t0 = time.perf_counter()
    ds = fp.solve(model, p0, DT * STEPS, dt=DT, method="tr_bdf2", save_at=[], linear_rtol=rtol)
    wall = time.perf_counter() - t0
    info = {
        "iterations": ds.attrs.get("cg_iterations", 0),
        "hierarchies": 0,
        "factorizations": ds.attrs["factorizations"],
        "solver": ds.attrs["linear_solver"],
    }
    return wall, ds.p[-1].values.ravel(), info


def p4_case(n: int, queue) -> None:
    """All P4 options at one N, in this (fresh) process."""
    import fpsolver as fp
    from fpsolver.core.analytic import ou_density

    t0 = time.perf_counter()
    model = _p4(n)
    op = fp.discretize(model)
    op.symmetric  # noqa: B018 - assembled here, not timed with the solves
    assembly = time.perf_counter() - t0
    grid = op.grid
    p0 = fp.gaussian(grid, (1, 1, 1), 0.25).values.ravel()
    exact = ou_density(grid, 1.0, 1.0, [1, 1, 1], 0.25, 1.0).ravel()
    V = grid.volumes.ravel()
    clock = _Clock(op.generator, p0)
    rows = []
    for label, spec, rtol in P4_OPTIONS:
        if spec == "previous-amg" and n > PREVIOUS_AMG_MAX:
            continue
        if isinstance(spec, dict) and spec["kind"] == "lu" and n > LU_MAX:
            continue
        walls = []
        for _ in range(GOAL_REPEATS if n in GOALS and label in GOAL_LABELS else 1):
            clock.sample()
            if spec == "solve":
                wall, p, info = _solve_call(model, p0.reshape(grid.shape), rtol)
            else:
                wall, p, info = _march(op, spec, rtol, p0)
            walls.append(wall)
        wall = float(np.median(walls))
        info.update(label=label, wall=wall, error=float(V @ np.abs(p - exact)))
        info.update(pmin=float(p.min()), mass=abs(float(V @ p) - 1.0))
        rows.append(info)
    clock.sample()
    queue.put({"n": n, "rows": rows, "product": clock.product, "assembly": assembly})


P6_OPTIONS = [
    ("previous plain CG: scipy CG, 2-norm 1e-10", "previous-cg", None),
    ("CG, x0 = previous step", dict(kind="cg", history=0), None),
    ("AMG (one hierarchy), projected x0", dict(kind="amg"), None),
    ("CG, projected x0 (**default**)", dict(kind="cg"), None),
]


def _p6(n: int):
    """P6 of ``benchmarks/problems.py``: coupled quartic wells, not separable."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import problems

    problem = problems.PROBLEMS["P6"]
    model = problem.model(n)
    p0 = problem.initial(model)
    return model, np.asarray(getattr(p0, "values", p0), float).ravel()


def p6_case(n: int, queue) -> None:
    """P6 at one N: the default against the alternatives, distance to a tight solve."""
    import fpsolver as fp

    model, p0 = _p6(n)
    op = fp.discretize(model)
    op.symmetric  # noqa: B018 - assembled here, not timed
    V = op.grid.volumes.ravel()
    clock = _Clock(op.generator, p0)
    _, ref, _ = _march(op, dict(kind="cg"), 1e-12, p0)
    rows = []
    for label, spec, rtol in P6_OPTIONS:
        clock.sample()
        wall, p, info = _march(op, spec, rtol, p0)
        info.update(label=label, wall=wall, diff=float(V @ np.abs(p - ref)), pmin=float(p.min()))
        info.update(mass=abs(float(V @ p) - float(V @ p0)))
        rows.append(info)
    clock.sample()
    queue.put({"n": n, "rows": rows, "product": clock.product})


def p6_table(results: list[dict]) -> list[str]:
    lines = [
        "## P6: 3-D coupled quartic wells (not separable, T = 0.5), 20 TR-BDF2 steps of 0.05",
        "",
        "| N | option | products L·p | wall [s] | iterations | AMG builds "
        "| L¹ distance to a 1e-12 solve | min p | \\|Δ mass\\| |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        unit = res["product"]
        for r in res["rows"]:
            lines.append(
                f"| {res['n']} | {r['label']} | {r['wall'] / unit:,.0f} | {r['wall']:.2f} |"
                f" {r['iterations']} | {r['hierarchies']} | {r['diff']:.1e} |"
                f" {r['pmin']:.1e} | {r['mass']:.0e} |"
            )
    return lines + [""]


def nonreversible_case(n: int, queue) -> None:
    """The rotating 3-D OU: BiCGStab (Jacobi / AMG) against LU, 20 TR-BDF2 steps."""
    import fpsolver as fp
    import fpsolver.discrete.linsolve as ls

    model = _rotating(n)
    op = fp.discretize(model)
    grid = op.grid
    p0 = fp.gaussian(grid, (1, 1, 1), 0.25).values.ravel()
    V = grid.volumes.ravel()
    clock = _Clock(op.generator, p0)
    rows, ref = [], None
    options = [("LU", dict(kind="lu"), None)] if n <= LU_MAX else []
    options += [
        ("BiCGStab + Jacobi, projected x0 (**default**)", dict(kind="bicgstab"), None),
        ("BiCGStab + Jacobi, x0 = previous step", dict(kind="bicgstab", history=0), None),
        ("BiCGStab + AMG (one hierarchy), projected x0", "amg", None),
    ]
    for label, spec, rtol in options:
        clock.sample()
        escalate = ls.ESCALATE_ITERATIONS
        if spec == "amg":
            ls.ESCALATE_ITERATIONS, spec = -1, dict(kind="bicgstab")
        try:
            wall, p, info = _march(op, spec, rtol, p0)
        finally:
            ls.ESCALATE_ITERATIONS = escalate
        ref = p if ref is None and spec["kind"] == "lu" else ref
        diff = None if ref is None else float(V @ np.abs(p - ref))
        info.update(label=label, wall=wall, diff=diff, pmin=float(p.min()))
        info.update(mass=abs(float(V @ p) - 1.0))
        rows.append(info)
    clock.sample()
    queue.put({"n": n, "rows": rows, "product": clock.product})


def stationary_case(n: int, queue) -> None:
    """Stationary density of the rotating OU: LU path against the iterative one."""
    import fpsolver as fp
    from fpsolver.discrete.nullspace import null_vector, scaled_residual

    op = fp.discretize(_rotating(n))
    L, V = op.generator, op.grid.volumes.ravel()
    clock = _Clock(L, V)
    out = {"n": n}
    for method in ("lu", "iterative") if n <= LU_MAX else ("iterative",):
        clock.sample()
        t0 = time.perf_counter()
        p = null_vector(L, V, method=method)
        out[method] = (time.perf_counter() - t0, p, scaled_residual(L, p))
    clock.sample()
    if "lu" in out:
        lu, it = out["lu"][1], out["iterative"][1]
        out["peak"] = float(np.abs(lu - it).max() / lu.max())
        out["relative"] = float(np.max(np.abs(it / lu - 1.0)))
    out["product"] = clock.product
    for method in ("lu", "iterative"):
        if method in out:
            wall, _, res = out[method]
            out[method] = (wall, res)
    queue.put(out)


def run(target, n: int) -> dict:
    return in_fresh_process(target, n)


def _fmt(x: float | None, spec: str = ".1e") -> str:
    return "—" if x is None else format(x, spec)


def p4_table(results: list[dict]) -> list[str]:
    lines = [
        "## P4: reversible 3-D OU, 20 TR-BDF2 steps (40 solves)",
        "",
        "| N | option | products L·p | wall [s] | iterations | AMG builds | L¹ error vs exact "
        "| min p | \\|mass − 1\\| |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        unit = res["product"]
        for r in res["rows"]:
            label = r["label"] + (f" → {r['solver']}" if "solver" in r else "")
            lines.append(
                f"| {res['n']} | {label} | {r['wall'] / unit:,.0f} | {r['wall']:.2f} |"
                f" {r['iterations']} | {r['hierarchies']} | {r['error']:.4e} |"
                f" {r['pmin']:.1e} | {r['mass']:.0e} |"
            )
    lines += [""]
    for res in results:
        lines.append(
            f"N = {res['n']}: one product L·p took {res['product'] * 1e3:.3f} ms; assembling L "
            f"and S took {res['assembly'] / res['product']:,.0f} products (not included above)."
        )
    return lines + [""] + _goals(results)


def _goals(results: list[dict]) -> list[str]:
    lines = []
    for res in results:
        if res["n"] not in GOALS:
            continue
        rows = {r["label"]: r for r in res["rows"]}
        for label in GOAL_LABELS:
            r = rows[label]
            cost, ok_err = r["wall"] / res["product"], r["error"] <= 1e-3
            met = "met" if cost <= GOALS[res["n"]] and ok_err else "NOT met"
            lines.append(
                f"Goal at N = {res['n']} (≤ {GOALS[res['n']]:,} products, L¹ error ≤ 1e-3), "
                f"{label.replace('**', '')}: {cost:,.0f} products (median of {GOAL_REPEATS} runs), "
                f"error {r['error']:.2e}: {met}."
            )
    return lines + [""] if lines else []


def nonreversible_table(results: list[dict]) -> list[str]:
    lines = [
        "## Non-reversible: 3-D OU with a rotating drift, 20 TR-BDF2 steps",
        "",
        "| N | option | products L·p | wall [s] | iterations | AMG builds | L¹ distance to LU "
        "| min p | \\|mass − 1\\| |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        unit = res["product"]
        for r in res["rows"]:
            lines.append(
                f"| {res['n']} | {r['label']} | {r['wall'] / unit:,.0f} | {r['wall']:.2f} |"
                f" {r['iterations']} | {r['hierarchies']} | {_fmt(r['diff'])} |"
                f" {r['pmin']:.1e} | {r['mass']:.0e} |"
            )
    return lines + [""]


def stationary_table(results: list[dict]) -> list[str]:
    lines = [
        "## Stationary density of the rotating OU: `null_vector`, LU against iterative",
        "",
        "| N | LU: products (wall [s]) | iterative: products (wall [s]) | scaled residual "
        "(iterative) | max \\|Δp\\| / peak | max relative Δp |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        unit = res["product"]
        lu = res.get("lu")
        it = res["iterative"]
        lu_cell = "—" if lu is None else f"{lu[0] / unit:,.0f} ({lu[0]:.2f})"
        lines.append(
            f"| {res['n']} | {lu_cell} | {it[0] / unit:,.0f} ({it[0]:.2f}) | {it[1]:.1e} |"
            f" {_fmt(res.get('peak'))} | {_fmt(res.get('relative'))} |"
        )
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 24 and 32 only (< 60 s)")
    parser.add_argument("--sizes", default=None, help="P4 sizes, e.g. 32,64,96,128")
    parser.add_argument("--out", default=str(Path(__file__).with_name("solvers3d.md")))
    args = parser.parse_args(argv)
    q = args.quick
    sizes = [24, 32] if q else [32, 64, 96, 128]
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    title = "# 3-D linear solvers: cost of a whole solve in products L·p"
    lines = [title + (" (quick)" if q else ""), ""]
    print("\n".join(lines), flush=True)
    blocks = []
    for target, table, ns in (
        (p4_case, p4_table, sizes),
        (p4_case, None, [8, 10, 12, 16] if not q else [8, 12]),
        (p6_case, p6_table, [16] if q else [32, 48, 64]),
        (nonreversible_case, nonreversible_table, [16, 24] if q else [24, 48, 64]),
        (stationary_case, stationary_table, [12, 16] if q else [12, 16, 24, 48]),
    ):
        results = [run(target, n) for n in ns]
        block = table(results) if table is not None else _crossover(results)
        print("\n".join(block), flush=True)
        blocks += block
    lines += blocks
    Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


def _crossover(results: list[dict]) -> list[str]:
    """LU against the default CG on small P4 grids: where `AUTO_ITERATIVE_SIZE` sits."""
    lines = [
        "## Crossover LU / CG on small P4 grids (20 TR-BDF2 steps)",
        "",
        "| N | cells | LU [ms] | CG, projected x0 [ms] | LU / CG |",
        "|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        rows = {r["label"]: r for r in res["rows"]}
        lu = rows["sparse LU"]["wall"]
        cg = rows["CG, projected x0 (**default**)"]["wall"]
        n = res["n"]
        lines.append(f"| {n} | {n**3:,} | {lu * 1e3:.1f} | {cg * 1e3:.1f} | {lu / cg:.1f} |")
    return lines + [""]


if __name__ == "__main__":
    raise SystemExit(main())
