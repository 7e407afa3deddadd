"""The safe expression language of ``expr:`` rules.

Text is parsed with ``ast.parse`` only and every node is checked against a whitelist
(numbers, names, ``+ - * / % **``, unary ``-``/``+``, ``abs``/``min``/``max``, comparisons
including chains, ``and``/``or``/``not``, parentheses); nothing is ever passed to ``eval`` or
``compile``. The tree is turned into nested closures over numpy arrays, so one call evaluates
the expression at every evaluation point of a batch.

Expressions come from files anyone may hand in, and both compiling and evaluating recurse
over the tree, so size is bounded before either (docs/rules.md): at most ``MAX_CHARS``
characters and ``MAX_DEPTH`` levels of nesting, and every number must be a finite float64.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Arr = npt.NDArray[np.float64] | npt.NDArray[np.bool_]
Env = Mapping[str, npt.NDArray[np.float64]]
Fn = Callable[[Env], Arr]
Type = Literal["num", "bool"]

FUNCTIONS = ("abs", "min", "max")
MAX_CHARS = 1000
MAX_DEPTH = 64
"""Levels of nesting: each operator, call, comparison or ``not`` adds one (names and numbers
do not), so ``a + b + ... > 0`` may add up 64 terms."""


class ExprError(ValueError):
    """An expression is not valid; ``col`` is the 1-based column inside the expression."""

    def __init__(self, message: str, col: int = 1) -> None:
        self.col = col
        super().__init__(message)


@dataclass(frozen=True)
class Expr:
    """A compiled boolean expression and the names it reads, in order of first use."""

    text: str
    names: tuple[str, ...]
    fn: Fn

    def __call__(self, env: Env) -> npt.NDArray[np.bool_]:
        with np.errstate(all="ignore"):
            out = self.fn(env)
        n = len(next(iter(env.values()))) if env else 1
        return np.broadcast_to(np.asarray(out, dtype=np.bool_), (n,))


_BIN: dict[type[ast.operator], Callable[[Arr, Arr], Arr]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: np.true_divide,
    ast.Mod: np.fmod,
    ast.Pow: np.power,
}
_CMP: dict[type[ast.cmpop], Callable[[Arr, Arr], Arr]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


def parse(text: str) -> Expr:
    """Check and compile ``text``; raises ExprError with a column on the first problem."""
    if len(text.strip()) > MAX_CHARS:
        raise ExprError(f"the expression is longer than {MAX_CHARS} characters; split it into several rules")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ExprError(f"syntax error: {e.msg}", e.offset or 1) from None
    except (RecursionError, MemoryError):  # the parser's own stack: only for absurd nesting
        raise ExprError(f"nested more than {MAX_DEPTH} levels deep") from None
    _check_depth(tree.body)
    names: list[str] = []
    fn, typ = _compile(tree.body, names)
    if typ != "bool":
        raise ExprError("the expression must be a condition (a comparison, and/or/not), not a number")
    return Expr(text, tuple(names), fn)


def _check_depth(root: ast.expr) -> None:
    """Iteratively, so that measuring a deep tree cannot itself overflow the stack."""
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExprError(f"nested more than {MAX_DEPTH} levels deep", _col(node))
        stack.extend(
            (child, depth + 1)
            for child in ast.iter_child_nodes(node)
            if isinstance(child, ast.expr) and not isinstance(child, ast.Name | ast.Constant)  # leaves
        )


def _col(node: ast.AST) -> int:
    return int(getattr(node, "col_offset", 0)) + 1


def _compile(node: ast.AST, names: list[str]) -> tuple[Fn, Type]:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ExprError(f"only numbers are allowed as constants, not {node.value!r}", _col(node))
        try:
            const = np.float64(node.value)
        except OverflowError:
            const = np.float64(np.inf)
        if not np.isfinite(const):
            raise ExprError("number out of range (a float64: at most about 1.8e308)", _col(node))
        return (lambda env: const), "num"  # type: ignore[return-value]
    if isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise ExprError(f"{node.id} is a function: call it like {node.id}(x)", _col(node))
        name = node.id
        if name not in names:
            names.append(name)
        return (lambda env: env[name]), "num"
    if isinstance(node, ast.BinOp):
        op = _BIN.get(type(node.op))
        if op is None:
            raise ExprError(f"operator {type(node.op).__name__} is not allowed", _col(node))
        left, right = _num(node.left, names), _num(node.right, names)
        return (lambda env: op(left(env), right(env))), "num"
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            inner = _bool(node.operand, names)
            return (lambda env: np.logical_not(inner(env))), "bool"
        if isinstance(node.op, ast.USub):
            neg = _num(node.operand, names)
            return (lambda env: np.negative(neg(env))), "num"
        if isinstance(node.op, ast.UAdd):
            return _num(node.operand, names), "num"
        raise ExprError("operator ~ is not allowed", _col(node))
    if isinstance(node, ast.BoolOp):
        parts = [_bool(v, names) for v in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or

        def boolop(env: Env) -> Arr:
            out = parts[0](env)
            for p in parts[1:]:
                out = combine(out, p(env))
            return out

        return boolop, "bool"
    if isinstance(node, ast.Compare):
        operands = [_num(node.left, names)] + [_num(c, names) for c in node.comparators]
        ops = []
        for o in node.ops:
            f = _CMP.get(type(o))
            if f is None:
                raise ExprError(f"comparison {type(o).__name__} is not allowed", _col(node))
            ops.append(f)

        def compare(env: Env) -> Arr:
            vals = [f(env) for f in operands]
            out = ops[0](vals[0], vals[1])
            for i in range(1, len(ops)):
                out = np.logical_and(out, ops[i](vals[i], vals[i + 1]))
            return out

        return compare, "bool"
    if isinstance(node, ast.Call):
        return _call(node, names), "num"
    raise ExprError(f"{type(node).__name__} is not allowed in an expression", _col(node))


def _call(node: ast.Call, names: list[str]) -> Fn:
    if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
        raise ExprError("only abs(), min() and max() can be called", _col(node))
    if node.keywords:
        raise ExprError(f"{node.func.id}() takes no keyword arguments", _col(node))
    args = [_num(a, names) for a in node.args]
    if node.func.id == "abs":
        if len(args) != 1:
            raise ExprError("abs() takes exactly one argument", _col(node))
        (arg,) = args
        return lambda env: np.abs(arg(env))
    if len(args) < 2:
        raise ExprError(f"{node.func.id}() takes at least two arguments", _col(node))
    reduce = np.minimum if node.func.id == "min" else np.maximum

    def minmax(env: Env) -> Arr:
        out = args[0](env)
        for a in args[1:]:
            out = reduce(out, a(env))
        return out

    return minmax


def _num(node: ast.AST, names: list[str]) -> Fn:
    fn, typ = _compile(node, names)
    if typ != "num":
        raise ExprError("a number is needed here, not a condition", _col(node))
    return fn


def _bool(node: ast.AST, names: list[str]) -> Fn:
    fn, typ = _compile(node, names)
    if typ != "bool":
        raise ExprError("a condition is needed here (and/or/not combine comparisons)", _col(node))
    return fn
