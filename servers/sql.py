"""Analysts' SQL, translated into the job specs of servers/jobspec.py (docs/sql.md).

The translation is a job spec's sections as a dict (its TOML text is what the servers receive,
so every check, the owners' rules, the release step and `job explain` see exactly what they
see for a TOML spec) and a Shape: how the recipient turns the released result into the
query's table (column names and order, ORDER BY, LIMIT, sample variances, distinct counts),
client side, after the release. Nothing here reaches a server but the spec.

    SELECT columns FROM ... [WHERE ...]               rows job ([output])
    SELECT DISTINCT columns FROM ...                  group-by without aggregates
    SELECT g, COUNT(*), SUM(c), AVG(c), MIN(c), MAX(c) FROM ... GROUP BY g    [aggregate]
    SELECT COUNT(*), AVG(c), VARIANCE(c), STDDEV(c) FROM ...                  [statistics]
    CREATE MODEL / ML.PREDICT / ML.EVALUATE           servers/sql_models.py

COUNT(DISTINCT c) groups by c as well (the recipient receives one row per value of c within
each group and counts them); HAVING is refused: the servers cannot yet filter released groups
on shares, and filtering them after the release would show the recipient the groups HAVING
drops.
"""

from __future__ import annotations

import re

import tomli_w
from sqlglot import exp

from twofold.owners.schema import Schema
from twofold.servers.jobspec import JobSpecError, parse_job_spec
from twofold.servers.sql_models import ModelLookup, create_model, model_function
from twofold.servers.sql_scope import (
    Item,
    Scope,
    Shape,
    Translation,
    check_clauses,
    job_section,
    output_name,
)
from twofold.servers.sql_syntax import (
    SqlError,
    check_constructs,
    options,
    parse,
    refuse,
    unsupported,
)

# SQL's aggregate functions, as what the recipient reads from the released result
AGGREGATES: dict[type, str] = {
    exp.Sum: "sum", exp.Avg: "mean", exp.Min: "min", exp.Max: "max", exp.Variance: "var_samp",
    exp.VariancePop: "var_pop", exp.Stddev: "std_samp", exp.StddevSamp: "std_samp",
    exp.StddevPop: "std_pop"}
MOMENTS = ("var_samp", "var_pop", "std_samp", "std_pop")
SPEC_LINE = re.compile(r"^(line \d+|the spec): ")  # where a spec's refusal points in its TOML

def translate(text: str, schema: Schema, me: str,
              model_lookup: ModelLookup | None = None) -> Translation:
    """The job of one SQL statement. me: the submitter, the default recipient; model_lookup:
    a model's description, for ML.PREDICT and ML.EVALUATE (their features are the model's)."""
    chosen = options(text)
    statement = parse(text)
    check_constructs(statement)
    job = {"recipients": chosen.get("recipients", [me])}
    job.update({key: chosen[key] for key in ("nulls", "impute") if key in chosen})
    noise = {"noise": chosen["noise"]} if "noise" in chosen else {}
    if isinstance(statement, exp.Create):
        if noise:
            raise SqlError("noise: a model's privacy goes in OPTIONS (privacy_level = 5, "
                           "epsilon, delta, tau)")
        return checked(create_model(statement, schema, job), schema)
    if not isinstance(statement, exp.Select):
        unsupported(statement)
    source = statement.args.get("from_") or statement.args.get("from")
    if source is not None and isinstance(source.this, exp.Table) and isinstance(
            source.this.this, exp.Predict):
        if model_lookup is None:
            raise SqlError("ML.PREDICT and ML.EVALUATE need the model's description")
        return checked(model_function(statement, source.this.this, schema, job, noise,
                                      model_lookup), schema)
    return checked(query(statement, schema, job, noise), schema)


def checked(translation: Translation, schema: Schema) -> Translation:
    """The servers' checks of the spec against the schema, run here first, so that a refusal
    (a sum of a categorical column, a range that overflows) speaks of the query, not of a
    line of a spec its analyst never wrote. The servers check it again, and also the
    recipients, the owners' rules and the budgets."""
    recipients = translation.spec["job"]["recipients"]
    named = {r for r in recipients if isinstance(r, str)} if isinstance(recipients, list) else set()
    try:
        parse_job_spec(tomli_w.dumps(translation.spec), schema, named)
    except JobSpecError as error:
        raise SqlError(SPEC_LINE.sub("", str(error))) from None
    return translation


def query(select: exp.Select, schema: Schema, job: dict, noise: dict) -> Translation:
    check_clauses(select)
    scope = Scope.of(schema, select)
    job = job_section(scope, select, job)
    nodes = list(select.expressions)
    grouped = select.args.get("group")
    aggregated = any(node.find(exp.AggFunc) for node in nodes)
    if aggregated or grouped:
        if select.args.get("distinct"):
            refuse(select.args["distinct"], "SELECT DISTINCT with aggregates is not supported")
        spec, items, regroup = _aggregates(scope, select, nodes, noise)
    else:
        if noise:
            raise SqlError("noise applies to aggregates and statistics, not to rows")
        spec, items = _rows(scope, select, nodes)
        regroup = None
    shape = Shape(tuple(items), _order(select, items, nodes), *_limits(select),
                  one_row=aggregated and not grouped, regroup=regroup)
    return Translation({"job": job, **spec}, shape)


def _rows(scope: Scope, select: exp.Select, nodes: list[exp.Expr]):
    """SELECT columns: a rows job ([output]); with DISTINCT, a group-by without aggregates."""
    items = []
    for node in nodes:
        inner = node.unalias()
        if isinstance(inner, exp.Star):
            items += [Item(c, f"{t}.{c}", scope.whole(f"{t}.{c}")) for t in scope.tables
                      for c in scope.columns_of(t)]
        elif isinstance(inner, exp.Column) and isinstance(inner.this, exp.Star):
            table = scope.table(inner)
            items += [Item(c, f"{table}.{c}", scope.whole(f"{table}.{c}"))
                      for c in scope.columns_of(table)]
        elif isinstance(inner, exp.Column):
            column = scope.column(inner)
            items.append(Item(output_name(node), column, scope.whole(column)))
        else:
            refuse(inner, f"{inner.sql(dialect='bigquery')}: a query without aggregates "
                          "selects columns (expressions are features of models only)")
    columns = list(dict.fromkeys(item.source for item in items))
    if select.args.get("distinct"):
        if select.args["distinct"].args.get("on"):
            refuse(select.args["distinct"], "DISTINCT ON is not supported")
        return {"aggregate": {"group_by": columns}}, items
    return {"output": {"columns": columns}}, items


def _aggregates(scope: Scope, select: exp.Select, nodes: list[exp.Expr], noise: dict):
    """SELECT with aggregates (and GROUP BY): [aggregate], or [statistics] for variances."""
    groups = [_group_column(scope, node, nodes) for node in select.args["group"].expressions] \
        if select.args.get("group") else []
    items, distinct = [], []
    for node in nodes:
        inner = node.unalias()
        if isinstance(inner, exp.Column):
            column = scope.column(inner)
            if column not in groups:
                refuse(inner, f"{inner.sql(dialect='bigquery')} is neither in GROUP BY nor "
                              "aggregated")
            items.append(Item(output_name(node), column, scope.whole(column)))
            continue
        function, argument = _aggregate(scope, inner)
        if function == "count_distinct" and argument is not None:
            distinct.append(argument)
        items.append(Item(output_name(node), f"{function}({argument})" if argument else "count",
                          function.startswith("count")))
    functions = {item.source.split("(")[0] for item in items}
    if functions & set(MOMENTS):
        if groups or distinct:
            refuse(select, "VARIANCE and STDDEV are computed over the whole join (statistics), "
                           "without GROUP BY or COUNT(DISTINCT)")
        columns = [item.source[item.source.index("(") + 1:-1] for item in items
                   if item.source != "count"]
        return {"statistics": {"columns": list(dict.fromkeys(columns)), **noise}}, items, None
    if len(set(distinct)) > 1:
        refuse(select, "COUNT(DISTINCT ...) of one column per query")
    section: dict = {"group_by": groups + [c for c in dict.fromkeys(distinct) if c not in groups],
                     "count": True}
    for function in ("sum", "mean", "min", "max"):
        columns = [item.source[len(function) + 1:-1] for item in items
                   if item.source.startswith(f"{function}(")]
        if columns:
            section[function] = list(dict.fromkeys(columns))
    return {"aggregate": {**section, **noise}}, items, tuple(groups) if distinct else None


def _group_column(scope: Scope, node: exp.Expr, nodes: list[exp.Expr]) -> str:
    """A GROUP BY term: a column, a selected column's alias, or its position (GROUP BY 1)."""
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        if not 1 <= int(node.this) <= len(nodes):
            refuse(node, f"GROUP BY {node.this}: the query selects {len(nodes)} columns")
        node = nodes[int(node.this) - 1].unalias()
    elif isinstance(node, exp.Column) and not node.table:
        aliased = [n.unalias() for n in nodes if isinstance(n, exp.Alias) and n.alias == node.name]
        node = aliased[0] if aliased else node
    if not isinstance(node, exp.Column):
        refuse(node, "GROUP BY needs columns (expressions are not supported)")
    return scope.column(node)


def _aggregate(scope: Scope, node: exp.Expr) -> tuple[str, str | None]:
    """(function, qualified column) of an aggregate over a column, or ("count", None)."""
    if isinstance(node, exp.Count):
        argument = node.this
        if isinstance(argument, exp.Star):
            return "count", None
        if isinstance(argument, exp.Distinct):
            if len(argument.expressions) != 1 or not isinstance(argument.expressions[0],
                                                                 exp.Column):
                refuse(node, "COUNT(DISTINCT ...) needs one column")
            return "count_distinct", scope.column(argument.expressions[0])
        if isinstance(argument, exp.Column):
            column = scope.column(argument)
            table, _, name = column.partition(".")
            if scope.schema.table(table).column(name).nullable:
                refuse(node, f"COUNT({name}) of a nullable column is not supported: a job drops "
                             "rows with missing cells; use COUNT(*)")
            return "count", None
        refuse(node, "COUNT needs *, a column or DISTINCT column")
    function = AGGREGATES.get(type(node))
    if isinstance(node, exp.AggFunc) and function is not None:
        if not isinstance(node.this, exp.Column):
            refuse(node, f"{node.sql_name()} needs a column: aggregates read stored columns, "
                         "not expressions")
        return function, scope.column(node.this)
    if isinstance(node, exp.AggFunc):
        refuse(node, f"the aggregate {node.sql_name()} is not supported (COUNT, SUM, AVG, "
                     "MIN, MAX, VARIANCE, STDDEV are)")
    if node.find(exp.AggFunc):
        refuse(node, f"{node.sql(dialect='bigquery')}: select aggregates themselves, not "
                     "expressions of them")
    unsupported(node)


def _order(select: exp.Select, items: list[Item], nodes: list[exp.Expr]
           ) -> tuple[tuple[int, bool], ...]:
    """ORDER BY terms as result columns: by name, by position, or as selected."""
    order = select.args.get("order")
    terms = []
    for term in order.expressions if order else []:
        key = term.this
        if isinstance(key, exp.Literal) and not key.is_string and key.this.isdigit():
            index = int(key.this) - 1
        else:
            names = [item.name for item in items]
            texts = [node.unalias().sql() for node in nodes]
            index = next((i for i, n in enumerate(names) if isinstance(key, exp.Column)
                          and not key.table and n == key.name),
                         texts.index(key.sql()) if key.sql() in texts else -1)
        if not 0 <= index < len(items):
            refuse(term, "ORDER BY needs a selected column (its name, alias or position)")
        terms.append((index, bool(term.args.get("desc"))))
    return tuple(terms)


def _limits(select: exp.Select) -> tuple[int | None, int]:
    """(LIMIT, OFFSET), applied by the recipient."""
    values = []
    for key in ("limit", "offset"):
        clause = select.args.get(key)
        number = clause.expression if clause is not None else None
        if number is not None and not (isinstance(number, exp.Literal)
                                       and number.this.isdigit()):
            refuse(number, f"{key.upper()} needs a whole number")
        values.append(int(number.this) if number is not None else None)
    return values[0], values[1] or 0
