"""Sparse direct solvers: MUMPS against SuperLU on the 2-D step matrix.

Usage::

    python benchmarks/direct_solvers.py [--quick] [--sizes 128,256,512,1024]

For the implicit step matrix I − c L of P2 (the 2-D double well; c = 0.03,
the TR-BDF2 coefficient of the step t_end/16) on N² cells, times the
factorisation and one solve of SuperLU (:func:`fpsolver.discrete.lu.sparse_lu`,
as :class:`fpsolver.discrete.linsolve.LinearSolver` calls it; and
``scipy.sparse.linalg.splu`` with its default COLAMD ordering) and of MUMPS
(the ``PyMUMPS`` binding, ``DMumpsContext``: analysis + factorisation, then
one solve), each with 1 and with 2 BLAS/OpenMP threads (threadpoolctl),
in the same process, interleaved, minimum of ``--repeat`` runs; the
residual of each solution is checked. MUMPS is an optional package that
needs the MUMPS library: when it does not import, the table says so and
gives the import error. The issue's rule: MUMPS becomes an extra that the
automatic choice uses only if it wins by 2× or more.

Writes the table to ``benchmarks/direct_solvers.md``. ``--quick``: 32² and
64², one repeat.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import argparse
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from threadpoolctl import threadpool_limits

from fpsolver.cli.demo import double_well_model
from fpsolver.discrete.lu import sparse_lu

#: The step coefficient c of I − c L.
C = 0.03


def mumps_status() -> str | None:
    """None when PyMUMPS imports, else the error text."""
    try:
        import mumps  # noqa: F401
    except Exception as exc:  # pragma: no cover - depends on the machine
        return f"{type(exc).__name__}: {exc}"
    return None


def _superlu(factor, A: sp.csc_matrix, b: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(factorisation seconds, solve seconds, x) with the SuperLU factors ``factor(A)``."""
    t0 = time.perf_counter()
    lu = factor(A)
    t1 = time.perf_counter()
    x = lu.solve(b)
    return t1 - t0, time.perf_counter() - t1, x


def superlu_run(A: sp.csc_matrix, b: np.ndarray) -> tuple[float, float, np.ndarray]:
    """:func:`_superlu` as the package calls SuperLU (:func:`sparse_lu`)."""
    return _superlu(sparse_lu, A, b)


def colamd_run(A: sp.csc_matrix, b: np.ndarray) -> tuple[float, float, np.ndarray]:
    """:func:`_superlu` with SuperLU's default ordering (COLAMD)."""
    return _superlu(lambda M: spla.splu(M, permc_spec="COLAMD"), A, b)


def mumps_run(A: sp.csc_matrix, b: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(analysis + factorisation seconds, solve seconds, x) with MUMPS."""
    import mumps

    ctx = mumps.DMumpsContext(sym=0, par=1)
    ctx.set_silent()
    try:
        t0 = time.perf_counter()
        ctx.set_centralized_sparse(A.tocoo())
        ctx.run(job=4)  # analysis and factorisation
        t1 = time.perf_counter()
        x = b.copy()
        ctx.set_rhs(x)
        ctx.run(job=3)
        return t1 - t0, time.perf_counter() - t1, x
    finally:
        ctx.destroy()


def measure(n: int, repeat: int, with_mumps: bool) -> list[dict]:
    """Best-of-`repeat` timings of each solver and thread count on N² cells."""
    L = double_well_model(n).generator()
    A = sp.csc_matrix(sp.identity(L.shape[0], format="csr") - C * L)
    b = np.random.default_rng(0).random(L.shape[0])
    runs = [("SuperLU", superlu_run), ("SuperLU, COLAMD", colamd_run)]
    runs += [("MUMPS", mumps_run)] if with_mumps else []
    best: dict = {}
    for _ in range(repeat):
        for threads in (1, 2):
            for name, fn in runs:
                with threadpool_limits(threads):
                    fact, solve, x = fn(A, b)
                residual = float(np.abs(A @ x - b).max() / np.abs(b).max())
                key = (name, threads)
                old = best.get(key)
                if old is None or fact + solve < old["fact"] + old["solve"]:
                    best[key] = dict(fact=fact, solve=solve, residual=residual)
    return [dict(n=n, solver=k[0], threads=k[1], **v) for k, v in best.items()]


def table(rows: list[dict], status: str | None) -> list[str]:
    """The markdown table, with MUMPS/SuperLU ratios."""
    lines = [
        "# Sparse direct solvers: MUMPS against SuperLU (2-D step matrix of P2)",
        "",
    ]
    if status is not None:
        lines += [f"MUMPS (PyMUMPS) is not available here: `{status}`.", ""]
    lines += [
        "| cells | solver | threads | factorisation [s] | one solve [s] | residual "
        "| SuperLU (1 thread) / this, factorisation |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    base = {r["n"]: r for r in rows if r["solver"] == "SuperLU" and r["threads"] == 1}
    for r in rows:
        ratio = base[r["n"]]["fact"] / r["fact"]
        lines.append(
            f"| {r['n']}² | {r['solver']} | {r['threads']} | {r['fact']:.3f} | "
            f"{r['solve']:.4f} | {r['residual']:.1e} | {ratio:.2f} |"
        )
    mumps_rows = [r for r in rows if r["solver"] == "MUMPS"]
    if mumps_rows:
        wins = [base[r["n"]]["fact"] / r["fact"] for r in mumps_rows]
        verdict = "wins by 2× or more" if min(wins) >= 2 else "does not win by 2× on every grid"
        lines += [
            "",
            f"MUMPS factorisation speed-up over SuperLU (1 thread): {min(wins):.2f}× to "
            f"{max(wins):.2f}×: it {verdict}.",
        ]
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32² and 64², one repeat")
    parser.add_argument("--sizes", default=None, help="cells per axis, e.g. 128,256,512,1024")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--out", default=str(Path(__file__).with_name("direct_solvers.md")))
    args = parser.parse_args(argv)
    default = "32,64" if args.quick else "128,256,512,1024"
    sizes = [int(s) for s in (args.sizes or default).split(",")]
    repeat = args.repeat or (1 if args.quick else 3)
    status = mumps_status()
    rows = []
    for n in sizes:
        rows += measure(n, 1 if n >= 1024 else repeat, status is None)
    text = "\n".join(table(rows, status))
    print(text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
