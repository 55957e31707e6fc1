"""Owners' analysis rules, privacy budgets and the absence of oracles, through two real servers:
default deny, output kinds, row columns, minimum group sizes, the most restrictive rule across
tables, the version checked being the version read; budgets spent, refused, remembered across
restarts and agreed by both servers; and jobs whose outcome a non-recipient cannot read."""

import asyncio
import re
from dataclasses import replace

import numpy as np
import pytest

from tests.support.servers import (
    REGION_CUSTOMERS,
    REGION_ORDERS,
    make_deployment,
    reconstruct_outputs,
    running,
    upload_file,
)
from twofold.client import (
    cancel_job,
    fetch_outputs,
    fetch_result,
    submit_job,
    table_budget,
    wait_for_job,
)
from twofold.mpc.privacy import Privacy
from twofold.mpc.rpc import ServiceError
from twofold.owners.policy import Policy, unrestricted
from twofold.owners.schema import INDICATOR
from twofold.servers.budget import BudgetLedger

pytestmark = pytest.mark.integration  # two servers, in process or not

BY_REGION = """
[job]
recipients = ["carol"]
[aggregate]
group_by = ["customers.region"]
count = true
sum = ["orders.amount"]
"""


@pytest.fixture
def deployment(tmp_path):
    (tmp_path / "customers.csv").write_text(REGION_CUSTOMERS)
    (tmp_path / "orders.csv").write_text(REGION_ORDERS)
    return make_deployment(tmp_path, owners=("alice", "bob", "carol"))


def rules(**changes) -> Policy:
    """carol may receive anything, and alice (who submits these tests' jobs) submit."""
    return replace(unrestricted(("carol",)), **{"analysts": ("alice", "carol"), **changes})


async def upload_both(deployment, customers: Policy | None, orders: Policy | None):
    await upload_file(deployment, "alice", "customers", policy=customers)
    await upload_file(deployment, "bob", "orders", policy=orders)


async def finished(deployment, spec, submitter="alice", reader="carol"):
    job = await submit_job(deployment.client(submitter), spec)
    return job, await wait_for_job(deployment.client(reader), job, timeout_s=120)


def submit_refused(deployment, customers, orders, spec, message):
    async def scenario():
        async with running(deployment) as servers:
            await upload_both(deployment, customers, orders)
            with pytest.raises(ServiceError, match=re.escape(message)):
                await submit_job(deployment.client("alice"), spec)
            return [len(s.jobs.states) for s in servers]
    assert asyncio.run(scenario()) == [0, 0]


ROWS = '[job]\nrecipients = ["{who}"]\n[output]\ncolumns = ["customers.age", "orders.amount"]\n'


@pytest.mark.parametrize("customers, orders, spec, message", [
    # default: the owner alone receives, and no raw rows
    (None, None, BY_REGION, "table customers: its owner does not allow outputs to carol (the "
                            "owner would add carol to recipients)"),
    (Policy(recipients=("carol",), analysts=("alice",)), rules(), ROWS.format(who="carol"),
     "table customers: its owner does not allow rows outputs (allowed: aggregate, statistics, "
     "model; the owner would add rows to outputs)"),
    (rules(), rules(outputs=("aggregate",)), ROWS.format(who="carol"),
     "table orders: its owner does not allow rows outputs"),
    (rules(dimension_columns=("region",)), rules(), ROWS.format(who="carol"),
     "does not grant column age the role row output"),
    (rules(min_privacy_level=5), rules(), BY_REGION, "requires privacy level 5"),
    (rules(), rules(analysts=("carol",)), BY_REGION,
     "table orders: its owner does not let alice submit jobs"),
    (rules(), rules(max_epsilon=1.0), BY_REGION, "only differentially private"),
])
def test_rules_refuse_jobs_at_submission(deployment, customers, orders, spec, message):
    submit_refused(deployment, customers, orders, spec, message)


def test_the_owner_alone_may_receive_by_default(deployment):
    spec = ('[job]\nrecipients = ["alice"]\ntables = ["customers"]\n[statistics]\n'
            'columns = ["customers.age"]\n')

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers")
            job, statuses = await finished(deployment, spec, reader="alice")
            return (await fetch_result(deployment.client("alice"), job)).data

    assert asyncio.run(scenario())["values"]["customers.age"]["count"] == 8


def groups_of(deployment, customers, orders, spec=BY_REGION):
    """carol's revealed rows and raw reconstructed table."""
    async def scenario():
        async with running(deployment):
            await upload_both(deployment, customers, orders)
            job, statuses = await finished(deployment, spec)
            assert [s["state"] for s in statuses] == ["done", "done"], statuses
            keys = deployment.client("carol")
            return ((await fetch_result(keys, job)).data,
                    reconstruct_outputs(await fetch_outputs(keys, job)))
    return asyncio.run(scenario())


def regions(revealed) -> dict[str, int]:
    rows = revealed["rows"]
    return dict(zip(rows["customers.region"], rows["count"], strict=True))


def test_a_group_of_k_minus_1_entities_is_suppressed_and_a_group_of_k_appears(deployment):
    """customers k = 3: south has 2 customers (6 orders) and vanishes; north and east have 3."""
    revealed, raw = groups_of(deployment, rules(min_group_size=3), rules())
    assert regions(revealed) == {"north": 3, "east": 3}
    assert int(raw[INDICATOR].sum()) == 2  # the suppressed group is zeros, like an absent one
    assert not np.any([raw[name][raw[INDICATOR] == 0].any() for name in raw])


def test_the_most_restrictive_rule_of_all_tables_applies(deployment):
    """customers k = 3 drops south; orders (the join's rows) k = 4 drops north and east."""
    revealed, _ = groups_of(deployment, rules(min_group_size=2), rules(min_group_size=4))
    assert regions(revealed) == {"south": 6}
    revealed, _ = groups_of(deployment, rules(min_group_size=3), rules(min_group_size=4))
    assert regions(revealed) == {}


def test_statistics_below_k_are_withheld_and_a_small_bin_withholds_its_histogram(deployment):
    """customers k = 3: south has 2 customers (6 orders). Zeroing its bin alone would not do:
    the total (12) minus the other bins would give it back, so the whole histogram is
    withheld; the count stays. With k = 2 on both tables (the root's entities are its
    rows) every bin passes, and an empty bin withholds nothing."""
    spec = ('[job]\nrecipients = ["carol"]\n{where}[statistics]\ncolumns = ["orders.amount"]\n'
            'histogram = ["customers.region"]\n')
    revealed, _ = groups_of(deployment, rules(min_group_size=3), rules(), spec.format(where=""))
    assert revealed["values"]["histogram(customers.region)"] == {"north": 0, "south": 0,
                                                                  "east": 0}
    assert revealed["values"]["count"] == 12
    no_east = spec.format(where="where = \"customers.region != 'east'\"\n")
    revealed, _ = groups_of(deployment, rules(min_group_size=2), rules(min_group_size=2),
                            no_east)
    assert revealed["values"]["histogram(customers.region)"] == {"north": 3, "south": 6,
                                                                  "east": 0}
    south = spec.format(where="where = \"customers.region == 'south'\"\n")
    revealed, raw = groups_of(deployment, rules(min_group_size=3), rules(), south)
    assert revealed["values"]["count"] == 0  # 2 customers: withheld, like an empty join
    assert not any(values.any() for values in raw.values())


def test_rules_are_checked_against_the_version_the_job_reads(deployment):
    """A job queued under a permissive version starts after a stricter version is ready: the
    servers check the rules again at start and refuse it."""
    long_job = ('[job]\nrecipients = ["carol"]\n[train]\nmodel = "logistic"\n'
                'features = ["customers.age"]\nlabel = "customers.member"\n'
                "iterations = 100000\nbatch_size = 2\nlearning_rate = 0.1\nprivacy_level = 3\n")
    rows = ROWS.format(who="carol")

    async def scenario():
        async with running(deployment) as servers:
            await upload_both(deployment, rules(), rules())
            alice = deployment.client("alice")
            blocker = await submit_job(alice, long_job)
            queued = await submit_job(alice, rows)
            # the stricter version goes live once the servers checked it, which they do when
            # no job runs and before queued jobs: so it waits for the blocker's cancel
            stricter = asyncio.create_task(upload_file(
                deployment, "alice", "customers", policy=rules(outputs=("model",))))
            while not servers[0].checks.pending and not stricter.done():
                await asyncio.sleep(0.05)
            await cancel_job(alice, blocker)
            await stricter
            statuses = await wait_for_job(alice, queued, timeout_s=120)
            return statuses, [s.jobs.output_folder("alice", queued).exists() for s in servers]

    statuses, outputs = asyncio.run(scenario())
    assert [s["state"] for s in statuses] == ["failed", "failed"]
    assert all("does not allow rows outputs" in s["error"] for s in statuses)
    assert outputs == [False, False]


NOISY = """
[job]
recipients = ["carol"]
[statistics]
columns = ["orders.amount"]
noise = {{ epsilon = {epsilon}, delta = 1e-6, tau = 3 }}
"""


def budget_rules():
    return rules(budget=Privacy(epsilon=1.0, delta=1e-5))


def test_budgets_are_spent_refused_remembered_and_agreed(deployment):
    async def spent_on_both():
        replies = await table_budget(deployment.client("alice"), "customers")
        return [reply["spent"]["epsilon"] for reply in replies]

    async def first_life():
        async with running(deployment):
            await upload_both(deployment, budget_rules(), rules())
            for _ in range(2):  # the same job twice spends twice
                _, statuses = await finished(deployment, NOISY.format(epsilon=0.4))
                assert [s["state"] for s in statuses] == ["done", "done"]
            with pytest.raises(ServiceError, match="its privacy budget has epsilon 0.2 and "):
                await submit_job(deployment.client("alice"), NOISY.format(epsilon=0.4))
            with pytest.raises(ServiceError, match="belongs to alice, not bob"):
                await table_budget(deployment.client("bob"), "customers")
            return await spent_on_both()

    assert asyncio.run(first_life()) == pytest.approx([0.8, 0.8])

    async def after_restart():
        async with running(deployment):
            spent = await spent_on_both()
            with pytest.raises(ServiceError, match="privacy budget"):
                await submit_job(deployment.client("alice"), NOISY.format(epsilon=0.3))
            _, statuses = await finished(deployment, NOISY.format(epsilon=0.2))
            return spent, [s["state"] for s in statuses], await spent_on_both()

    before, states, after = asyncio.run(after_restart())
    assert before == pytest.approx([0.8, 0.8]) and states == ["done", "done"]
    assert after == pytest.approx([1.0, 1.0])


def test_a_server_behind_on_its_ledger_catches_up(deployment):
    """Server 1 recorded a spend server 0 never did (it crashed in between): the next job
    takes the larger record on both, so the ledgers agree again and the budget holds. The
    ledgers name jobs as submitter/id (ids are per submitter)."""
    async def scenario():
        async with running(deployment):
            await upload_both(deployment, budget_rules(), rules())
            ledger = BudgetLedger(deployment.configs[1].data_dir)
            ledger.record([("customers", "lost", 0.5, 1e-7)])
            ledger.close()
            job, statuses = await finished(deployment, NOISY.format(epsilon=0.3))
            assert [s["state"] for s in statuses] == ["done", "done"]
            replies = await table_budget(deployment.client("alice"), "customers")
            with pytest.raises(ServiceError, match="privacy budget"):  # 0.8 + 0.3 > 1
                await submit_job(deployment.client("alice"), NOISY.format(epsilon=0.3))
            return job, replies

    job, replies = asyncio.run(scenario())
    assert [reply["spent"]["epsilon"] for reply in replies] == pytest.approx([0.8, 0.8])
    assert [entry["job"] for entry in replies[0]["history"]] == [
        f"alice/{job} (caught up with server 1)", f"alice/{job}"]
    assert [entry["job"] for entry in replies[1]["history"]] == ["lost", f"alice/{job}"]


def test_noisy_groups_are_selected_so_no_single_tuple_shows(deployment):
    """900 customers, 300 per region, with 1 to 3 orders (tau = 3). Grouped by customer,
    every group is one tuple's rows: none may be released. Grouped by region, the groups are
    large enough to pass the selection threshold, with noisy counts."""
    spec = BY_REGION + "noise = { epsilon = 2.0, delta = 1e-6, tau = 3 }\n"
    customers = "id,age,income,member,region\n" + "".join(
        f"{i},{20 + i % 60},{i},yes,{['north', 'south', 'east'][i % 3]}\n" for i in range(900))
    orders = "order_id,line,customer_id,amount\n" + "".join(
        f"o{i}-{j},0,{i},{10 + j}\n" for i in range(900) for j in range(1 + i % 3))
    (deployment.folder / "customers.csv").write_text(customers)
    (deployment.folder / "orders.csv").write_text(orders)

    async def scenario():
        async with running(deployment):
            await upload_both(deployment, rules(), rules())
            outputs = []
            for text in (spec, spec.replace("customers.region", "customers.id")):
                job, statuses = await finished(deployment, text)
                assert [s["state"] for s in statuses] == ["done", "done"], statuses
                outputs.append((await fetch_result(deployment.client("carol"), job)).data)
            return outputs

    by_region, by_customer = asyncio.run(scenario())
    assert by_customer["rows"]["count"] == []
    counts = regions(by_region)
    sigma = by_region["dp_ledger"]["sigmas"]["count"]
    truth = {"north": 300, "south": 600, "east": 900}  # 1, 2 or 3 orders per customer
    assert set(counts) == set(truth)  # far above the threshold
    assert all(abs(counts[r] - truth[r]) < 8 * sigma * 2 ** 0.5 for r in truth)
    assert 3 < by_region["selection_threshold"] < 300


MODEL = ('[job]\nrecipients = ["carol"]\n[train]\nmodel = "logistic"\n'
         'features = ["customers.age"]\nlabel = "customers.member"\niterations = 5\n'
         "batch_size = 2\nlearning_rate = 0.1\nprivacy_level = 3\n")
LEVEL_5 = ('[job]\nrecipients = ["carol"]\n[train]\nmodel = "logistic"\n'
           'features = ["orders.amount"]\nlabel = "customers.member"\niterations = 5\n'
           "batch_size = 1\nlearning_rate = 0.1\nmin_join_size = 1\nprivacy_level = 5\n"
           "epsilon = {epsilon}\ndelta = 1e-6\ntau = 3\nsize_check_epsilon = {check}\n")
UNCALIBRATED = [  # a spec whose noise no multiplier up to 1e4 calibrates, and its refusal
    (NOISY.format(epsilon=1e-5), "line 6: noise: epsilon 1e-05 at delta 1e-06 needs a noise "
                                 "multiplier above 10000; raise epsilon or delta"),
    # dp-accounting's brentq found no bracket for this one, and said so to the client
    (BY_REGION + "noise = { epsilon = 1e-3, delta = 1e-12, tau = 3 }\n",
     "line 8: noise: epsilon 0.001 at delta 1e-12 needs a noise multiplier above 10000"),
    ('[job]\nrecipients = ["carol"]\n[predict]\nmodel_job = "{model}"\n'
     'features = ["customers.age"]\nlabel = "customers.member"\n'
     "noise = { epsilon = 1e-5, delta = 1e-6, tau = 3 }\n",
     "line 7: noise: epsilon 1e-05 at delta 1e-06 needs a noise multiplier above 10000"),
    (LEVEL_5.format(epsilon=1e-4, check=0.1), "training: epsilon 0.0001 at delta 1e-06 needs a "
                                              "noise multiplier above 10000; raise epsilon or "
                                              "delta, or take fewer iterations"),
    (LEVEL_5.format(epsilon=1.0, check=1e-5), "size check: epsilon 1e-05 at delta 1e-06 needs "
                                              "a noise multiplier above 10000"),
]


def test_noise_that_cannot_be_calibrated_is_refused_at_submission_in_one_line(deployment):
    """Statistics, a group-by, a model's metrics, training and its size check: each refused
    by both servers in the project's words, and nothing queued."""
    async def scenario():
        async with running(deployment) as servers:
            await upload_both(deployment, rules(), rules())
            model, statuses = await finished(deployment, MODEL)
            assert [s["state"] for s in statuses] == ["done", "done"], statuses
            refusals = []
            for spec, _ in UNCALIBRATED:
                with pytest.raises(ServiceError) as refused:
                    await submit_job(deployment.client("alice"), spec.replace("{model}", model))
                refusals.append(str(refused.value))
            return refusals, [list(s.jobs.states) for s in servers], model

    refusals, queued, model = asyncio.run(scenario())
    for message, (_, expected) in zip(refusals, UNCALIBRATED, strict=True):
        assert expected in message
        assert "\n" not in message
        assert not any(word in message for word in ("brentq", "Bracket", "dp_accounting"))
    assert queued == [[("alice", model)], [("alice", model)]]  # jobs are (submitter, id)


NOISY_GROUPS = BY_REGION + "noise = { epsilon = 0.4, delta = 1e-6, tau = 3 }\n"


def test_a_noisy_group_by_spends_its_delta_twice_on_every_table_it_reads(deployment):
    """Its Gaussian and its group selection each spend the declared delta: (0.4, 2e-6) on
    customers and orders, on both servers, as the released output says. With (0.6, 1e-6)
    left, customers has room for statistics with the same noise, not for the group-by."""
    async def spent(owner, table):
        replies = await table_budget(deployment.client(owner), table)
        return [(reply["spent"]["epsilon"], reply["spent"]["delta"]) for reply in replies]

    async def scenario():
        async with running(deployment) as servers:
            await upload_both(deployment, rules(budget=Privacy(epsilon=1.0, delta=3e-6)),
                              rules(budget=Privacy(epsilon=1.0, delta=1e-5)))
            job, statuses = await finished(deployment, NOISY_GROUPS)
            assert [s["state"] for s in statuses] == ["done", "done"], statuses
            charge = (await fetch_result(deployment.client("carol"), job)).data["dp_charge"]
            after_groups = [await spent("alice", "customers"), await spent("bob", "orders")]
            with pytest.raises(ServiceError, match="table customers: its privacy budget has "
                                                   "epsilon 0.6 and delta 1e-06 left; this job "
                                                   "needs epsilon 0.4 and delta 2e-06"):
                await submit_job(deployment.client("alice"), NOISY_GROUPS)
            queued = [len(s.jobs.states) for s in servers]
            _, statuses = await finished(deployment, NOISY.format(epsilon=0.4))
            assert [s["state"] for s in statuses] == ["done", "done"], statuses
            return charge, after_groups, queued, await spent("alice", "customers")

    charge, after_groups, queued, after_statistics = asyncio.run(scenario())
    assert charge == {"epsilon": 0.4, "delta": 2e-6, "mechanisms": {
        "noise": {"epsilon": 0.4, "delta": 1e-6},
        "group selection": {"epsilon": 0.0, "delta": 1e-6}}}
    assert after_groups == [[(0.4, 2e-6)] * 2] * 2
    assert queued == [1, 1]
    assert after_statistics == [pytest.approx((0.8, 3e-6))] * 2
