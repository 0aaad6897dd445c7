r"""Pair interactions on the grid: the kernel and the convolution (W * p).

For a pair interaction W, a function of the separation x − y (one array per
axis), the mean-field energy of a density p is, on the cells,

.. math::

    (W * p)_i = \sum_j V_j\, W(x_i - x_j)\, p_j .

:class:`Interaction` evaluates W once at every separation the grid holds
and applies the sum

- by FFT when every axis is uniform: a periodic axis wraps the separation
  to its minimal image in [−L/2, L/2) (the sum is a circular convolution);
  a bounded axis is zero-padded to 2n cells, so nothing wraps around;
- directly (a dense matrix of W(x_i − x_j)) otherwise, for grids of at
  most :data:`DIRECT_LIMIT` cells.

W must be even, W(−d) = W(d) (to 1e-8 relative), so that the interaction
energy ½ Σ V p (W * p) has W * p as its gradient; the kernel is then
symmetrised to rounding. :attr:`Interaction.lowest_eigenvalue` is the
lowest eigenvalue of the self-adjoint (in the V-weighted inner product)
operator p ↦ W * p: exactly from the FFT on a fully periodic grid, by
Lanczos (or a dense eigensolver on small grids) otherwise. The mean-field
time stepper uses it to split W into a convex and a concave part
(:mod:`fpsolver.discrete.meanfield`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

import numpy as np

from .grid import Grid, call_field, require_flat

__all__ = ["Interaction", "DIRECT_LIMIT", "uniform_axis"]

#: Largest grid (cells) on which the direct (dense) convolution is built.
DIRECT_LIMIT = 4096


def uniform_axis(edges: np.ndarray) -> bool:
    """Whether cell edges are equally spaced (to 1e-9 relative).

    Examples
    --------
    >>> uniform_axis(np.linspace(0, 1, 5)), uniform_axis(np.array([0, 1, 3.0]))
    (True, False)
    """
    w = np.diff(np.asarray(edges, float))
    return bool(np.max(np.abs(w - w.mean())) <= 1e-9 * abs(w.mean()))


class Interaction:
    """The pair interaction W of a mean-field model, evaluated on a grid.

    Parameters
    ----------
    grid : Grid
        A Cartesian grid (curved grids are refused).
    kernel : callable
        W of the separations, one array per axis (by axis name or
        positionally), e.g. ``lambda x: -np.cos(x)``; it must return finite
        real values of the separations' shape and be even.

    Examples
    --------
    >>> import numpy as np, fpsolver as fp
    >>> g = fp.Grid(theta=(0, 2 * np.pi, 32), periodic="theta")
    >>> W = Interaction(g, lambda theta: -np.cos(theta))
    >>> p = np.full(32, 1 / (2 * np.pi)) * (1 + 0.5 * np.cos(g.centers[0]))
    >>> u = W(p)                      # -∫cos(θ-θ')p(θ')dθ' = -0.5 cos θ / 2
    >>> bool(np.allclose(u, -0.25 * np.cos(g.centers[0]), atol=1e-13)), W.method
    (True, 'fft')
    >>> round(W.lowest_eigenvalue / np.pi, 12)
    -1.0
    """

    def __init__(self, grid: Grid, kernel: Callable[..., Any]) -> None:
        if not isinstance(grid, Grid):
            raise TypeError(f"`grid` must be an fpsolver.Grid, got {type(grid).__name__}")
        require_flat(grid, "a mean-field interaction")
        if not callable(kernel):
            raise TypeError(
                "`interaction` must be a callable of the separations (one array per axis), "
                f"e.g. lambda dx: -np.cos(dx); got {type(kernel).__name__}"
            )
        self.grid = grid
        self.kernel = kernel
        uniform = all(uniform_axis(e) for e in grid.edges)
        self.method = "fft" if uniform else "direct"
        if self.method == "direct" and grid.size > DIRECT_LIMIT:
            raise ValueError(
                f"a pair interaction on a non-uniform grid is summed directly, which is "
                f"limited to {DIRECT_LIMIT} cells; this grid has {grid.size}: use uniform axes"
            )
        self.volumes = np.asarray(grid.volumes, float)
        if self.method == "fft":
            self._pad = tuple(n if per else 2 * n for n, per in zip(grid.shape, grid.periodic))
            self._axes = tuple(range(grid.ndim))
            seps = [self._separations(a) for a in range(grid.ndim)]
            values = self._evaluate(seps)
            for a, per in enumerate(grid.periodic):  # padding column: never used
                if not per:
                    idx = [slice(None)] * grid.ndim
                    idx[a] = grid.shape[a]
                    values[tuple(idx)] = 0.0
            values = self._symmetrise(values, seps)
            self._kernel_hat = np.fft.rfftn(values, s=self._pad, axes=self._axes)
        else:
            seps = self._direct_separations()
            values = self._evaluate(seps)
            values = self._symmetrise_matrix(values, seps)
            self._matrix = values * self.volumes.ravel()[None, :]

    # -- kernel evaluation -------------------------------------------------
    def _separations(self, axis: int) -> np.ndarray:
        """The separations along `axis` in FFT order (wrapped or zero-padded)."""
        g = self.grid
        n = g.shape[axis]
        h = float(g.widths[axis][0])
        k = np.arange(self._pad[axis], dtype=float)
        if g.periodic[axis]:
            s = np.where(k < (n + 1) // 2, k * h, (k - n) * h)
        else:
            s = np.where(k <= n, k * h, (k - 2 * n) * h)
            s[n] = 0.0
        shape = [1] * g.ndim
        shape[axis] = s.size
        return s.reshape(shape)

    def _direct_separations(self) -> list[np.ndarray]:
        g = self.grid
        out = []
        for a in range(g.ndim):
            x = np.broadcast_to(g._along(a, g.centers[a]), g.shape).ravel()
            d = x[:, None] - x[None, :]
            if g.periodic[a]:
                L = g.lengths()[a]
                d = d - L * np.round(d / L)
            out.append(d)
        return out

    def _evaluate(self, seps: list[np.ndarray]) -> np.ndarray:
        shape = np.broadcast_shapes(*(s.shape for s in seps))
        try:
            with np.errstate(all="ignore"):  # non-finite values are reported below, by separation
                out = call_field(self.kernel, self.grid.names, seps)
        except Exception as err:
            raise ValueError(f"`interaction` callable failed on the separations: {err}") from err
        if np.iscomplexobj(out):
            raise TypeError("`interaction` must return real values; got complex ones")
        out = np.asarray(out, dtype=float)
        try:
            out = np.array(np.broadcast_to(out, shape))
        except ValueError:
            raise ValueError(
                f"`interaction` returned shape {out.shape}; expected one value per "
                f"separation, shape {shape} (or a shape that broadcasts to it)"
            ) from None
        bad = ~np.isfinite(out)
        if np.any(bad):
            i = tuple(int(v) for v in np.argwhere(bad)[0])
            raise ValueError(
                f"`interaction` must be finite at every separation; got {out[i]} at "
                f"{self._describe(seps, i)}"
            )
        return out

    def _describe(self, seps: list[np.ndarray], index: tuple[int, ...]) -> str:
        parts = []
        for name, s in zip(self.grid.names, seps):
            full = np.broadcast_to(s, np.broadcast_shapes(*(q.shape for q in seps)))
            parts.append(f"d{name}={float(full[index]):.6g}")
        return "separation " + ", ".join(parts)

    def _check_even(self, values: np.ndarray, mirror: np.ndarray, seps, where) -> None:
        scale = max(float(np.max(np.abs(values))), 1e-300)
        diff = np.abs(values - mirror)
        if np.max(diff) > 1e-8 * scale:
            i = tuple(int(v) for v in np.unravel_index(np.argmax(diff), diff.shape))
            raise ValueError(
                f"`interaction` must be even, W(-d) = W(d) (a pair energy); at "
                f"{self._describe(seps, where(i))} W = {values[i]:.6g} but W(-d) = "
                f"{mirror[i]:.6g}"
            )

    def _symmetrise(self, values: np.ndarray, seps) -> np.ndarray:
        mirror = values
        for a in range(values.ndim):
            mirror = np.roll(np.flip(mirror, axis=a), 1, axis=a)
        self._check_even(values, mirror, seps, lambda i: i)
        return 0.5 * (values + mirror)

    def _symmetrise_matrix(self, values: np.ndarray, seps) -> np.ndarray:
        self._check_even(values, values.T, seps, lambda i: i)
        return 0.5 * (values + values.T)

    # -- the convolution -----------------------------------------------------
    def __call__(self, p: np.ndarray) -> np.ndarray:
        """(W * p)_i = Σ_j V_j W(x_i − x_j) p_j, with the grid's shape."""
        g = self.grid
        q = np.reshape(np.asarray(p, float), g.shape) * self.volumes
        if self.method == "direct":
            return (self._matrix @ np.reshape(p, -1)).reshape(g.shape)
        ax = self._axes
        full = np.fft.irfftn(
            np.fft.rfftn(q, s=self._pad, axes=ax) * self._kernel_hat, s=self._pad, axes=ax
        )
        return np.array(full[tuple(slice(0, n) for n in g.shape)])

    def energy(self, p: np.ndarray) -> float:
        """The interaction energy ½ Σ V p (W * p)."""
        p = np.reshape(np.asarray(p, float), self.grid.shape)
        return 0.5 * float(np.sum(self.volumes * p * self(p)))

    @cached_property
    def lowest_eigenvalue(self) -> float:
        """Lowest eigenvalue of p ↦ W * p (self-adjoint in Σ V u v), see the module notes."""
        g = self.grid
        if self.method == "fft" and all(g.periodic):
            return float(np.min(self._kernel_hat.real)) * float(self.volumes.flat[0])
        sv = np.sqrt(self.volumes.ravel())

        def matvec(x: np.ndarray) -> np.ndarray:
            return sv * self(np.reshape(x, -1) / sv).ravel()

        n = g.size
        if n <= 512:
            dense = np.column_stack([matvec(e) for e in np.eye(n)])
            return float(np.linalg.eigvalsh(0.5 * (dense + dense.T))[0])
        from scipy.sparse.linalg import LinearOperator, eigsh

        op = LinearOperator((n, n), matvec=matvec, dtype=float)
        lam = eigsh(op, k=1, which="SA", tol=1e-10, return_eigenvectors=False, v0=np.ones(n))
        return float(lam[0])
