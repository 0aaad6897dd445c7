"""Deprecated module paths of the flat layout (0.1), kept for one release.

``import fpsolver.discrete.sg`` and the like still work: a finder
returns the module's new home (see :data:`MOVED`) with a
:class:`DeprecationWarning` that names it. The four modules that shared a
name with a public function (``solve``, ``compare``, ``stationary``,
``lyapunov``) have no alias: an alias would shadow the function again.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from typing import Any

__all__ = ["MOVED", "install_aliases"]

#: Old module path → new module path.
MOVED: dict[str, str] = {
    "fpsolver.grid": "fpsolver.core.grid",
    "fpsolver.boundary": "fpsolver.core.boundary",
    "fpsolver.model": "fpsolver.core.model",
    "fpsolver.initial": "fpsolver.core.initial",
    "fpsolver.analytic": "fpsolver.core.analytic",
    "fpsolver.diagnostics": "fpsolver.core.diagnostics",
    "fpsolver.discretization": "fpsolver.discrete.sg",
    "fpsolver.linsolve": "fpsolver.discrete.linsolve",
    "fpsolver.steppers": "fpsolver.integrate.steppers",
    "fpsolver.trackers": "fpsolver.integrate.trackers",
    "fpsolver.spectral": "fpsolver.analysis.spectrum",
    "fpsolver.passage": "fpsolver.analysis.passage",
    "fpsolver.particles": "fpsolver.sampling.particles",
    "fpsolver.config": "fpsolver.cli.config",
    "fpsolver.expr": "fpsolver.cli.expr",
    "fpsolver.demo": "fpsolver.cli.demo",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: Any) -> Any:
        warnings.warn(
            f"`{spec.name}` is deprecated; import `{self.new}` instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(self.new)

    def exec_module(self, module: Any) -> None:
        """The module is already executed at its new path."""


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new))


def install_aliases() -> None:
    """Put the finder for the old module paths on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
