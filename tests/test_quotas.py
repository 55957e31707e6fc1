"""The operator's quotas (two servers in this process): rows and bytes per owner, refused at
an upload's begin; jobs queued or running per client; a time limit per job, enforced on both
servers while other clients' jobs still run; and the [quotas] section of a config."""

import asyncio
from dataclasses import replace

import pytest

from tests.support.harness import OPEN_POLICY
from tests.support.servers import CUSTOMERS, make_deployment, running, upload_file
from twofold.client import run_job, submit_job, wait_for_job
from twofold.mpc.rpc import ServiceError
from twofold.servers.config import ConfigError, Limits, Quotas, load_quotas
from twofold.servers.storage import Storage

pytestmark = pytest.mark.integration  # two servers in this process

STATISTICS = ('[job]\nrecipients = ["carol", "dave"]\ntables = ["customers"]\n'
              '[statistics]\ncolumns = ["customers.age"]\n')


def deployment_with(tmp_path, quotas: Quotas):
    (tmp_path / "customers.csv").write_text(CUSTOMERS)  # 300 rows
    deployment = make_deployment(tmp_path, owners=("alice", "bob", "carol", "dave"),
                                 timeout_s=20.0)
    deployment.configs = [replace(c, quotas=quotas) for c in deployment.configs]
    return deployment


def versions(deployment) -> list[int]:
    counts = []
    for config in deployment.configs:
        storage = Storage(config.data_dir)
        counts.append(len(storage.records()))
        storage.close()
    return counts


@pytest.mark.parametrize("limits, message", [
    (Limits(owner_rows=500), "alice's tables would hold 620 rows on server ., over its quota "
                             "of 500 rows \\(owner_rows\\)"),
    (Limits(owner_bytes=20000), "alice's tables would take .* bytes on server ., over its "
                                "quota of 20000 bytes \\(owner_bytes\\)"),
])
def test_an_upload_over_the_owners_quota_is_refused_at_begin(tmp_path, limits, message):
    deployment = deployment_with(tmp_path, Quotas(clients={"alice": limits}))

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers")  # 300 rows
            with pytest.raises(ServiceError, match=message):
                await upload_file(deployment, "alice", "customers", pad_to=320)

    asyncio.run(scenario())
    assert versions(deployment) == [1, 1]  # nothing of the second was stored


def test_a_client_over_its_jobs_quota_is_refused_while_another_clients_job_runs(tmp_path):
    deployment = deployment_with(tmp_path, Quotas(default=Limits(client_jobs=1)))
    carol, dave = deployment.client("carol"), deployment.client("dave")

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers", policy=OPEN_POLICY)
            first = await submit_job(carol, STATISTICS)
            with pytest.raises(ServiceError, match="carol already has 1 job\\(s\\) queued or "
                                                   "running, the most server . allows"):
                await submit_job(carol, STATISTICS)
            _, result = await run_job(dave, STATISTICS, timeout_s=120)
            statuses = await wait_for_job(carol, first, timeout_s=120)
            _, again = await run_job(carol, STATISTICS, timeout_s=120)  # its first one ended
            return result, statuses, again

    result, statuses, again = asyncio.run(scenario())
    assert result.data["values"]["count"] == again.data["values"]["count"] == 300
    assert [s["state"] for s in statuses] == ["done", "done"]


def test_a_job_past_its_time_limit_is_stopped_on_both_servers(tmp_path):
    """carol's jobs may run 10 ms (a join of 300 rows takes far longer); dave's, the default."""
    deployment = deployment_with(tmp_path, Quotas(clients={"carol": Limits(job_seconds=0.01)}))
    carol, dave = deployment.client("carol"), deployment.client("dave")

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers", policy=OPEN_POLICY)
            await submit_job(carol, STATISTICS, "j1")
            statuses = await wait_for_job(carol, "j1", timeout_s=120)
            _, result = await run_job(dave, STATISTICS, timeout_s=120)
            return statuses, result

    statuses, result = asyncio.run(scenario())
    stopped = "job carol/j1 stopped: it ran past the 0.01 s limit for carol"
    assert [(s["state"], s["error"]) for s in statuses] == [("failed", stopped)] * 2
    assert result.data["values"]["count"] == 300


def test_servers_with_different_quotas_run_no_job(tmp_path):
    deployment = deployment_with(tmp_path, Quotas())
    deployment.configs[1] = replace(deployment.configs[1],
                                    quotas=Quotas(default=Limits(client_jobs=5)))
    carol = deployment.client("carol")

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "customers", policy=OPEN_POLICY)
            job = await submit_job(carol, STATISTICS)
            return await wait_for_job(carol, job, timeout_s=120)

    statuses = asyncio.run(scenario())
    assert [s["state"] for s in statuses] == ["failed", "failed"]
    assert "the servers' quotas differ" in statuses[0]["error"]


def test_the_quotas_section_of_a_server_config(tmp_path):
    path = tmp_path / "server0.toml"
    quotas = load_quotas(path, {"client_jobs": 4, "job_seconds": 600,
                                "clients": {"carol": {"job_seconds": 60}}}, {"carol": b""})
    assert quotas.of("dave") == Limits(client_jobs=4, job_seconds=600.0)
    assert quotas.of("carol") == Limits(client_jobs=4, job_seconds=60.0)
    assert load_quotas(path, {}, {}) == Quotas()
    for table, message in [({"rows": 5}, "\\[quotas\\] has no 'rows'"),
                           ({"client_jobs": 0}, "'client_jobs' must be a positive whole number"),
                           ({"job_seconds": "1h"}, "'job_seconds' must be a positive number"),
                           ({"clients": {"mallory": {}}}, "names mallory, not a registered")]:
        with pytest.raises(ConfigError, match=f"server0.toml: .*{message}"):
            load_quotas(path, table, {"carol": b""})
