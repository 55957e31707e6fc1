"""Two jobs that differ in one person must look the same, for every kind of output.

Each pair of jobs selects customer 7 (age 37, one order) or nobody, depending on that person's
private age: `customers.id == 7 and customers.age > X` for X = 40 (nobody) and X = 20 (the
person). alice lets erin submit and carol receive, with a minimum group size of 2 customers,
so no output may depend on one customer: erin, who submits but receives nothing, sees the
same: a state and an error, no costs; carol, the recipient, sees the same costs and the same
output, down to the raw shares both servers store (noise aside where the job is
differentially private: there only erin's view is compared). Covered: rows, aggregate,
statistics, a model at levels 3, 4 and 5, predictions and metrics."""

import asyncio
from dataclasses import replace

import pytest

from tests.support.servers import (
    REGION_CUSTOMERS,
    REGION_ORDERS,
    make_deployment,
    reconstruct_outputs,
    running,
    upload_file,
)
from twofold.client import fetch_outputs, fetch_result, submit_job, wait_for_job
from twofold.owners.policy import Policy, unrestricted

pytestmark = pytest.mark.integration  # two servers, in process or not

ALICE = Policy(recipients=("carol",), analysts=("erin",), outputs=("rows", "aggregate",
               "statistics", "model", "predictions"), dimension_columns=("id", "age", "region"),
               aggregate_columns="*", model_columns="*", min_group_size=2, min_privacy_level=3)
BOB = replace(unrestricted(("carol",)), analysts=("erin",))
TRAIN = ('[train]\nmodel = "logistic"\nfeatures = ["orders.amount"]\n'
         'label = "customers.member"\niterations = 5\nbatch_size = 1\nlearning_rate = 0.1\n')
PREDICT = '[predict]\nmodel_job = "{model}"\nfeatures = ["orders.amount"]\n'
JOBS = {
    "rows": '[output]\ncolumns = ["orders.amount", "customers.region"]\n',
    "aggregate": '[aggregate]\ngroup_by = ["customers.region"]\ncount = true\n'
                 'sum = ["orders.amount"]\n',
    "statistics": '[statistics]\ncolumns = ["orders.amount"]\nhistogram = ["customers.region"]\n',
    "model, level 3": TRAIN + "privacy_level = 3\n",
    "model, level 4": TRAIN + "privacy_level = 4\nmin_join_size = 1\n",
    "model, level 5": TRAIN + "privacy_level = 5\nmin_join_size = 1\nepsilon = 1.0\n"
                              "delta = 1e-6\ntau = 3\n",
    "predictions": PREDICT + 'columns = ["orders.order_id"]\n',
    "metrics": PREDICT + 'label = "customers.member"\n',
}


def costs(statuses, level: int) -> list:
    """What the servers see of a job, as its recipient's status shows it: stages with bytes
    and rounds (time aside, which depends only on public sizes up to noise). At level 5 the
    training's bytes follow its Poisson batch sizes, drawn afresh for every job from
    randomness both servers contribute and independent of the data; its rounds do not vary."""
    def cost(name, values):
        return (values["rounds"],) if level == 5 and name == "train" else (
            values["bytes_sent"], values["rounds"])
    return [{name: cost(name, values) for name, values in s["costs"].items()}
            for s in statuses]


def spec(body: str, age_above: int | None, model: str = "") -> str:
    where = ("" if age_above is None else
             f'where = "customers.id == 7 and customers.age > {age_above}"\n')
    return f'[job]\nrecipients = ["carol"]\n{where}{body.format(model=model)}'


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    """Per kind, for X = 40 and X = 20: erin's view of the job, carol's revealed output and
    the raw outputs reconstructed from both servers' shares."""
    folder = tmp_path_factory.mktemp("one_person")
    (folder / "customers.csv").write_text(REGION_CUSTOMERS)
    (folder / "orders.csv").write_text(REGION_ORDERS)
    deployment = make_deployment(folder, owners=("alice", "bob", "carol", "erin"))

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers", policy=ALICE)
            await upload_file(deployment, "bob", "orders", policy=BOB)
            erin, carol = deployment.client("erin"), deployment.client("carol")
            model = await submit_job(erin, spec(TRAIN + "privacy_level = 4\n"
                                                "min_join_size = 4\n", None))
            await wait_for_job(carol, model, timeout_s=120)
            assert (await fetch_result(carol, model)).data["released"]  # 8 customers behind it
            views = {}
            for kind, body in JOBS.items():
                for age in (40, 20):
                    job = await submit_job(erin, spec(body, age, model))
                    statuses = await wait_for_job(erin, job, timeout_s=120)
                    level = 5 if kind.endswith("level 5") else 4
                    views.setdefault(kind, []).append((
                        [{k: v for k, v in s.items() if k != "job"} for s in statuses],
                        costs(await wait_for_job(carol, job), level),
                        (await fetch_result(carol, job)).data,
                        reconstruct_outputs(await fetch_outputs(carol, job))))
            return views
    return asyncio.run(scenario())


@pytest.mark.parametrize("kind", JOBS)
def test_the_submitter_sees_the_same_whether_or_not_one_person_is_selected(seen, kind):
    (nobody, *_), (one, *_) = seen[kind]
    assert nobody == one == [{"state": "done", "error": ""}] * 2  # no stage, costs or time


@pytest.mark.parametrize("kind", [kind for kind in JOBS if not kind.endswith("level 5")])
def test_the_recipient_sees_the_same_where_k_forbids_one_person(seen, kind):
    (_, costs0, revealed0, raw0), (_, costs1, revealed1, raw1) = seen[kind]
    assert costs0 == costs1  # at level 3 the join size the servers open is 0 both times
    assert revealed0 == revealed1
    assert raw0.keys() == raw1.keys()
    for name in raw0:
        assert not raw0[name].any() and not raw1[name].any(), name  # zeros, every stored value
    if kind.startswith("model"):
        assert revealed1["released"] is False  # a one-row model releases nothing
