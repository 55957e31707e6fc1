"""A corpus of SQL queries, each run through Twofold (Client.sql: translated, run on two
servers, revealed, shaped) and as the same text in DuckDB: equal results, integers and
strings exactly, decimals within fixed-point precision.

One pair of servers per schema (a deployment holds one schema), started once with the data
uploaded once: TPC-H (tpchgen-cli, SF 0.01, its first 2,000 orders and their lines) and the
walkthrough's schema on generated customers and orders."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from tests.support.cli import WALKTHROUGH
from tests.support.harness import OPEN_POLICY
from tests.support.servers import make_deployment
from tests.support.sql import assert_same_table, serving
from twofold import Client
from twofold.bench import tpch

pytestmark = pytest.mark.integration  # two pairs of servers, in this process

TPCH = [
    tpch.Q3_SQL,
    tpch.Q5_SQL,
    "SELECT COUNT(*) FROM lineitem",
    "SELECT COUNT(*), SUM(l_revenue), AVG(l_revenue), MIN(l_revenue), MAX(l_revenue) "
    "FROM lineitem WHERE l_shipdate >= 19950101",
    "SELECT r_name, COUNT(*) FROM nation JOIN region ON n_regionkey = r_regionkey "
    "GROUP BY r_name",
    "SELECT c_mktsegment, COUNT(*), AVG(l_revenue) FROM lineitem "
    "JOIN orders ON l_orderkey = o_orderkey JOIN customer ON o_custkey = c_custkey "
    "GROUP BY c_mktsegment ORDER BY c_mktsegment",
    "SELECT n_name, COUNT(DISTINCT o_custkey) FROM orders "
    "JOIN customer ON o_custkey = c_custkey JOIN nation ON c_nationkey = n_nationkey "
    "GROUP BY n_name",
    "SELECT COUNT(DISTINCT l_suppkey) FROM lineitem WHERE l_revenue > 50000",
    "SELECT DISTINCT c_mktsegment FROM customer",
    "SELECT o_orderkey, o_orderdate FROM orders WHERE o_orderdate < 19920201 "
    "ORDER BY o_orderkey LIMIT 20",
    "SELECT l_orderkey, l_linenumber, l_revenue FROM lineitem "
    "JOIN orders ON l_orderkey = o_orderkey WHERE o_orderdate BETWEEN 19950101 AND 19950120",
    "SELECT COUNT(*) FROM lineitem JOIN orders ON l_orderkey = o_orderkey "
    "WHERE l_shipdate - o_orderdate > 100",
    "SELECT COUNT(*), SUM(l_revenue) FROM lineitem JOIN orders ON l_orderkey = o_orderkey "
    "WHERE l_shipdate < o_orderdate + 30",
    "SELECT n_name, SUM(l_revenue) FROM lineitem JOIN supplier ON l_suppkey = s_suppkey "
    "JOIN nation ON s_nationkey = n_nationkey GROUP BY n_name ORDER BY 2 DESC LIMIT 5",
    "SELECT r_name, MIN(l_revenue), MAX(l_revenue) FROM lineitem, supplier, nation, region "
    "WHERE l_suppkey = s_suppkey AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey "
    "GROUP BY r_name",
    "SELECT o_orderdate, COUNT(*) FROM orders WHERE o_orderdate < 19920301 "
    "GROUP BY o_orderdate",
    "SELECT c_mktsegment, COUNT(*) FROM customer "
    "WHERE c_mktsegment IN ('BUILDING', 'MACHINERY') GROUP BY 1",
    "SELECT COUNT(*) FROM customer WHERE c_mktsegment NOT IN ('BUILDING') "
    "AND NOT c_nationkey = 3",
    "SELECT COUNT(*) FROM orders JOIN customer ON o_custkey = c_custkey "
    "WHERE c_mktsegment = 'AUTOMOBILE' OR o_orderdate > 19980101",
    "SELECT n_name, COUNT(*) FROM supplier JOIN nation ON s_nationkey = n_nationkey "
    "WHERE n_regionkey = 2 GROUP BY n_name",
    "SELECT AVG(l_revenue) FROM lineitem JOIN orders ON l_orderkey = o_orderkey "
    "JOIN customer ON o_custkey = c_custkey "
    "WHERE c_mktsegment = 'HOUSEHOLD' AND l_revenue * 2 > 60000",
    "SELECT l_suppkey, COUNT(*), SUM(l_revenue) FROM lineitem WHERE l_suppkey IN (1, 2, 3) "
    "GROUP BY l_suppkey",
    "SELECT n.n_name, SUM(l.l_revenue) AS revenue FROM lineitem AS l "
    "JOIN orders AS o ON l.l_orderkey = o.o_orderkey "
    "JOIN customer AS c ON o.o_custkey = c.c_custkey "
    "JOIN supplier AS s ON l.l_suppkey = s.s_suppkey AND c.c_nationkey = s.s_nationkey "
    "JOIN nation AS n ON s.s_nationkey = n.n_nationkey "
    "JOIN region AS r ON n.n_regionkey = r.r_regionkey "
    "WHERE r.r_name = 'EUROPE' GROUP BY n.n_name ORDER BY revenue DESC",
    "SELECT COUNT(*) FROM orders WHERE o_shippriority = 0 AND o_orderdate >= 19960101",
    "SELECT o_orderkey, o_custkey FROM orders WHERE o_orderdate <= 19920110",
    # DATE literals: the same text runs in DuckDB on DATE columns (dated())
    tpch.Q3_SQL.replace("19950315", "DATE '1995-03-15'"),
    tpch.Q5_SQL.replace("19940101", "DATE '1994-01-01'").replace("19950101",
                                                                 "DATE '1995-01-01'"),
    "SELECT COUNT(*), SUM(l_revenue) FROM lineitem "
    "WHERE l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01'",
    "SELECT o_orderkey, o_orderdate FROM orders "
    "WHERE o_orderdate BETWEEN DATE '1995-01-01' AND CAST('1995-01-20' AS DATE) "
    "ORDER BY o_orderkey",
]
DATES = {"lineitem": "l_shipdate", "orders": "o_orderdate"}  # yyyymmdd integers in Twofold

WALK = [
    "SELECT customers.region, COUNT(*), SUM(orders.amount), AVG(orders.amount) "
    "FROM orders JOIN customers ON orders.customer = customers.id "
    "WHERE customers.age >= 30 GROUP BY customers.region",
    "SELECT COUNT(*), AVG(amount), VARIANCE(amount), STDDEV(amount), MIN(amount), "
    "MAX(amount) FROM orders",
    "SELECT VAR_POP(age), STDDEV_POP(age), SUM(age) FROM customers",
    "SELECT COUNT(*), SUM(amount) FROM orders JOIN customers ON customer = id",
    "SELECT region, COUNT(DISTINCT customer) FROM orders JOIN customers ON customer = id "
    "GROUP BY region",
    "SELECT COUNT(DISTINCT customer), SUM(amount), AVG(amount) FROM orders "
    "WHERE amount > 100",
    "SELECT region, age FROM customers WHERE age BETWEEN 30 AND 40 ORDER BY age, region",
    "SELECT id, age FROM customers WHERE region = 'north' AND age > 60",
    "SELECT DISTINCT region FROM customers WHERE age < 25",
    "SELECT age, COUNT(*) FROM customers GROUP BY age ORDER BY COUNT(*) DESC, age LIMIT 5",
    "SELECT customers.region, MIN(orders.amount), MAX(orders.amount) FROM orders "
    "JOIN customers ON orders.customer = customers.id GROUP BY customers.region",
    "SELECT COUNT(*) FROM orders JOIN customers ON customer = id WHERE amount > age * 10",
    "SELECT COUNT(*) FROM orders o, customers c WHERE o.customer = c.id "
    "AND (c.region = 'south' OR o.amount < 50) AND NOT c.age > 70",
    "SELECT AVG(amount) FROM orders JOIN customers ON customer = id "
    "WHERE age IN (20, 30, 40, 50, 60, 70)",
    "SELECT region, SUM(amount) AS total FROM orders JOIN customers ON customer = id "
    "GROUP BY region ORDER BY total DESC",
    "SELECT COUNT(*) FROM customers WHERE age - 18 > 40 / 2",
    "SELECT COUNT(*), MIN(age) FROM customers WHERE age > 200",
    "SELECT orders.amount, customers.age FROM orders JOIN customers ON customer = id "
    "WHERE amount > 900",
]


def walkthrough_data(folder) -> dict[str, pd.DataFrame]:
    """Customers and orders in the walkthrough's schema; some orders reference nobody."""
    rng = np.random.default_rng(26)
    customers = pd.DataFrame({"id": np.arange(1, 61), "age": rng.integers(18, 101, 60),
                              "region": rng.choice(["north", "south"], 60)})
    orders = pd.DataFrame({"order_id": [f"A-{i}" for i in range(200)],
                           "customer": rng.integers(1, 66, 200),
                           "amount": rng.integers(0, 100000, 200) / 100})
    for name, frame in (("customers", customers), ("orders", orders)):
        frame.to_csv(folder / f"{name}.csv", index=False)
    return {"customers": customers, "orders": orders}


def tpch_data(folder) -> dict[str, pd.DataFrame]:
    """TPC-H at SF 0.01, cut to its first 2,000 orders and their lines."""
    frames = tpch.generate(folder, 0.01)
    frames["orders"] = frames["orders"].iloc[:2000]
    frames["lineitem"] = frames["lineitem"][
        frames["lineitem"]["l_orderkey"].isin(frames["orders"]["o_orderkey"])]
    for name in ("orders", "lineitem"):
        frames[name].to_csv(folder / f"{name}.csv", index=False)
    return frames


@pytest.fixture(scope="module")
def analysts(tmp_path_factory):
    """Carol's client for each schema, with every table uploaded, and the plaintext frames."""
    worlds = {}
    for name, make, schema in (("tpch", tpch_data, None),
                               ("walkthrough", walkthrough_data, WALKTHROUGH / "schema.toml")):
        folder = tmp_path_factory.mktemp(name)
        frames = make(folder)
        schema_text = (schema or folder / "schema.toml").read_text()
        (folder / "servers").mkdir()
        deployment = make_deployment(folder / "servers", schema_text,
                                     owners=("alice", "bob", "carol"), timeout_s=120)
        worlds[name] = (deployment, frames, folder)
    with serving(*(deployment for deployment, _, _ in worlds.values())):
        clients = {}
        for name, (deployment, frames, folder) in worlds.items():
            for table in frames:
                owner = deployment.schema.table(table).owner
                Client(deployment.client(owner, timeout_s=120)).upload(
                    folder / f"{table}.csv", table, deployment.schema, policy=OPEN_POLICY)
            clients[name] = (Client(deployment.client("carol", timeout_s=120)), frames)
        yield clients


def duckdb_result(frames: dict[str, pd.DataFrame], sql: str) -> pd.DataFrame:
    connection = duckdb.connect()
    for name, frame in frames.items():
        connection.register(name, frame)
    return connection.execute(sql).df()


def dated(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """TPC-H's dates as DATE columns, as TPC-H has them, for queries with DATE literals."""
    return {name: frame.assign(**{DATES[name]: pd.to_datetime(
                frame[DATES[name]].astype(str), format="%Y%m%d").dt.date})
            if name in DATES else frame for name, frame in frames.items()}


def as_stored(result: pd.DataFrame) -> pd.DataFrame:
    """DuckDB's date columns as the yyyymmdd integers Twofold stores and releases."""
    return result.apply(lambda column: pd.to_datetime(column).dt.strftime("%Y%m%d").astype(int)
                        if pd.api.types.is_datetime64_any_dtype(column) else column)


@pytest.mark.parametrize("world, sql", [("tpch", q) for q in TPCH] + [("walkthrough", q)
                                                                        for q in WALK])
def test_sql_matches_duckdb(analysts, world, sql):
    client, frames = analysts[world]
    got = client.sql(sql, timeout_s=600)
    expected = (as_stored(duckdb_result(dated(frames), sql)) if "DATE '" in sql
                else duckdb_result(frames, sql))
    assert len(got) > 0 or len(expected) == 0
    assert_same_table(got, expected, ordered="ORDER BY" in sql)


def test_corpus_size():
    assert len(TPCH) + len(WALK) >= 40
