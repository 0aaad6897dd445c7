r"""Metric geometry of curved (orthogonal) coordinates for finite volumes.

In orthogonal coordinates with Lamé scale factors :math:`h_a(x)` the metric
is :math:`g_{ab} = h_a^2\,\delta_{ab}`, the measure :math:`\sqrt g = \prod_a
h_a`, and the covariant Fokker–Planck equation for a density ``p`` per unit
measure reads

.. math::

    \partial_t p = \frac{1}{\sqrt g}\,\partial_a\bigl(\sqrt g\,k\,g^{aa}\,p\,
    \partial_a(E + T\ln p)\bigr).

The finite-volume scheme needs, per cell, its measure
:math:`V = \int_{\rm cell}\sqrt g\,dx` and, per face normal to axis ``a``,
the coefficient that multiplies the coordinate difference quotient of a
flux,

.. math::

    c_a = \frac{A_a}{h_a(x_f)}, \qquad A_a = \int_{\rm face}
    \frac{\sqrt g}{h_a}\,dx_\perp ,

the physical face area over the scale factor at the face centre (the
physical distance is :math:`h_a\,\Delta x^a`). :math:`c_a` equals
:math:`\int_{\rm face}\sqrt g\,g^{aa}\,dx_\perp` to second order in the
bulk; unlike that integral it stays finite on the cells that touch a
coordinate singularity (the centre of a disc, the poles of a sphere),
where it is exact for every function that is linear in Cartesian
coordinates. Faces of zero area (the point r = 0, the poles) carry no
flux. See the theory page, and Mohseni & Colonius, J. Comput. Phys. 157
(2000) 787–795, for the half-cell-shifted treatment of the polar axis.

A :class:`Geometry` stores these arrays (read-only, broadcastable on the
grid) with a description that identifies it; :class:`~fpsolver.core.grid.Grid`
holds one when its coordinates are curved.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Geometry", "polar", "sphere", "torus", "curvilinear", "tabulated"]

#: Gauss–Legendre points per axis and cell for the metric integrals.
QUADRATURE_POINTS = 4


def _readonly(a: Any) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a


def _along(ndim: int, axis: int, values: Any) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return np.asarray(values, dtype=float).reshape(shape)


@dataclass(frozen=True, eq=False)
class Geometry:
    """Cell measures and face coefficients of a curved grid.

    Attributes
    ----------
    kind : str
        ``"polar"``, ``"sphere"``, ``"torus"``, ``"curvilinear"`` (scale
        factors given as callables) or ``"tabulated"`` (read back from
        attributes; the arrays only).
    params : tuple of (str, float)
        The kind's parameters (radii).
    volumes : ndarray
        Cell measures ∫ √g dx, of the grid shape.
    areas, coefficients : tuple of ndarray
        Per axis, on every face normal to it (``n + 1`` along the axis,
        walls included; broadcastable on the other axes): the physical
        face area and the flux coefficient A / h_a.
    scale : callable or None
        ``scale(points) -> tuple of h_a arrays`` (points: one array per
        axis), for particle drifts; None for tabulated geometries.
    """

    kind: str
    params: tuple[tuple[str, float], ...]
    volumes: np.ndarray
    areas: tuple[np.ndarray, ...]
    coefficients: tuple[np.ndarray, ...]
    scale: Callable[[Sequence[np.ndarray]], tuple[np.ndarray, ...]] | None = None

    @property
    def digest(self) -> str:
        """SHA-256 of the arrays: what identifies a curvilinear geometry."""
        h = hashlib.sha256()
        for a in (self.volumes, *self.areas, *self.coefficients):
            arr = np.ascontiguousarray(a, dtype=float)
            h.update(str(arr.shape).encode())
            h.update(arr.tobytes())
        return h.hexdigest()

    def key(self) -> tuple:
        """What equality and hashing compare (the arrays for user metrics)."""
        if self.kind in ("curvilinear", "tabulated"):
            return ("curvilinear", self.digest)
        return (self.kind, self.params)

    def link_coefficients(self, axis: int, periodic: bool) -> np.ndarray:
        """Coefficients of the links along `axis` (interior faces; the wrap face last)."""
        c = self.coefficients[axis]
        n = c.shape[axis]
        idx = np.arange(1, n) if periodic else np.arange(1, n - 1)
        return np.take(c, idx, axis=axis)

    def to_attrs(self) -> dict[str, Any]:
        """netCDF-safe attributes (full arrays only for user metrics)."""
        kind = "curvilinear" if self.kind == "tabulated" else self.kind
        out: dict[str, Any] = {"grid_geometry": kind}
        for name, value in self.params:
            out[f"grid_geometry_{name}"] = float(value)
        if self.kind in ("curvilinear", "tabulated"):
            out["grid_geometry_digest"] = self.digest
            out["grid_geometry_volumes"] = np.array(self.volumes).ravel()
            for a, (ar, c) in enumerate(zip(self.areas, self.coefficients)):
                out[f"grid_geometry_areas_{a}"] = np.array(ar).ravel()
                out[f"grid_geometry_coefficients_{a}"] = np.array(c).ravel()
        return out


# -- exact formulas -----------------------------------------------------------
def polar(edges: Sequence[np.ndarray]) -> Geometry:
    """Polar coordinates (r, φ): √g = r, h_r = 1, h_φ = r.

    Examples
    --------
    >>> import numpy as np
    >>> g = polar([np.linspace(0, 1, 3), np.linspace(0, 2 * np.pi, 5)])
    >>> round(float(g.volumes.sum()), 12) == round(np.pi, 12)
    True
    >>> g.coefficients[1][:, 0].tolist()      # Δr / r_centre: 0.5 / 0.25, 0.5 / 0.75
    [2.0, 0.6666666666666666]
    """
    r, phi = (np.asarray(e, float) for e in edges)
    dr, dphi = np.diff(r), np.diff(phi)
    rc = 0.5 * (r[1:] + r[:-1])
    vol = _along(2, 0, 0.5 * (r[1:] ** 2 - r[:-1] ** 2)) * _along(2, 1, dphi)
    area_r = _along(2, 0, r) * _along(2, 1, dphi)
    area_phi = _along(2, 0, dr) * np.ones((1, phi.size))

    def scale(pts: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
        return np.ones_like(pts[0]), np.asarray(pts[0], float) + 0.0 * pts[1]

    return Geometry(
        "polar",
        (),
        _readonly(vol),
        (_readonly(area_r), _readonly(area_phi)),
        (_readonly(area_r), _readonly(area_phi / _along(2, 0, rc))),
        scale,
    )


def sphere(edges: Sequence[np.ndarray], radius: float = 1.0) -> Geometry:
    """The sphere surface (θ, φ) of radius a: √g = a² sin θ, h_θ = a, h_φ = a sin θ.

    Examples
    --------
    >>> import numpy as np
    >>> g = sphere([np.linspace(0, np.pi, 9), np.linspace(0, 2 * np.pi, 17)])
    >>> bool(abs(g.volumes.sum() - 4 * np.pi) < 1e-13)
    True
    """
    th, phi = (np.asarray(e, float) for e in edges)
    a = float(radius)
    dth, dphi = np.diff(th), np.diff(phi)
    sin_f = np.sin(th)
    pole = np.isclose(th[[0, -1]], [0.0, np.pi], rtol=0.0, atol=1e-14)
    sin_f[[0, -1]] = np.where(pole, 0.0, sin_f[[0, -1]])
    vol = a * a * _along(2, 0, np.cos(th[:-1]) - np.cos(th[1:])) * _along(2, 1, dphi)
    area_th = a * _along(2, 0, sin_f) * _along(2, 1, dphi)
    area_phi = a * _along(2, 0, dth) * np.ones((1, phi.size))
    sin_c = np.sin(0.5 * (th[1:] + th[:-1]))

    def scale(pts: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
        s = a * np.sin(np.asarray(pts[0], float)) + 0.0 * pts[1]
        return np.full_like(s, a), s

    return Geometry(
        "sphere",
        (("radius", a),),
        _readonly(vol),
        (_readonly(area_th), _readonly(area_phi)),
        (_readonly(area_th / a), _readonly(area_phi / (a * _along(2, 0, sin_c)))),
        scale,
    )


def torus(edges: Sequence[np.ndarray], major: float, minor: float) -> Geometry:
    """The embedded torus (θ around the tube, φ around the axis), radii R > r.

    h_θ = r, h_φ = R + r cos θ, √g = r (R + r cos θ).

    Examples
    --------
    >>> import numpy as np
    >>> e = [np.linspace(0, 2 * np.pi, 9), np.linspace(0, 2 * np.pi, 13)]
    >>> g = torus(e, 2.0, 0.5)
    >>> bool(abs(g.volumes.sum() - 4 * np.pi**2 * 2.0 * 0.5) < 1e-12)
    True
    """
    th, phi = (np.asarray(e, float) for e in edges)
    R, r = float(major), float(minor)
    dth, dphi = np.diff(th), np.diff(phi)
    vol = r * _along(2, 0, R * dth + r * (np.sin(th[1:]) - np.sin(th[:-1]))) * _along(2, 1, dphi)
    area_th = _along(2, 0, R + r * np.cos(th)) * _along(2, 1, dphi)
    area_phi = r * _along(2, 0, dth) * np.ones((1, phi.size))
    h_phi_c = R + r * np.cos(0.5 * (th[1:] + th[:-1]))

    def scale(pts: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
        hp = R + r * np.cos(np.asarray(pts[0], float)) + 0.0 * pts[1]
        return np.full_like(hp, r), hp

    return Geometry(
        "torus",
        (("major", R), ("minor", r)),
        _readonly(vol),
        (_readonly(area_th), _readonly(area_phi)),
        (_readonly(area_th / r), _readonly(area_phi / _along(2, 0, h_phi_c))),
        scale,
    )


# -- user metrics (Gauss–Legendre quadrature) ---------------------------------
def _nodes(edges: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights of every cell, flattened cell-major."""
    x, w = np.polynomial.legendre.leggauss(q)
    lo, hi = edges[:-1, None], edges[1:, None]
    half = 0.5 * (hi - lo)
    return ((lo + hi) * 0.5 + half * x).ravel(), (half * w).ravel()


def _integrate(values: np.ndarray, weights: Sequence[np.ndarray | None], q: int) -> np.ndarray:
    """Sum quadrature values cell by cell on the axes that have weights."""
    out = values
    for a in reversed(range(len(weights))):
        w = weights[a]
        if w is None:
            continue
        shape = out.shape
        out = out * _along(out.ndim, a, w)
        out = out.reshape(shape[:a] + (shape[a] // q, q) + shape[a + 1 :]).sum(axis=a + 1)
    return out


def _cells_text(names: Sequence[str], bad: np.ndarray, centres: Sequence[np.ndarray]) -> str:
    cells = [tuple(int(i) for i in b) for b in bad[:5]]
    where = [
        "(" + ", ".join(f"{n}={centres[a][c[a]]:g}" for a, n in enumerate(names)) + ")"
        for c in cells
    ]
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    return ", ".join(f"{c} at {w}" for c, w in zip(cells, where)) + more


def _check_positive(h: Sequence[np.ndarray], names, edges, q: int, what: str) -> None:
    """Refuse scale factors that are not finite and > 0 inside some cell."""
    centres = [0.5 * (e[1:] + e[:-1]) for e in edges]
    for a, ha in enumerate(h):
        ok = np.isfinite(ha) & (ha > 0)
        if ok.all():
            continue
        shape = tuple(e.size - 1 for e in edges)
        split = sum(((n, q) for n in shape), ())
        cell_bad = ~ok.reshape(split).all(axis=tuple(range(1, 2 * len(shape), 2)))
        bad = np.argwhere(cell_bad)
        raise ValueError(
            f"`{what}` gives a singular or non-positive metric (h_{names[a]} <= 0 or not "
            f"finite) inside {len(bad)} cell(s): {_cells_text(names, bad, centres)}; the "
            "scale factors must be finite and > 0 inside every cell (zero is allowed on "
            "a wall only)"
        )


def _evaluate(scale, pts: Sequence[np.ndarray], ndim: int, what: str) -> list[np.ndarray]:
    grids = np.meshgrid(*pts, indexing="ij")
    out = scale(grids)
    if len(out) != ndim:
        raise ValueError(f"`{what}` must give {ndim} scale factors, got {len(out)}")
    return [np.broadcast_to(np.asarray(v, dtype=float), grids[0].shape) for v in out]


def _face_arrays(scale, edges, a: int, q: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Area ∫ Π_{b≠a} h_b and h_a at the face centres, on every face normal to `a`."""
    nd = len(edges)
    pts, weights = [], []
    for b, e in enumerate(edges):
        if b == a:
            pts.append(np.asarray(e, float))
            weights.append(None)
        else:
            x, w = _nodes(e, q)
            pts.append(x)
            weights.append(w)
    h = _evaluate(scale, pts, nd, what)
    prod = np.ones_like(h[0])
    for b in range(nd):
        if b != a:
            prod = prod * h[b]
    area = _integrate(prod, weights, q)
    centres = [e if b == a else 0.5 * (e[1:] + e[:-1]) for b, e in enumerate(edges)]
    ha = _evaluate(scale, centres, nd, what)[a]
    return area, ha


def curvilinear(
    names: Sequence[str],
    edges: Sequence[np.ndarray],
    periodic: Sequence[bool],
    scale: Callable[[Sequence[np.ndarray]], Sequence[np.ndarray]],
    what: str = "scale_factors",
) -> Geometry:
    """Orthogonal coordinates from scale factors ``scale(points) -> (h_1, ..., h_d)``.

    Volumes and face areas by Gauss–Legendre quadrature
    (:data:`QUADRATURE_POINTS` per axis and cell). Raises ``ValueError``
    naming the cells where a scale factor is not finite and positive, the
    faces whose coefficient is singular, and periodic axes whose metric is
    not periodic.

    Examples
    --------
    >>> import numpy as np
    >>> e = [np.linspace(0, 1, 5), np.linspace(0, 2 * np.pi, 9)]
    >>> g = curvilinear(["r", "phi"], e, [False, True], lambda p: (1.0 + 0 * p[0], p[0]))
    >>> bool(np.allclose(g.volumes, polar(e).volumes, rtol=1e-14))
    True
    """
    q = QUADRATURE_POINTS
    edges = [np.asarray(e, float) for e in edges]
    nd = len(edges)
    nodes = [_nodes(e, q) for e in edges]
    h = _evaluate(scale, [x for x, _ in nodes], nd, what)
    _check_positive(h, names, edges, q, what)
    sqrt_g = np.prod(np.stack(h), axis=0)
    vol = _integrate(sqrt_g, [w for _, w in nodes], q)
    areas, coefs = [], []
    for a in range(nd):
        area, ha = _face_arrays(scale, edges, a, q, what)
        coef = _face_coefficient(area, ha, names, edges, a, periodic[a], what)
        areas.append(_readonly(area))
        coefs.append(_readonly(coef))
    return Geometry("curvilinear", (), _readonly(vol), tuple(areas), tuple(coefs), _as_tuple(scale))


def _as_tuple(scale):
    def f(pts: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
        shape = np.broadcast_shapes(*(np.shape(p) for p in pts))
        return tuple(np.broadcast_to(np.asarray(v, float), shape) for v in scale(pts))

    return f


def _face_coefficient(area, ha, names, edges, a: int, periodic: bool, what: str) -> np.ndarray:
    """A / h_a on every face; refuses singular interior faces and non-periodic metrics."""
    n = area.shape[a]
    interior = np.zeros(n, bool)
    interior[1:] = True
    if not periodic:
        interior[-1] = False
    shape = [1] * area.ndim
    shape[a] = n
    inner = interior.reshape(shape)
    bad = (~np.isfinite(ha) | (ha <= 0) | ~(area > 0)) & inner
    bad = bad | (~np.isfinite(area) | (area < 0))
    if np.any(bad):
        faces = np.argwhere(bad)[:5].tolist()
        raise ValueError(
            f"`{what}`: singular metric on {int(bad.sum())} face(s) normal to "
            f"{names[a]!r} (zero area or h_{names[a]} <= 0 on an interior face), first "
            f"face indices {faces}; the metric must be non-degenerate between cells"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        coef = np.where(area > 0, area / np.where(ha > 0, ha, 1.0), 0.0)
    if periodic:
        lo, hi = np.take(coef, [0], axis=a), np.take(coef, [n - 1], axis=a)
        if not np.allclose(lo, hi, rtol=1e-10, atol=0.0):
            raise ValueError(
                f"`{what}`: axis {names[a]!r} is periodic but the metric is not: the face "
                f"coefficients at {edges[a][0]:g} and {edges[a][-1]:g} differ"
            )
    return coef


def tabulated(attrs: Mapping[str, Any], shape: Sequence[int]) -> Geometry:
    """A user-metric geometry read back from :meth:`Geometry.to_attrs` arrays."""
    nd = len(shape)
    vol = np.asarray(attrs["grid_geometry_volumes"], float).reshape(shape)
    areas, coefs = [], []
    for a in range(nd):
        fshape = list(shape)
        fshape[a] += 1
        area = np.asarray(attrs[f"grid_geometry_areas_{a}"], float).reshape(fshape)
        areas.append(_readonly(area))
        coefs.append(
            _readonly(np.asarray(attrs[f"grid_geometry_coefficients_{a}"], float).reshape(fshape))
        )
    geo = Geometry("tabulated", (), _readonly(vol), tuple(areas), tuple(coefs), None)
    digest = attrs.get("grid_geometry_digest")
    if digest is not None and str(digest) != geo.digest:
        raise ValueError("grid geometry attributes are corrupt: their digest does not match")
    return geo
