"""Schema validation: errors that name the problem."""

import re
import tomllib

import pytest

from tests.support.servers import SCHEMA
from twofold.owners.schema import SchemaError, parse_schema


def table(name, owner="alice", pk="id", fks=(), extra=None):
    columns = {"id": {"type": "key"}, **(extra or {})}
    for fk in fks:
        columns[f"{fk}_id"] = {"type": "key"}
    return name, {"owner": owner, "primary_key": pk, "columns": columns,
                  "foreign_keys": [{"columns": [f"{fk}_id"], "references": fk} for fk in fks]}


def schema(fact, *tables, **settings):
    return {"schema": {"fact": fact, **settings}, "tables": dict(tables)}


def test_the_example_schema_parses():
    parsed = parse_schema(tomllib.loads(SCHEMA))
    assert parsed.fact == "orders" and parsed.primary_private == "customers"
    orders = parsed.table("orders")
    assert orders.stored_columns == ["order_id", "line", "customer_id", "amount",
                                     "_key_order_id_line", "_valid"]
    assert len(parsed.hash) == 64


def test_snowflake_and_diamond_schemas_are_accepted():
    parse_schema(schema("f", table("f", fks=["a", "b"]), table("a", fks=["c"]),
                        table("b", fks=["c"]), table("c")))


@pytest.mark.parametrize("raw, message", [
    (schema("a", table("a", fks=["b"]), table("b", fks=["a"])), "cycle: a -> b -> a"),
    (schema("f", table("f", fks=["a"]), table("a", fks=["b"]), table("b", fks=["a"])),
     "cycle: a -> b -> a"),
    (schema("f", table("f"), table("g")), "exactly one table"),
    (schema("a", table("f", fks=["a"]), table("a")), "fact table 'a' is referenced"),
    (schema("f", table("f", fks=["ghost"])), "unknown table 'ghost'"),
    (schema("x", table("f")), "fact table 'x' is not defined"),
    (schema("f", table("f", pk="idd")), "unknown column 'idd' (did you mean 'id'?)"),
    (schema("f", table("f", extra={"age": {"type": "integer", "min": 5, "max": 1}})),
     "min 5 is above max 1"),
    (schema("f", table("f", extra={"age": {"type": "integer", "min": 0}})), "numeric 'max'"),
    (schema("f", table("f", extra={"big": {"type": "decimal", "min": 0, "max": 2.0**50}})),
     "fixed-point range"),
    (schema("f", table("f", extra={"c": {"type": "categorical", "values": ["a", "a"]}})),
     "distinct strings"),
    (schema("f", table("f", extra={"c": {"type": "text"}})), "type must be one of"),
    (schema("f", table("f", extra={"_x": {"type": "boolean"}})), "reserved"),
    (schema("f", table("f", pk="age", extra={"age": {"type": "integer", "min": 0, "max": 9}})),
     'must have type = "key"'),
    (schema("f", table("f"), primary_private="nope"), "primary_private table 'nope'"),
])
def test_invalid_schemas_name_the_problem(raw, message):
    with pytest.raises(SchemaError, match=re.escape(message)):
        parse_schema(raw)


def test_foreign_key_type_must_match_the_primary_key():
    raw = schema("f", table("f", fks=["a"]), table("a"))
    raw["tables"]["a"]["columns"]["id"] = {"type": "key", "format": "string"}
    with pytest.raises(SchemaError, match="does not match the type"):
        parse_schema(raw)


def test_declared_key_widths():
    """bits = b: keys in [0, 2^b), sorted on b + 1 bits (padding keys start at 2^b); a foreign
    key declares the same bits as the key it references; keys without bits sort on 63."""
    from twofold.owners.schema import key_sort_bits

    raw = schema("f", table("f", fks=["a"]), table("a"))
    for column in ("id", "a_id"):
        raw["tables"]["f" if column == "a_id" else "a"]["columns"][column]["bits"] = 24
    parsed = parse_schema(raw)
    assert key_sort_bits(parsed.table("a").column("id")) == 25
    assert key_sort_bits(parsed.table("f").column("id")) == 63
    raw["tables"]["f"]["columns"]["a_id"]["bits"] = 23
    with pytest.raises(SchemaError, match=re.escape("does not match the type (format, bits)")):
        parse_schema(raw)
    for bad in (0, 62, True, 2.5, "24"):
        raw["tables"]["a"]["columns"]["id"]["bits"] = bad
        with pytest.raises(SchemaError, match="bits .* must be an integer from 1 to 61"):
            parse_schema(raw)
    raw["tables"]["a"]["columns"]["id"] = {"type": "key", "format": "string", "bits": 8}
    with pytest.raises(SchemaError, match="for an integer key"):
        parse_schema(raw)
