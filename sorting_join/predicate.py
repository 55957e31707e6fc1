"""Type-2 predicates: conditions over columns of different joined tables, on shares.

Syntax (parsed with `ast`, never evaluated as Python): qualified columns (orders.amount),
numbers, strings, True/False; + - * / (division by a number only); < <= > >= == !=; in / not in
with a list of literals; and, or, not; parentheses.

Types: numeric columns (integer, decimal, boolean) compare with numbers and each other;
categorical columns with strings of their vocabulary (or a categorical column of the same
vocabulary); keys with keys or integer literals, by equality only. Anything else is refused
before any work. The result is additive 0/1 shares, folded into the join's indicator.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import numpy as np

from mpc.party import Party
from mpc.protocols.arithmetic import fixed_mul, fixed_mul_public, mul
from mpc.protocols.boolean import equal, less_than
from owners.keys import encode_keys
from owners.schema import Column, Schema

U64 = np.uint64


class PredicateError(ValueError):
    """A predicate that does not fit the schema."""


@dataclass(frozen=True)
class Typed:
    """A node's type: 'numeric', 'condition', 'categorical' (with vocabulary), 'key' or a
    literal ('number', 'string')."""

    kind: str
    values: tuple[str, ...] = ()


def column_type(schema: Schema, name: str) -> Column:
    table, _, column = name.partition(".")
    try:
        if column.startswith("_key_"):
            return Column(column, "key")
        return schema.table(table).column(column)
    except (KeyError, ValueError):
        raise PredicateError(f"unknown column {name!r}") from None


def _name(node) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None


class Predicate:
    """A parsed, type-checked predicate over qualified columns."""

    def __init__(self, schema: Schema, text: str):
        self.schema, self.text = schema, text
        try:
            self.tree = ast.parse(text, mode="eval").body
        except SyntaxError as error:
            raise PredicateError(f"{text!r}: {error.msg}") from None
        self.columns: set[str] = set()
        if self._type(self.tree).kind != "condition":
            raise PredicateError(f"{text!r} is not a true/false condition")

    def _fail(self, message: str):
        raise PredicateError(f"{self.text!r}: {message}")

    def _type(self, node) -> Typed:
        name = _name(node)
        if name is not None:
            column = column_type(self.schema, name)
            self.columns.add(name)
            if column.numeric:
                return Typed("numeric")
            return Typed(column.type, column.values)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or isinstance(node.value, (int, float)):
                return Typed("number")
            if isinstance(node.value, str):
                return Typed("string")
        if isinstance(node, ast.BoolOp):
            for value in node.values:
                if self._type(value).kind != "condition":
                    self._fail("and/or need conditions on both sides")
            return Typed("condition")
        if isinstance(node, ast.UnaryOp):
            inner = self._type(node.operand)
            if isinstance(node.op, ast.Not) and inner.kind == "condition":
                return Typed("condition")
            if isinstance(node.op, ast.USub) and inner.kind in ("numeric", "number"):
                return inner
            self._fail("'not' needs a condition and '-' a number")
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult,
                                                                 ast.Div)):
            left, right = self._type(node.left), self._type(node.right)
            if {left.kind, right.kind} - {"numeric", "number"}:
                self._fail("arithmetic needs numeric columns or numbers")
            if isinstance(node.op, ast.Div) and right.kind != "number":
                self._fail("division only by a number")
            return Typed("number" if left.kind == right.kind == "number" else "numeric")
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            left, (op,), (right_node,) = self._type(node.left), node.ops, node.comparators
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(right_node, (ast.List, ast.Tuple)) or not right_node.elts:
                    self._fail("'in' needs a [list] of literals")
                for item in right_node.elts:
                    self._check_comparable(left, self._type(item), ast.Eq())
                return Typed("condition")
            self._check_comparable(left, self._type(right_node), op)
            return Typed("condition")
        self._fail(f"{type(node).__name__} is not allowed here")

    def _check_comparable(self, left: Typed, right: Typed, op) -> None:
        kinds = {left.kind, right.kind}
        ordering = not isinstance(op, (ast.Eq, ast.NotEq))
        if kinds <= {"numeric", "number"} and kinds != {"number"}:
            return
        if "categorical" in kinds and kinds <= {"categorical", "string"} and not ordering:
            vocabularies = {t.values for t in (left, right) if t.kind == "categorical"}
            if len(vocabularies) == 1:
                return
            self._fail("categorical columns with different vocabularies")
        if "key" in kinds and kinds <= {"key", "number"} and not ordering:
            return
        self._fail(f"cannot compare {left.kind} with {right.kind}"
                   + (" by order" if ordering else ""))

    # ---- evaluation on shares --------------------------------------------------------------

    async def evaluate(self, party: Party, columns: dict[str, np.ndarray]) -> np.ndarray:
        return await _Evaluator(party, self.schema, columns).condition(self.tree)


class _Evaluator:
    def __init__(self, party: Party, schema: Schema, columns: dict[str, np.ndarray]):
        self.party, self.schema, self.columns = party, schema, columns
        self.rows = len(next(iter(columns.values()))) if columns else 0

    def _public(self, value: int) -> np.ndarray:
        return self.party.public(np.full(self.rows, value, dtype=np.int64).view(U64))

    def _literal(self, node, like: Typed | None) -> np.ndarray:
        value = node.value
        if isinstance(value, str):
            return self._public(like.values.index(value)) if value in like.values else None
        if like is not None and like.kind == "key":
            return self._public(int(encode_keys([np.array([int(value)])])[0]))
        return self._public(int(self.party.fixed.encode(float(value))))

    def _kind(self, node) -> Typed:
        name = _name(node)
        if name is None:
            return Typed("value")
        column = column_type(self.schema, name)
        return Typed("numeric") if column.numeric else Typed(column.type, column.values)

    async def value(self, node, like: Typed | None = None) -> np.ndarray | None:
        name = _name(node)
        if name is not None:
            return self.columns[name]
        if isinstance(node, ast.Constant):
            return self._literal(node, like)
        if isinstance(node, ast.UnaryOp):
            return U64(0) - await self.value(node.operand, like)
        left_const = isinstance(node.left, ast.Constant)
        right_const = isinstance(node.right, ast.Constant)
        if isinstance(node.op, ast.Div):
            return await fixed_mul_public(self.party, await self.value(node.left),
                                          1.0 / float(node.right.value))
        if isinstance(node.op, ast.Mult) and (left_const or right_const):
            constant, other = (node.left, node.right) if left_const else (node.right, node.left)
            return await fixed_mul_public(self.party, await self.value(other),
                                          float(constant.value))
        left, right = await self.value(node.left), await self.value(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        return await fixed_mul(self.party, left, right)

    async def condition(self, node) -> np.ndarray:
        one = self._public(1)
        if isinstance(node, ast.BoolOp):
            result = await self.condition(node.values[0])
            for value in node.values[1:]:
                other = await self.condition(value)
                both = await mul(self.party, result, other)
                result = both if isinstance(node.op, ast.And) else result + other - both
            return result
        if isinstance(node, ast.UnaryOp):  # not
            return one - await self.condition(node.operand)
        left_node, (op,), (right_node,) = node.left, node.ops, node.comparators
        like = self._kind(left_node) if _name(left_node) else self._kind(right_node)
        left = await self.value(left_node, like)
        if isinstance(op, (ast.In, ast.NotIn)):
            found = self._public(0)
            for item in right_node.elts:
                right = await self.value(item, like)
                if right is not None:
                    found = found + await equal(self.party, left, right)
            return found if isinstance(op, ast.In) else one - found
        right = await self.value(right_node, like)
        if right is None:  # a string outside the vocabulary matches nothing
            return self._public(0) if isinstance(op, ast.Eq) else one
        if left is None:
            return self._public(0) if isinstance(op, ast.Eq) else one
        if isinstance(op, ast.Eq):
            return await equal(self.party, left, right)
        if isinstance(op, ast.NotEq):
            return one - await equal(self.party, left, right)
        if isinstance(op, ast.Lt):
            return await less_than(self.party, left, right)
        if isinstance(op, ast.Gt):
            return await less_than(self.party, right, left)
        if isinstance(op, ast.LtE):
            return one - await less_than(self.party, right, left)
        return one - await less_than(self.party, left, right)  # GtE
