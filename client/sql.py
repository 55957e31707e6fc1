"""SQL on the analyst's side (docs/sql.md): the servers' schema and the analyst's own name
(the default recipient) come from the servers, the statement becomes a job spec here
(servers/sql.py), and the released result becomes the query's table here too: its columns
named and ordered as selected, ORDER BY, LIMIT and OFFSET, sample variances from the released
moments, distinct counts from the released groups.
"""

from __future__ import annotations

import asyncio
import tomllib
from typing import TYPE_CHECKING

import pandas as pd

from twofold.config import ClientConfig
from twofold.mpc.actions import SCHEMA
from twofold.mpc.rpc import each, service_clients
from twofold.owners.schema import parse_schema
from twofold.results import Result
from twofold.servers.sql import Shape, Translation, translate
from twofold.servers.sql_syntax import SqlError

if TYPE_CHECKING:
    from twofold.client import Client


async def fetch_schema(config: ClientConfig) -> tuple[str, str]:
    """(the schema's TOML text, this client's registered name), as both servers hold them."""
    async with service_clients(config.keys, config.servers, config.timeout_s) as clients:
        replies = [reply for reply, _ in await each(c.call({"action": SCHEMA})
                                                    for c in clients)]
    if replies[0]["schema"] != replies[1]["schema"]:
        raise SqlError("the two servers hold different schemas: ask their operators")
    return replies[0]["schema"], replies[0]["client"]


def translation(client: Client, text: str) -> Translation:
    """The job one SQL statement is, against the servers' schema. ML.PREDICT and
    ML.EVALUATE read the model's features (and label) from its description, which the
    model's recipients may fetch."""
    schema_text, me = asyncio.run(fetch_schema(client.config))
    schema = parse_schema(tomllib.loads(schema_text))
    return translate(text, schema, me, lambda model: client.reveal(model).data["info"])


def present(result: Result, shape: Shape) -> pd.DataFrame:
    """The released result as the query's table."""
    if not shape.items:  # models, predictions and metrics: their own tables
        return result.frame()
    names = [item.name for item in shape.items]
    if result.kind == "statistics":
        row = [_statistic(result.data["values"], item.source) for item in shape.items]
        frame = pd.DataFrame([row], columns=names)
    else:
        released = pd.DataFrame(result.data["rows"])
        if shape.one_row and released.empty:  # SQL's aggregates over no rows: one row
            released = pd.DataFrame({item.source: [0 if item.whole else None]
                                     for item in shape.items})
        elif shape.regroup is not None:
            released = _regroup(released, shape)
        frame = pd.DataFrame({i: released[item.source] for i, item in enumerate(shape.items)})
        frame.columns = pd.Index(names)
    for i, item in enumerate(shape.items):
        if item.whole and len(frame):
            frame.isetitem(i, frame.iloc[:, i].round().astype("Int64"))
    if shape.order:
        frame = frame.sort_values([names[i] for i, _ in shape.order],
                                  ascending=[not descending for _, descending in shape.order],
                                  kind="stable")
    end = None if shape.limit is None else shape.offset + shape.limit
    return frame.iloc[shape.offset:end].reset_index(drop=True)


def _regroup(released: pd.DataFrame, shape: Shape) -> pd.DataFrame:
    """COUNT(DISTINCT c): the job grouped by the query's groups and c; count c's values in
    each of the query's groups, and add up the rest (means from the totals)."""
    source = next(item.source for item in shape.items if item.source.startswith("count_dist"))
    column = source[len("count_distinct("):-1]
    how = {name: "sum" if name == "count" else name.split("(")[0]
           for name in released.columns if name == "count" or name.startswith(
               ("sum(", "min(", "max("))}
    how[column] = "nunique"
    groups = list(shape.regroup or ())
    counted = (released.groupby(groups, sort=False).agg(how).reset_index() if groups
               else released.agg(how).to_frame().T)
    counted = counted.rename(columns={column: source})
    for name in released.columns:
        if name.startswith("mean("):
            counted[name] = counted[f"sum({name[5:-1]})"] / counted["count"]
    return counted


def _statistic(values: dict, source: str):
    """One of the query's statistics from the released ones (count, sum, mean, population
    variance and standard deviation, min, max); sample variances by n / (n - 1)."""
    if source == "count":
        return values["count"]
    function, column = source[:-1].split("(", 1)
    released = values[column]
    n = released["count"]
    population = {"sum": "sum", "mean": "mean", "min": "min", "max": "max",
                  "var_pop": "variance", "std_pop": "std"}
    if function in population:
        return released.get(population[function])  # min and max are withheld under noise
    if n < 2 or released["variance"] is None:
        return None
    variance = released["variance"] * n / (n - 1)
    return variance if function == "var_samp" else variance ** 0.5
