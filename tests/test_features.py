"""Features and labels as analysts write them: expressions over joined columns (arithmetic,
comparisons giving 0/1, onehot of a categorical column), computed on shares and checked
against pandas; a model trained on them against scikit-learn; and what is refused."""

import asyncio

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from tests.support.harness import OPEN_POLICY, reconstruct
from tests.support.joins import (
    random_schema,
    random_tables,
    reference_join,
    run_on_shares,
    share_tables,
)
from tests.support.servers import make_deployment, running, upload_file
from twofold.client import run_job, submit_job
from twofold.models import predict
from twofold.mpc.rpc import ServiceError
from twofold.sorting_join.multiway import run_join
from twofold.sorting_join.plan import plan_join
from twofold.sorting_join.predicate import Expression, PredicateError

pytestmark = pytest.mark.integration  # two servers, in process or not

EXPRESSIONS = [  # text, its pandas reference over the joined frame
    ("t0.x * 2 - t1.x", lambda d: d["t0.x"] * 2 - d["t1.x"]),
    ("t0.x * t1.x / 1000", lambda d: d["t0.x"] * d["t1.x"] / 1000),
    ("t0.x > t1.x", lambda d: (d["t0.x"] > d["t1.x"]).astype(float)),
    ("t0.c == 'v' or t1.c in ['u', 'w']",
     lambda d: ((d["t0.c"] == 1) | d["t1.c"].isin([0, 2])).astype(float)),
]


def test_expressions_on_shares_match_pandas():
    rng = np.random.default_rng(5)
    schema = random_schema(rng, 2)
    frames = random_tables(rng, schema, max_rows=80)
    sides = share_tables(schema, frames, rng)
    plan = plan_join(schema)
    expressions = [Expression(schema, text, condition=False) for text, _ in EXPRESSIONS]

    async def program(party, tables):
        root = await run_join(party, plan, tables, set().union(*(e.columns for e in expressions))
                              | {"t0.id"})
        return [root.valid, root.column("t0.id"),
                *[await e.evaluate_fixed(party, root.columns) for e in expressions]]

    valid, ids, *values = reconstruct(run_on_shares(program, sides))
    joined = reference_join(schema, frames).set_index("t0.id")
    keep = valid == 1
    assert sorted(ids[keep].tolist()) == sorted(joined.index.tolist())
    for (text, reference), column in zip(EXPRESSIONS, values, strict=True):
        got = pd.Series(schema.fixed.decode(column[keep]), index=ids[keep].view(np.int64))
        want = reference(joined).loc[got.index]
        assert np.allclose(got, want, atol=2e-3), text


SCHEMA = """
[schema]
fact = "ratings"
primary_private = "users"

[tables.users]
owner = "alice"
primary_key = "id"
[tables.users.columns]
id = { type = "key" }
age = { type = "integer", min = 18, max = 80 }
gender = { type = "categorical", values = ["f", "m", "x"] }
country = { type = "integer", min = 7, max = 7 }

[tables.ratings]
owner = "bob"
primary_key = "id"
foreign_keys = [{ columns = ["user"], references = "users" }]
[tables.ratings.columns]
id = { type = "key" }
user = { type = "key" }
hour = { type = "integer", min = 0, max = 23 }
price = { type = "decimal", min = 0, max = 50 }
rating = { type = "integer", min = 1, max = 5 }
"""
FEATURES = ["onehot(users.gender)", "users.age * 2", "ratings.hour >= 12",
            "ratings.price * users.age / 100", "users.country"]


def world(tmp_path):
    """Users of genders f and m only ('x' is declared, never seen; country is constant); the
    rating is high mostly for evening ratings, older users and women."""
    rng = np.random.default_rng(9)
    users = pd.DataFrame({"id": np.arange(400), "age": rng.integers(18, 81, 400),
                          "gender": rng.choice(["f", "m"], 400), "country": 7})
    ratings = pd.DataFrame({"id": np.arange(1200), "user": rng.integers(0, 400, 1200),
                            "hour": rng.integers(0, 24, 1200),
                            "price": np.round(rng.uniform(0, 50, 1200), 2)})
    joined = ratings.merge(users, left_on="user", right_on="id", suffixes=("", "_u"))
    score = (2.0 * (joined.hour >= 12) + 0.04 * (joined.age - 50) + 0.8 * (joined.gender == "f")
             - 1.2 + rng.logistic(0, 0.5, len(joined)))
    ratings["rating"] = np.clip(np.round(3 + score), 1, 5).astype(int)
    users.to_csv(tmp_path / "users.csv", index=False)
    ratings.to_csv(tmp_path / "ratings.csv", index=False)
    return make_deployment(tmp_path, SCHEMA, owners=("alice", "bob", "carol")), joined.merge(
        ratings[["id", "rating"]], on="id")


def derived(joined: pd.DataFrame) -> np.ndarray:
    """The features in pandas, in the model's order (onehot expands to f, m, x)."""
    return np.column_stack([joined.gender == "f", joined.gender == "m", joined.gender == "x",
                            joined.age * 2, joined.hour >= 12,
                            joined.price * joined.age / 100, joined.country]).astype(float)


def test_a_model_on_expressions_matches_scikit_learn(tmp_path):
    deployment, joined = world(tmp_path)
    spec = {"job": {"recipients": ["carol"]},
            "train": {"model": "logistic", "features": FEATURES, "label": "ratings.rating >= 4",
                      "iterations": 1500, "batch_size": 32, "learning_rate": 1.0,
                      "privacy_level": 3}}

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "users", policy=OPEN_POLICY)
            await upload_file(deployment, "bob", "ratings", policy=OPEN_POLICY)
            return (await run_job(deployment.client("carol"), spec, timeout_s=300))[1].data

    model = asyncio.run(scenario())
    assert model["features"] == ["users.gender == 'f'", "users.gender == 'm'",
                                 "users.gender == 'x'", *FEATURES[1:]]
    x, y = derived(joined), (joined.rating >= 4).to_numpy()
    reference = LogisticRegression(max_iter=2000).fit(x, y)
    mpc = float(np.mean(predict(model, x) == y))
    assert mpc > 0.7 and mpc >= reference.score(x, y) - 0.03


@pytest.mark.parametrize("features, label, message", [
    (["users.age * users.age * users.age * users.age * users.age"], "ratings.rating >= 4",
     "a product of two columns must stay below"),
    (["onehot(users.age)"], "ratings.rating >= 4", "onehot needs a categorical column"),
    (["users.gender"], "ratings.rating >= 4", "is categorical: as features use onehot"),
    (["users.age"], "ratings.rating", "logistic regression needs a 0/1 label"),
    (["users.age / 0"], "ratings.rating >= 4", "division by zero"),
    (["users.id"], "ratings.rating >= 4", "is not a number or a condition"),
])
def test_bad_features_are_refused_with_their_line(tmp_path, features, label, message):
    deployment, _ = world(tmp_path)
    spec = {"job": {"recipients": ["carol"]},
            "train": {"model": "logistic", "features": features, "label": label,
                      "iterations": 10, "batch_size": 8, "learning_rate": 1.0,
                      "privacy_level": 3}}

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "users", policy=OPEN_POLICY)
            await upload_file(deployment, "bob", "ratings", policy=OPEN_POLICY)
            with pytest.raises(ServiceError, match=r"line \d+: .*" + message):
                await submit_job(deployment.client("carol"), spec)

    asyncio.run(scenario())


def test_a_condition_must_not_be_a_number():
    schema = random_schema(np.random.default_rng(1), 1)
    with pytest.raises(PredicateError, match="not a true/false condition"):
        Expression(schema, "t0.x * 2")
    assert Expression(schema, "t0.x * 2", condition=False).high == 2000
