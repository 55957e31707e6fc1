"""Sums that could leave the ring are refused at submission, for the schema's fractional bits
and the join's public row count; sums that fit are exact."""

import asyncio
import re
import tomllib

import pytest

from tests.support.harness import OPEN_POLICY
from tests.support.servers import make_deployment, running, upload_file
from twofold.client import run_job
from twofold.mpc.rpc import ServiceError
from twofold.owners.schema import parse_schema
from twofold.servers.jobspec import JobSpecError, check_sizes, parse_job_spec

pytestmark = pytest.mark.integration  # two servers, in process or not

READINGS = """
[schema]
fact = "readings"
primary_private = "readings"
frac_bits = {frac_bits}
[tables.readings]
owner = "alice"
primary_key = "id"
[tables.readings.columns]
id = {{ type = "key" }}
value = {{ type = "decimal", min = 0, max = {largest} }}
"""
STATISTICS = '[job]\nrecipients = ["carol"]\n[statistics]\ncolumns = ["readings.value"]\n'


def statistics_of(tmp_path, values, frac_bits, largest):
    (tmp_path / "readings.csv").write_text(
        "id,value\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))
    deployment = make_deployment(tmp_path, READINGS.format(frac_bits=frac_bits, largest=largest),
                                 owners=("alice", "carol"))

    async def scenario():
        async with running(deployment):
            await upload_file(deployment, "alice", "readings", policy=OPEN_POLICY)
            _, result = await run_job(deployment.client("carol"), STATISTICS, timeout_s=120)
            return result.data["values"]["readings.value"]

    return asyncio.run(scenario())


def test_the_sum_of_squares_is_exact_where_it_fits(tmp_path):
    """40000, 50000, 1, 2 at 8 fractional bits: variance from the exact 4100000005 (at 16
    bits the same job gave a sum of squares of -1.95e8; it is now refused, below)."""
    got = statistics_of(tmp_path, [40000, 50000, 1, 2], 8, 100000)
    mean = 90003 / 4
    assert got["sum"] == 90003 and got["mean"] == mean
    assert got["variance"] == pytest.approx(4100000005 / 4 - mean * mean, rel=1e-12)


def test_a_sum_of_squares_that_would_wrap_is_refused_at_submission(tmp_path):
    with pytest.raises(ServiceError, match="the sum of squares of readings.value needs "
                                           r"\|value\| below 2\^15 at 16 fractional bits"):
        statistics_of(tmp_path, [40000, 50000, 1, 2], 16, 100000)


def schema_with(frac_bits, largest):
    return parse_schema(tomllib.loads(READINGS.format(frac_bits=frac_bits, largest=largest)))


NOISY = STATISTICS + "noise = {{ epsilon = 0.1, delta = 1e-6, tau = {tau} }}\n"
SUM = '[job]\nrecipients = ["carol"]\n[aggregate]\nsum = ["readings.value"]\n'


@pytest.mark.parametrize("spec, frac_bits, largest, rows, message, fitting", [
    # 30000^2 fits one product at 16 bits, but not 200000 of them: 2^47 / 9e8 rows at most
    (STATISTICS, 16, 30000, 200_000, "sumsq(readings.value) over 200000 rows", (STATISTICS, 10)),
    (SUM, 24, 1e6, 2**20,
     "sum(readings.value) over 1048576 rows can reach 1048576000000.0, beyond 2^39",
     (SUM, 2**18)),
    # the noise both servers add: at epsilon 0.1 and tau 100 it dwarfs the data
    (NOISY.format(tau=100), 16, 30000, 1000, "sumsq(readings.value) over 1000 rows",
     (NOISY.format(tau=1), 1000)),
])
def test_sums_that_could_leave_the_ring_are_refused(spec, frac_bits, largest, rows, message,
                                                     fitting):
    schema = schema_with(frac_bits, largest)
    with pytest.raises(JobSpecError, match=re.escape(message)):
        check_sizes(parse_job_spec(spec, schema, {"carol"}), schema, rows)
    fitting_spec, fitting_rows = fitting
    check_sizes(parse_job_spec(fitting_spec, schema, {"carol"}), schema, fitting_rows)


def test_a_model_job_id_follows_the_job_id_rule():
    """Job ids may hold '-' and '_' (servers/storage.ID_PATTERN); a prediction must be able to
    name such a training job, by its id or as submitter/id, and nothing else."""
    schema = schema_with(16, 100)
    spec = ('[job]\nrecipients = ["carol"]\n[predict]\nmodel_job = "{}"\n'
            'features = ["readings.value"]\n')
    for name in ("run-1_b", "bob/run-1_b"):
        assert parse_job_spec(spec.format(name), schema, {"carol"}).section.model_job == name
    for name in ("../run", "bob/../run", "/run", "a/b/c"):
        with pytest.raises(JobSpecError, match="needs 'model_job'"):
            parse_job_spec(spec.format(name), schema, {"carol"})


def test_a_prediction_sent_without_features_is_refused_with_the_fix():
    """The client fills in the model's features (Client.completed); a spec that reaches the
    servers without them says so, on the [predict] line."""
    spec = '[job]\nrecipients = ["carol"]\n[predict]\nmodel_job = "m"\n'
    with pytest.raises(JobSpecError, match=re.escape(
            "line 3: [predict] needs the model's 'features' (twofold job and Client fill them "
            "in from the model when left out)")):
        parse_job_spec(spec, schema_with(16, 100), {"carol"})
