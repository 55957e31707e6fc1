"""A query's FROM clause against the schema: its tables, its columns by name, its join
conditions (which must follow the schema's foreign keys, since the servers join along them
only), and its conditions and expressions in the predicate language of
sorting_join/predicate.py.

What a job spec says is [job] tables (the query's tables; absent when it reads them all) and
[job] where (every condition that is not a join condition). An equality between two columns is
a join condition when the foreign keys among the query's tables imply it; every foreign key
among those tables must in turn be implied by the query's equalities, or the query's join is
not the one the servers would compute.

Also what every SELECT shares (queries, a model's training rows, the rows ML.PREDICT reads):
the clauses it may have, its [job] section, its result columns' names, and what a translation
is (a spec, and the Shape the recipient gives the released result).
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass, field

from sqlglot import exp

from twofold.owners.schema import Schema
from twofold.servers.sql_syntax import date_literal, refuse, unsupported

# SQL's comparisons and arithmetic, in the predicate language
OPERATORS: dict[type, str] = {exp.EQ: "==", exp.NEQ: "!=", exp.GT: ">", exp.GTE: ">=",
                              exp.LT: "<", exp.LTE: "<=", exp.Add: "+", exp.Sub: "-",
                              exp.Mul: "*", exp.Div: "/"}
CLAUSES = ("expressions", "from", "from_", "joins", "where", "group", "order", "limit",
           "offset", "distinct")
CLAUSE_REFUSALS = {
    "having": "HAVING is not supported: the servers cannot filter groups on shares before "
              "the release yet (and filtering after it would show you the groups HAVING drops)",
    "with": "WITH (common table expressions) is not supported",
    "with_": "WITH (common table expressions) is not supported",
    "qualify": "QUALIFY is not supported",
    "windows": "window functions are not supported",
    "laterals": "LATERAL is not supported",
    "pivots": "PIVOT is not supported",
}


@dataclass(frozen=True)
class Item:
    """One column of the query's result: its name, and what it is in the released output
    (a released column's name, such as "customers.region", "count" or "sum(orders.amount)",
    or a statistic such as "var_samp(orders.amount)")."""

    name: str
    source: str
    whole: bool = False  # a count or an integer column: shown as integers


@dataclass(frozen=True)
class Shape:
    """How the recipient turns the released output into the query's table."""

    items: tuple[Item, ...] = ()  # none: the output's own table (models, predictions, metrics)
    order: tuple[tuple[int, bool], ...] = ()  # (item index, descending)
    limit: int | None = None
    offset: int = 0
    one_row: bool = False  # aggregates without GROUP BY: one row, even over no rows
    regroup: tuple[str, ...] | None = None  # COUNT(DISTINCT): the groups to count within


@dataclass(frozen=True)
class Translation:
    spec: dict  # the job spec's sections, as parse_job_spec reads them
    shape: Shape = field(default_factory=Shape)
    job_id: str | None = None  # CREATE MODEL: the model's name is the training job's id


def conjuncts(node: exp.Expr | None) -> list[exp.Expr]:
    """The terms of a top-level AND."""
    if node is None:
        return []
    node = node.unnest()
    if isinstance(node, exp.And):
        return conjuncts(node.this) + conjuncts(node.expression)
    return [node]


def canonical(text: str) -> str:
    """An expression's text as the predicate language reads it, with parentheses only where
    they matter (what the spec shows, and what two equal expressions share)."""
    return _unparse(ast.parse(text, mode="eval").body)


def _unparse(node: ast.expr) -> str:
    """ast.unparse, but and/or chains flat, and their operands in parentheses only when they
    are and/or themselves (ast.unparse puts the third operand of a chain in parentheses)."""
    if isinstance(node, ast.BoolOp):
        values = _chain(node, type(node.op))
        word = " and " if isinstance(node.op, ast.And) else " or "
        return word.join(f"({_unparse(v)})" if isinstance(v, ast.BoolOp) else _unparse(v)
                         for v in values)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _unparse(node.operand)
        return f"not ({inner})" if isinstance(node.operand, ast.BoolOp) else f"not {inner}"
    return ast.unparse(node)


def _chain(node: ast.expr, op: type) -> list[ast.expr]:
    """The operands of an and (or or) chain: (a and b) and c is a and b and c."""
    if isinstance(node, ast.BoolOp) and type(node.op) is op:
        return [v for value in node.values for v in _chain(value, op)]
    return [node]


class UnionFind:
    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        while self.parent.setdefault(item, item) != item:
            item = self.parent[item]
        return item

    def join(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


@dataclass
class Scope:
    """The tables of one SELECT's FROM and JOINs, by the names the query uses for them."""

    schema: Schema
    names: dict[str, str] = field(default_factory=dict)  # alias or table name -> table
    nodes: dict[str, exp.Table] = field(default_factory=dict)  # table -> where it is named

    @classmethod
    def of(cls, schema: Schema, select: exp.Select) -> Scope:
        scope = cls(schema)
        source = select.args.get("from_") or select.args.get("from")
        if source is None:
            refuse(select, "a query needs FROM and a table")
        scope.add(source.this)
        for join in select.args.get("joins") or []:
            side, kind = join.args.get("side"), (join.args.get("kind") or "").upper()
            if side or kind not in ("", "INNER", "CROSS"):
                refuse(join, f"{(side or kind).upper()} JOIN is not supported: the servers "
                             "join matching rows only (inner joins)")
            if join.args.get("using"):
                refuse(join, "JOIN ... USING is not supported: write JOIN ... ON a = b")
            scope.add(join.this)
        return scope

    def add(self, node: exp.Expr) -> None:
        if not isinstance(node, exp.Table) or not isinstance(node.this, exp.Identifier):
            unsupported(node)
        if node.args.get("db") or node.args.get("catalog"):
            refuse(node, f"{node.sql()}: name tables without a dataset or schema")
        for key, value in node.args.items():
            if value and key not in ("this", "alias"):
                refuse(node, f"{key.upper()} is not supported")
        name = node.name
        if name not in self.schema.tables:
            close = difflib.get_close_matches(name, list(self.schema.tables), n=1)
            refuse(node, f"unknown table {name!r}"
                         + (f" (did you mean {close[0]!r}?)" if close else "")
                         + f"; the tables are {', '.join(self.schema.tables)}")
        if name in self.nodes:
            refuse(node, f"table {name} is named twice: the servers join each table once")
        self.names[node.alias or name] = name
        self.nodes[name] = node

    @property
    def tables(self) -> list[str]:
        """The query's tables in the schema's order (that of a TOML spec's default)."""
        return [name for name in self.schema.tables if name in self.nodes]

    # ---- columns -------------------------------------------------------------------------

    def columns_of(self, table: str) -> list[str]:
        return self.schema.table(table).column_names

    def whole(self, column: str) -> bool:
        """Whether a qualified column holds integers (released in fixed point)."""
        table, _, name = column.partition(".")
        return self.schema.table(table).column(name).type == "integer"

    def table(self, node: exp.Column) -> str:
        """The table a qualifier (an alias or a name) stands for."""
        if node.table not in self.names:
            refuse(node, f"{node.table!r} is not a table of this query (its tables: "
                         f"{', '.join(self.names)})")
        return self.names[node.table]

    def column(self, node: exp.Column) -> str:
        """The qualified name (table.column) of a column the query names."""
        if node.args.get("db") or node.args.get("catalog"):
            refuse(node, f"{node.sql()}: name columns as table.column or column")
        name, qualifier = node.name, node.table
        if qualifier:
            tables = [self.table(node)]
        else:
            tables = list(self.nodes)
        found = [t for t in tables if name in self.columns_of(t)]
        if not found:  # SQL's names are case-insensitive where they are unique
            found = [t for t in tables if name.lower() in map(str.lower, self.columns_of(t))]
            name = next((c for t in found for c in self.columns_of(t)
                         if c.lower() == name.lower()), name)
        if len(found) > 1:
            refuse(node, f"column {name!r} is in {' and '.join(found)}: name it as "
                         f"{found[0]}.{name}")
        if not found:
            known = [f"{t}.{c}" for t in tables for c in self.columns_of(t)]
            spelled = f"{qualifier}.{name}" if qualifier else name
            close = difflib.get_close_matches(
                f"{self.names[qualifier]}.{name}" if qualifier else name,
                known + [k.split(".")[1] for k in known], n=1, cutoff=0.5)
            refuse(node, f"unknown column {spelled!r}"
                         + (f" (did you mean {close[0]!r}?)" if close else ""))
        return f"{found[0]}.{name}"

    # ---- expressions ---------------------------------------------------------------------

    def expression(self, node: exp.Expr) -> str:
        """The node in the predicate language (canonical text)."""
        return canonical(self._text(node))

    def _text(self, node: exp.Expr) -> str:
        match node:
            case exp.Paren():
                return self._text(node.this)
            case exp.Column():
                return self.column(node)
            case exp.Cast() if date_literal(node) is not None:
                return str(date_literal(node))
            case exp.Literal(is_string=True):
                return repr(node.this)
            case exp.Literal():
                return node.this
            case exp.Boolean():
                return "True" if node.this else "False"
            case exp.Neg():
                return f"(-{self._text(node.this)})"
            case exp.Not():
                return f"(not {self._text(node.this)})"
            case exp.And() | exp.Or():
                word = "and" if isinstance(node, exp.And) else "or"
                return f"({self._text(node.this)} {word} {self._text(node.expression)})"
            case exp.Between():
                if node.args.get("symmetric"):
                    refuse(node, "BETWEEN SYMMETRIC is not supported")
                value = self._text(node.this)
                return (f"({value} >= {self._text(node.args['low'])} and "
                        f"{value} <= {self._text(node.args['high'])})")
            case exp.In():
                if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
                    refuse(node, "IN needs a list of values; subqueries are not supported")
                values = ", ".join(self._text(value) for value in node.expressions)
                return f"({self._text(node.this)} in [{values}])"
        symbol = OPERATORS.get(type(node))
        if symbol is None:
            unsupported(node)
        return f"({self._text(node.this)} {symbol} {self._text(node.expression)})"

    # ---- joins ---------------------------------------------------------------------------

    def foreign_keys(self) -> list[tuple[str, str]]:
        """Every (child column, parent column) pair of the foreign keys among the tables."""
        pairs = []
        for table in self.tables:
            for key in self.schema.table(table).foreign_keys:
                if key.references in self.nodes:
                    parent = self.schema.table(key.references).primary_key
                    pairs += [(f"{table}.{c}", f"{key.references}.{p}")
                              for c, p in zip(key.columns, parent, strict=True)]
        return pairs

    def declared(self) -> str:
        """The schema's foreign keys, for a message."""
        keys = [f"{t}({', '.join(k.columns)}) -> {k.references}"
                f"({', '.join(self.schema.table(k.references).primary_key)})"
                for t in self.schema.tables for k in self.schema.table(t).foreign_keys]
        return "; ".join(keys) or "none"

    def where(self, select: exp.Select) -> str | None:
        """Check the join conditions against the foreign keys; the rest of the conditions
        (WHERE's, less its join conditions), as one predicate, or None."""
        implied = UnionFind()
        for child, parent in self.foreign_keys():
            implied.join(child, parent)
        stated, rest = UnionFind(), []
        for join in select.args.get("joins") or []:
            for term in conjuncts(join.args.get("on")):
                pair = self._equality(term)
                if pair is None or implied.find(pair[0]) != implied.find(pair[1]):
                    refuse(term, f"{term.sql(dialect='bigquery')} is not a join along a declared"
                                 f" foreign key; the schema's foreign keys: {self.declared()}")
                stated.join(*pair)
        condition = select.args.get("where")
        for term in conjuncts(condition.this if condition else None):
            pair = self._equality(term)
            if pair is not None and implied.find(pair[0]) == implied.find(pair[1]):
                stated.join(*pair)
            else:
                rest.append(self._text(term))
        for child, parent in self.foreign_keys():
            if stated.find(child) != stated.find(parent):
                table = parent.split(".")[0]
                refuse(self.nodes[table], f"{child.split('.')[0]} and {table} join along the "
                                          f"foreign key {child} = {parent}: add it to ON")
        return canonical(" and ".join(rest)) if rest else None

    def _equality(self, node: exp.Expr) -> tuple[str, str] | None:
        """(a, b) for a condition a = b between two columns of different tables."""
        node = node.unnest()
        if isinstance(node, exp.EQ) and isinstance(node.this, exp.Column) and isinstance(
                node.expression, exp.Column):
            a, b = self.column(node.this), self.column(node.expression)
            if a.split(".")[0] != b.split(".")[0]:
                return a, b
        return None


def check_clauses(select: exp.Select, allowed=CLAUSES) -> None:
    for key, value in select.args.items():
        if value and key not in allowed:
            if key in CLAUSE_REFUSALS:
                refuse(value if isinstance(value, exp.Expr) else select,
                       CLAUSE_REFUSALS[key])
            refuse(value if isinstance(value, exp.Expr) else select,
                   f"{key.upper()} is not supported")


def job_section(scope: Scope, select: exp.Select, job: dict) -> dict:
    """[job]: recipients, options, the tables (absent: all of them) and the where."""
    job = dict(job)
    if len(scope.tables) < len(scope.schema.tables):
        job["tables"] = scope.tables
    where = scope.where(select)
    if where is not None:
        job["where"] = where
    return job


def output_name(node: exp.Expr) -> str:
    """A result column's name: its alias, a column's own name, or the expression's text."""
    if isinstance(node, exp.Alias):
        return node.alias
    if isinstance(node, exp.Column):
        return node.name
    return node.sql(dialect="bigquery")

