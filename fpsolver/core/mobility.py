r"""The mobility K(x): a scalar, one value per axis, or a full d × d tensor.

The mobility of ∂p/∂t = ∇·(K p ∇(T ln p + E)) may be

- **scalar** (isotropic): a number, a cell array of shape ``grid.shape``, or
  a callable returning one field;
- **diagonal**: one value per axis, an array of shape ``(d, *grid.shape)``,
  or a callable returning ``d`` fields;
- **tensor**: a ``d × d`` matrix, an array of shape ``(d, d, *grid.shape)``,
  or a callable returning a nested ``d × d`` list of fields (or such an
  array). Its symmetric part S = (K + Kᵀ)/2 must be positive definite at
  every cell; its antisymmetric part A = (K − Kᵀ)/2 is free (it drives
  currents that leave the Gibbs state stationary).

A shape that fits more than one reading (a 2 × 2 matrix on a 2 × 2 grid)
is refused unless ``kind`` says which is meant. :func:`parse_mobility`
returns a :class:`MobilityField` holding the cell values; nothing here
knows about the discretisation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .grid import _is_dataarray

__all__ = ["KINDS", "MobilityField", "parse_mobility", "tensor_from_output", "check_spd"]

#: The readings of a mobility value (the ``mobility_kind`` argument).
KINDS = ("scalar", "diagonal", "tensor")


@dataclass(frozen=True)
class MobilityField:
    """The mobility on the cells.

    ``kind`` is ``"scalar"``, ``"diagonal"`` or ``"tensor"``; ``diagonal``
    holds the diagonal of the symmetric part, shape ``(d, *grid.shape)``;
    ``tensor`` the full K, shape ``(d, d, *grid.shape)``, or None when K is
    diagonal; ``function`` the user's callable (or None).
    """

    kind: str
    diagonal: np.ndarray
    tensor: np.ndarray | None
    function: Callable[..., Any] | None


def _broadcastable(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(shape[::-1], target[::-1]))


def _readings(shape: tuple[int, ...], nd: int, field: tuple[int, ...], exact: bool) -> list:
    """The kinds a value of `shape` can mean on cells of shape `field`."""

    def fits(s: tuple[int, ...]) -> bool:
        return s == () or (s == field if exact else _broadcastable(s, field))

    out = []
    if shape == () or (fits(shape) and shape != ()):
        out.append("scalar")
    if len(shape) >= 1 and shape[0] == nd and fits(shape[1:]):
        out.append("diagonal")
    if len(shape) >= 2 and shape[:2] == (nd, nd) and fits(shape[2:]):
        out.append("tensor")
    return out


def _choose(shape, nd: int, field, kind: str | None, exact: bool, what: str) -> str:
    found = _readings(tuple(shape), nd, tuple(field), exact)
    if kind is not None:
        if kind not in found:
            raise ValueError(
                f"`mobility` {what} of shape {tuple(shape)} cannot be read as "
                f"mobility_kind={kind!r} on a grid of shape {tuple(field)}; it fits "
                f"{found or 'no reading'}"
            )
        return kind
    if not found:
        raise ValueError(
            f"`mobility` must be a scalar, {nd} per-axis values, a {nd}×{nd} tensor, or an "
            f"array of shape {tuple(field)}, {(nd, *field)} or {(nd, nd, *field)}; "
            f"got shape {tuple(shape)}" + (" from the callable" if what != "value" else "")
        )
    if len(found) > 1:
        raise ValueError(
            f"`mobility` {what} of shape {tuple(shape)} is ambiguous on a grid of shape "
            f"{tuple(field)}: it could be a {' or a '.join(found)} mobility; pass "
            f"mobility_kind= one of {found}"
        )
    return found[0]


def _as_full(values: np.ndarray, kind: str, nd: int, field: tuple[int, ...]) -> np.ndarray:
    """A ``(d, d, *field)`` tensor from values already read as `kind`."""
    lead = {"scalar": 0, "diagonal": 1, "tensor": 2}[kind]
    rest = values.shape[lead:]
    v = values.reshape(values.shape[:lead] + (1,) * (len(field) - len(rest)) + rest)
    if kind == "tensor":
        return np.broadcast_to(v, (nd, nd, *field))
    diag = np.broadcast_to(v, (nd, *field)) if kind == "diagonal" else np.broadcast_to(v, field)
    full = np.zeros((nd, nd, *field))
    for a in range(nd):
        full[a, a] = diag[a] if kind == "diagonal" else diag
    return full


def tensor_from_output(
    out: Any, nd: int, field: tuple[int, ...], kind: str | None, what: str = "callable output"
) -> tuple[str, np.ndarray]:
    """Read a mobility value (array or a callable's output) as ``(kind, K)``.

    K has shape ``(d, d, *field)``. Lists of per-axis fields and nested
    ``d × d`` lists of fields (scalars and arrays mixed) are accepted.

    Examples
    --------
    >>> kind, K = tensor_from_output([[1.0, 0.5], [0.5, 2.0]], 2, (3, 4), None)
    >>> kind, K.shape, float(K[0, 1, 2, 3])
    ('tensor', (2, 2, 3, 4), 0.5)
    """
    if isinstance(out, (list, tuple)):
        # The list structure says what is meant: nested d × d, or one field per axis.
        nested = all(isinstance(r, (list, tuple)) for r in out)
        if len(out) != nd or (nested and any(len(r) != nd for r in out)):
            raise ValueError(
                f"`mobility` {what} must be one field per axis ({nd}) or a {nd}×{nd} nested "
                f"list; got a list of length {len(out)}"
            )
        if nested:
            rows = [[np.broadcast_to(np.asarray(c, float), field) for c in r] for r in out]
            return "tensor", np.array(rows)
        comps = np.array([np.broadcast_to(np.asarray(c, float), field) for c in out])
        return "diagonal", _as_full(comps, "diagonal", nd, field)
    arr = np.asarray(out)
    if np.iscomplexobj(arr):
        raise TypeError("`mobility` must be real; got complex values")
    arr = arr.astype(float)
    chosen = _choose(arr.shape, nd, field, kind, exact=what != "callable output", what=what)
    return chosen, _as_full(arr, chosen, nd, field)


def check_spd(K: np.ndarray, cell_name: Callable[[tuple[int, ...]], str]) -> None:
    """Raise unless the symmetric part of K (``(d, d, *shape)``) is positive definite everywhere.

    The error names the first bad cell (by `cell_name` of its index) and
    the eigenvalues of S there.
    """
    if not np.all(np.isfinite(K)):
        bad = np.argwhere(~np.isfinite(K))[0]
        raise ValueError(f"`mobility` must be finite; got {K[tuple(bad)]} at {cell_name(bad[2:])}")
    nd = K.shape[0]
    S = 0.5 * (K + np.swapaxes(K, 0, 1))
    mats = np.moveaxis(S.reshape(nd, nd, -1), -1, 0)
    lam = np.linalg.eigvalsh(mats)
    scale = np.max(np.abs(lam), axis=1)
    bad = np.flatnonzero(~(lam[:, 0] > 1e-12 * scale) | (scale == 0))
    if bad.size:
        i = int(bad[0])
        idx = np.unravel_index(i, K.shape[2:])
        raise ValueError(
            "the symmetric part (K + Kᵀ)/2 of `mobility` must be positive definite at every "
            f"cell; at {cell_name(idx)} its eigenvalues are {np.round(lam[i], 12).tolist()}"
            + (f" ({bad.size} cells fail)" if bad.size > 1 else "")
        )


def parse_mobility(
    grid: Any,
    mobility: Any,
    kind: str | None,
    call: Callable[[Callable, Sequence[np.ndarray]], Any],
) -> MobilityField:
    """Validate `mobility` on `grid`'s cells (see the module notes).

    `call(func, points)` evaluates a user callable at the cell centres.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"`mobility_kind` must be one of {KINDS} or None, got {kind!r}")
    nd, field = grid.ndim, tuple(grid.shape)
    func = None
    if callable(mobility) and not _is_dataarray(mobility):
        func = mobility
        try:
            out = call(mobility, grid.mesh())
        except Exception as err:
            raise ValueError(f"`mobility` callable failed on the grid: {err}") from err
        chosen, K = tensor_from_output(out, nd, field, kind)
    else:
        if _is_dataarray(mobility):
            dims = [d for d in mobility.dims if d not in grid.names] + list(grid.names)
            mobility = mobility.transpose(*dims).values
        try:
            arr = np.asarray(mobility, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(f"`mobility` must be numeric or a callable, got {mobility!r}") from None
        chosen, K = tensor_from_output(arr, nd, field, kind, what="value")
    K = np.array(K, dtype=float)

    def name(idx: tuple[int, ...]) -> str:
        return (
            "cell ("
            + ", ".join(
                f"{n}={grid.centers[a][int(i)]:.6g}"
                for a, (n, i) in enumerate(zip(grid.names, idx))
            )
            + ")"
        )

    diag = np.array([K[a, a] for a in range(nd)])
    if chosen != "tensor" or not _has_offdiagonal(K):
        bad = ~(np.isfinite(diag) & (diag > 0))
        if bad.any():
            where = np.argwhere(bad)[0]
            raise ValueError(
                f"`mobility` must be positive and finite everywhere, got "
                f"{diag[tuple(where)]} at {name(tuple(where[1:]))}"
            )
        kind_out = "scalar" if chosen == "scalar" else "diagonal"
        return MobilityField(kind_out, _frozen(diag), None, func)
    check_spd(K, name)
    KT = np.swapaxes(K, 0, 1)
    if np.max(np.abs(K - KT)) <= 1e-14 * np.max(np.abs(K)):
        K = 0.5 * (K + KT)  # symmetric up to rounding (e.g. R D Rᵀ): exactly symmetric
    return MobilityField("tensor", _frozen(diag), _frozen(K), func)


def _has_offdiagonal(K: np.ndarray) -> bool:
    nd = K.shape[0]
    off = ~np.eye(nd, dtype=bool)
    return bool(np.any(K[off] != 0))


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a
