"""Declared ranges enforced on shares (servers/ranges.py), against a modified owner client: bob
encodes his orders as usual, then overwrites some of them with words no honest client would
send (an amount 100 times the declared maximum, a huge negative word, an indicator of 2) and
shares them. Every job computes on the data clamped to the declared ranges: a noisy sum stays
within n * max and its noise, exact statistics equal the plaintext of the clamped data, a
level-5 model is the clamped data's, and a row whose indicator is not 1 is no row."""

import asyncio
import tomllib

import numpy as np
import pytest

from tests.support.harness import OPEN_POLICY, run_pair, shares_of
from tests.support.servers import make_deployment, running, store_unchecked, upload_file
from twofold.client import run_job
from twofold.mpc.prg import Prg
from twofold.mpc.ring import FixedPoint
from twofold.owners.prepare import prepare
from twofold.owners.schema import INDICATOR, parse_schema
from twofold.servers.ranges import enforce_declared

pytestmark = pytest.mark.integration  # two servers, in process or not

FIXED = FixedPoint()
MAX_AMOUNT = 10_000.0  # orders.amount's declared range is [0, 10000]
CUSTOMERS = 400
# one order per customer, its amount on the line age = 20 + amount / 200
AGES = 20 + np.arange(CUSTOMERS) % 51
AMOUNTS = (AGES - 20) * 200.0
# the rows bob tampers with: ages 70, 20 and 27; the first two hold the largest and the
# smallest amount, so the clamped data stay on the line
HUGE, NEGATIVE, TWICE = 50, 0, 7
TAMPERED = {HUGE: FIXED.encode(100 * MAX_AMOUNT),  # clamped to the maximum
            NEGATIVE: np.uint64(2**63 + 12345)}  # about -2^63: clamped to 0
NOISY = """
[job]
recipients = ["carol"]
[statistics]
columns = ["orders.amount"]
noise = { epsilon = 10.0, delta = 1e-6, tau = 1 }
"""
EXACT = '[job]\nrecipients = ["carol"]\n[statistics]\ncolumns = ["orders.amount"]\n'
TRAIN = """
[job]
recipients = ["carol"]
[train]
model = "linear"
features = ["orders.amount"]
label = "customers.age"
iterations = 400
batch_size = 200
learning_rate = 0.25
privacy_level = 5
epsilon = 999.0
delta = 1e-5
tau = 1
min_join_size = 200
size_check_epsilon = 1.0
"""


def clamped_amounts() -> np.ndarray:
    """What the servers should compute on: bob's words clamped in plaintext."""
    words = FIXED.encode(AMOUNTS)
    for row, word in TAMPERED.items():
        words[row] = word
    low, high = FIXED.encode([0.0, MAX_AMOUNT]).view(np.int64)
    return FIXED.decode(np.clip(words.view(np.int64), low, high).view(np.uint64))


def store_tampered_orders(deployment) -> None:
    """bob's modified client: the usual encoding, then out-of-range words, then shares. The
    servers refuse such an upload today (tests/test_upload_checks.py), so they are written
    straight into their stores, as a version made live before that check existed."""
    prepared = prepare(deployment.folder / "orders.csv", deployment.schema, "orders",
                       dummy_prg=Prg.fresh())
    # rows go in key order: find each order by its customer, who is its row of the file
    row_of = {int(customer): row for row, customer in enumerate(prepared.columns["customer_id"])}
    for customer, word in TAMPERED.items():
        prepared.columns["amount"][row_of[customer]] = word
    prepared.columns[INDICATOR][row_of[TWICE]] = 2
    store_unchecked(deployment, prepared, "bob", OPEN_POLICY)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """One deployment, the tampered upload, and the three jobs' revealed results."""
    folder = tmp_path_factory.mktemp("ranges")
    (folder / "customers.csv").write_text("id,age,income,member,region\n" + "".join(
        f"{i},{age},0,yes,north\n" for i, age in enumerate(AGES)))
    (folder / "orders.csv").write_text("order_id,line,customer_id,amount\n" + "".join(
        f"o{i},0,{i},{amount}\n" for i, amount in enumerate(AMOUNTS)))
    deployment = make_deployment(folder, owners=("alice", "bob", "carol"))
    store_tampered_orders(deployment)

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers", policy=OPEN_POLICY)
            return {name: (await run_job(deployment.client("carol"), spec, timeout_s=300))[1].data
                    for name, spec in (("noisy", NOISY), ("exact", EXACT), ("model", TRAIN))}

    return asyncio.run(scenario())


def test_a_noisy_sum_stays_within_the_declared_range(results):
    noisy = results["noisy"]
    got = noisy["values"]["orders.amount"]["sum"]
    # each server adds noise of this deviation: their sum is far inside 8 sigma * sqrt(2)
    tails = 8 * noisy["dp_ledger"]["sigmas"]["sum(orders.amount)"] * 2 ** 0.5
    assert tails < 100 * MAX_AMOUNT  # the 100-times amount alone would stand out
    assert -tails < got < CUSTOMERS * MAX_AMOUNT + tails
    assert abs(got - np.delete(clamped_amounts(), TWICE).sum()) < tails


def test_exact_statistics_are_those_of_the_clamped_data(results):
    amount = results["exact"]["values"]["orders.amount"]
    clamped = np.delete(clamped_amounts(), TWICE)  # an indicator of 2 is no real row
    assert amount["count"] == CUSTOMERS - 1
    assert amount["sum"] == clamped.sum()  # multiples of 200: exact in fixed point
    assert (amount["min"], amount["max"]) == (0.0, MAX_AMOUNT)
    assert amount["variance"] == pytest.approx(clamped.var(), rel=1e-9)


def test_a_level_5_model_is_the_clamped_datas(results):
    """The clamped data lie on age = 20 + amount / 200 exactly, so that line is SGD's fixed
    point whatever its batches; what moves the model is the DP noise: at epsilon 999 a
    multiplier of 0.44 on a clip of 1 per server, over batches of about 200 rows at a step of
    0.25, about 0.3 years at either end of the range (at most 0.6 in 12 runs). Without the
    clamp, 100 times the largest amount pushes the weights by 0.25 * 141 / 200 whenever its
    row is drawn (every other step): 10 to 15 years off in 5 runs."""
    model = results["model"]
    assert model["released"]
    slope, intercept = np.polyfit(clamped_amounts(), AGES, 1)
    assert (slope, intercept) == pytest.approx((1 / 200, 20))
    ends = np.array([0.0, MAX_AMOUNT])
    predicted = model["intercept"] + model["coefficients"]["orders.amount"] * ends
    assert np.max(np.abs(predicted - (intercept + slope * ends))) < 2.0  # years, in [20, 70]


PATIENTS = """
[schema]
fact = "patients"
[tables.patients]
owner = "alice"
primary_key = ["id", "site"]
[tables.patients.columns]
id = { type = "key" }
site = { type = "key" }
age = { type = "integer", min = 18, max = 120, nullable = true }
smoker = { type = "boolean" }
region = { type = "categorical", values = ["north", "south", "east"] }
weight = { type = "decimal", min = -5.5, max = 300 }
"""


def words(values) -> np.ndarray:
    return np.array([v % 2**64 for v in values], dtype=np.uint64)


def code(value: float) -> int:
    return int(FIXED.encode(value))


def test_every_kind_of_column_is_clamped_to_its_domain(rng):
    """Each column a job computes with, as a modified client could send it (weight, which the
    job does not compute with, and the keys are left alone): numbers to the codes of [min,
    max], booleans to those of [0, 1], categorical codes to the vocabulary; the indicator and
    null flags become [word == 1]; a missing age (flag 1) is 0 again though 0 is below the
    declared 18."""
    schema = parse_schema(tomllib.loads(PATIENTS))
    one = code(1.0)
    huge = rng.integers(0, 2**64, (4, 7), dtype=np.uint64, endpoint=False)
    # rows: honest, missing, too old, -2^63, a value beside its set flag, flags of 5 and -1
    sent = {"id": huge[0], "site": huge[1], "_key_id_site": huge[2], "weight": huge[3],
            "age": words([code(30), 0, code(500), 2**63, code(100), code(50), code(50)]),
            "_null_age": words([0, 1, 0, 0, 1, 5, -1]),
            "smoker": words([one, 0, 2**40, -3, 7, one, 0]),
            "region": words([0, 1, 2, 3, 2**62, -1, 2**63]),
            INDICATOR: words([1, 1, 2, -5, 0, 1, 2**63 + 1])}
    expected = {**sent, "age": words([code(30), 0, code(120), code(18), 0, code(50),
                                      code(50)]),
                "_null_age": words([0, 1, 0, 0, 1, 0, 0]),
                "smoker": words([one, 0, one, 0, 7, one, 0]),
                "region": words([0, 1, 2, 2, 2, 0, 0]),
                INDICATOR: words([1, 1, 0, 0, 0, 1, 0])}
    wanted = {"patients": ["_key_id_site", "_null_age", "age", "id", "region", "smoker"]}
    computed_on = {"patients": ["age", "id", "region", "smoker"]}  # a key in a feature: kept
    shares = {name: shares_of(values, rng) for name, values in sent.items()}

    async def program(party, table):
        return (await enforce_declared(party, schema, {"patients": table}, wanted,
                                       computed_on))["patients"]

    first, second = run_pair(program, ({n: s[0] for n, s in shares.items()},),
                             ({n: s[1] for n, s in shares.items()},))
    assert set(first) == set(second) == set(sent)
    got = {name: first[name] + second[name] for name in sent}
    for name, values in expected.items():
        assert np.array_equal(got[name], values), name
