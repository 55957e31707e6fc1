"""Reading an analyst's SQL: sqlglot's BigQuery dialect (BigQuery ML's CREATE MODEL and
ML.PREDICT come with it; ML.EVALUATE is added below), job options from leading comments, and
refusals that name the construct and where it is (line and column of the query text).

Job options are TOML lines in comments before the query, so the query text itself still runs
as it is in DuckDB or BigQuery:

    -- twofold: recipients = ["carol", "dave"]
    -- twofold: noise = { epsilon = 1.0, delta = 1e-6, tau = 3 }
    SELECT COUNT(*) FROM orders
"""

from __future__ import annotations

import datetime
import re
import tomllib
from typing import NoReturn

import sqlglot
from sqlglot import exp
from sqlglot.dialects.bigquery import BigQuery
from sqlglot.errors import ParseError, TokenError
from sqlglot.parsers.bigquery import BigQueryParser

from twofold.mpc.errors import TwofoldError

OPTION_LINE = re.compile(r"\s*--\s*twofold:(.*)")
OPTIONS = ("recipients", "noise", "nulls", "impute")  # [job] keys, and the section's noise
DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")


class SqlError(TwofoldError, ValueError):
    """SQL that Twofold cannot run; the message names the construct and its line and column."""


class Evaluate(exp.Predict):
    """ML.EVALUATE(MODEL m, (SELECT ...)), parsed like ML.PREDICT."""


class Dialect(BigQuery):
    """BigQuery's SQL, with ML.EVALUATE (sqlglot parses ML.PREDICT only)."""

    class Parser(BigQueryParser):
        FUNCTION_PARSERS = {**BigQueryParser.FUNCTION_PARSERS,
                            "EVALUATE": lambda self: self._parse_ml(Evaluate)}


def parse(text: str) -> exp.Expr:
    """One SQL statement, or SqlError with the position of the first syntax error."""
    try:
        statements = [s for s in sqlglot.parse(text, read=Dialect) if s is not None]
    except ParseError as error:
        first = error.errors[0] if error.errors else {}
        where = (f"line {first['line']}, column {first['col']}: " if first.get("line")
                 else "")
        raise SqlError(f"{where}{first.get('description') or error}") from None
    except TokenError as error:
        raise SqlError(f"not SQL: {error}") from None
    if len(statements) != 1:
        raise SqlError(f"one SQL statement at a time, not {len(statements)}")
    return statements[0]


def position_key(node: exp.Expr) -> tuple[int, int, int]:
    """(offset, line, column) of the node's first token: sqlglot records where identifiers,
    literals and function names were; a node without any is at its statement's start."""
    spots = [(n.meta["start"], n.meta["line"], n.meta["col"] - (n.meta["end"] - n.meta["start"]))
             for n in node.walk() if "line" in n.meta]
    if not spots and node.parent is not None:
        return position_key(node.parent)
    return min(spots, default=(0, 1, 1))


def position(node: exp.Expr) -> str:
    _, line, column = position_key(node)
    return f"line {line}, column {column}"


def refuse(node: exp.Expr, message: str) -> NoReturn:
    raise SqlError(f"{position(node)}: {message}")


# constructs outside the subset, by sqlglot's node type: what the refusal says
UNSUPPORTED = {
    exp.Window: "window functions are not supported",
    exp.Case: "CASE expressions are not supported",
    exp.If: "IF expressions are not supported",
    exp.Like: "LIKE is not supported (compare with = or IN)",
    exp.ILike: "ILIKE is not supported (compare with = or IN)",
    exp.Is: "IS [NOT] NULL is not supported: a job drops rows with missing cells, or imputes "
            "them (-- twofold: nulls = \"impute\")",
    exp.Subquery: "subqueries are not supported",
    exp.Exists: "EXISTS is not supported",
    exp.Cast: "CAST is not supported",
    exp.Mod: "the % operator is not supported",
    exp.Interval: "INTERVAL is not supported",
    exp.Coalesce: "COALESCE is not supported: a job drops rows with missing cells, or imputes "
                  "them (-- twofold: nulls = \"impute\")",
    exp.DPipe: "string concatenation is not supported",
    exp.Union: "UNION is not supported",
    exp.Intersect: "INTERSECT is not supported",
    exp.Except: "EXCEPT is not supported",
}


# sqlglot's Func nodes that the subset has: aggregates, ML.PREDICT/EVALUATE, AND and OR
ALLOWED_FUNCTIONS = (exp.AggFunc, exp.Predict, exp.Connector)


def unsupported(node: exp.Expr) -> NoReturn:
    """Refuse a construct outside the subset, by name."""
    for kind, message in UNSUPPORTED.items():
        if isinstance(node, kind):
            refuse(node, message)
    if isinstance(node, exp.Func):
        name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
        refuse(node, f"the function {name.upper()} is not supported here")
    if isinstance(node, (exp.DataType, exp.TimeUnit)) or "DATE" in node.key.upper():
        refuse(node, "date functions and arithmetic are not supported: dates are stored as "
                     "yyyymmdd integers, compared with DATE 'yyyy-mm-dd'")
    refuse(node, f"{node.key.upper()} is not supported")


def date_literal(node: exp.Expr) -> int | None:
    """DATE 'yyyy-mm-dd' (CAST('yyyy-mm-dd' AS DATE)) as the yyyymmdd integer a schema stores
    a date as (TPC-H's dates: bench/tpch.py), whose order is the dates' order; None for any
    other node."""
    if not (isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.DATE
            and isinstance(node.this, exp.Literal) and node.this.is_string):
        return None
    text = node.this.this
    try:
        if not DATE_TEXT.fullmatch(text):
            raise ValueError(text)
        day = datetime.date.fromisoformat(text)
    except ValueError:
        refuse(node, f"DATE {text!r} is not a date: write DATE 'yyyy-mm-dd'")
    return day.year * 10000 + day.month * 100 + day.day


def check_constructs(statement: exp.Expr) -> None:
    """Refuse the first construct outside the subset, wherever it is (a subquery is refused
    where it stands, since ML.PREDICT takes one)."""
    found = [node for node in statement.walk()
             if not node.find_ancestor(exp.Properties) and not isinstance(node, exp.Subquery)
             and date_literal(node) is None
             and (isinstance(node, tuple(UNSUPPORTED)) or (
                 isinstance(node, exp.Func) and not isinstance(node, ALLOWED_FUNCTIONS)))]
    if found:
        unsupported(min(found, key=lambda node: position_key(node)))


def options(text: str) -> dict:
    """The job options of the comment lines before the query (`-- twofold: key = value`)."""
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        match = OPTION_LINE.match(line)
        if match is None and line.strip() and not line.strip().startswith("--"):
            break
        if match is not None:
            lines.append((number, match.group(1)))
    try:
        found = tomllib.loads("\n".join(value for _, value in lines))
    except tomllib.TOMLDecodeError as error:
        raise SqlError(f"-- twofold: options are TOML, key = value: {error}") from None
    for key in found:
        if key not in OPTIONS:
            number = next(n for n, value in lines if key in value)
            raise SqlError(f"line {number}: unknown option {key!r}; the options are "
                           f"{', '.join(OPTIONS)}")
    return found
