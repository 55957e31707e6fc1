"""SQL's translation into job specs (servers/sql.py): docs/sql.md's examples and their TOML
twins, the walkthrough's and docs/joins.md's TOML specs from SQL, and refusals that name the
construct and its position."""

import re
import tomllib
from pathlib import Path

import pytest
import tomli_w

from tests.support.cli import WALKTHROUGH
from tests.support.sql import (
    EXAMS_SCHEMA,
    MODEL1,
    schema_for,
    tpch_schema,
    typed,
    walkthrough_schema,
)
from twofold.owners.schema import parse_schema
from twofold.results import Result
from twofold.servers.jobspec import parse_job_spec
from twofold.servers.sql import translate
from twofold.servers.sql_syntax import SqlError
from twofold.sql import present

DOCS = Path(__file__).resolve().parents[1] / "docs"
CLIENTS = {"carol", "dave"}


def spec_of_sql(sql: str, schema=None):
    schema = schema or schema_for(sql)
    translated = translate(sql, schema, "carol", lambda name: MODEL1)
    return parse_job_spec(tomli_w.dumps(translated.spec), schema, CLIENTS)


def twins() -> list[tuple[str, str]]:
    """docs/sql.md's pairs: an ```sql block, then the ```toml block it becomes."""
    text = (DOCS / "sql.md").read_text()
    return re.findall(r"```sql\n((?:(?!```).)*)```\n```toml\n((?:(?!```).)*)```", text, re.S)


def test_docs_have_twins():
    assert len(twins()) >= 12


@pytest.mark.parametrize("sql, toml", twins(), ids=lambda text: text.split("\n")[0][:40])
def test_every_sql_example_gives_its_toml_twin(sql, toml):
    schema = schema_for(sql)
    assert typed(spec_of_sql(sql, schema)) == typed(parse_job_spec(toml, schema, CLIENTS))


@pytest.mark.parametrize("name, sql", [
    ("revenue.toml", "SELECT customers.region, COUNT(*), SUM(orders.amount), AVG(orders.amount)"
                     " FROM orders JOIN customers ON orders.customer = customers.id"
                     " WHERE customers.age >= 30 GROUP BY customers.region"),
    ("noisy.toml", "-- twofold: noise = { epsilon = 1.0, delta = 1e-6, tau = 3 }\n"
                   "SELECT AVG(amount), STDDEV(amount) FROM orders"
                   " JOIN customers ON customer = id"),
    ("train.toml", "CREATE MODEL m OPTIONS (model_type = 'logistic_reg', max_iterations = 200,"
                   " learn_rate = 0.5, batch_size = 2, privacy_level = 3) AS SELECT age,"
                   " region, amount >= 50 AS label FROM orders JOIN customers ON customer = id"),
])
def test_walkthrough_specs_from_sql(name, sql):
    schema = walkthrough_schema()
    expected = parse_job_spec((WALKTHROUGH / name).read_text(), schema, CLIENTS)
    assert typed(spec_of_sql(sql, schema)) == typed(expected)


def test_joins_doc_example_from_sql():
    toml = re.search(r"```toml\n(.*?)```", (DOCS / "joins.md").read_text(), re.S).group(1)
    sql = ("SELECT l_orderkey, o_orderdate, SUM(l_revenue) FROM lineitem"
           " JOIN orders ON l_orderkey = o_orderkey JOIN customer ON o_custkey = c_custkey"
           " WHERE c_mktsegment = 'BUILDING' AND o_orderdate < 19950315"
           " GROUP BY l_orderkey, o_orderdate")
    schema = tpch_schema()
    assert typed(spec_of_sql(sql, schema)) == typed(parse_job_spec(toml, schema, CLIENTS))


def test_ml_doc_predict_example_from_sql():
    toml = next(block for block in re.findall(r"```toml\n(.*?)```", (DOCS / "ml.md").read_text(),
                                              re.S) if "[predict]" in block)
    sql = ("SELECT * FROM ML.EVALUATE(MODEL model1, (SELECT age, region, amount >= 50"
           " FROM orders JOIN customers ON customer = id))")
    schema = walkthrough_schema()
    assert typed(spec_of_sql(sql, schema)) == typed(parse_job_spec(toml, schema, CLIENTS))


def test_ml_doc_training_example_from_sql():
    toml = re.search(r"```toml\n(.*?)```", (DOCS / "ml.md").read_text(), re.S).group(1)
    sql = ("-- twofold: recipients = [\"analyst\"]\n"
           "CREATE MODEL m OPTIONS (model_type = 'logistic_reg', max_iterations = 3000,"
           " learn_rate = 0.5, batch_size = 128, privacy_level = 5, min_join_size = 20000,"
           " epsilon = 1.0, delta = 1e-6, tau = 3, unit = 'patients', size_check_epsilon = 0.1,"
           " residual_bound = 1.0)"
           " AS SELECT exams.f0, patients.f3 * clinics.size, exams.f1 > 2.5, clinics.kind,"
           " exams.label FROM exams JOIN patients ON exams.patient = patients.id"
           " JOIN clinics ON exams.clinic = clinics.id WHERE exams.split = 'train'")
    schema = parse_schema(tomllib.loads(EXAMS_SCHEMA))
    translated = translate(sql, schema, "carol")
    spec = parse_job_spec(tomli_w.dumps(translated.spec), schema, {"analyst"})
    assert typed(spec) == typed(parse_job_spec(toml, schema, {"analyst"}))


def test_options_name_recipients_and_the_model_is_the_job_id():
    sql = ("-- twofold: recipients = [\"carol\", \"dave\"]\nCREATE MODEL m2 OPTIONS ("
           "model_type = 'linear_reg', max_iterations = 5, learn_rate = 0.1, batch_size = 1,"
           " privacy_level = 3) AS SELECT age, amount AS label FROM orders, customers"
           " WHERE customer = id")
    translated = translate(sql, walkthrough_schema(), "carol")
    assert translated.job_id == "m2" and translated.spec["job"]["recipients"] == ["carol", "dave"]


def test_the_released_groups_become_the_querys_table():
    """Names and order as selected, ORDER BY, LIMIT and OFFSET, counts as integers."""
    shape = translate("SELECT COUNT(*) AS n, region FROM customers GROUP BY region "
                      "ORDER BY n DESC, region LIMIT 2 OFFSET 1", walkthrough_schema(),
                      "carol").shape
    released = Result({"kind": "aggregate", "rows": {
        "customers.region": ["east", "north", "south"], "count": [2.0, 5.0, 2.0]}})
    frame = present(released, shape)
    assert list(frame.columns) == ["n", "region"]
    assert frame.to_dict("records") == [{"n": 2, "region": "east"}, {"n": 2, "region": "south"}]


def test_distinct_counts_and_sample_variances_from_what_is_released():
    schema = walkthrough_schema()
    shape = translate("SELECT COUNT(DISTINCT customer), SUM(amount), AVG(amount) FROM orders",
                      schema, "carol").shape
    released = Result({"kind": "aggregate", "rows": {
        "orders.customer": [1, 2], "count": [2.0, 1.0], "sum(orders.amount)": [10.0, 5.0],
        "mean(orders.amount)": [5.0, 5.0]}})
    assert present(released, shape).iloc[0].tolist() == [2, 15.0, 5.0]
    shape = translate("SELECT VARIANCE(amount), STDDEV_POP(amount) FROM orders", schema,
                      "carol").shape
    released = Result({"kind": "statistics", "values": {"count": 4, "orders.amount": {
        "count": 4, "sum": 8.0, "mean": 2.0, "variance": 3.0, "std": 3.0 ** 0.5}}})
    assert present(released, shape).iloc[0].tolist() == [4.0, 3.0 ** 0.5]


REFUSALS = [  # (SQL, what the one line says, its line and column)
    ("SELECT region, SUM(age) OVER (PARTITION BY region) FROM customers",
     "window functions are not supported", (1, 16)),
    ("SELECT region FROM customers LEFT JOIN orders ON customer = id",
     "LEFT JOIN is not supported", (1, 40)),
    ("SELECT region, COUNT(*) FROM customers GROUP BY region\nHAVING COUNT(*) > 1",
     "HAVING is not supported", (2, 8)),
    ("SELECT regoin FROM customers", "unknown column 'regoin' (did you mean 'region'?)",
     (1, 8)),
    ("SELECT region FROM customer", "unknown table 'customer' (did you mean 'customers'?)",
     (1, 20)),
    ("SELECT region FROM orders JOIN customers ON orders.amount = customers.age",
     "not a join along a declared foreign key; the schema's foreign keys: "
     "orders(customer) -> customers(id)", (1, 45)),
    ("SELECT region FROM orders, customers", "add it to ON", (1, 28)),
    ("SELECT region FROM customers WHERE age IS NULL", "IS [NOT] NULL is not supported",
     (1, 36)),
    ("SELECT CASE WHEN age > 30 THEN 1 ELSE 0 END FROM customers",
     "CASE expressions are not supported", (1, 18)),
    ("SELECT region FROM customers WHERE region LIKE 'n%'", "LIKE is not supported", (1, 36)),
    ("SELECT region FROM customers WHERE id IN (SELECT customer FROM orders)",
     "subqueries are not supported", (1, 36)),
    ("WITH c AS (SELECT region FROM customers) SELECT region FROM c",
     "WITH (common table expressions) is not supported", (1, 6)),
    ("SELECT region FROM customers UNION ALL SELECT region FROM customers",
     "UNION is not supported", (1, 8)),
    ("SELECT SUM(age * 2) FROM customers", "SUM needs a column", (1, 8)),
    ("SELECT UPPER(region) FROM customers", "the function UPPER is not supported", (1, 8)),
    ("SELECT age + 1 FROM customers", "a query without aggregates selects columns", (1, 8)),
    ("SELECT region, VARIANCE(age) FROM customers GROUP BY region",
     "VARIANCE and STDDEV are computed over the whole join", (1, 8)),
    ("SELECT region FROM customers JOIN orders USING (id)", "USING is not supported", (1, 35)),
    ("SELECT region, age FROM customers GROUP BY region", "age is neither in GROUP BY",
     (1, 16)),
    ("SELECT region FROM customers c JOIN customers d ON c.id = d.id",
     "table customers is named twice", (1, 37)),
    ("SELECT region FROM customers WHERE age % 2 = 0", "the % operator is not supported",
     (1, 36)),
    ("SELECT region FROM customers FULL OUTER JOIN orders ON customer = id",
     "FULL JOIN is not supported", (1, 46)),
    ("SELECT region FROM (SELECT region FROM customers)", "subqueries are not supported",
     (1, 28)),
    ("SELECT MEDIAN(age) FROM customers", "MEDIAN", (1, 8)),
    ("SELECT COUNT(DISTINCT age), COUNT(DISTINCT region) FROM customers",
     "COUNT(DISTINCT ...) of one column per query", (1, 8)),
    ("CREATE MODEL m OPTIONS (model_type = 'kmeans', max_iterations = 1, learn_rate = 1,"
     " batch_size = 1, privacy_level = 3) AS SELECT age FROM customers", "model_type 'kmeans'",
     (1, 38)),
    ("CREATE MODEL m OPTIONS (model_type = 'linear_reg', l2_reg = 1) AS SELECT age AS label "
     "FROM customers", "unknown option l2_reg", (1, 61)),
    ("SELECT * FROM ML.PREDICT(MODEL model1, (SELECT orders.amount * 2 FROM orders))",
     "is not a feature of model model1", (1, 48)),
    ("SELECT region FROM customers WHERE", "Required keyword", None),
    ("-- twofold: privacy = 5\nSELECT region FROM customers", "unknown option 'privacy'",
     None),
    ("SELECT region FROM customers TABLESAMPLE SYSTEM (10 PERCENT)", "SAMPLE is not supported",
     (1, 20)),
    ("SELECT region FROM customers WHERE age < DATE '1995-02-30'",
     "DATE '1995-02-30' is not a date: write DATE 'yyyy-mm-dd'", (1, 47)),
    ("SELECT region FROM customers WHERE age < DATE_ADD(DATE '1995-02-03', INTERVAL 1 DAY)",
     "the function DATE_ADD is not supported", (1, 42)),
]


def test_the_spec_checks_run_before_anything_is_sent():
    """What the servers' spec checks refuse is refused here, naming the query's columns."""
    with pytest.raises(SqlError, match="^'customers.region' is categorical, not numeric$"):
        translate("SELECT SUM(region) FROM customers", walkthrough_schema(), "carol")


@pytest.mark.parametrize("sql, says, where", REFUSALS, ids=[r[1][:30] for r in REFUSALS])
def test_refusals_are_one_line_with_the_position(sql, says, where):
    with pytest.raises(SqlError) as raised:
        translate(sql, walkthrough_schema(), "carol", lambda name: MODEL1)
    message = str(raised.value)
    assert "\n" not in message and says in message, message
    if where is not None:
        assert message.startswith(f"line {where[0]}, column {where[1]}: "), message
    else:
        assert message.startswith("line "), message
