"""Safe math expressions for configuration files.

Configs describe energies, mobilities, forces and initial densities as text
such as ``"(x**2 - 1)**2 + 0.5*y**2"``. This module turns such text into a
vectorised callable of the axis arrays *without* ``eval`` or ``exec``: the
text is parsed with :mod:`ast`, every node is checked against a small
whitelist, and a tree-walking interpreter evaluates it with numpy.

Allowed: numbers, the axis names and named constants, ``+ - * / // % **``,
unary ``+ -``, comparisons (``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``;
giving 1.0 or 0.0), ``&`` and ``|`` on comparisons, and calls of the
functions in :data:`FUNCTIONS` (``exp``, ``log``, ``sin``, ``where``, …).
Rejected with an :class:`ExpressionError`: attribute access, subscripts,
imports and statements, lambdas, comprehensions, strings, keyword
arguments, dunder or unknown names, calls of anything not whitelisted,
constants larger than :data:`MAX_CONSTANT`, constant exponents larger than
:data:`MAX_EXPONENT`, exponent towers (a power inside an exponent), and
texts longer than :data:`MAX_LENGTH` or nested deeper than
:data:`MAX_DEPTH`. A left-associative chain of operators of one precedence
level (``x + y - z + ...``, ``a * b / c * ...``, ``c1 & c2 & ...``) counts
as one level however long it is; it is checked and evaluated without
recursion, so only real nesting (parentheses on the right, function calls,
unary signs) counts towards the depth. Constants may not redefine the
predefined names (:data:`CONSTANTS`, :data:`FUNCTIONS`, Python keywords).

A Python function may be referenced as ``"package.module:function"`` with
:func:`resolve_reference`, but only when the caller opts in
(``allow_python=True``): importing code is a decision for the person who
runs it (``fpsolver run --allow-python``), never something a config file
can do by itself.
"""

from __future__ import annotations

import ast
import importlib
import keyword
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CONSTANTS",
    "FUNCTIONS",
    "PREDEFINED",
    "Expression",
    "ExpressionError",
    "check_constant_name",
    "compile_expression",
    "is_reference",
    "resolve_reference",
    "time_field",
]

#: Longest accepted expression text (characters).
MAX_LENGTH = 2000
#: Deepest accepted nesting of the syntax tree.
MAX_DEPTH = 40
#: Largest accepted magnitude of a numeric literal.
MAX_CONSTANT = 1e100
#: Largest accepted magnitude of a constant exponent in ``a ** b``.
MAX_EXPONENT = 100.0

#: Named constants available in every expression.
CONSTANTS: dict[str, float] = {"pi": float(np.pi), "e": float(np.e), "tau": float(2 * np.pi)}


def _where(cond: Any, a: Any, b: Any) -> np.ndarray:
    return np.where(np.asarray(cond) != 0, a, b)


#: Whitelisted functions: name → (callable, number of arguments).
FUNCTIONS: dict[str, tuple[Callable[..., Any], int]] = {
    "exp": (np.exp, 1),
    "expm1": (np.expm1, 1),
    "log": (np.log, 1),
    "log1p": (np.log1p, 1),
    "log2": (np.log2, 1),
    "log10": (np.log10, 1),
    "sqrt": (np.sqrt, 1),
    "cbrt": (np.cbrt, 1),
    "abs": (np.abs, 1),
    "sign": (np.sign, 1),
    "floor": (np.floor, 1),
    "ceil": (np.ceil, 1),
    "sin": (np.sin, 1),
    "cos": (np.cos, 1),
    "tan": (np.tan, 1),
    "arcsin": (np.arcsin, 1),
    "arccos": (np.arccos, 1),
    "arctan": (np.arctan, 1),
    "sinh": (np.sinh, 1),
    "cosh": (np.cosh, 1),
    "tanh": (np.tanh, 1),
    "arcsinh": (np.arcsinh, 1),
    "arccosh": (np.arccosh, 1),
    "arctanh": (np.arctanh, 1),
    "erf": (None, 1),  # filled lazily from scipy.special
    "arctan2": (np.arctan2, 2),
    "hypot": (np.hypot, 2),
    "minimum": (np.minimum, 2),
    "maximum": (np.maximum, 2),
    "min": (np.minimum, 2),
    "max": (np.maximum, 2),
    "mod": (np.mod, 2),
    "heaviside": (np.heaviside, 2),
    "logaddexp": (np.logaddexp, 2),
    "where": (_where, 3),
    "clip": (np.clip, 3),
}

#: Names an expression predefines: constants and functions (not for redefinition).
PREDEFINED: frozenset[str] = frozenset(CONSTANTS) | frozenset(FUNCTIONS)

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_LOGIC: dict[type, Callable[[Any, Any], Any]] = {
    ast.BitAnd: np.logical_and,
    ast.BitOr: np.logical_or,
}
#: Operators of one precedence level: a left-associative chain of them is flat.
_LEVELS: dict[type, int] = {
    ast.Add: 0,
    ast.Sub: 0,
    ast.Mult: 1,
    ast.Div: 1,
    ast.FloorDiv: 1,
    ast.Mod: 1,
    ast.BitAnd: 2,
    ast.BitOr: 3,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}

_REFERENCE = re.compile(r"^\s*[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*\s*$")

_NODE_WORDS = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambdas",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.NamedExpr: "assignments",
    ast.IfExp: "conditional expressions (use where(cond, a, b))",
    ast.BoolOp: "`and`/`or` (use & and | on comparisons)",
    ast.Starred: "starred arguments",
    ast.JoinedStr: "strings",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Dict: "dicts",
    ast.Set: "sets",
}


class ExpressionError(ValueError):
    """A config expression is malformed or uses something not allowed."""


def _erf() -> Callable[[Any], Any]:
    from scipy.special import erf

    return erf


class Expression:
    """A checked math expression, callable on numpy arrays.

    Parameters
    ----------
    text : str
        The expression, e.g. ``"(x**2 - 1)**2 + 0.5*y**2"``.
    variables : iterable of str
        Names the expression may use as array arguments (the axis names),
        in the order positional arguments are given.
    constants : mapping of str to float, optional
        Extra named numbers (e.g. from a config's ``[constants]`` table);
        they may not shadow variables or functions.
    name : str, optional
        What the expression describes, used in error messages
        (e.g. ``"model.energy"``).

    Attributes
    ----------
    text : str
    variables : tuple of str
    used : frozenset of str
        The variables the expression actually uses.

    Examples
    --------
    >>> import numpy as np
    >>> f = Expression("(x**2 - 1)**2 + 0.5*y**2", ["x", "y"])
    >>> f(np.array([0.0, 1.0]), np.array([0.0, 2.0]))
    array([1., 2.])
    >>> f(x=2.0, y=0.0)
    array(9.)
    >>> Expression("exp(-x**2)", ["x"]).used
    frozenset({'x'})
    """

    def __init__(
        self,
        text: str,
        variables: Iterable[str],
        constants: Mapping[str, float] | None = None,
        name: str = "expression",
    ) -> None:
        self.name = name
        self.variables = tuple(variables)
        consts = dict(CONSTANTS)
        for key, value in (constants or {}).items():
            check_constant_name(key, self.variables, name)
            consts[key] = _check_number(value, f"{name}: constant {key!r}")
        self._constants = consts
        if not isinstance(text, str):
            raise ExpressionError(f"{name}: expected an expression string, got {text!r}")
        self.text = text
        self._tree = _parse(text, name)
        used: set[str] = set()
        _check(self._tree.body, name, set(self.variables), set(consts), used, 0)
        self.used = frozenset(used)

    def __repr__(self) -> str:
        return f"Expression({self.text!r}, variables={self.variables})"

    @property
    def is_constant(self) -> bool:
        """True when the expression uses no variables."""
        return not self.used

    def __call__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        """Evaluate on arrays given positionally (in `variables` order) or by name."""
        if len(args) > len(self.variables):
            raise TypeError(
                f"{self.name}: got {len(args)} positional arrays for variables {self.variables}"
            )
        env = dict(zip(self.variables, args))
        for key, value in kwargs.items():
            if key not in self.variables:
                raise TypeError(f"{self.name}: unknown variable {key!r}; valid: {self.variables}")
            env[key] = value
        missing = [v for v in self.used if v not in env]
        if missing:
            raise TypeError(f"{self.name}: missing values for variables {sorted(missing)}")
        env = {k: np.asarray(v, dtype=float) for k, v in env.items()}
        with np.errstate(all="ignore"):
            out = _eval(self._tree.body, env, self._constants, self.name)
        return np.asarray(out, dtype=float)


def compile_expression(
    text: str,
    variables: Iterable[str],
    constants: Mapping[str, float] | None = None,
    name: str = "expression",
) -> Expression:
    """Parse and check `text`; return an :class:`Expression`.

    Examples
    --------
    >>> f = compile_expression("where(x > 0, x, 0)", ["x"])
    >>> f([-1.0, 2.0])
    array([0., 2.])
    >>> compile_expression("x.__class__", ["x"], name="model.energy")
    Traceback (most recent call last):
    ...
    fpsolver.cli.expr.ExpressionError: model.energy: not allowed: attribute access (at '.__class__')
    """
    return Expression(text, variables, constants, name)


def time_field(expr: Expression) -> Callable[..., np.ndarray]:
    """An expression that uses ``t`` as a field ``f(*axes, t)`` (a time-dependent model part).

    Examples
    --------
    >>> f = time_field(Expression("0.5*(x - t)**2", ["x", "t"]))
    >>> f(1.0, t=3.0)
    array(2.)
    """

    def field(*points: Any, t: float) -> np.ndarray:
        return expr(*points, t=t)

    field.__doc__ = f"{expr.name}: {expr.text}"
    return field


def is_reference(text: Any) -> bool:
    """Whether `text` looks like a ``"package.module:function"`` reference.

    Examples
    --------
    >>> is_reference("numpy:cos"), is_reference("cos(x)")
    (True, False)
    """
    return isinstance(text, str) and bool(_REFERENCE.match(text))


def resolve_reference(text: str, allow_python: bool, name: str = "expression") -> Callable:
    """Import the function named by ``"package.module:function"``.

    Parameters
    ----------
    text : str
        The reference.
    allow_python : bool
        Must be True: importing code named in a config needs the explicit
        consent of whoever runs it (``--allow-python`` on the command line,
        ``allow_python=True`` in Python), never of the config itself.
    name : str
        What the reference describes, for error messages.

    Examples
    --------
    >>> resolve_reference("numpy:cos", allow_python=True).__name__
    'cos'
    >>> resolve_reference("numpy:cos", allow_python=False, name="model.energy")
    Traceback (most recent call last):
    ...
    fpsolver.cli.expr.ExpressionError: model.energy: 'numpy:cos' refers to Python code; ...
    """
    if not is_reference(text):
        raise ExpressionError(f"{name}: {text!r} is not of the form 'package.module:function'")
    if not allow_python:
        raise ExpressionError(
            f"{name}: {text!r} refers to Python code; importing it needs the consent of "
            "whoever runs it: pass --allow-python on the command line (or "
            "allow_python=True to load_config/parse_config); a config file cannot give it"
        )
    module_name, attr = text.strip().split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ExpressionError(f"{name}: cannot import module {module_name!r}: {err}") from None
    func = getattr(module, attr, None)
    if func is None or not callable(func):
        raise ExpressionError(f"{name}: module {module_name!r} has no callable {attr!r}")
    return func


# -- checking ------------------------------------------------------------
def _parse(text: str, name: str) -> ast.Expression:
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"{name}: expression is {len(text)} characters long; the limit is {MAX_LENGTH}"
        )
    if not text.strip():
        raise ExpressionError(f"{name}: expression is empty")
    try:
        return ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise ExpressionError(
            f"{name}: not a valid expression: {text!r} ({err.msg}, column {err.offset})"
        ) from None
    except (ValueError, RecursionError, MemoryError) as err:
        raise ExpressionError(f"{name}: cannot parse {text!r}: {err}") from None


def _check_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ExpressionError(f"{where}: must be a real number, got {value!r}")
    if isinstance(value, int) and abs(value) > MAX_CONSTANT:
        raise ExpressionError(f"{where}: number is too large (limit {MAX_CONSTANT:g})")
    v = float(value)
    if not np.isfinite(v) or abs(v) > MAX_CONSTANT:
        raise ExpressionError(f"{where}: number {value!r} exceeds the limit {MAX_CONSTANT:g}")
    return v


def check_constant_name(key: Any, variables: Iterable[str], name: str) -> None:
    """Refuse a constant name that is not an identifier or redefines a known name.

    Parameters
    ----------
    key : str
        The constant's name.
    variables : iterable of str
        The variables (axis names) of the expressions.
    name : str
        What is being checked, the start of the error message.

    Raises
    ------
    ExpressionError
        When `key` is not an identifier, starts with ``_``, is a Python
        keyword, a variable, or a predefined constant or function.

    Examples
    --------
    >>> check_constant_name("pi", ["x"], "constants.pi")
    Traceback (most recent call last):
    ...
    fpsolver.cli.expr.ExpressionError: constants.pi: constant 'pi' clashes with the predefined ...
    """
    if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
        reason = "a reserved name: constant names are identifiers not starting with '_'"
    elif keyword.iskeyword(key):
        reason = "a Python keyword"
    elif key in tuple(variables):
        reason = "a variable (an axis name)"
    elif key in CONSTANTS:
        reason = f"the predefined constant {key} = {CONSTANTS[key]!r}; it cannot be redefined"
    elif key in FUNCTIONS:
        reason = f"the predefined function {key}(); it cannot be redefined"
    else:
        return
    raise ExpressionError(f"{name}: constant {key!r} clashes with {reason}; choose another name")


#: Longest snippet of an expression quoted in an error message.
SNIPPET_LENGTH = 80


def _snippet(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # RecursionError on a very long chain: name the node instead
        return type(node).__name__
    return text if len(text) <= SNIPPET_LENGTH else text[: SNIPPET_LENGTH - 1] + "…"


def _chain(node: ast.BinOp) -> tuple[ast.AST, list[tuple[type, ast.AST, ast.BinOp]]]:
    """Flatten a left-associative chain of operators of one precedence level.

    ``a + b - c`` gives ``(a, [(Add, b, a + b), (Sub, c, a + b - c)])``: the
    first operand and, in order, each operator with its right operand and
    the node that applies it. Any other operator gives a chain of one link.
    Runs without recursion, however long the chain.
    """
    level = _LEVELS.get(type(node.op))
    links: list[tuple[type, ast.AST, ast.BinOp]] = []
    while True:
        links.append((type(node.op), node.right, node))
        left = node.left
        if level is None or not isinstance(left, ast.BinOp):
            break
        if _LEVELS.get(type(left.op)) != level:
            break
        node = left
    links.reverse()
    return left, links


_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div)


def _constant_value(node: ast.AST) -> float | None:
    """Value of a variable-free numeric subtree made of literals and + - * /."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        v = _constant_value(node.operand)
        return None if v is None else _UNARY[type(node.op)](v)
    if not isinstance(node, ast.BinOp):
        return None
    first, links = _chain(node)
    value = _constant_value(first)
    for op, right, _ in links:
        b = _constant_value(right) if op in _ARITHMETIC else None
        if value is None or b is None:
            return None
        with np.errstate(all="ignore"):
            value = float(_BINOPS[op](np.float64(value), np.float64(b)))
    return value


def _contains_pow(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow) for n in ast.walk(node)
    ) or any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("exp", "expm1")
        for n in ast.walk(node)
    )


@dataclass(frozen=True)
class _Scope:
    """What checking a node needs besides the node itself."""

    name: str  # what the expression describes, for messages
    variables: set[str]
    constants: set[str]
    used: set[str]  # collects the variables met


def _check(
    node: ast.AST, name: str, variables: set[str], constants: set[str], used: set[str], depth: int
) -> None:
    """Reject any node outside the whitelist; add the variables met to `used`."""
    _check_node(node, _Scope(name, variables, constants, used), depth)


def _check_node(node: ast.AST, scope: _Scope, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ExpressionError(f"{scope.name}: expression is nested too deeply (limit {MAX_DEPTH})")
    for kind, checker in _CHECKERS:
        if isinstance(node, kind):
            checker(node, scope, depth + 1)
            return
    word = _NODE_WORDS.get(type(node), f"{type(node).__name__} nodes")
    text = _snippet(node)
    if isinstance(node, ast.Attribute):
        text = "." + node.attr
    raise ExpressionError(f"{scope.name}: not allowed: {word} (at {text!r})")


def _check_constant(node: ast.Constant, scope: _Scope, depth: int) -> None:
    name = scope.name
    if isinstance(node.value, complex):
        raise ExpressionError(f"{name}: complex numbers are not allowed ({node.value!r})")
    if isinstance(node.value, (str, bytes)):
        raise ExpressionError(f"{name}: strings are not allowed (at {_snippet(node)!r})")
    _check_number(node.value, f"{name}: constant {_snippet(node)}")


def _check_name(node: ast.Name, scope: _Scope, depth: int) -> None:
    name, ident = scope.name, node.id
    if ident.startswith("_"):
        raise ExpressionError(f"{name}: name {ident!r} is not allowed (no private/dunder names)")
    if ident in scope.variables:
        scope.used.add(ident)
        return
    if ident in scope.constants:
        return
    if ident in FUNCTIONS:
        raise ExpressionError(f"{name}: function {ident!r} must be called, e.g. {ident}(x)")
    valid = sorted(scope.variables) + sorted(scope.constants)
    raise ExpressionError(f"{name}: unknown name {ident!r}; valid names: {', '.join(valid)}")


def _check_binop(node: ast.BinOp, scope: _Scope, depth: int) -> None:
    """Check a chain of binary operators (one level deep, however long; see :func:`_chain`)."""
    first, links = _chain(node)
    for op, _, step in links:
        if op not in _BINOPS and op not in _LOGIC:
            raise ExpressionError(
                f"{scope.name}: operator {op.__name__} is not allowed (in {_snippet(step)!r})"
            )
        if op is ast.Pow and _contains_pow(step.right):
            raise ExpressionError(
                f"{scope.name}: exponent towers are not allowed (in {_snippet(step)!r}); "
                "a power may not contain another power or exp in its exponent"
            )
    _check_node(first, scope, depth)
    for op, right, step in links:
        _check_node(right, scope, depth)
        if op is ast.Pow:  # after the depth check: the exponent is a shallow tree
            _check_exponent(step, scope)


def _check_exponent(node: ast.BinOp, scope: _Scope) -> None:
    value = _constant_value(node.right)
    if value is not None and not abs(value) <= MAX_EXPONENT:
        raise ExpressionError(
            f"{scope.name}: exponent {value:g} is too large (limit ±{MAX_EXPONENT:g}) "
            f"in {_snippet(node)!r}"
        )


def _check_unary(node: ast.UnaryOp, scope: _Scope, depth: int) -> None:
    if type(node.op) not in _UNARY:
        raise ExpressionError(
            f"{scope.name}: unary operator {type(node.op).__name__} is not allowed "
            f"(in {_snippet(node)!r})"
        )
    _check_node(node.operand, scope, depth)


def _check_compare(node: ast.Compare, scope: _Scope, depth: int) -> None:
    for op in node.ops:
        if type(op) not in _COMPARE:
            raise ExpressionError(
                f"{scope.name}: comparison {type(op).__name__} is not allowed "
                f"(in {_snippet(node)!r})"
            )
    _check_node(node.left, scope, depth)
    for comp in node.comparators:
        _check_node(comp, scope, depth)


def _check_call(node: ast.Call, scope: _Scope, depth: int) -> None:
    name, func = scope.name, node.func
    if not isinstance(func, ast.Name):
        what = "attribute access" if isinstance(func, ast.Attribute) else "calls of expressions"
        raise ExpressionError(
            f"{name}: not allowed: {what} (at {_snippet(func)!r}); "
            f"callable functions: {', '.join(sorted(FUNCTIONS))}"
        )
    if func.id not in FUNCTIONS:
        raise ExpressionError(
            f"{name}: calling {func.id!r} is not allowed; "
            f"callable functions: {', '.join(sorted(FUNCTIONS))}"
        )
    if node.keywords:
        raise ExpressionError(f"{name}: keyword arguments are not allowed in {func.id}()")
    nargs = FUNCTIONS[func.id][1]
    if len(node.args) != nargs:
        raise ExpressionError(
            f"{name}: {func.id}() takes {nargs} argument{'s' if nargs > 1 else ''}, "
            f"got {len(node.args)}"
        )
    for arg in node.args:
        _check_node(arg, scope, depth)


#: Node types an expression may contain, with their checks (in the order tried).
_CHECKERS: tuple[tuple[type, Callable[[Any, _Scope, int], None]], ...] = (
    (ast.Constant, _check_constant),
    (ast.Name, _check_name),
    (ast.BinOp, _check_binop),
    (ast.UnaryOp, _check_unary),
    (ast.Compare, _check_compare),
    (ast.Call, _check_call),
)


# -- evaluation ----------------------------------------------------------
def _apply(op: type, left: Any, right: Any) -> Any:
    if op in _LOGIC:
        return _LOGIC[op](np.asarray(left) != 0, np.asarray(right) != 0).astype(float)
    return _BINOPS[op](left, right)


def _eval(node: ast.AST, env: dict[str, np.ndarray], constants: dict[str, float], name: str):
    if isinstance(node, ast.Constant):
        return np.float64(node.value)
    if isinstance(node, ast.Name):
        if node.id in env:
            return env[node.id]
        return np.float64(constants[node.id])
    if isinstance(node, ast.BinOp):
        first, links = _chain(node)
        value = _eval(first, env, constants, name)
        for op, right, _ in links:
            value = _apply(op, value, _eval(right, env, constants, name))
        return value
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval(node.operand, env, constants, name))
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env, constants, name)
        result: Any = True
        for op, comp in zip(node.ops, node.comparators):
            right = _eval(comp, env, constants, name)
            result = np.logical_and(result, _COMPARE[type(op)](left, right))
            left = right
        return np.asarray(result, dtype=float)
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        func = FUNCTIONS[node.func.id][0]
        if func is None:
            func = _erf()
        args = [_eval(a, env, constants, name) for a in node.args]
        return func(*args)
    raise ExpressionError(f"{name}: cannot evaluate {_snippet(node)!r}")  # pragma: no cover
