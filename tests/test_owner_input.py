"""Every bad input gives one clear error naming file, row and column, before anything is sent."""

import re
import tomllib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.servers import SCHEMA
from twofold.mpc.prg import Prg
from twofold.owners import keys as owner_keys
from twofold.owners.keys import HASHED_TAG, encode_keys
from twofold.owners.predicate import PredicateError
from twofold.owners.prepare import prepare
from twofold.owners.read import UploadError
from twofold.owners.schema import INDICATOR, parse_schema

HEADER = "id,age,income,member,region\n"
GOOD = HEADER + "1,30,100.5,true,north\n2,40,-20,no,south\n3,50,0,1,east\n"


@pytest.fixture
def schema():
    return parse_schema(tomllib.loads(SCHEMA))


def write(tmp_path, text, name="customers.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_file_encodes_exactly(tmp_path, schema):
    prepared = prepare(write(tmp_path, GOOD), schema, "customers")
    columns = prepared.columns
    assert list(columns) == ["id", "age", "income", "member", "region", INDICATOR]
    assert columns["id"].tolist() == [1, 2, 3]
    assert schema.fixed.decode(columns["age"]).tolist() == [30, 40, 50]
    assert schema.fixed.decode(columns["income"]).tolist() == [100.5, -20, 0]
    assert schema.fixed.decode(columns["member"]).tolist() == [1, 0, 1]
    assert columns["region"].tolist() == [0, 1, 2]
    assert columns[INDICATOR].tolist() == [1, 1, 1]


@pytest.mark.parametrize("text, message", [
    (HEADER + "1,30,100.5,true,north\n2,,1,no,south\n",
     "row 2 (line 3), column age: missing value"),
    (HEADER + "1,abc,1,no,south\n", "row 1 (line 2), column age: 'abc' is not an integer"),
    (HEADER + "1,2.5,1,no,south\n", "column age: '2.5' is not an integer"),
    (HEADER + "1,30,nan,no,south\n", "column income: 'nan' is not a number"),
    (HEADER + "1,30,inf,no,south\n", "column income: 'inf' is not a number"),
    (HEADER + "1,30,1e400,no,south\n", "column income: inf is not a finite number"),
    (HEADER + "1,200,1,no,south\n", "column age: 200 is above the declared max 150"),
    (HEADER + "1,-1,1,no,south\n", "column age: -1 is below the declared min 0"),
    (HEADER + "1,30,2e6,no,south\n", "column income: 2e+06 is above the declared max 1e+06"),
    (HEADER + "1,30,1,maybe,south\n", "column member: 'maybe' is not a boolean"),
    (HEADER + "1,30,1,no,west\n", "column region: 'west' is not in the vocabulary"),
    (HEADER + "1,30,1,no,south\n1,31,2,no,north\n",
     "row 2 (line 3), column id: primary key (id) value (1,) repeats row 1"),
    (HEADER + ",30,1,no,south\n", "row 1 (line 2), column id: missing value"),
    (HEADER + "x1,30,1,no,south\n", "column id: 'x1' is not an integer key"),
    (HEADER + "99999999999999999999,30,1,no,south\n",
     "column id: integer key outside the 64-bit range"),
    ("id,agee,income,member,region\n1,30,1,no,south\n",
     "column 'agee' is not in table customers (did you mean 'age'?)"),
    ("id,age,income,member\n1,30,1,no\n", "missing column 'region'"),
    ("id,age,income,member,region,extra\n1,30,1,no,south,0\n",
     "column 'extra' is not in table customers"),
    ("id,age,age,income,member,region\n", "column 'age' appears twice"),
    ("", "empty file"),
    (HEADER, "no data rows, only a header; nothing was uploaded"),
    (HEADER + "+5,30,1,no,south\n", "row 1 (line 2), column id: '+5' is not an integer key"),
    (HEADER + "   ,30,1,no,south\n", "row 1 (line 2), column id: missing value"),
    (HEADER + "1,30,1000000.0000001,no,south\n",
     "column income: 1000000.0000001 is above the declared max 1e+06"),
    (HEADER + "1,30,-1000000.5,no,south\n", "column income: -1000000.5 is below the declared min"),
])
def test_bad_csv_input_is_refused_with_file_row_and_column(tmp_path, schema, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UploadError, match=re.escape(message)) as raised:
        prepare(path, schema, "customers")
    assert str(path) in str(raised.value)


def test_parquet_input_and_its_nans(tmp_path, schema):
    data = {"id": [5, 6], "age": [1, 2], "income": [1.5, 2.5], "member": [True, False],
            "region": ["east", "north"]}
    path = tmp_path / "customers.parquet"
    pq.write_table(pa.table(data), path)
    prepared = prepare(path, schema, "customers")
    assert prepared.columns["id"].tolist() == [5, 6]
    assert schema.fixed.decode(prepared.columns["income"]).tolist() == [1.5, 2.5]
    pq.write_table(pa.table({**data, "income": [1.0, float("nan")]}), path)
    with pytest.raises(UploadError, match=re.escape("row 2, column income: nan is not a finite")):
        prepare(path, schema, "customers")
    pq.write_table(pa.table({**data, "age": [1, None]}), path)
    with pytest.raises(UploadError, match="row 2, column age: missing value"):
        prepare(path, schema, "customers")


def test_unsupported_file_type(tmp_path, schema):
    with pytest.raises(UploadError, match="unsupported file type '.json'"):
        prepare(write(tmp_path, "{}", "data.json"), schema, "customers")


def test_where_filters_rows_and_padding_hides_the_count(tmp_path, schema):
    prepared = prepare(write(tmp_path, GOOD), schema, "customers",
                       where='age >= 40 and region in ["south", "north"]', pad_to=5,
                       dummy_prg=Prg.fresh())
    assert prepared.real_rows == 1 and prepared.rows == 5
    assert prepared.columns[INDICATOR].tolist() == [1, 0, 0, 0, 0]
    dummy_keys = prepared.columns["id"][1:]
    assert len(set(dummy_keys.tolist())) == 4 and np.all(dummy_keys >= np.uint64(HASHED_TAG))
    assert prepared.columns["age"][1:].tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("where, message", [
    ("agee > 3", "unknown column 'agee'"),
    ("__import__('os')", "Call is not allowed"),
    ("age >", "invalid syntax"),
    ("age + 1", "not a true/false condition"),
])
def test_bad_predicates_are_refused(tmp_path, schema, where, message):
    with pytest.raises(PredicateError, match=re.escape(message)):
        prepare(write(tmp_path, GOOD), schema, "customers", where=where)


def test_padding_must_fit(tmp_path, schema):
    with pytest.raises(UploadError, match="3 rows do not fit the public size 2"):
        prepare(write(tmp_path, GOOD), schema, "customers", pad_to=2)
    fixed = parse_schema(tomllib.loads(SCHEMA.replace('owner = "alice"',
                                                      'owner = "alice"\nrows = 4')))
    assert prepare(write(tmp_path, GOOD), fixed, "customers").rows == 4
    with pytest.raises(UploadError, match="differs from the schema's public size 4"):
        prepare(write(tmp_path, GOOD), fixed, "customers", pad_to=8)


def test_declared_key_domain_is_checked_and_padding_keys_follow_it(tmp_path, schema):
    narrow = parse_schema(tomllib.loads(SCHEMA.replace(
        'id = { type = "key" }', 'id = { type = "key", bits = 3 }', 1).replace(
        'customer_id = { type = "key" }', 'customer_id = { type = "key", bits = 3 }')))
    prepared = prepare(write(tmp_path, GOOD), narrow, "customers", pad_to=7)
    assert prepared.columns["id"].tolist() == [1, 2, 3, 8, 9, 10, 11]  # 2^3 + i
    with pytest.raises(UploadError, match=re.escape("9 padding rows do not fit the 3-bit key")):
        prepare(write(tmp_path, GOOD), narrow, "customers", pad_to=12)  # 3 real + at most 8
    outside = GOOD.replace("3,50,0,1,east", "8,50,0,1,east")
    with pytest.raises(UploadError, match=re.escape(
            "row 3 (line 4), column id: key 8 is outside the declared domain [0, 2^3)")):
        prepare(write(tmp_path, outside), narrow, "customers")
    with pytest.raises(UploadError, match="outside the declared domain"):
        prepare(write(tmp_path, GOOD.replace("1,30", "-1,30")), narrow, "customers")


def test_keys_encode_identically_for_every_owner():
    assert encode_keys([np.array([0, 7, 2**62 - 1])]).tolist() == [0, 7, 2**62 - 1]
    hashed = encode_keys([np.array([-1, 2**62])])
    assert np.all(hashed >= np.uint64(HASHED_TAG)) and np.all(hashed < np.uint64(2**63))
    strings = encode_keys([np.array(["a", "b"], dtype=object)])
    assert np.array_equal(strings, encode_keys([np.array(["a", "b"], dtype=object)]))
    composite = encode_keys([np.array(["a", "a"], dtype=object), np.array([1, 2])])
    assert composite[0] != composite[1] and len({*strings.tolist(), *composite.tolist()}) == 4


def test_orders_foreign_keys_match_customer_primary_keys(tmp_path, schema):
    orders = write(tmp_path, "order_id,line,customer_id,amount\nA,1,2,5\nA,2,-4,6\n", "o.csv")
    customers = write(tmp_path, HEADER + "2,30,1,no,south\n-4,30,1,no,south\n")
    fk = prepare(orders, schema, "orders").columns["customer_id"]
    pk = prepare(customers, schema, "customers").columns["id"]
    assert fk.tolist() == pk.tolist()


def test_hash_collisions_among_own_keys_are_refused(tmp_path, schema, monkeypatch):
    monkeypatch.setattr(owner_keys, "hash_key", lambda parts: HASHED_TAG + 1)
    path = write(tmp_path, "order_id,line,customer_id,amount\nA,1,2,5\nB,2,3,6\n", "o.csv")
    with pytest.raises(UploadError, match="hash to the same code"):
        prepare(path, schema, "orders")


def test_a_byte_order_mark_changes_nothing(tmp_path, schema):
    """With a BOM, Python's csv used to read the header as '\\ufefforder_id', so the string key
    was parsed as a number by Arrow and 0007 became 7: foreign keys stopped matching."""
    text = "order_id,line,customer_id,amount\n0007,1,2,5\n"
    plain = prepare(write(tmp_path, text, "plain.csv"), schema, "orders")
    marked = tmp_path / "marked.csv"
    marked.write_bytes(b"\xef\xbb\xbf" + text.encode())
    with_bom = prepare(marked, schema, "orders")
    for name, values in plain.columns.items():
        assert np.array_equal(with_bom.columns[name], values), name
    assert plain.columns["order_id"][0] == encode_keys([np.array(["0007"], dtype=object)])[0]


def test_one_trimming_rule_for_every_key(tmp_path, schema):
    """String keys were not trimmed while integer keys were: ' ORD-1 ' now is 'ORD-1'."""
    spaced = prepare(write(tmp_path, "order_id,line,customer_id,amount\n ORD-1 , 1 ,\t2 ,5\n",
                           "spaced.csv"), schema, "orders")
    tight = prepare(write(tmp_path, "order_id,line,customer_id,amount\nORD-1,1,2,5\n",
                          "tight.csv"), schema, "orders")
    for name, values in tight.columns.items():
        assert np.array_equal(spaced.columns[name], values), name
    inner = prepare(write(tmp_path, "order_id,line,customer_id,amount\nORD 1,1,2,5\n",
                          "inner.csv"), schema, "orders")
    assert inner.columns["order_id"][0] != tight.columns["order_id"][0]


def test_parquet_string_keys_follow_the_same_rule(tmp_path, schema):
    path = tmp_path / "orders.parquet"
    pq.write_table(pa.table({"order_id": [" ORD-1 "], "line": [1], "customer_id": [2],
                             "amount": [5.0]}), path)
    csv_path = write(tmp_path, "order_id,line,customer_id,amount\nORD-1,1,2,5\n", "o.csv")
    assert prepare(path, schema, "orders").columns["order_id"].tolist() == \
        prepare(csv_path, schema, "orders").columns["order_id"].tolist()


@pytest.mark.parametrize("data, message", [
    (b"order_id,line,customer_id,amount\nA,1,2,5\nB\xff,2,3,6\n",
     "row 2 (line 3), column order_id: not valid UTF-8"),
    (b"order_id,li\xffne,customer_id,amount\nA,1,2,5\n", "line 1 (the header) is not valid UTF-8"),
])
def test_invalid_utf8_names_the_row(tmp_path, schema, data, message):
    path = tmp_path / "orders.csv"
    path.write_bytes(data)
    with pytest.raises(UploadError, match=re.escape(message)):
        prepare(path, schema, "orders")


def test_an_empty_parquet_file_is_refused(tmp_path, schema):
    path = tmp_path / "customers.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.int64()), "age": pa.array([], pa.int64()),
                             "income": pa.array([], pa.float64()),
                             "member": pa.array([], pa.bool_()),
                             "region": pa.array([], pa.string())}), path)
    with pytest.raises(UploadError, match="no data rows"):
        prepare(path, schema, "customers")
