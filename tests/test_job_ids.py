"""Job ids are per submitter, through two real servers: two clients use one id for different
jobs and neither learns of the other's; a job is named by its id or as submitter/id; a
[predict] job's model is resolved by its submitter's view; a submitter who receives nothing
sees its job's state and error, no stage, costs or time. One deployment runs the scenario
once (restarted once, half way); each test checks one part of what it saw."""

import asyncio
import io
import tomllib

import pandas as pd
import pytest

from tests.support.harness import OPEN_POLICY
from tests.support.servers import CUSTOMERS, SCHEMA, make_deployment, running, upload_file
from twofold.client import fetch_result, job_status, submit_job, wait_for_job
from twofold.mpc.rpc import ServiceError, service_clients
from twofold.owners.schema import parse_schema
from twofold.servers.jobs import agreement_digest
from twofold.servers.jobspec import parse_job_spec

pytestmark = pytest.mark.integration  # two servers, in process or not

AGES = pd.read_csv(io.StringIO(CUSTOMERS)).age
COSTS = {"stage", "costs", "seconds"}


def statistics(*recipients: str, where: str = "") -> str:
    names = ", ".join(f'"{name}"' for name in recipients)
    return (f'[job]\nrecipients = [{names}]\ntables = ["customers"]\n'
            + (f'where = "{where}"\n' if where else "")
            + '[statistics]\ncolumns = ["customers.age"]\n')


JOBS = {  # (submitter, id): spec; two ids each used by bob and by carol
    ("bob", "j1"): statistics("bob"),
    ("carol", "j1"): statistics("carol", where="customers.age >= 60"),
    ("bob", "shared"): statistics("alice", "carol", "dan", where="customers.age < 25"),
    ("carol", "shared"): statistics("dan", where="customers.age >= 40"),  # not to carol
    ("bob", "m1"): ('[job]\nrecipients = ["carol"]\ntables = ["customers"]\n[train]\n'
                    'model = "logistic"\nfeatures = ["customers.age"]\n'
                    'label = "customers.member"\niterations = 20\nbatch_size = 10\n'
                    "learning_rate = 0.5\nprivacy_level = 3\n"),
}
COUNTS = {("bob", "j1"): len(AGES), ("carol", "j1"): int((AGES >= 60).sum()),
          ("bob", "shared"): int((AGES < 25).sum()), ("carol", "shared"): int((AGES >= 40).sum())}


def predict(model_job: str) -> str:
    return ('[job]\nrecipients = ["carol"]\ntables = ["customers"]\n[predict]\n'
            f'model_job = "{model_job}"\nfeatures = ["customers.age"]\n'
            'label = "customers.member"\n')


async def answers(config, **request) -> list:
    """Each server's answer to one request: its reply, or the text of its refusal."""
    async with service_clients(config.keys, config.servers, config.timeout_s) as clients:
        replies = await asyncio.gather(*(c.call(request) for c in clients),
                                       return_exceptions=True)
    return [str(reply) if isinstance(reply, ServiceError)
            else {k: v for k, v in reply[0].items() if k not in ("ok", "rid", "arrays")}
            for reply in replies]


async def revealed(deployment, readers) -> dict:
    """Each job's count as a recipient reveals it: [(job key, recipient, name given)]."""
    return {key: (await fetch_result(deployment.client(recipient), name)).data["values"]["count"]
            for key, recipient, name in readers}


def jobs_of(servers) -> list[dict]:
    return [{key: (s.state, s.error, s.model) for key, s in server.jobs.states.items()}
            for server in servers]


async def first_life(deployment) -> dict:
    seen = {}
    async with running(deployment) as servers:
        await upload_file(deployment, "alice", "customers", policy=OPEN_POLICY)
        client = deployment.client
        dan = client("dan")
        for (submitter, job), spec in JOBS.items():
            await submit_job(client(submitter), spec, job)
        for submitter, job in JOBS:
            await wait_for_job(client(submitter), job, timeout_s=120)
        seen["revealed"] = await revealed(deployment, [
            (("bob", "j1"), "bob", "j1"), (("carol", "j1"), "carol", "j1"),
            (("bob", "shared"), "dan", "bob/shared"), (("carol", "shared"), "dan", "carol/shared")])

        # dan, who neither submitted nor receives any of them, probes their ids: each answer
        # is that for an id nobody used (j9), with the id in the text
        seen["probes"] = [
            (await answers(dan, action=action, job_id=name),
             [str(a).replace("j9", "j1") for a in await answers(
                 dan, action=action, job_id=name.replace("j1", "j9"))])
            for action in ("job_status", "job_cancel", "fetch_output")
            for name in ("j1", "bob/j1", "carol/j1")]
        seen["resubmitted"] = [  # under bob's and carol's j1: bob's spec, and another one
            (await answers(client(who), action="job_submit", job_id="j1", spec=spec),
             await answers(client(who), action="job_submit", job_id=fresh, spec=spec))
            for who, fresh, spec in [("dan", "j8", JOBS["bob", "j1"]),
                                     ("alice", "j7", statistics("alice"))]]
        seen["dan cancels j1"] = await answers(dan, action="job_cancel", job_id="j1")
        seen["bob resubmits j1"] = [
            await answers(client("bob"), action="job_submit", job_id="j1", spec=spec)
            for spec in (JOBS["bob", "j1"], statistics("bob", where="customers.age > 1"))]

        seen["statuses"] = {(who, name): await job_status(client(who), name) for who, name in [
            ("carol", "shared"), ("carol", "bob/shared"), ("dan", "carol/shared"),
            ("alice", "shared"), ("bob", "shared")]}
        seen["dan's shared"] = await answers(dan, action="job_status", job_id="shared")

        carol = client("carol")
        for job, model in (("p1", "m1"), ("p2", "bob/m1")):
            await submit_job(carol, predict(model), job)
        seen["predicted"] = [(await wait_for_job(carol, job, timeout_s=120),
                              (await fetch_result(carol, job)).data["metrics"]["count"])
                             for job in ("p1", "p2")]
        seen["models"] = [[s.jobs.states["carol", job].model for s in servers]
                          for job in ("p1", "p2")]
        seen["dan's predictions"] = [
            await answers(dan, action="job_submit", job_id=job, spec=predict(model))
            for job, model in (("p3", "m1"), ("p4", "bob/m1"), ("p5", "m9"))]
        seen["jobs"] = jobs_of(servers)
    return seen


async def second_life(deployment) -> dict:
    async with running(deployment) as servers:
        return {"jobs": jobs_of(servers),
                "revealed": await revealed(deployment, [
                    (("bob", "j1"), "bob", "j1"), (("carol", "j1"), "carol", "j1"),
                    (("bob", "shared"), "alice", "shared"),
                    (("carol", "shared"), "dan", "carol/shared")]),
                "dan's shared": await answers(deployment.client("dan"), action="job_status",
                                              job_id="shared")}


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jobids")
    (folder / "customers.csv").write_text(CUSTOMERS)
    deployment = make_deployment(folder, owners=("alice", "bob", "carol", "dan"))
    first = asyncio.run(first_life(deployment))
    return first, asyncio.run(second_life(deployment))


def test_two_submitters_run_and_reveal_their_own_job_of_one_id(seen):
    assert seen[0]["revealed"] == COUNTS
    assert len(set(COUNTS.values())) == len(COUNTS)  # four different results


def test_another_submitters_id_answers_as_an_id_nobody_used(seen):
    for probed, absent in seen[0]["probes"]:
        assert [str(a) for a in probed] == absent
        assert all("no job " in a and " for dan" in a for a in absent)
    for used, fresh in seen[0]["resubmitted"]:  # queued as the prober's own, as a fresh id
        assert used == fresh and used[0]["state"] == "queued"
    # j1 is now dan's own: he may cancel it, and bob's is untouched
    assert all(isinstance(a, dict) for a in seen[0]["dan cancels j1"])
    assert [jobs["bob", "j1"][0] for jobs in seen[0]["jobs"]] == ["done"] * 2


def test_resubmitting_ones_own_id_is_as_before(seen):
    same, other = seen[0]["bob resubmits j1"]
    assert [a["state"] for a in same] == ["done", "done"]
    assert all("job id j1 was already used for another spec" in a for a in other)


def test_a_bare_id_is_ones_own_job_else_the_one_job_one_receives(seen):
    statuses = seen[0]["statuses"]
    assert {s["job"] for s in statuses["carol", "shared"]} == {"carol/shared"}
    assert {s["job"] for s in statuses["alice", "shared"]} == {"bob/shared"}
    assert {s["job"] for s in statuses["carol", "bob/shared"]} == {"bob/shared"}


def test_an_id_several_received_jobs_share_is_refused_with_their_names(seen):
    for answers_ in (seen[0]["dan's shared"], seen[1]["dan's shared"]):
        assert all(a.endswith("refused: shared is the id of several jobs dan receives: "
                              "bob/shared, carol/shared; name one as submitter/id")
                   for a in answers_)


def test_only_recipients_see_stage_costs_and_time(seen):
    statuses = seen[0]["statuses"]
    for submitter_only in (statuses["carol", "shared"], statuses["bob", "shared"]):
        assert [set(s) for s in submitter_only] == [{"job", "state", "error"}] * 2
        assert [s["state"] for s in submitter_only] == ["done"] * 2
    for recipient in (statuses["carol", "bob/shared"], statuses["dan", "carol/shared"],
                      statuses["alice", "shared"]):
        assert all(COSTS <= set(s) and s["costs"] and s["seconds"] > 0 for s in recipient)


def test_a_prediction_names_its_model_by_id_or_as_submitter_id(seen):
    (first, first_count), (second, second_count) = seen[0]["predicted"]
    assert [s["state"] for s in first + second] == ["done"] * 4
    assert first_count == second_count == len(AGES)
    assert seen[0]["models"] == [["bob/m1"] * 2] * 2  # resolved once, on both servers
    hidden, qualified, absent = seen[0]["dan's predictions"]  # dan cannot see bob's model
    assert hidden == [a.replace("m9", "m1") for a in absent]
    assert qualified == [a.replace("m9", "bob/m1") for a in absent]
    assert all(a.endswith("refused: no job m9 for dan") for a in absent)


def test_a_restart_keeps_every_job_under_its_submitter(seen):
    first, second = seen
    assert second["revealed"] == COUNTS
    for before, after in zip(first["jobs"], second["jobs"], strict=True):
        assert set(after) == set(before) and ("bob", "j1") in after and ("carol", "j1") in after
        assert {key: state for key, state in after.items() if state[0] == "done"} == {
            key: state for key, state in before.items() if state[0] == "done"}


def test_the_servers_compare_the_model_they_resolved():
    """A [predict] spec may name its model by a bare id, which each server resolves: the
    digest both servers compare before running covers the resolved model."""
    schema = parse_schema(tomllib.loads(SCHEMA))
    spec = parse_job_spec(predict("m1"), schema, {"carol"})
    versions = {"customers": "u1"}
    assert (agreement_digest(spec, versions, "bob/m1")
            != agreement_digest(spec, versions, "carol/m1")).any()
