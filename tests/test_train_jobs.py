"""Training and prediction jobs end to end: owners upload the breast cancer data split over
two tables (plus a third joined by FK), a level 4 or 5 model is trained, only its recipient
fetches it, and a prediction job reports accuracy on the test split inside MPC."""

import asyncio
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from tests.support.harness import OPEN_POLICY
from tests.support.servers import make_deployment, reconstruct_outputs, running
from twofold.client import (
    cancel_job,
    fetch_outputs,
    fetch_result,
    job_status,
    run_job,
    submit_job,
    wait_for_job,
)
from twofold.ml.dp import Ledger, spent_epsilon
from twofold.models import predict, predict_probability
from twofold.mpc.prg import Prg
from twofold.mpc.rpc import ServiceError
from twofold.owners.policy import unrestricted
from twofold.owners.prepare import prepare
from twofold.owners.upload import upload

pytestmark = pytest.mark.integration  # two servers, in process or not

FEATURES = 6


def cancer_schema(x):
    lines = ['[schema]\nfact = "exams"\nprimary_private = "patients"\n',
             '[tables.exams]\nowner = "alice"\nprimary_key = "id"\n'
             'foreign_keys = [{ columns = ["patient"], references = "patients" }, '
             '{ columns = ["clinic"], references = "clinics" }]\n[tables.exams.columns]\n'
             'id = { type = "key" }\npatient = { type = "key" }\nclinic = { type = "key" }\n'
             'label = { type = "boolean" }\n'
             'split = { type = "categorical", values = ["train", "test"] }\n']
    for i in range(FEATURES // 2):
        lines.append(f"f{i} = {{ type = \"decimal\", "
                     f"min = {x[:, i].min()}, max = {x[:, i].max()} }}\n")
    lines.append('[tables.patients]\nowner = "bob"\nprimary_key = "id"\n[tables.patients.columns]\n'
                 'id = { type = "key" }\n')
    for i in range(FEATURES // 2, FEATURES):
        lines.append(f"f{i} = {{ type = \"decimal\", "
                     f"min = {x[:, i].min()}, max = {x[:, i].max()} }}\n")
    lines.append('[tables.clinics]\nowner = "alice"\nprimary_key = "id"\n[tables.clinics.columns]\n'
                 'id = { type = "key" }\nsize = { type = "decimal", min = 0, max = 10 }\n')
    return "".join(lines)


@pytest.fixture
def world(tmp_path):
    data = load_breast_cancer()
    x, y = np.round(data.data[:, :FEATURES], 4), data.target
    n = len(y)
    split = np.where(np.random.default_rng(0).random(n) < 0.7, "train", "test")
    pd.DataFrame({"id": range(n), "patient": range(n), "clinic": np.arange(n) % 3, "label": y,
                  "split": split, **{f"f{i}": x[:, i] for i in range(FEATURES // 2)}}
                 ).to_csv(tmp_path / "exams.csv", index=False)
    pd.DataFrame({"id": range(n), **{f"f{i}": x[:, i] for i in range(FEATURES // 2, FEATURES)}}
                 ).to_csv(tmp_path / "patients.csv", index=False)
    pd.DataFrame({"id": range(3), "size": [1.0, 5.0, 9.0]}).to_csv(tmp_path / "clinics.csv",
                                                                   index=False)
    deployment = make_deployment(tmp_path, cancer_schema(x), owners=("alice", "bob", "carol"))
    return deployment, x, y, split


FEATURE_LIST = ", ".join([f'"exams.f{i}"' for i in range(3)]
                         + [f'"patients.f{i}"' for i in range(3, 6)])


def train_spec(level, extra=""):
    return f"""
[job]
recipients = ["carol"]
where = "exams.split == 'train'"
[train]
model = "logistic"
features = [{FEATURE_LIST}]
label = "exams.label"
iterations = 150
batch_size = 32
learning_rate = {8.0 if level == 5 else 1.0}
privacy_level = {level}
min_join_size = 100
{extra}
"""


def predict_spec(model_job, label=True):
    return f"""
[job]
recipients = ["carol"]
where = "exams.split == 'test'"
[predict]
model_job = "{model_job}"
features = [{FEATURE_LIST}]
{'label = "exams.label"' if label else ''}
"""


async def upload_all(deployment, policies=None):
    schema = deployment.schema
    for name in ("exams", "patients", "clinics"):
        prepared = prepare(deployment.folder / f"{name}.csv", schema, name, dummy_prg=Prg.fresh())
        policy = (policies or {}).get(name, OPEN_POLICY)
        await upload(prepared, schema, deployment.owner_keys[schema.table(name).owner],
                     deployment.addresses(), timeout_s=30, policy=policy)


async def run_carol_job(deployment, spec):
    job, result = await run_job(deployment.client("carol"), spec, timeout_s=300)
    return job, result.data


def raw_accuracy(model, x, y):
    return float(np.mean(predict(model, x) == y))


def test_train_then_predict_level_4(world):
    """Also as a malicious recipient: the raw shares of each output hold exactly the declared
    result (the weights and the released bit; predictions for the test rows beside their ids,
    then rows of zeros; two counts)."""
    deployment, x, y, split = world
    carry = predict_spec("JOB", label=False).replace("[predict]", "[predict]\ncolumns = "
                                                                 '["exams.id"]')

    async def scenario():
        async with running(deployment):
            await upload_all(deployment)
            job, model = await run_carol_job(deployment, train_spec(4))
            scored, accuracy = await run_carol_job(deployment, predict_spec(job))
            predicted, predictions = await run_carol_job(deployment, carry.replace("JOB", job))
            with pytest.raises(ServiceError, match="no job"):  # bob is not a recipient
                await fetch_result(deployment.client("bob"), job)
            # a prediction reads exactly the model's features: any other column would make
            # its predictions a row output of that column
            other = predict_spec(job).replace(f"features = [{FEATURE_LIST}]",
                                              'features = ["patients.f3"]')
            with pytest.raises(ServiceError, match="the features must be the model's: "):
                await submit_job(deployment.client("carol"), other)
            keys = deployment.client("carol")
            raw = [reconstruct_outputs(await fetch_outputs(keys, j))
                   for j in (job, predicted, scored)]
            return model, accuracy, predictions, raw

    model, accuracy, predictions, (raw_model, raw_predictions, raw_accuracy_) = asyncio.run(
        scenario())
    assert model["info"]["privacy_level"] == 4 and model["info"]["join_size"] is None
    test = split == "test"
    expected = raw_accuracy(model, x[test], y[test])
    metrics = accuracy["metrics"]
    assert metrics["count"] == int(test.sum())
    assert abs(metrics["accuracy"] - expected) <= 0.01 and expected > 0.85
    assert set(raw_model) == {"weights", "_released"} and len(raw_model["weights"]) == 7
    assert raw_model["_released"].tolist() == [1]
    assert set(raw_accuracy_) == {"count", "true_positive", "false_positive", "false_negative"}
    assert raw_accuracy_["count"].tolist() == [metrics["count"]]
    kept = raw_predictions["_valid"] == 1
    assert sorted(raw_predictions["exams.id"][kept].tolist()) == np.flatnonzero(test).tolist()
    assert not any(column[~kept].any() for column in raw_predictions.values())
    rows = predictions["rows"]
    ids = np.array(rows["exams.id"])
    plain = predict_probability(model, x[ids])
    # fixed point: scaled features and weights at 2^-16, a few truncations per prediction
    assert np.max(np.abs(np.array(rows["prediction"]) - plain)) < 5e-3


def test_level_5_model_carries_its_ledger(world):
    deployment, x, y, split = world

    async def scenario():
        async with running(deployment):
            await upload_all(deployment)
            return (await run_carol_job(deployment,
                                        train_spec(5, "epsilon = 4.0\ndelta = 1e-5\ntau = 1")))[1]

    model = asyncio.run(scenario())
    assert model["released"]  # 379 rows against 100 declared: 5.8 deviations of the check's noise
    ledger = Ledger(**model["info"]["dp_ledger"])
    assert ledger.epsilon == 4.0 and ledger.tau == 1 and ledger.rows == len(y)
    assert abs(spent_epsilon(ledger) - 4.0) < 1e-3
    assert ledger.sigma > 0 and ledger.clip >= 1.0


@pytest.mark.parametrize("spec, message", [
    (train_spec(5, "epsilon = 0\ndelta = 1e-5\ntau = 1"), "epsilon must be in"),
    (train_spec(5, "epsilon = 1\ndelta = 2\ntau = 1"), "delta must be in"),
    (train_spec(4).replace('label = "exams.label"', 'label = "exams.split"'),
     "is categorical: as features use onehot"),
    (train_spec(4).replace('"exams.f0"', '"exams.f9"'), "unknown column 'exams.f9'"),
    (train_spec(4).replace("batch_size = 32", "batch_size = 400"),
     "batch_size 400 is above the declared min_join_size"),
    (train_spec(4).replace("iterations = 150", "iterations = 1000000000"),
     "would overflow the fixed-point range"),
    (train_spec(4).replace("iterations = 150", "iterations = 100001"),
     "at most 100000 iterations"),
    (train_spec(4).replace("iterations = 150", "iterations = 90000")
     .replace("batch_size = 32", "batch_size = 200"), r"rows in all \(iterations x batch_size\)"),
    (train_spec(4).replace('model = "logistic"', 'model = "forest"'), "model must be one of"),
])
def test_bad_training_specs(world, spec, message):
    deployment = world[0]

    async def scenario():
        async with running(deployment):
            await upload_all(deployment)
            with pytest.raises(ServiceError, match=message):
                await submit_job(deployment.client("alice"), spec)

    asyncio.run(scenario())


def rules(**changes):
    return replace(unrestricted(("carol",)),
                   **{"analysts": ("alice",), "outputs": ("rows", "model"), **changes})


@pytest.mark.parametrize("policy, spec, message", [
    (rules(min_privacy_level=5), train_spec(4),
     "table patients: its owner requires privacy level 5"),
    (rules(min_privacy_level=5),
     '[job]\nrecipients = ["carol"]\n[output]\ncolumns = ["patients.f3"]\n',
     "requires privacy level 5"),
    (rules(recipients=("alice",)), train_spec(4), "does not allow outputs to carol"),
    (rules(max_epsilon=1.0), train_spec(5, "epsilon = 4.0\ndelta = 1e-5\ntau = 1"),
     "epsilon <= 1"),
    (rules(max_epsilon=1.0), train_spec(4), "only differentially private"),
])
def test_owner_policies_are_enforced(world, policy, spec, message):
    deployment = world[0]

    async def scenario():
        async with running(deployment):
            await upload_all(deployment, {"patients": policy})
            with pytest.raises(ServiceError, match=message):
                await submit_job(deployment.client("alice"), spec)

    asyncio.run(scenario())


def test_a_failed_size_check_withholds_the_model_and_tells_only_recipients(world):
    deployment = world[0]
    spec = train_spec(5, "epsilon = 1.0\ndelta = 1e-5\ntau = 1").replace(
        # the train split has 379 rows; the check's noise deviates by about 48 (epsilon 0.1,
        # tau 1), so 1,000 fails whatever the noise (500 passed about once in 160 runs)
        "min_join_size = 100", "min_join_size = 1000")

    async def scenario():
        async with running(deployment):
            await upload_all(deployment)
            alice = deployment.client("alice")
            job = await submit_job(alice, spec)
            statuses = await wait_for_job(alice, job, timeout_s=120)
            return statuses, (await fetch_result(deployment.client("carol"), job)).data

    statuses, model = asyncio.run(scenario())
    # alice, who submitted but receives nothing, sees a job like any other
    assert [(s["state"], s["error"]) for s in statuses] == [("done", "")] * 2
    assert model["released"] is False and "min_join_size 1000" in model["reason"]
    assert "weights" not in model


def test_cancelling_a_running_job_stops_both_servers(world):
    deployment = world[0]
    spec = train_spec(4).replace("iterations = 150", "iterations = 100000")

    async def scenario():
        async with running(deployment) as servers:
            await upload_all(deployment)
            alice = deployment.client("alice")
            job = await submit_job(alice, spec)
            while (await job_status(deployment.client("carol"), job))[0]["stage"] != "train":
                await asyncio.sleep(0.1)
            with pytest.raises(ServiceError, match="only alice"):
                await cancel_job(deployment.client("carol"), job)
            await cancel_job(alice, job)
            statuses = await wait_for_job(alice, job, timeout_s=60)
            return statuses, [s.jobs.output_folder("alice", job).exists() for s in servers]

    statuses, outputs = asyncio.run(scenario())
    assert [(s["state"], s["error"]) for s in statuses] == [("failed", "cancelled by alice")] * 2
    assert outputs == [False, False]  # a job stopped midway releases nothing
