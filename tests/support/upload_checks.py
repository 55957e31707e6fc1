"""A schema with every kind of stored column, honest tables for it, and a modified owner
client: what tests/test_upload_checks.py tampers with before sharing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.support.harness import run_pair, shares_of
from twofold.mpc.prg import Prg
from twofold.mpc.shares import Additive
from twofold.owners.prepare import PreparedTable, prepare
from twofold.owners.schema import Schema
from twofold.servers.upload_checks import upload_is_valid

# people: a declared-width primary key, nullable numeric and categorical columns, a boolean;
# visits: a composite primary key (a hashed part, a declared-width part) and a foreign key
CHECKED_SCHEMA = """
[schema]
fact = "visits"

[tables.people]
owner = "alice"
primary_key = "id"
[tables.people.columns]
id = { type = "key", bits = 10 }
age = { type = "integer", min = 18, max = 120 }
income = { type = "decimal", min = -1000, max = 1000, nullable = true }
member = { type = "boolean" }
region = { type = "categorical", values = ["north", "south", "east"], nullable = true }

[tables.visits]
owner = "bob"
primary_key = ["site", "day"]
foreign_keys = [{ columns = ["person"], references = "people" }]
[tables.visits.columns]
site = { type = "key", format = "string" }
day = { type = "key", bits = 12 }
person = { type = "key", bits = 10 }
minutes = { type = "decimal", min = 0, max = 600 }
"""

# 37 people (a size no power of two): the extremes of every range, missing cells
PEOPLE = "id,age,income,member,region\n" + "".join(
    f"{i},{[18, 120, 40][i % 3]},{['-1000', '1000', '', '12.5'][i % 4]},"
    f"{'yes' if i % 2 else 'no'},{['north', 'south', 'east', ''][i % 4]}\n"
    for i in range(3, 40))
VISITS = "site,day,person,minutes\n" + "".join(
    f"s{i % 5},{i},{3 + i % 37},{[0, 600, 7.25][i % 3]}\n" for i in range(41))


def write_tables(folder: Path) -> None:
    (folder / "people.csv").write_text(PEOPLE)
    (folder / "visits.csv").write_text(VISITS)


def honest(folder: Path, schema: Schema, table: str, pad_to: int | None = None
           ) -> PreparedTable:
    return prepare(folder / f"{table}.csv", schema, table, pad_to=pad_to, dummy_prg=Prg.fresh())


def checked_on_shares(schema: Schema, prepared: PreparedTable, source: str = "dealer",
                      record_sizes: bool = False):
    """Both servers' verdict on the prepared (possibly tampered) columns, shared at random;
    with record_sizes, also the sizes of every message each server sent."""
    rng = np.random.default_rng()
    pairs = {name: shares_of(values, rng) for name, values in prepared.columns.items()}

    async def program(party):
        columns = {name: Additive(pair[party.id]) for name, pair in pairs.items()}
        return await upload_is_valid(party, schema, prepared.table, columns)

    result = run_pair(program, timeout_s=60.0, record_sizes=record_sizes, source=source)
    verdicts = result[0] if record_sizes else result
    assert verdicts[0] == verdicts[1], "both servers open the same bit"
    return (verdicts[0], result[1]) if record_sizes else verdicts[0]
