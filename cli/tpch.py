"""TPC-H data (tpchgen-cli) shaped for Twofold, for benchmarks and tests: the Q3/Q5 tables,
dates as yyyymmdd integers, revenue = extendedprice * (1 - discount) precomputed by lineitem's
owner (a local, type-1 computation)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

SCHEMA = """
[schema]
fact = "lineitem"

[tables.lineitem]
owner = "alice"
primary_key = ["l_orderkey", "l_linenumber"]
foreign_keys = [{ columns = ["l_orderkey"], references = "orders" },
                { columns = ["l_suppkey"], references = "supplier" }]
[tables.lineitem.columns]
l_orderkey = { type = "key" }
l_linenumber = { type = "key" }
l_suppkey = { type = "key" }
l_shipdate = { type = "integer", min = 19900101, max = 20001231 }
l_revenue = { type = "decimal", min = 0, max = 200000 }

[tables.orders]
owner = "bob"
primary_key = "o_orderkey"
foreign_keys = [{ columns = ["o_custkey"], references = "customer" }]
[tables.orders.columns]
o_orderkey = { type = "key" }
o_custkey = { type = "key" }
o_orderdate = { type = "integer", min = 19900101, max = 20001231 }
o_shippriority = { type = "integer", min = 0, max = 10 }

[tables.customer]
owner = "bob"
primary_key = "c_custkey"
foreign_keys = [{ columns = ["c_nationkey"], references = "nation" }]
[tables.customer.columns]
c_custkey = { type = "key" }
c_nationkey = { type = "key" }
c_mktsegment = { type = "categorical", values = ["AUTOMOBILE", "BUILDING", "FURNITURE", "HOUSEHOLD", "MACHINERY"] }

[tables.supplier]
owner = "alice"
primary_key = "s_suppkey"
foreign_keys = [{ columns = ["s_nationkey"], references = "nation" }]
[tables.supplier.columns]
s_suppkey = { type = "key" }
s_nationkey = { type = "key" }

[tables.nation]
owner = "alice"
primary_key = "n_nationkey"
foreign_keys = [{ columns = ["n_regionkey"], references = "region" }]
[tables.nation.columns]
n_nationkey = { type = "key" }
n_regionkey = { type = "key" }
n_name = { type = "categorical", values = [NATIONS] }

[tables.region]
owner = "alice"
primary_key = "r_regionkey"
[tables.region.columns]
r_regionkey = { type = "key" }
r_name = { type = "categorical", values = ["AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"] }
"""

COLUMNS = {
    "lineitem": ["l_orderkey", "l_linenumber", "l_suppkey", "l_shipdate", "l_revenue"],
    "orders": ["o_orderkey", "o_custkey", "o_orderdate", "o_shippriority"],
    "customer": ["c_custkey", "c_nationkey", "c_mktsegment"],
    "supplier": ["s_suppkey", "s_nationkey"],
    "nation": ["n_nationkey", "n_regionkey", "n_name"],
    "region": ["r_regionkey", "r_name"],
}

Q5_SQL = """
SELECT n_name, sum(l_revenue) AS revenue FROM customer, orders, lineitem, supplier, nation, region
WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND l_suppkey = s_suppkey
  AND c_nationkey = s_nationkey AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey
  AND r_name = 'ASIA' AND o_orderdate >= 19940101 AND o_orderdate < 19950101
GROUP BY n_name"""

Q5_SPEC = """
[job]
recipients = ["carol"]
where = "region.r_name == 'ASIA' and orders.o_orderdate >= 19940101 and orders.o_orderdate < 19950101"
[aggregate]
group_by = ["nation.n_name"]
sum = ["lineitem.l_revenue"]
"""

Q3_SQL = """
SELECT l_orderkey, o_orderdate, o_shippriority, sum(l_revenue) AS revenue
FROM customer, orders, lineitem
WHERE c_mktsegment = 'BUILDING' AND c_custkey = o_custkey AND l_orderkey = o_orderkey
  AND o_orderdate < 19950315 AND l_shipdate > 19950315
GROUP BY l_orderkey, o_orderdate, o_shippriority"""

Q3_SPEC = """
[job]
recipients = ["carol"]
tables = ["lineitem", "orders", "customer"]
where = "customer.c_mktsegment == 'BUILDING' and orders.o_orderdate < 19950315 and lineitem.l_shipdate > 19950315"
[aggregate]
group_by = ["lineitem.l_orderkey", "orders.o_orderdate", "orders.o_shippriority"]
sum = ["lineitem.l_revenue"]
"""


class TpchUnavailable(RuntimeError):
    """tpchgen-cli is not installed."""


def generate(folder: Path, scale: float) -> dict[str, pd.DataFrame]:
    """Write <table>.csv in the shape of SCHEMA; returns the frames."""
    raw = folder / "raw"
    tool = Path(sys.executable).parent / "tpchgen-cli"
    if not tool.exists():
        raise TpchUnavailable("TPC-H data needs tpchgen-cli: pip install 'twofold[bench]'")
    subprocess.run([str(tool), "csv", "-s", str(scale), f"--output-dir={raw}"], check=True,
                   capture_output=True)
    frames = {name: pd.read_csv(raw / f"{name}.csv") for name in COLUMNS}
    for table, column in [("lineitem", "l_shipdate"), ("orders", "o_orderdate")]:
        frames[table][column] = frames[table][column].str.replace("-", "").astype(int)
    line = frames["lineitem"]
    line["l_revenue"] = (line["l_extendedprice"] * (1 - line["l_discount"])).round(4)
    for name, columns in COLUMNS.items():
        frames[name] = frames[name][columns]
        frames[name].to_csv(folder / f"{name}.csv", index=False)
    return frames


def schema_text(frames) -> str:
    names = ", ".join(f'"{n}"' for n in frames["nation"]["n_name"])
    return SCHEMA.replace("NATIONS", names)
