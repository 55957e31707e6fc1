"""Missing values: a nullable column's empty cells travel as a hidden shared flag; a job drops
the rows with a missing cell in a column it reads (obliviously) or imputes a declared public
value; against pandas' dropna and fillna on the same data."""

import asyncio
import io

import numpy as np
import pandas as pd
import pytest

from tests.support.harness import OPEN_POLICY
from tests.support.servers import make_deployment, running, upload_file
from twofold.client import run_job, submit_job
from twofold.mpc.rpc import ServiceError
from twofold.owners.prepare import prepare
from twofold.owners.read import UploadError

pytestmark = pytest.mark.integration  # two servers, in process or not

SCHEMA = """
[schema]
fact = "visits"

[tables.patients]
owner = "alice"
primary_key = "id"
[tables.patients.columns]
id = { type = "key" }
age = { type = "integer", min = 0, max = 120, nullable = true }
smoker = { type = "boolean", nullable = true }
region = { type = "categorical", values = ["north", "south"], nullable = true }

[tables.visits]
owner = "bob"
primary_key = "id"
foreign_keys = [{ columns = ["patient"], references = "patients" }]
[tables.visits.columns]
id = { type = "key" }
patient = { type = "key" }
cost = { type = "decimal", min = 0, max = 1000, nullable = true }
"""

PATIENTS = "id,age,smoker,region\n" + "".join(
    f"{i},{'' if i % 5 == 0 else 20 + i},{'' if i % 7 == 0 else ('yes' if i % 2 else 'no')},"
    f"{'  ' if i % 4 == 0 else ['north', 'south'][i % 2]}\n" for i in range(1, 41))
VISITS = "id,patient,cost\n" + "".join(
    f"{i},{1 + i % 40},{'' if i % 6 == 0 else f'{i * 3.5:.1f}'}\n" for i in range(120))


@pytest.fixture
def deployment(tmp_path):
    (tmp_path / "patients.csv").write_text(PATIENTS)
    (tmp_path / "visits.csv").write_text(VISITS)
    return make_deployment(tmp_path, SCHEMA, owners=("alice", "bob", "carol"))


def joined() -> pd.DataFrame:
    patients = pd.read_csv(io.StringIO(PATIENTS), skipinitialspace=True)
    patients["region"] = patients["region"].replace(r"^\s*$", np.nan, regex=True)
    patients["smoker"] = patients["smoker"].map({"yes": 1.0, "no": 0.0})
    visits = pd.read_csv(io.StringIO(VISITS))
    return visits.merge(patients, left_on="patient", right_on="id", suffixes=("", "_p"))


def run(deployment, *specs):
    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "patients", policy=OPEN_POLICY)
            await upload_file(deployment, "bob", "visits", policy=OPEN_POLICY)
            return [(await run_job(deployment.client("carol"), spec, timeout_s=120))[1].data
                    for spec in specs]
    return asyncio.run(scenario())


def test_missing_cells_are_stored_as_zero_with_a_flag(deployment):
    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "patients")
    asyncio.run(scenario())
    stored = deployment.stored("patients")
    frame = pd.read_csv(io.StringIO(PATIENTS))
    assert stored["_null_age"].tolist() == frame.age.isna().astype(int).tolist()
    assert not stored["age"][stored["_null_age"] == 1].any()
    assert stored["_null_region"].tolist() == [int(i % 4 == 0) for i in range(1, 41)]


STATISTICS = """
[job]
recipients = ["carol"]
{nulls}
[statistics]
columns = ["visits.cost", "patients.age"]
histogram = ["patients.region"]
"""
GROUPS = """
[job]
recipients = ["carol"]
{nulls}
[aggregate]
group_by = ["patients.region"]
count = true
sum = ["visits.cost"]
"""


def test_drop_and_impute_match_pandas(deployment):
    drop = ""
    impute = ('nulls = "impute"\nimpute = { "visits.cost" = 10.0, "patients.age" = 50, '
              '"patients.region" = "south" }')
    stats_drop, stats_impute, groups_drop = run(
        deployment, STATISTICS.format(nulls=drop), STATISTICS.format(nulls=impute),
        GROUPS.format(nulls=drop))
    frame = joined()
    kept = frame.dropna(subset=["cost", "age", "region"])
    values = stats_drop["values"]
    assert values["count"] == len(kept)
    assert values["visits.cost"]["sum"] == pytest.approx(kept.cost.sum(), abs=1e-3)
    assert values["patients.age"]["mean"] == pytest.approx(kept.age.mean(), abs=1e-3)
    assert values["histogram(patients.region)"] == kept.region.value_counts().to_dict()
    filled = frame.fillna({"cost": 10.0, "age": 50, "region": "south"})
    values = stats_impute["values"]
    assert values["count"] == len(filled)
    assert values["visits.cost"]["sum"] == pytest.approx(filled.cost.sum(), abs=1e-3)
    assert values["patients.age"]["max"] == filled.age.max()
    assert values["histogram(patients.region)"] == filled.region.value_counts().to_dict()
    rows = groups_drop["rows"]
    kept = frame.dropna(subset=["cost", "region"])  # the group-by reads no age
    expected = kept.groupby("region").cost.agg(["size", "sum"])
    assert rows["patients.region"] == expected.index.tolist()
    assert rows["count"] == expected["size"].tolist()
    assert np.allclose(rows["sum(visits.cost)"], expected["sum"])


@pytest.mark.parametrize("nulls, message", [
    ('nulls = "zero"', 'nulls must be "drop" or "impute"'),
    ('impute = { "visits.cost" = 1 }', 'goes with nulls = "impute"'),
    ('nulls = "impute"\nimpute = { "visits.cost" = 1 }',
     'needs a value for patients.age, patients.region'),
    ('nulls = "impute"\nimpute = { "visits.cost" = 1, "patients.age" = 500, '
     '"patients.region" = "north" }', "impute value 500 must be a number in"),
    ('nulls = "impute"\nimpute = { "visits.cost" = 1, "patients.age" = 5, '
     '"patients.region" = "west" }', "is not in patients.region's vocabulary"),
])
def test_bad_null_rules_are_refused(deployment, nulls, message):
    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "patients", policy=OPEN_POLICY)
            await upload_file(deployment, "bob", "visits", policy=OPEN_POLICY)
            with pytest.raises(ServiceError, match=message):
                await submit_job(deployment.client("carol"), STATISTICS.format(nulls=nulls))
    asyncio.run(scenario())


def test_only_nullable_columns_may_be_empty(tmp_path, deployment):
    schema = deployment.schema
    (tmp_path / "bad.csv").write_text("id,patient,cost\n1,,3.5\n")
    with pytest.raises(UploadError, match=r"row 1 \(line 2\), column patient: missing value "
                       r"\(cells may be empty only in a column the schema declares "
                       r"nullable = true"):
        prepare(tmp_path / "bad.csv", schema, "visits")
    # an owner's --where sees a missing cell as not a number: it never passes a comparison
    kept = prepare(deployment.folder / "patients.csv", schema, "patients", where="age > 30")
    ages = pd.read_csv(io.StringIO(PATIENTS)).age
    assert kept.real_rows == int((ages > 30).sum())
