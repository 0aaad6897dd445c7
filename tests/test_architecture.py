"""The package keeps its layers: imports go down, never in a circle; functions stay short.

The layer table and the source measurements live in
``docs/_scripts/architecture.py`` (the documentation prints the same
table); the rules are checked here on the source, without importing it.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_architecture():
    path = ROOT / "docs" / "_scripts" / "architecture.py"
    spec = importlib.util.spec_from_file_location("_fpsolver_architecture", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


arch = _load_architecture()
MODULES = arch.modules()
GRAPH = arch.import_graph()


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


# --------------------------------------------------------------------------
# The layer table and the imports
def test_every_module_has_a_layer():
    unplaced = [m for m in MODULES if arch.layer(m) is None]
    assert not unplaced, f"modules not in LAYERS of docs/_scripts/architecture.py: {unplaced}"
    assert set(arch.LAYERS) <= set(MODULES), "LAYERS names parts that do not exist"


def test_import_resolution_sees_relative_nested_and_type_checking_imports(tmp_path):
    pkg = tmp_path / "fpsolver"
    (pkg / "core").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import core\n")
    (pkg / "core" / "__init__.py").write_text("")
    (pkg / "core" / "grid.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import model\n"
        "if TYPE_CHECKING:\n"
        "    from ..api import thing\n"
        "def f():\n"
        "    import fpsolver.core.model as m\n"
        "    from fpsolver import Grid\n"
    )
    (pkg / "core" / "model.py").write_text("from .grid import Grid\n")
    (pkg / "api.py").write_text("")
    graph = arch.import_graph(pkg)
    got = [(i.line, i.target) for i in graph["fpsolver.core.grid"]]
    assert got == [
        (2, "fpsolver.core.model"),
        (4, "fpsolver.api"),
        (6, "fpsolver.core.model"),
        (7, "fpsolver"),
    ]
    assert graph["fpsolver"][0].target == "fpsolver.core"
    assert arch.cycles(graph) == [["fpsolver.core.grid", "fpsolver.core.model"]]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_to_lower_layers(module):
    """Own part or a strictly lower layer; the three parts of layer 3 do not import one another."""
    bad = arch.layer_violations({module: GRAPH[module]})
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_no_import_cycles():
    found = arch.cycles(GRAPH)
    lines = []
    for component in found:
        inside = set(component)
        for m in component:
            for imp in GRAPH[m]:
                if imp.target in inside:
                    lines.append(f"  {m}, line {imp.line}: `{imp.statement}` -> {imp.target}")
    assert not found, "import cycles among " + "; ".join(map(str, found)) + ":\n" + "\n".join(lines)


# --------------------------------------------------------------------------
# Functions stay readable
@pytest.mark.parametrize("module", sorted(MODULES))
def test_functions_are_short(module):
    long = [
        f"{module}, line {f.line}: {f.name} has {f.code_lines} lines of code "
        f"(at most {arch.MAX_CODE_LINES}, docstring excluded)"
        for f in arch.functions(module, MODULES[module])
        if f.code_lines > arch.MAX_CODE_LINES
    ]
    assert not long, "\n".join(long)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_functions_take_few_positional_parameters(module):
    many = [
        f"{module}, line {f.line}: {f.name} has {f.positional} parameters that are not "
        f"keyword-only (at most {arch.MAX_POSITIONAL}; put the rest after `*`)"
        for f in arch.functions(module, MODULES[module])
        if f.positional > arch.MAX_POSITIONAL
    ]
    assert not many, "\n".join(many)


def test_measurement_counts_code_not_docstrings(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(
        "class A:\n"
        "    def f(self, a, b, /, c, *args, d, **kw):\n"
        '        """Doc.\n'
        "\n"
        '        more doc."""\n'
        "        # a comment\n"
        "\n"
        "        x = '''\n"
        "        # not a comment'''\n"
        "        return x\n"
    )
    (f,) = arch.functions("m", path)
    assert (f.name, f.line, f.code_lines, f.positional) == ("A.f", 2, 4, 3)


# --------------------------------------------------------------------------
# What `import fpsolver` does
def test_import_does_not_load_matplotlib_and_registers_the_accessor():
    proc = _run(
        """
        import sys
        import fpsolver
        assert "matplotlib" not in sys.modules, "import fpsolver loaded matplotlib"
        import xarray as xr
        assert hasattr(xr.Dataset(), "fp"), "no ds.fp accessor after import fpsolver"
        assert "matplotlib" not in sys.modules, "ds.fp loaded matplotlib"
        """
    )
    assert proc.returncode == 0, proc.stderr


def test_old_module_paths_warn_and_name_the_new_one():
    proc = _run(
        """
        import importlib, sys, warnings
        import fpsolver
        from fpsolver._compat import MOVED
        for old, new in MOVED.items():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                mod = importlib.import_module(old)
            assert mod is sys.modules[new], (old, mod)
            msgs = [str(w.message) for w in caught if w.category is DeprecationWarning]
            assert any(new in m for m in msgs), (old, [str(w.message) for w in caught])
        """
    )
    assert proc.returncode == 0, proc.stderr


def test_discretization_alias_names_the_sg_module():
    proc = _run(
        """
        import warnings
        warnings.simplefilter("error", DeprecationWarning)
        import fpsolver.discretization
        """
    )
    assert proc.returncode != 0
    assert "DeprecationWarning" in proc.stderr and "fpsolver.discrete.sg" in proc.stderr


@pytest.mark.parametrize(
    "name, module",
    [
        ("solve", "fpsolver.api.runs"),
        ("compare", "fpsolver.sampling.compare"),
        ("stationary", "fpsolver.analysis.stationary"),
        ("lyapunov", "fpsolver.analysis.lyapunov"),
    ],
)
def test_functions_are_not_shadowed_by_modules(name, module):
    import fpsolver as fp

    importlib.import_module(module)
    obj = getattr(fp, name)
    assert isinstance(obj, types.FunctionType), f"fp.{name} is {obj!r}"
    assert obj.__module__ == module
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"fpsolver.{name}")
    assert isinstance(getattr(fp, name), types.FunctionType)
