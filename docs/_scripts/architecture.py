"""The layers of the fpsolver package, and the package measured against them.

:data:`LAYERS` is the one statement of which part of the package sits on
which layer; ``tests/test_architecture.py`` checks every import against it
and the documentation shows it (``docs/architecture.md``). The helpers read
the source with :mod:`ast` and :mod:`tokenize` only: nothing is imported.

Run by hand to print the tables::

    python docs/_scripts/architecture.py            # the measured table
    python docs/_scripts/architecture.py --layers   # the layer table
    python docs/_scripts/architecture.py --write DIR  # both, as DIR/architecture_*.md

``docs/conf.py`` calls :func:`write` at every build, so the page stays true.
"""

from __future__ import annotations

import argparse
import ast
import io
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "fpsolver"

#: Part of the package (a module, or a subpackage with all its modules) →
#: its layer. A module may import modules of its own part and of parts on
#: strictly lower layers, nothing else: so the three parts of layer 3 do not
#: import one another. ``fpsolver`` itself is only the package ``__init__``.
LAYERS: dict[str, int] = {
    "fpsolver._version": 0,
    "fpsolver._compat": 0,
    "fpsolver.core": 1,
    "fpsolver.discrete": 2,
    "fpsolver.integrate": 3,
    "fpsolver.analysis": 3,
    "fpsolver.sampling": 3,
    "fpsolver.io": 4,
    "fpsolver.api": 5,
    "fpsolver.plotting": 6,
    "fpsolver.cli": 7,
    "fpsolver": 8,
    "fpsolver.__main__": 8,
}

#: What each part holds, for the layer table of the documentation.
ROLES: dict[str, str] = {
    "fpsolver._version": "the version string",
    "fpsolver._compat": "deprecated module paths of the flat layout",
    "fpsolver.core": "grid, boundary, `Model` (frozen physics), initial densities, "
    "`SaveSchedule`, pure diagnostics, analytic solutions",
    "fpsolver.discrete": "Scharfetter–Gummel links, `Operator` and `discretize`, null "
    "vectors, linear solvers",
    "fpsolver.integrate": "steppers, trackers and the loop `integrate`",
    "fpsolver.analysis": "stationary densities, spectra, first passage, Lyapunov functions",
    "fpsolver.sampling": "particles (Euler–Maruyama) and their comparison with grid results",
    "fpsolver.io": "results and checkpoints on disk",
    "fpsolver.api": "`FokkerPlanck` (a `Model` with conveniences) and `solve`",
    "fpsolver.plotting": "figures and the `ds.fp` accessor (matplotlib loads on first plot)",
    "fpsolver.cli": "the command line, TOML configs and their expression language",
    "fpsolver": "the public names (`import fpsolver as fp`)",
    "fpsolver.__main__": "`python -m fpsolver`",
}

#: Limits the tests hold every function to.
MAX_CODE_LINES = 80
MAX_POSITIONAL = 10


# --------------------------------------------------------------------------
# Modules and their parts
def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted name → path of every module of the package (``__init__`` as the package)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def part(module: str) -> str | None:
    """The key of :data:`LAYERS` that `module` belongs to (None: not in the table)."""
    if module in LAYERS:
        return module
    best = None
    for key in LAYERS:
        if key != "fpsolver" and module.startswith(key + ".") and len(key) > len(best or ""):
            best = key
    return best


def layer(module: str) -> int | None:
    """The layer of `module`, or None when :data:`LAYERS` does not place it."""
    key = part(module)
    return None if key is None else LAYERS[key]


# --------------------------------------------------------------------------
# Imports
@dataclass(frozen=True)
class Import:
    """One import statement's reference to a module of the package."""

    source: str  # the importing module
    line: int
    target: str  # the imported module of the package
    statement: str  # the statement as written


def _statement(node: ast.Import | ast.ImportFrom) -> str:
    names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in node.names)
    if isinstance(node, ast.Import):
        return f"import {names}"
    return f"from {'.' * node.level}{node.module or ''} import {names}"


def _known(name: str, known: set[str]) -> str:
    """`name`, or its longest prefix that is a known module (an attribute was imported)."""
    while name not in known and "." in name:
        name = name.rpartition(".")[0]
    return name


def imports(module: str, path: Path, known: set[str]) -> list[Import]:
    """Every import of a package module by `module`, wherever it stands.

    Module level, inside functions and under ``if TYPE_CHECKING:`` all
    count; relative imports are resolved. ``from pkg import name`` imports
    the module ``pkg.name`` when there is one, else ``pkg`` itself.
    """
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    root = module.split(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                targets.append(sub if sub in known else mod)
        for target in targets:
            if target == root or target.startswith(root + "."):
                found.append(Import(module, node.lineno, _known(target, known), _statement(node)))
    return sorted(found, key=lambda imp: (imp.line, imp.target))


def import_graph(package: Path = PACKAGE) -> dict[str, list[Import]]:
    """Module → its imports of other package modules."""
    mods = modules(package)
    known = set(mods)
    return {
        name: [imp for imp in imports(name, path, known) if imp.target != name]
        for name, path in mods.items()
    }


def layer_violations(graph: dict[str, list[Import]]) -> list[str]:
    """One message per import that does not go to the own part or a strictly lower layer."""
    out = []
    for source, imps in graph.items():
        for imp in imps:
            s, t = part(source), part(imp.target)
            if s is None or t is None:
                continue  # reported by the test of the table itself
            if s == t or LAYERS[t] < LAYERS[s]:
                continue
            why = "a sibling on the same layer" if LAYERS[t] == LAYERS[s] else "a higher layer"
            out.append(
                f"{source} (layer {LAYERS[s]}), line {imp.line}: `{imp.statement}` imports "
                f"{imp.target} (layer {LAYERS[t]}, {why})"
            )
    return out


def cycles(graph: dict[str, list[Import]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    edges = {
        m: sorted({imp.target for imp in imps if imp.target in graph}) for m, imps in graph.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # recursion depth ≤ number of modules
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


# --------------------------------------------------------------------------
# Functions
@dataclass(frozen=True)
class Function:
    """A function or method, measured."""

    module: str
    name: str  # qualified: Class.method, outer.inner
    line: int
    code_lines: int  # lines with code, without the docstring, comments and blank lines
    positional: int  # parameters that are not keyword-only, without self/cls


_NOT_CODE = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
}


def code_lines(source: str) -> set[int]:
    """Line numbers that hold code (a multi-line string counts on every line)."""
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in _NOT_CODE:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return lines


def functions(module: str, path: Path) -> list[Function]:
    """Every function of `module`, nested ones and methods too."""
    source = path.read_text(encoding="utf-8")
    code = code_lines(source)
    out: list[Function] = []

    def walk(node: ast.AST, prefix: str, in_class: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                span = set(range(child.lineno, child.end_lineno + 1)) & code
                body = child.body
                if (
                    body
                    and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)
                ):
                    span -= set(range(body[0].lineno, body[0].end_lineno + 1))
                params = [a.arg for a in child.args.posonlyargs + child.args.args]
                if in_class and params and params[0] in ("self", "cls"):
                    params = params[1:]
                out.append(Function(module, name, child.lineno, len(span), len(params)))
                walk(child, name + ".", False)
            elif isinstance(child, ast.ClassDef):
                walk(child, prefix + child.name + ".", True)
            else:
                walk(child, prefix, in_class)

    walk(ast.parse(source), "", False)
    return out


# --------------------------------------------------------------------------
# Tables
def measured_rows(package: Path = PACKAGE) -> list[tuple[str, int | None, int, Function | None]]:
    """(module, layer, lines, longest function) per module, by layer then name."""
    rows = []
    for name, path in modules(package).items():
        n_lines = len(path.read_text(encoding="utf-8").splitlines())
        funcs = functions(name, path)
        longest = max(funcs, key=lambda f: f.code_lines, default=None)
        rows.append((name, layer(name), n_lines, longest))
    return sorted(rows, key=lambda r: (99 if r[1] is None else r[1], r[0]))


def measured_table(package: Path = PACKAGE) -> str:
    """The measured table in Markdown."""
    rows = measured_rows(package)
    lines = [
        "| module | layer | lines | longest function (code lines) |",
        "|---|---|---:|---|",
    ]
    for name, lay, n_lines, longest in rows:
        fn = "–" if longest is None else f"`{longest.name}` ({longest.code_lines})"
        lines.append(f"| `{name}` | {'?' if lay is None else lay} | {n_lines} | {fn} |")
    total = sum(r[2] for r in rows)
    lines.append(f"| **{len(rows)} modules** | | **{total}** | |")
    return "\n".join(lines) + "\n"


def layer_table() -> str:
    """The layer table in Markdown: each part, its layer and what it may import."""
    lines = ["| layer | part | holds | may import |", "|---:|---|---|---|"]
    for key, lay in sorted(LAYERS.items(), key=lambda kv: (kv[1], kv[0] == "fpsolver", kv[0])):
        if lay == 0:
            may = "its own part only"
        elif lay == 1:
            may = "its own part and layer 0"
        else:
            may = f"its own part and layers 0–{lay - 1}"
        lines.append(f"| {lay} | `{key}` | {ROLES.get(key, '')} | {may} |")
    return "\n".join(lines) + "\n"


def write(folder: Path) -> list[Path]:
    """Write both tables under `folder` (only when they changed); return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for stem, text in [
        ("architecture_table", measured_table()),
        ("architecture_layers", layer_table()),
    ]:
        path = folder / f"{stem}.md"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", action="store_true", help="print the layer table instead")
    parser.add_argument("--write", metavar="DIR", type=Path, help="write both tables to DIR")
    args = parser.parse_args(argv)
    if args.write is not None:
        for path in write(args.write):
            print(path)
        return 0
    sys.stdout.write(layer_table() if args.layers else measured_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
