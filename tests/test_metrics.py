"""A model's metrics computed inside MPC, against scikit-learn on the same rows: a linear model
of a 3-class label (wine classes 0, 1, 2, as the seed paper's student outcomes) and a logistic
one; the revealed model turned into scikit-learn estimators with the same predictions."""

import asyncio

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
)

from tests.support.harness import OPEN_POLICY
from tests.support.servers import make_deployment, running, upload_file
from twofold.client import run_job
from twofold.models import predict, to_sklearn

pytestmark = pytest.mark.integration  # two servers, in process or not

FEATURES = ["wines.alcohol", "wines.flavanoids", "labs.color", "labs.proline"]


@pytest.fixture(scope="module")
def wine():
    data = load_wine()
    frame = pd.DataFrame(data.data, columns=data.feature_names)
    return pd.DataFrame({
        "id": np.arange(len(frame)), "lab": np.arange(len(frame)),
        "alcohol": frame["alcohol"], "flavanoids": frame["flavanoids"],
        "color": frame["color_intensity"], "proline": frame["proline"],
        "cls": data.target, "first": (data.target == 0).astype(int),
        "split": np.where(np.arange(len(frame)) % 3 == 0, "test", "train")})


def schema_text(wine):
    def decimal(name, column):
        low, high = wine[column].min(), wine[column].max()
        return f'{name} = {{ type = "decimal", min = {low}, max = {high} }}\n'
    return ('[schema]\nfact = "wines"\nprimary_private = "labs"\n'
            '[tables.wines]\nowner = "alice"\nprimary_key = "id"\n'
            'foreign_keys = [{ columns = ["lab"], references = "labs" }]\n[tables.wines.columns]\n'
            'id = { type = "key" }\nlab = { type = "key" }\n'
            + decimal("alcohol", "alcohol") + decimal("flavanoids", "flavanoids")
            + 'cls = { type = "integer", min = 0, max = 2 }\nfirst = { type = "boolean" }\n'
            'split = { type = "categorical", values = ["train", "test"] }\n'
            '[tables.labs]\nowner = "bob"\nprimary_key = "id"\n[tables.labs.columns]\n'
            'id = { type = "key" }\n' + decimal("color", "color") + decimal("proline", "proline"))


def training(model, label, rate):
    features = ", ".join(f'"{f}"' for f in FEATURES)
    return (f'[job]\nrecipients = ["carol"]\nwhere = "wines.split == \'train\'"\n[train]\n'
            f'model = "{model}"\nfeatures = [{features}]\nlabel = "{label}"\n'
            f"iterations = 400\nbatch_size = 16\nlearning_rate = {rate}\nprivacy_level = 3\n")


def evaluation(job, label, extra=""):
    features = ", ".join(f'"{f}"' for f in FEATURES)
    return (f'[job]\nrecipients = ["carol"]\nwhere = "wines.split == \'test\'"\n[predict]\n'
            f'model_job = "{job}"\nfeatures = [{features}]\nlabel = "{label}"\n{extra}')


def run(tmp_path, wine, model_kind, label, rate, extra=""):
    wine[["id", "lab", "alcohol", "flavanoids", "cls", "first", "split"]].to_csv(
        tmp_path / "wines.csv", index=False)
    wine[["lab", "color", "proline"]].rename(columns={"lab": "id"}).to_csv(
        tmp_path / "labs.csv", index=False)
    deployment = make_deployment(tmp_path, schema_text(wine), owners=("alice", "bob", "carol"))

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "wines", policy=OPEN_POLICY)
            await upload_file(deployment, "bob", "labs", policy=OPEN_POLICY)
            carol = deployment.client("carol")
            model_job, model = await run_job(carol, training(model_kind, label, rate),
                                             timeout_s=300)
            _, evaluated = await run_job(carol, evaluation(model_job, label, extra),
                                         timeout_s=300)
            return model.data, evaluated.data

    return asyncio.run(scenario())


def test_linear_metrics_match_scikit_learn(tmp_path, wine):
    model, evaluated = run(tmp_path, wine, "linear", "wines.cls", 0.1)
    test = wine[wine.split == "test"]
    x = test[["alcohol", "flavanoids", "color", "proline"]].to_numpy()
    predicted = np.clip(predict(model, x), 0, 2)  # clamped to the label's range, as documented
    metrics = evaluated["metrics"]
    assert metrics["count"] == len(test)
    assert metrics["mse"] == pytest.approx(mean_squared_error(test.cls, predicted), abs=1e-3)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(test.cls, predicted), abs=1e-3)
    assert metrics["r2"] == pytest.approx(r2_score(test.cls, predicted), abs=1e-3)
    classes = np.floor(predicted + 0.5)  # the nearest class, ties up
    assert metrics["accuracy"] == pytest.approx(accuracy_score(test.cls, classes), abs=0.02)
    assert metrics["accuracy"] > 0.8  # wine classes follow these features closely
    estimator = to_sklearn(model)
    assert np.allclose(estimator.predict(x), predict(model, x))


def test_logistic_metrics_match_scikit_learn(tmp_path, wine):
    model, evaluated = run(tmp_path, wine, "logistic", "wines.first", 1.0)
    test = wine[wine.split == "test"]
    x = test[["alcohol", "flavanoids", "color", "proline"]].to_numpy()
    said = predict(model, x)
    metrics = evaluated["metrics"]
    tn, fp, fn, tp = confusion_matrix(test["first"], said, labels=[0, 1]).ravel()
    # a prediction within a few 2^-16 of the threshold may fall either way in fixed point
    assert abs(metrics["true_positive"] - tp) + abs(metrics["false_positive"] - fp) <= 1
    assert abs(metrics["false_negative"] - fn) + abs(metrics["true_negative"] - tn) <= 1
    assert metrics["accuracy"] == pytest.approx(accuracy_score(test["first"], said), abs=0.02)
    assert metrics["precision"] == pytest.approx(precision_score(test["first"], said), abs=0.05)
    assert metrics["recall"] == pytest.approx(recall_score(test["first"], said), abs=0.05)
    assert metrics["accuracy"] > 0.9
    estimator = to_sklearn(model)
    assert (estimator.predict(x) == said).all()


def test_noisy_metrics_spend_and_carry_their_ledger(tmp_path, wine):
    _, evaluated = run(tmp_path, wine, "logistic", "wines.first", 1.0,
                       "noise = { epsilon = 4.0, delta = 1e-6, tau = 1 }\n")
    ledger = evaluated["dp_ledger"]
    assert set(ledger["sigmas"]) == {"count", "true_positive", "false_positive",
                                     "false_negative"}
    count = int((wine.split == "test").sum())
    assert abs(evaluated["metrics"]["count"] - count) < 8 * ledger["sigmas"]["count"] * 2 ** 0.5
