"""TPC-H data (tpchgen-cli) shaped for Twofold, for benchmarks and tests: the Q3/Q5 tables,
dates as yyyymmdd integers, revenue = extendedprice * (1 - discount) precomputed by lineitem's
owner (a local, type-1 computation), and their schema (data/tpch.toml, completed for the scale
factor) as schema.toml beside the CSV files."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import tomli_w

TEMPLATE = Path(__file__).parent / "data" / "tpch.toml"

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
where = "region.r_name == 'ASIA' and orders.o_orderdate >= 19940101 \
and orders.o_orderdate < 19950101"
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
where = "customer.c_mktsegment == 'BUILDING' and orders.o_orderdate < 19950315 \
and lineitem.l_shipdate > 19950315"
[aggregate]
group_by = ["lineitem.l_orderkey", "orders.o_orderdate", "orders.o_shippriority"]
sum = ["lineitem.l_revenue"]
"""


class TpchUnavailable(RuntimeError):
    """tpchgen-cli is not installed."""


def key_domains(scale: float) -> dict[tuple[str, str], int]:
    """Bits of each integer key's domain at this scale factor, from the TPC-H specification:
    order keys up to 6,000,000 SF, customer keys up to 150,000 SF, supplier keys up to
    10,000 SF, 25 nations, 5 regions, 7 lines per order."""
    def bits(largest: float) -> int:
        return max(1, int(largest).bit_length())

    orders, customers, suppliers = (bits(n * scale) for n in (6_000_000, 150_000, 10_000))
    return {("lineitem", "l_orderkey"): orders, ("orders", "o_orderkey"): orders,
            ("lineitem", "l_linenumber"): bits(7), ("lineitem", "l_suppkey"): suppliers,
            ("supplier", "s_suppkey"): suppliers, ("orders", "o_custkey"): customers,
            ("customer", "c_custkey"): customers, ("customer", "c_nationkey"): bits(24),
            ("supplier", "s_nationkey"): bits(24), ("nation", "n_nationkey"): bits(24),
            ("nation", "n_regionkey"): bits(4), ("region", "r_regionkey"): bits(4)}


def write_schema(folder: Path, scale: float, nations: list[str]) -> Path:
    """schema.toml for this scale factor: the template with the nations' names and the keys'
    domains."""
    raw = tomllib.loads(TEMPLATE.read_text())
    raw["tables"]["nation"]["columns"]["n_name"]["values"] = nations
    for (table, column), bits in key_domains(scale).items():
        raw["tables"][table]["columns"][column]["bits"] = bits
    path = folder / "schema.toml"
    path.write_text(tomli_w.dumps(raw))
    return path


def generate(folder: Path, scale: float) -> dict[str, pd.DataFrame]:
    """Write <table>.csv and schema.toml; returns the frames."""
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
    write_schema(folder, scale, frames["nation"]["n_name"].tolist())
    return frames
