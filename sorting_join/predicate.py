"""Expressions over the columns of joined tables, on shares: type-2 predicates (`where`), and
the features and labels of training and prediction jobs.

Syntax (parsed with `ast`, never evaluated as Python): qualified columns (orders.amount),
numbers, strings, True/False; + - * / (division by a number only); < <= > >= == !=; in / not in
with a list of literals; and, or, not; parentheses. A condition evaluates to 0/1; as a feature
or a label it is the number 0 or 1.

Types: numeric columns (integer, decimal, boolean) compare with numbers and each other;
categorical columns with strings of their vocabulary (or a categorical column of the same
vocabulary); keys with keys or integer literals, by equality only. Anything else is refused
before any work. A predicate's result is additive 0/1 shares, folded into the join's
indicator; a feature's is fixed point.

Ranges are checked before any work too, from the columns' declared ranges: every value the
predicate computes stays inside the fixed-point range, every product of two columns inside
what a truncation accepts, and every constant factor (a division is a product by 1/c) keeps its
precision (mpc.ring.public_factor); a division by zero is refused. Expressions of numbers alone
are folded into one constant when parsed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import NoReturn, TypeVar

import numpy as np

from twofold.mpc.errors import TwofoldError
from twofold.mpc.party import Party
from twofold.mpc.protocols.arithmetic import fixed_mul, fixed_mul_public, mul
from twofold.mpc.protocols.boolean import equal, less_than
from twofold.mpc.ring import U64, PrecisionError, public_factor, truncated_range
from twofold.mpc.shares import Additive
from twofold.owners.keys import encode_keys
from twofold.owners.schema import Column, Schema, exact

Number = TypeVar("Number", int, float)


class PredicateError(TwofoldError, ValueError):
    """A predicate that does not fit the schema."""


@dataclass(frozen=True)
class Typed:
    """A node's type: 'numeric', 'condition', 'categorical' (with vocabulary), 'key' or a
    literal ('number', 'string'); numeric and number nodes carry their range [low, high]."""

    kind: str
    values: tuple[str, ...] = ()
    low: float = 0.0
    high: float = 0.0

    @property
    def largest(self) -> float:
        return max(abs(self.low), abs(self.high))


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


def _interval(values: list[Number]) -> tuple[Number, Number]:
    return min(values), max(values)


class Expression:
    """A parsed, type- and range-checked expression over qualified columns. With `condition`,
    it must be a true/false condition; otherwise a condition or a numeric value (its range,
    from the columns' declared ranges, is `low`..`high`)."""

    def __init__(self, schema: Schema, text: str, *, condition: bool = True):
        self.schema, self.text = schema, text
        self.fixed = schema.fixed
        try:
            self.tree = ast.parse(text, mode="eval").body
        except SyntaxError as error:
            raise PredicateError(f"{text!r}: {error.msg}") from None
        self.columns: set[str] = set()
        self.constants: dict[int, float] = {}  # id(node) -> value of every number expression
        self.bounds: dict[int, float] = {}  # id(node) -> largest |value| of numeric nodes
        typed = self._type(self.tree)
        if condition and typed.kind != "condition":
            raise PredicateError(f"{text!r} is not a true/false condition")
        if typed.kind == "categorical":
            raise PredicateError(f"{text!r} is categorical: as features use onehot({text}), "
                                 f"one 0/1 feature per value; as a label a condition such as "
                                 f"{text} == {typed.values[0]!r}")
        if typed.kind not in ("condition", "numeric"):
            raise PredicateError(f"{text!r} is not a number or a condition over columns")
        self.kind = typed.kind
        self.low, self.high = (0.0, 1.0) if typed.kind == "condition" else (typed.low,
                                                                             typed.high)

    def _fail(self, message: str) -> NoReturn:
        raise PredicateError(f"{self.text!r}: {message}")

    def _type(self, node) -> Typed:
        typed = self._type_of(node)
        if typed.kind in ("numeric", "number"):
            if typed.largest >= self.fixed.max_abs:
                self._fail(f"{ast.unparse(node)} can reach {exact(typed.largest)}, outside the "
                           f"fixed-point range +-2^{62 - self.fixed.frac_bits} at "
                           f"{self.fixed.frac_bits} fractional bits")
            self.bounds[id(node)] = typed.largest
            if typed.kind == "number":
                self.constants[id(node)] = typed.low
        return typed

    def _type_of(self, node) -> Typed:
        name = _name(node)
        if name is not None:
            column = column_type(self.schema, name)
            self.columns.add(name)
            if column.numeric:
                low, high = column.declared_range
                return Typed("numeric", low=low, high=high)
            return Typed(column.type, column.values)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or isinstance(node.value, (int, float)):
                return Typed("number", low=float(node.value), high=float(node.value))
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
                return Typed(inner.kind, low=-inner.high, high=-inner.low)
            self._fail("'not' needs a condition and '-' a number")
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult,
                                                                 ast.Div)):
            return self._arithmetic(node, self._type(node.left), self._type(node.right))
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            left, (op,), (right_node,) = self._type(node.left), node.ops, node.comparators
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(right_node, (ast.List, ast.Tuple)) or not right_node.elts:
                    self._fail("'in' needs a [list] of literals")
                for item in right_node.elts:
                    literal = self._type(item)
                    if literal.kind not in ("number", "string"):
                        self._fail("'in' needs a [list] of literals")
                    self._check_comparable(left, literal, ast.Eq())
                return Typed("condition")
            self._check_comparable(left, self._type(right_node), op)
            return Typed("condition")
        self._fail(f"{type(node).__name__} is not allowed here")

    def _arithmetic(self, node, left: Typed, right: Typed) -> Typed:
        if {left.kind, right.kind} - {"numeric", "number"}:
            self._fail("arithmetic needs numeric columns or numbers")
        kind = "number" if left.kind == right.kind == "number" else "numeric"
        if isinstance(node.op, ast.Add):
            return Typed(kind, low=left.low + right.low, high=left.high + right.high)
        if isinstance(node.op, ast.Sub):
            return Typed(kind, low=left.low - right.high, high=left.high - right.low)
        if isinstance(node.op, ast.Div):
            if right.kind != "number":
                self._fail("division only by a number")
            if right.low == 0:
                self._fail(f"division by zero in {ast.unparse(node)}")
            return self._scaled(node, left, 1.0 / right.low, kind)
        if kind == "numeric" and "number" in (left.kind, right.kind):
            constant, other = (left, right) if left.kind == "number" else (right, left)
            return self._scaled(node, other, constant.low, kind)
        low, high = _interval([a * b for a in (left.low, left.high)
                               for b in (right.low, right.high)])
        product = Typed(kind, low=low, high=high)
        if kind == "numeric" and product.largest >= self.fixed.max_product:
            self._fail(f"{ast.unparse(node)} can reach {exact(product.largest)}; a product of "
                       f"two columns must stay below 2^{62 - 2 * self.fixed.frac_bits} at "
                       f"{self.fixed.frac_bits} fractional bits")
        return product

    def _scaled(self, node, operand: Typed, factor: float, kind: str) -> Typed:
        """operand * factor, for a public factor: it must keep its precision."""
        if kind == "numeric":
            try:
                public_factor(factor, operand.largest * self.fixed.scale)
            except PrecisionError as error:
                self._fail(f"{ast.unparse(node)}: {error}")
        low, high = _interval([operand.low * factor, operand.high * factor])
        return Typed(kind, low=low, high=high)

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
            literal = left if left.kind == "number" else right
            if literal.kind == "number" and literal.low != int(literal.low):
                self._fail(f"key literal {exact(literal.low)} is not an integer")
            return
        self._fail(f"cannot compare {left.kind} with {right.kind}"
                   + (" by order" if ordering else ""))

    # ---- the range of the values computed on shares ----------------------------------------

    def stored_range(self) -> tuple[int, int]:
        """The range of evaluate_fixed's values in units of the last bit, as computed on shares
        (differential privacy's sensitivities need it): columns within the encodings of their
        declared ranges, numbers encoded, and every truncation (a product, a public factor)
        the floor of the exact value or one unit above."""
        if self.kind == "condition":
            return 0, int(self.fixed.scale)
        return self._stored(self.tree)

    def _stored(self, node) -> tuple[int, int]:
        """Interval arithmetic on integers, following _Evaluator.value node by node."""
        def encoded(value: float) -> int:
            return int(self.fixed.encode(value).view(np.int64))

        name = _name(node)
        if name is not None:
            low, high = column_type(self.schema, name).declared_range
            return encoded(low), encoded(high)
        if id(node) in self.constants:
            return encoded(self.constants[id(node)]), encoded(self.constants[id(node)])
        if isinstance(node, ast.UnaryOp):
            low_code, high_code = self._stored(node.operand)
            return -high_code, -low_code
        if isinstance(node.op, ast.Div):
            return self._stored_scaled(node.left, 1.0 / self.constants[id(node.right)])
        if isinstance(node.op, ast.Mult) and (id(node.left) in self.constants
                                              or id(node.right) in self.constants):
            constant, other = ((node.left, node.right) if id(node.left) in self.constants
                               else (node.right, node.left))
            return self._stored_scaled(other, self.constants[id(constant)])
        left, right = self._stored(node.left), self._stored(node.right)
        if isinstance(node.op, ast.Add):
            return left[0] + right[0], left[1] + right[1]
        if isinstance(node.op, ast.Sub):
            return left[0] - right[1], left[1] - right[0]
        return truncated_range(*_interval([a * b for a in left for b in right]),
                               self.fixed.frac_bits)

    def _stored_scaled(self, node, factor: float) -> tuple[int, int]:
        """fixed_mul_public: times the public factor's integer, truncated by its shift."""
        integer, shift = public_factor(factor, self.bounds[id(node)] * self.fixed.scale)
        low, high = self._stored(node)
        return truncated_range(*_interval([low * integer, high * integer]), shift)

    # ---- evaluation on shares --------------------------------------------------------------

    async def evaluate(self, party: Party, columns: dict[str, Additive]) -> Additive:
        """A condition's 0/1 shares, or a numeric expression's fixed-point shares."""
        evaluator = _Evaluator(party, self, columns)
        if self.kind == "condition":
            return await evaluator.condition(self.tree)
        return await evaluator.value(self.tree)

    async def evaluate_fixed(self, party: Party, columns: dict[str, Additive]) -> Additive:
        """The value in fixed point: a condition's 0/1 times 2^f (local)."""
        values = await self.evaluate(party, columns)
        if self.kind == "condition":
            return Additive(values * U64(int(party.fixed.encode(1.0))))
        return values


class _Evaluator:
    def __init__(self, party: Party, predicate: Expression, columns: dict[str, Additive]):
        self.party, self.predicate, self.columns = party, predicate, columns
        self.schema = predicate.schema
        self.rows = len(next(iter(columns.values()))) if columns else 0

    def _public(self, value: int) -> Additive:
        return self.party.public(np.full(self.rows, value, dtype=np.int64).view(U64))

    def _code(self, node, like: Typed | None) -> int | None:
        """The ring code of a literal (a string, or a number expression folded at parsing):
        None for a string outside the vocabulary, which matches nothing."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            vocabulary = like.values if like is not None else ()
            return vocabulary.index(node.value) if node.value in vocabulary else None
        return self._number_code(node, like)

    def _number_code(self, node, like: Typed | None) -> int:
        number = self.predicate.constants[id(node)]
        if like is not None and like.kind == "key":
            return int(encode_keys([np.array([int(number)])])[0])
        return int(self.party.fixed.encode(number).view(np.int64))

    def _kind(self, node) -> Typed:
        name = _name(node)
        if name is None:
            return Typed("value")
        column = column_type(self.schema, name)
        return Typed("numeric") if column.numeric else Typed(column.type, column.values)

    async def operand(self, node, like: Typed) -> Additive | None:
        """A comparison's side: None for a string outside the vocabulary, which matches
        nothing."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            code = self._code(node, like)
            return None if code is None else self._public(code)
        return await self.value(node, like)

    async def value(self, node, like: Typed | None = None) -> Additive:
        """A numeric node's shares (a number as the code of `like`'s column)."""
        name = _name(node)
        if name is not None:
            return self.columns[name]
        if isinstance(node, ast.Constant) or id(node) in self.predicate.constants:
            return self._public(self._number_code(node, like))
        if isinstance(node, ast.UnaryOp):
            return Additive(U64(0) - await self.value(node.operand, like))
        constants = self.predicate.constants
        if isinstance(node.op, ast.Div):
            return await self._scaled(node.left, 1.0 / constants[id(node.right)])
        if isinstance(node.op, ast.Mult) and (id(node.left) in constants
                                              or id(node.right) in constants):
            constant, other = ((node.left, node.right) if id(node.left) in constants
                               else (node.right, node.left))
            return await self._scaled(other, constants[id(constant)])
        left, right = await self.value(node.left), await self.value(node.right)
        if isinstance(node.op, ast.Add):
            return Additive(left + right)
        if isinstance(node.op, ast.Sub):
            return Additive(left - right)
        return await fixed_mul(self.party, left, right)

    async def _scaled(self, node, factor: float) -> Additive:
        return await fixed_mul_public(self.party, await self.value(node), factor,
                                      self.predicate.bounds[id(node)])

    async def condition(self, node) -> Additive:
        one = self._public(1)
        if isinstance(node, ast.BoolOp):
            result = await self.condition(node.values[0])
            for value in node.values[1:]:
                other = await self.condition(value)
                both = await mul(self.party, result, other)
                result = both if isinstance(node.op, ast.And) else Additive(
                    result + other - both)
            return result
        if isinstance(node, ast.UnaryOp):  # not
            return Additive(one - await self.condition(node.operand))
        left_node, (op,), (right_node,) = node.left, node.ops, node.comparators
        like = self._kind(left_node) if _name(left_node) else self._kind(right_node)
        if isinstance(op, (ast.In, ast.NotIn)):  # a value (never a literal) in [literals]
            values = await self.value(left_node, like)
            # each distinct value once: ['north', 'north'] must not count a row twice
            codes = {self._code(item, like) for item in right_node.elts}
            found = self._public(0)
            for code in sorted(code for code in codes if code is not None):
                found = Additive(found + await equal(self.party, values, self._public(code)))
            return found if isinstance(op, ast.In) else Additive(one - found)
        left = await self.operand(left_node, like)
        right = await self.operand(right_node, like)
        if right is None:  # a string outside the vocabulary matches nothing
            return self._public(0) if isinstance(op, ast.Eq) else one
        if left is None:
            return self._public(0) if isinstance(op, ast.Eq) else one
        if isinstance(op, ast.Eq):
            return await equal(self.party, left, right)
        if isinstance(op, ast.NotEq):
            return Additive(one - await equal(self.party, left, right))
        if isinstance(op, ast.Lt):
            return await less_than(self.party, left, right)
        if isinstance(op, ast.Gt):
            return await less_than(self.party, right, left)
        if isinstance(op, ast.LtE):
            return Additive(one - await less_than(self.party, right, left))
        return Additive(one - await less_than(self.party, left, right))  # GtE
