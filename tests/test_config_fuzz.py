"""Fuzzing the config language: random expressions (numbers, axis names,
constants, functions, operators, junk, attribute access, dunder names,
imports, huge exponents) and random whole TOML documents.

Every case must end in a result or a clear refusal -- never a traceback,
never more than a second, never a file written outside the output folder,
and exit status 0 or 2 only. The draws are fixed (derandomised), so every
run judges the same cases.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fpsolver.cli import main
from fpsolver.cli.config import ConfigError, parse_config
from fpsolver.cli.expr import FUNCTIONS, MAX_LENGTH, Expression

# Derandomisation, deadline and database come from the suite's hypothesis
# profile (tests/conftest.py); at least 200 cases, more in the "wide" profile.
FUZZ = settings(
    max_examples=max(200, settings.default.max_examples),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SECONDS = 1.0  # the most CPU time one case may take (other processes' load does not count)

# -- expressions ------------------------------------------------------------
NAMES = ["x", "y", "a", "pi", "e", "tau", "z", "os", "open", "eval", "exec", "__import__",
         "__builtins__", "_x", "__class__", "True", "None", "lambda", "exp", "where"]  # fmt: skip
BINARY = ["+", "-", "*", "/", "//", "%", "**", "&", "|", "<", "<=", ">", "==", "!=", "<<",
          ">>", "@", "^", " and ", " or ", " if x else ", " is ", " in "]  # fmt: skip
JUNK = [";", "import os", "__import__('os').system('true')", "\x00", "{", "}", "'", '"', "\\",
        "\n", "#", ",", ":", "lambda: 1", "[0]", "...", "`", "$", "1j", "0x1f", "1_000",
        "é", "\u202e", "open('/etc/passwd').read()", "(", ")", "**", "yield"]  # fmt: skip

numbers = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.floats(-1e3, 1e3, allow_nan=False).map(repr),
    st.sampled_from(["1e308", "1e400", "-1e-400", "9" * 120, "0", "0.0", "nan", "inf", "1e100"]),
)
leaves = st.one_of(numbers, st.sampled_from(NAMES))


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    calls = st.builds(
        lambda f, args: f"{f}({', '.join(args)})",
        st.sampled_from([*FUNCTIONS, "getattr", "eval", "__import__", "print", "x"]),
        st.lists(children, min_size=0, max_size=4),
    )
    return st.one_of(
        st.builds(lambda a, op, b: f"{a}{op}{b}", children, st.sampled_from(BINARY), children),
        st.builds(lambda op, a: f"{op}{a}", st.sampled_from(["-", "+", "~", "not "]), children),
        st.builds(lambda a: f"({a})", children),
        calls,
        st.builds(
            lambda a, attr: f"{a}.{attr}",
            children,
            st.sampled_from(["__class__", "real", "__globals__", "mro", "shape"]),
        ),  # fmt: skip
        st.builds(lambda a: f"{a}[0]", children),
        st.builds(
            lambda a, n: f"{a}**{n}",
            children,
            st.sampled_from(
                ["1e6", "9**9", "(9**9**9)", "100", "101", "-101", "(1+1)", "0.5", "x"]
            ),
        ),  # fmt: skip
        st.builds(lambda a, n: " + ".join([a] * n), children, st.integers(1, 60)),
        st.builds(lambda a, j: f"{a}{j}", children, st.sampled_from(JUNK)),
    )


expressions = st.one_of(
    st.recursive(leaves, _extend, max_leaves=25),
    st.builds(lambda n, k: "sin(" * n + "x" + ")" * k, st.integers(0, 80), st.integers(0, 80)),
    st.builds(lambda n: "-" * n + "x", st.integers(0, 3000)),
    st.builds(lambda n: "x**" + "-" * n + "1", st.integers(0, 1500)),
    st.text(max_size=40),
)

GRID_1D = {"x": [-2.0, 2.0, 8]}
GRID_2D = {"x": [-2.0, 2.0, 6], "y": [-1.0, 1.0, 5]}


def _timed(func: Any) -> tuple[Any, float]:
    start = time.process_time()
    out = func()
    return out, time.process_time() - start


@FUZZ
@given(text=expressions, two_d=st.booleans(), where=st.sampled_from(["energy", "initial"]))
def test_expressions_are_computed_or_refused(text: str, two_d: bool, where: str) -> None:
    data: dict[str, Any] = {
        "constants": {"a": 2.0},
        "grid": GRID_2D if two_d else GRID_1D,
        "model": {"energy": "x**2/2", "temperature": 1.0},
        "initial": {"type": "uniform"},
        "solve": {"t_end": 0.1, "dt": 0.05},
    }
    if where == "energy":
        data["model"]["energy"] = text
    else:
        data["initial"] = {"type": "expression", "expression": text}

    def parse() -> str:
        try:
            parse_config(data)
        except ConfigError as err:
            return str(err)
        return ""

    message, seconds = _timed(parse)
    assert seconds < SECONDS, (text, seconds)
    if message:
        assert message.startswith(("model.", "initial.")), message
        assert "\n" not in message and "Traceback" not in message, message
        assert len(message) < 2000, message


TERMS = ["x", "2.5", "a", "sin(x)", "x*x", "exp(-x**2)", "(x - 1)**2", "where(x > 0, x, 0)",
         "-x", "pi", "log1p(x**2)", "x % 2"]  # fmt: skip


@FUZZ
@given(
    terms=st.lists(st.sampled_from(TERMS), min_size=1, max_size=8),
    ops=st.lists(st.sampled_from(["+", "-"]), min_size=1, max_size=3),
    n=st.integers(1, 400),
)
def test_a_long_sum_is_as_valid_as_its_terms(terms: list[str], ops: list[str], n: int) -> None:
    """Only nesting counts as depth: a flat sum of valid terms is valid, however long."""
    parts, text = [terms[0]], terms[0]
    for i in range(1, n):  # as many terms as fit within MAX_LENGTH
        more = f" {ops[(i - 1) % len(ops)]} {terms[i % len(terms)]}"
        if len(text) + len(more) > MAX_LENGTH:
            break
        parts.append(terms[i % len(terms)])
        text += more
    x = np.linspace(-1.0, 1.0, 5)
    expected = np.zeros_like(x)
    for i, part in enumerate(parts):
        sign = -1.0 if i and ops[(i - 1) % len(ops)] == "-" else 1.0
        expected = expected + sign * Expression(part, ["x"], {"a": 2.0})(x)
    value, seconds = _timed(lambda: Expression(text, ["x"], {"a": 2.0})(x))
    np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-12 * n)
    assert seconds < SECONDS


# -- whole documents ----------------------------------------------------------
def _toml_key(key: str) -> str:
    bare = key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
    return key if bare else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value).replace("inf", "inf")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"


def to_toml(doc: dict[str, Any]) -> str:
    """A TOML document: top-level keys first, then one [table] per dict."""
    lines = [
        f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)
    ]
    for name, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{_toml_key(name)}]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


junk_values = st.one_of(
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["false", "true", "1", "nan", "", "../x", "a\x00b", "numpy:cos", "/tmp/x"]),
    st.lists(st.integers(-3, 40), max_size=4),
    st.dictionaries(st.sampled_from(["edges", "x", "a"]), st.integers(0, 3), max_size=2),
)
JUNK_KEYS = ["allow_python", "titel", "energi", "sigma", "steps", "progress", "callback",
             "max_step", "N", "nmae", "periodc", "p", "time", "pi", "_a", "x", "y"]  # fmt: skip

AXIS = st.tuples(st.sampled_from([-3.0, -1.0, 0.0]), st.sampled_from([1.0, 2.0]),
                 st.integers(2, 10)).map(list)  # fmt: skip
ENERGIES_1D = ["x**2/2", "0", "(x**2 - 1)**2", "cos(2*pi*x)", "a*x**2", "x + x + x + x"]
ENERGIES_2D = ["x**2/2 + y**2/2", "(x**2 - 1)**2 + 0.5*y**2", "cos(x)*sin(y)", "a*(x - y)**2"]
OPTIONAL_SOLVE = {
    "save_every": st.sampled_from([0.05, 0.1, 0.25]),
    "max_steps": st.sampled_from([5, 100, 1000]),
    "rtol": st.sampled_from([1e-3, 1e-2]),
    "save_at": st.sampled_from([[0.05, 0.1], [0.02]]),
    "linear_solver": st.sampled_from(["auto", "lu"]),
    "checkpoint": st.sampled_from(["run.ckpt.nc", "ck"]),
    "resume": st.booleans(),
}


@st.composite
def _model(draw, names: list[str]) -> dict[str, Any]:
    energies = ENERGIES_2D if len(names) == 2 else ENERGIES_1D
    model = {"energy": draw(st.sampled_from(energies)), "temperature": 1.0}
    model["temperature"] = draw(st.sampled_from([0.5, 1.0, 2.0]))
    if draw(st.booleans()):
        model["mobility"] = draw(st.sampled_from([0.5, "1 + x**2/4", [1.0] * len(names)]))
    if draw(st.booleans()):
        model["force"] = draw(st.sampled_from([["0.5"] * len(names), ["sin(x)"] * len(names)]))
    if draw(st.booleans()):
        model["boundary"] = draw(st.sampled_from(["reflecting", "absorbing", {"x": "absorbing"}]))
    return model


@st.composite
def _initial(draw, names: list[str]) -> dict[str, Any]:
    kind = draw(st.sampled_from(["gaussian", "uniform", "equilibrium", "expression"]))
    if kind == "gaussian":
        return {"type": kind, "mean": [0.0] * len(names), "cov": draw(st.sampled_from([0.1, 0.3]))}
    if kind == "expression":
        return {"type": kind, "expression": draw(st.sampled_from(["exp(-x**2)", "1 + x**2"]))}
    return {"type": kind}


@st.composite
def _solve(draw) -> dict[str, Any]:
    solve: dict[str, Any] = {"t_end": draw(st.sampled_from([0.1, 0.25, 0.5]))}
    solve["method"] = draw(st.sampled_from(["bdf2", "backward_euler", "crank_nicolson",
                                             "tr_bdf2", "adaptive", "exponential"]))  # fmt: skip
    if solve["method"] != "adaptive" or draw(st.booleans()):
        solve["dt"] = draw(st.sampled_from([0.05, 0.1]))
    if draw(st.integers(0, 5)) == 0:
        solve.update(t_end="equilibrium", t_max=0.5, tol=1e-3)
    for key in draw(st.lists(st.sampled_from(sorted(OPTIONAL_SOLVE)), unique=True, max_size=3)):
        solve[key] = draw(OPTIONAL_SOLVE[key])
    return solve


@st.composite
def valid_documents(draw) -> dict[str, Any]:
    """A config that runs in a fraction of a second (small grid, few steps)."""
    names = ["x", "y"][: draw(st.integers(1, 2))]
    doc: dict[str, Any] = {"title": "fuzz", "constants": {"a": 2.0}}
    doc["grid"] = {n: draw(AXIS) for n in names}
    if draw(st.integers(0, 4)) == 0:
        doc["grid"]["periodic"] = ["x"]
    doc["model"] = draw(_model(names))
    doc["initial"] = draw(_initial(names))
    doc["solve"] = draw(_solve())
    if draw(st.integers(0, 4)) == 0 and isinstance(doc["solve"]["t_end"], float):
        doc["particles"] = {"n": draw(st.sampled_from([50, 200])), "dt": 0.05, "seed": 1}
    doc["output"] = {"name": draw(st.sampled_from(["result", "run 1", "ü", "a.b"]))}
    return doc


@st.composite
def _mutate(draw, doc: dict[str, Any]) -> dict[str, Any]:
    """Replace a value by junk, add a junk key, or delete a key or a section."""
    tables = [doc, *(v for v in doc.values() if isinstance(v, dict))]
    table = draw(st.sampled_from(tables))
    action = draw(st.sampled_from(["junk", "junk", "key", "delete"]))
    if action == "key" or not table:
        table[draw(st.sampled_from(JUNK_KEYS))] = draw(junk_values)
    elif action == "junk":
        table[draw(st.sampled_from(sorted(table)))] = draw(junk_values)
    else:
        del table[draw(st.sampled_from(sorted(table)))]
    return doc


@st.composite
def documents(draw) -> str:
    """A TOML document: valid, valid with one to three mutations, or raw junk text."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.text(max_size=80))
    doc = draw(valid_documents())
    for _ in range(0 if kind < 5 else draw(st.integers(1, 3))):
        doc = draw(_mutate(doc))
    return to_toml(doc)


def _listing(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` but `skip`, with its size and modification time."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in [*dirnames, *filenames]:
            st_ = Path(dirpath, name).lstat()
            out[str(Path(dirpath, name).relative_to(root))] = (st_.st_size, st_.st_mtime_ns)
    return out


@contextlib.contextmanager
def _sandbox():
    """A fresh folder that is also the working directory and the temporary folder."""
    old_cwd, old_tmp = os.getcwd(), tempfile.tempdir
    with tempfile.TemporaryDirectory() as root:
        tmp = Path(root, "tmp")
        tmp.mkdir()
        os.chdir(root)
        tempfile.tempdir = str(tmp)
        try:
            yield Path(root)
        finally:
            tempfile.tempdir = old_tmp
            os.chdir(old_cwd)


def run_cli(argv: list[str]) -> tuple[int, str, float]:
    """``main(argv)`` in-process, as the command runs it (numpy warns, it does not raise)."""
    err = io.StringIO()
    start = time.process_time()
    with (
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(io.StringIO()),
        np.errstate(divide="warn", over="warn", invalid="warn", under="ignore"),
    ):
        code = main(argv)
    return code, err.getvalue(), time.process_time() - start


WARM_UP = """\
[grid]
x = [-1.0, 1.0, 4]
[model]
energy = "x**2/2"
temperature = 1.0
[initial]
type = "uniform"
[solve]
t_end = 0.1
dt = 0.05
[particles]
n = 10
dt = 0.05
"""


@pytest.fixture(scope="module")
def warm() -> None:
    """One run first, so that no case pays for importing the readers and writers."""
    with _sandbox() as root:
        (root / "warm.toml").write_text(WARM_UP)
        code, err, _ = run_cli(["run", str(root / "warm.toml"), "-o", str(root / "out")])
        assert code == 0, err


@FUZZ
@given(text=documents())
def test_whole_documents_run_or_are_refused(warm: None, text: str) -> None:
    with _sandbox() as root:
        config = root / "fuzz.toml"
        config.write_text(text, encoding="utf-8", errors="surrogatepass")
        out = root / "out"
        before = _listing(root, out)
        code, err, seconds = run_cli(["run", str(config), "-o", str(out), "--no-figures"])
        assert "Traceback" not in err, (text, err)
        assert code in (0, 2), (text, code, err)
        if code == 2:
            assert err.startswith("fpsolver run: error: "), (text, err)
        assert seconds < SECONDS, (text, seconds)
        assert _listing(root, out) == before, text
