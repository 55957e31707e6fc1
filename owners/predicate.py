"""--where: a type-1 predicate over one table's columns, applied by the owner before upload.

The expression uses Python syntax but is never evaluated as Python: it is parsed with `ast`
and only these forms are allowed: column names, numbers, strings, True/False, comparisons
(<, <=, >, >=, ==, !=, in, not in with a list), + - * /, and, or, not, parentheses.
Example: age >= 18 and region in ["north", "east"]
"""

from __future__ import annotations

import ast
import operator

import numpy as np

from twofold.mpc.errors import TwofoldError

COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
           ast.Eq: operator.eq, ast.NotEq: operator.ne}
ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
              ast.Div: operator.truediv}


class PredicateError(TwofoldError, ValueError):
    """An expression that is not a valid predicate over the table."""


def evaluate(expression: str, columns: dict[str, np.ndarray], rows: int) -> np.ndarray:
    """Boolean mask of the rows that satisfy the expression."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as error:
        raise PredicateError(f"--where {expression!r}: {error.msg}") from None
    mask = _eval(tree.body, columns, expression)
    mask = np.broadcast_to(np.asarray(mask), (rows,))
    if mask.dtype != bool:
        raise PredicateError(f"--where {expression!r}: not a true/false condition")
    return mask


def _eval(node, columns, expression):
    if isinstance(node, ast.BoolOp):
        values = [_eval(v, columns, expression) for v in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        result = values[0]
        for value in values[1:]:
            result = combine(result, value)
        return result
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return np.logical_not(_eval(node.operand, columns, expression))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand, columns, expression)
    if isinstance(node, ast.Compare):
        left, result = _eval(node.left, columns, expression), True
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(right_node, (ast.List, ast.Tuple)):
                    raise PredicateError(f"--where {expression!r}: 'in' needs a [list]")
                options = [_eval(item, columns, expression) for item in right_node.elts]
                found = np.isin(left, np.array(options, dtype=object))
                value = found if isinstance(op, ast.In) else ~found
                right = None
            elif type(op) in COMPARE:
                right = _eval(right_node, columns, expression)
                value = COMPARE[type(op)](left, right)
            else:
                raise PredicateError(f"--where {expression!r}: comparison not allowed")
            result = np.logical_and(result, value)
            left = right
        return result
    if isinstance(node, ast.BinOp) and type(node.op) in ARITHMETIC:
        return ARITHMETIC[type(node.op)](_eval(node.left, columns, expression),
                                         _eval(node.right, columns, expression))
    if isinstance(node, ast.Name):
        if node.id not in columns:
            raise PredicateError(f"--where {expression!r}: unknown column {node.id!r}")
        return columns[node.id]
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
        return node.value
    raise PredicateError(f"--where {expression!r}: {type(node).__name__} is not allowed")
