"""The safe expression evaluator: what it computes and what it refuses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fpsolver.cli.expr import (
    MAX_EXPONENT,
    MAX_LENGTH,
    Expression,
    ExpressionError,
    compile_expression,
    is_reference,
    resolve_reference,
)

X = np.linspace(-2.0, 2.0, 8)
Y = np.linspace(-1.0, 3.0, 8)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(x**2 - 1)**2 + 0.5*y**2", (X**2 - 1) ** 2 + 0.5 * Y**2),
        ("exp(-x**2)", np.exp(-(X**2))),
        ("-x + +y", -X + Y),
        ("x / (1 + y**2)", X / (1 + Y**2)),
        ("x // 1 + x % 1", X // 1 + X % 1),
        ("sqrt(abs(x)) * sign(y)", np.sqrt(np.abs(X)) * np.sign(Y)),
        (
            "cos(2*pi*x) + sin(tau*y) + tanh(x) + log1p(e + y)",
            np.cos(2 * np.pi * X) + np.sin(2 * np.pi * Y) + np.tanh(X) + np.log1p(np.e + Y),
        ),
        ("where(x > 0, x, 0)", np.where(X > 0, X, 0.0)),
        ("(x > -1) & (x < 1) | (y >= 2)", ((X > -1) & (X < 1)) | (Y >= 2)),
        ("-1 < x <= 1", (-1 < X) & (X <= 1)),
        (
            "arctan2(y, x) + hypot(x, y) + min(x, y) + max(x, y)",
            np.arctan2(Y, X) + np.hypot(X, Y) + np.minimum(X, Y) + np.maximum(X, Y),
        ),
        ("clip(x, -1, 1)", np.clip(X, -1, 1)),
        ("x**-2", X**-2.0),
    ],
)
def test_values_match_numpy_exactly(text: str, expected: np.ndarray) -> None:
    f = Expression(text, ["x", "y"])
    np.testing.assert_array_equal(f(X, Y), np.asarray(expected, dtype=float))
    np.testing.assert_array_equal(f(x=X, y=Y), np.asarray(expected, dtype=float))


def test_erf_from_scipy() -> None:
    from scipy.special import erf

    np.testing.assert_array_equal(Expression("erf(x)", ["x"])(X), erf(X))


def test_constants_and_used_variables() -> None:
    f = Expression("a * x**2", ["x", "y"], constants={"a": 3.0})
    assert f.used == frozenset({"x"})
    np.testing.assert_array_equal(f(X, Y), 3.0 * X**2)
    assert Expression("2 * pi", ["x"]).is_constant
    assert float(Expression("2 * pi", ["x"])()) == 2 * math.pi


def test_constant_result_broadcasts_only_when_asked() -> None:
    assert Expression("1.5", ["x"])(X).shape == ()


def test_no_warnings_for_invalid_points() -> None:
    # log of a negative number is nan, silently: the caller checks finiteness
    out = Expression("where(x > 0, log(x), 0)", ["x"])(X)
    assert np.all(np.isfinite(out))
    assert np.array_equal(out[X <= 0], np.zeros(np.sum(X <= 0)))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("x.__class__", "attribute access"),
        ("x.real", "attribute access"),
        ("np.exp(x)", "attribute access"),
        ("().__class__.__bases__[0]", "subscripts"),
        ("().__class__.__bases__", "attribute access"),
        ("__import__('os')", "calling '__import__' is not allowed"),
        ("__builtins__", "'__builtins__' is not allowed"),
        ("_x", "'_x' is not allowed"),
        ("import os", "not a valid expression"),
        ("lambda: 1", "lambdas"),
        ("(lambda x: x)(1)", "calls of expressions"),
        ("[x for x in y]", "comprehensions"),
        ("sum(i for i in x)", "calling 'sum' is not allowed"),
        ("x[0]", "subscripts"),
        ("open('f')", "calling 'open' is not allowed"),
        ("eval('1')", "calling 'eval' is not allowed"),
        ("exp(x=1)", "keyword arguments"),
        ("exp(x, y)", "exp() takes 1 argument, got 2"),
        ("'abc'", "strings are not allowed"),
        ("1j", "complex numbers"),
        ("x if y else 1", "conditional expressions"),
        ("x and y", "`and`/`or`"),
        ("(x := 1)", "assignments"),
        ("z + 1", "unknown name 'z'"),
        ("sin", "must be called"),
        ("x << 2", "operator LShift is not allowed"),
        ("~x", "unary operator Invert is not allowed"),
        ("x is y", "comparison Is is not allowed"),
        ("9**9**9", "exponent towers"),
        ("2**(2**x)", "exponent towers"),
        ("x**exp(y)", "exponent towers"),
        ("x**1000", "exponent 1000 is too large"),
        ("10**(600 + 1)", "exponent 601 is too large"),
        ("1e400", "exceeds the limit"),
        ("1" + "0" * 200, "too large"),
        ("x +", "not a valid expression"),
        ("", "empty"),
        ("sin(" * 60 + "x" + ")" * 60, "nested too deeply"),
        ("-" * 60 + "x", "nested too deeply"),
    ],
)
def test_rejected_with_a_clear_message(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(text, ["x", "y"], name="model.energy")
    message = str(info.value)
    assert message.startswith("model.energy: "), message
    assert fragment in message, message


def test_exponent_bound_is_inclusive() -> None:
    limit = int(MAX_EXPONENT)
    assert float(Expression(f"1.0**{limit}", ["x"])()) == 1.0
    with pytest.raises(ExpressionError, match="too large"):
        Expression(f"1.0**{limit + 1}", ["x"])


def test_too_long() -> None:
    text = "+".join(["x"] * (MAX_LENGTH // 2 + 1))
    with pytest.raises(ExpressionError, match=f"the limit is {MAX_LENGTH}"):
        Expression(text, ["x"])


def test_constants_may_not_shadow() -> None:
    for bad in ("x", "exp", "_a"):
        with pytest.raises(ExpressionError, match="clashes"):
            Expression("x", ["x"], constants={bad: 1.0})


def test_python_references_need_consent() -> None:
    assert is_reference("numpy:cos")
    assert is_reference("os.path:join")
    assert not is_reference("cos(x)")
    assert not is_reference("numpy:cos; import os")
    with pytest.raises(ExpressionError, match="--allow-python"):
        resolve_reference("numpy:cos", allow_python=False, name="model.energy")
    assert resolve_reference("numpy:cos", allow_python=True) is np.cos
    with pytest.raises(ExpressionError, match="cannot import module"):
        resolve_reference("no_such_module_xyz:f", allow_python=True)
    with pytest.raises(ExpressionError, match="no callable 'nope'"):
        resolve_reference("numpy:nope", allow_python=True)


def test_wrong_call_arguments() -> None:
    f = Expression("x + y", ["x", "y"])
    with pytest.raises(TypeError, match="missing values"):
        f(X)
    with pytest.raises(TypeError, match="unknown variable 'z'"):
        f(x=X, z=Y)
