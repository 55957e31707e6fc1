"""The owners' rules by column role, for every job kind: a job that uses a column in a role its
owner did not grant is refused, naming the table, the column and the role; the same job with
the grant is accepted. Also who may submit, the owner's own jobs, level 3, the privacy unit
and max_epsilon against a job's whole charge. The exposure analysis and the rules check are
what both servers run at submission and at start (servers/server.py, servers/jobs.py)."""

from dataclasses import replace

import pytest

from twofold.mpc.privacy import Privacy
from twofold.owners.policy import (
    AGGREGATE_FUNCTIONS,
    OUTPUT_KINDS,
    SAME_INFORMATION,
    Policy,
    PolicyError,
)
from twofold.owners.schema import parse_schema
from twofold.servers.exposure import Use, analyze
from twofold.servers.jobspec import parse_job_spec
from twofold.servers.rules import check_job, review

SCHEMA = {
    "schema": {"fact": "orders", "primary_private": "customers"},
    "tables": {
        "regions": {"owner": "dave", "primary_key": "id",
                    "columns": {"id": {"type": "key"},
                                "income": {"type": "decimal", "min": 0, "max": 100}}},
        "customers": {"owner": "alice", "primary_key": "id",
                      "foreign_keys": [{"columns": ["region"], "references": "regions"}],
                      "columns": {"id": {"type": "key"}, "region": {"type": "key"},
                                  "age": {"type": "integer", "min": 0, "max": 150},
                                  "member": {"type": "boolean"},
                                  "segment": {"type": "categorical", "values": ["a", "b"]}}},
        "orders": {"owner": "bob", "primary_key": ["oid", "line"],
                   "foreign_keys": [{"columns": ["customer"], "references": "customers"}],
                   "columns": {"oid": {"type": "key"}, "line": {"type": "key"},
                               "customer": {"type": "key"},
                               "amount": {"type": "decimal", "min": 0, "max": 1000}}},
    },
}
schema = parse_schema(SCHEMA)
CLIENTS = {"alice", "bob", "carol", "dave", "erin"}


def everything(table: str, **changes) -> Policy:
    """Every role on every column, every kind and level; carol receives and submits."""
    columns = schema.table(table).column_names
    return replace(Policy(recipients=("carol",), outputs=OUTPUT_KINDS, dimension_columns=columns,
                          aggregate_columns={c: AGGREGATE_FUNCTIONS for c in columns},
                          model_columns=columns, min_group_size=1, min_privacy_level=3),
                   **changes)


def without(policy: Policy, table: str, use: Use) -> Policy:
    """The policy with exactly one grant taken away."""
    if use.role == "aggregate":
        taken = {use.function, SAME_INFORMATION.get(use.function)}
        functions = {c: tuple(f for f in fs if c != use.column or f not in taken)
                     for c, fs in policy.aggregate_columns.items()}
        return replace(policy, aggregate_columns=functions)
    if use.role == "join":
        keys = [c.name for c in schema.table(table).columns if c.type == "key"]
        return replace(policy, join_columns=[k for k in keys if k != use.column])
    key = {"filter": "dimension_columns", "group": "dimension_columns",
           "row output": "dimension_columns"}.get(use.role, "model_columns")
    return replace(policy, **{key: [c for c in getattr(policy, key) if c != use.column]})


def job(body: str, recipients=("carol",)) -> str:
    names = ", ".join(f'"{name}"' for name in recipients)
    return f"[job]\nrecipients = [{names}]\n{body}"


def checked(text: str, policies: dict | None = None, submitter: str = "carol"):
    spec = parse_job_spec(text, schema, CLIENTS)
    policies = {**{t: everything(t) for t in spec.plan.tables}, **(policies or {})}
    return check_job(analyze(spec, schema), schema, policies, submitter)


TRAIN = ('[train]\nmodel = "logistic"\nfeatures = ["customers.age", "regions.income"]\n'
         'label = "customers.member"\niterations = 10\nbatch_size = 2\nlearning_rate = 0.1\n'
         "privacy_level = 3\n")
PREDICT = '[predict]\nmodel_job = "m"\nfeatures = ["customers.age", "regions.income"]\n'
WHERE = "where = \"customers.segment == 'a'\"\n"
# every job kind, and the uses its exposure must list (every role at least once)
CASES = {
    "rows": (job(WHERE + '[output]\ncolumns = ["orders.amount", "customers.age"]\n'),
             [Use("orders", "amount", "row output"), Use("customers", "age", "row output"),
              Use("customers", "segment", "filter"), Use("orders", "customer", "join"),
              Use("customers", "id", "join"), Use("customers", "region", "join"),
              Use("regions", "id", "join")]),
    "aggregate": (job('[aggregate]\ngroup_by = ["customers.segment"]\nsum = ["orders.amount"]\n'
                      'mean = ["regions.income"]\nmin = ["customers.age"]\n'
                      'max = ["customers.age"]\n'),
                  [Use("customers", "segment", "group"),
                   Use("orders", "amount", "aggregate", "sum"),
                   Use("regions", "income", "aggregate", "mean"),
                   Use("customers", "age", "aggregate", "min"),
                   Use("customers", "age", "aggregate", "max")]),
    "statistics": (job('[statistics]\ncolumns = ["orders.amount"]\n'
                       'histogram = ["customers.segment"]\n'),
                   [Use("orders", "amount", "aggregate", f)
                    for f in ("sum", "variance", "min", "max")]
                   + [Use("customers", "segment", "aggregate", "histogram")]),
    "train": (job(TRAIN), [Use("customers", "age", "feature"),
                           Use("regions", "income", "feature"),
                           Use("customers", "member", "label")]),
    "predictions": (job(PREDICT + 'columns = ["orders.oid"]\n'),
                    [Use("customers", "age", "predict input"),
                     Use("regions", "income", "predict input"),
                     Use("orders", "oid", "row output")]),
    "metrics": (job(PREDICT + 'label = "customers.member"\n'),
                [Use("customers", "age", "predict input"),
                 Use("customers", "member", "label")]),
}
MATRIX = [(kind, use) for kind, (_, uses) in CASES.items() for use in uses]


@pytest.mark.parametrize("kind, use", MATRIX, ids=[f"{k}-{u.table}.{u.column}-{u.describe()}"
                                                   for k, u in MATRIX])
def test_a_role_not_granted_is_refused_and_the_grant_accepts(kind, use):
    text, _ = CASES[kind]
    spec = parse_job_spec(text, schema, CLIENTS)
    assert use in analyze(spec, schema).uses
    checked(text)  # everything granted: accepted
    policies = {use.table: without(everything(use.table), use.table, use)}
    with pytest.raises(PolicyError) as refused:
        checked(text, policies)
    message = str(refused.value)
    assert message.startswith(f"table {use.table}: ") and "\n" not in message
    assert f"column {use.column} the role {use.describe()}" in message


def test_the_exposure_lists_exactly_what_a_job_touches():
    uses = set(analyze(parse_job_spec(CASES["statistics"][0], schema, CLIENTS), schema).uses)
    joins = {Use("orders", c, "join") for c in ("customer",)} | {
        Use("customers", c, "join") for c in ("id", "region")} | {Use("regions", "id", "join")}
    assert uses == set(CASES["statistics"][1]) | joins
    noisy = job('[statistics]\ncolumns = ["orders.amount"]\n'
                "noise = { epsilon = 1.0, delta = 1e-6, tau = 2 }\n")
    exposure = analyze(parse_job_spec(noisy, schema, CLIENTS), schema)
    assert {u.function for u in exposure.uses if u.role == "aggregate"} == {"sum", "variance"}
    assert (exposure.level, exposure.unit, exposure.output) == (5, "customers", "statistics")


def test_keys_are_join_columns_only_by_default():
    """A default policy grants the keys their join role and nothing else: grouping by the
    primary key (a table's rows, one group each) is refused."""
    default = Policy(recipients=("carol",))
    by_key = job('[aggregate]\ngroup_by = ["customers.id"]\nsum = ["orders.amount"]\n')
    with pytest.raises(PolicyError, match="column id the role group"):
        checked(by_key, {"customers": default})
    with pytest.raises(PolicyError, match="column amount the role aggregate"):
        checked(job('[statistics]\ncolumns = ["orders.amount"]\n'),
                {"orders": default, "customers": replace(default, outputs=OUTPUT_KINDS)})
    assert checked(job('[statistics]\nhistogram = ["customers.segment"]\n'),
                   {"customers": replace(default, aggregate_columns={"segment": ["histogram"]}),
                    "orders": default, "regions": default}).min_group_sizes == {
        "customers": 2, "orders": 2, "regions": 2}


def test_only_analysts_submit_and_the_owner_is_free_with_its_own_table():
    text = job('[statistics]\ncolumns = ["customers.age"]\n', recipients=("carol",))
    with pytest.raises(PolicyError, match="does not let erin submit"):
        checked(text, submitter="erin")
    checked(text, {t: everything(t, analysts=("erin",)) for t in schema.tables},
            submitter="erin")
    # alice's job for herself alone reads her table under no rule of hers (orders and regions
    # still bind it), and no minimum group size of hers is applied
    own = job('[statistics]\ncolumns = ["customers.age"]\n', recipients=("alice",))
    strict = Policy(recipients=("alice",), outputs=(), min_group_size=50)
    policies = {"customers": strict,
                "orders": everything("orders", recipients=("alice",), analysts=("carol",)),
                "regions": everything("regions", recipients=("alice",), analysts=("alice",))}
    with pytest.raises(PolicyError, match="table orders: its owner does not let alice"):
        checked(own, policies, submitter="alice")
    policies["orders"] = replace(policies["orders"], analysts=("alice",))
    assert checked(own, policies, submitter="alice").min_group_sizes == {}
    by_bob = review(analyze(parse_job_spec(own, schema, CLIENTS), schema), schema, policies,
                    "bob")  # for alice, but not by her
    assert ("table customers: its owner does not let bob submit jobs that read it (the owner "
            "would add bob to analysts)") in [
        f.why for f in by_bob if not f.allowed]


def test_level_3_needs_every_owner_to_allow_it():
    with pytest.raises(PolicyError, match="table regions: its owner requires privacy level 4"):
        checked(job(TRAIN), {"regions": everything("regions", min_privacy_level=4)})
    checked(job(TRAIN.replace("privacy_level = 3", "privacy_level = 4\nmin_join_size = 10")),
            {t: everything(t, min_privacy_level=4) for t in ("regions", "customers", "orders")})


NOISY_GROUPS = job('[aggregate]\ngroup_by = ["customers.segment"]\nsum = ["orders.amount"]\n'
                   "noise = { epsilon = 1.0, delta = 1e-6, tau = 2 }\n")


def test_a_budget_binds_only_jobs_that_protect_its_unit():
    """A region describes many customers: a per-customer bound cannot protect it, so its
    owner's budget refuses such a job. The same job bounding contributions per region is
    charged to the regions' budget, and refused by an owner whose budget protects customers;
    tables without DP rules are read, not charged."""
    budget = Privacy(epsilon=10.0, delta=1e-3)
    regions = everything("regions", budget=budget)
    assert regions.unit(schema, "regions") == "regions"
    assert everything("orders").unit(schema, "orders") == "customers"
    with pytest.raises(PolicyError, match='protect entities of regions; this job bounds '
                                          'contributions per customers entity'):
        checked(NOISY_GROUPS, {"regions": regions})
    per_region = NOISY_GROUPS.replace("tau = 2", 'tau = 2, unit = "regions"')
    rules = checked(per_region, {"regions": regions})
    assert rules.budgets == {"regions": budget}
    with pytest.raises(PolicyError, match="protect entities of customers"):
        checked(per_region, {"regions": regions, "customers": everything(
            "customers", budget=budget)})
    # without DP rules a table is read unprotected and not charged
    assert checked(NOISY_GROUPS).budgets == {"customers": None, "orders": None}


def test_an_owner_may_protect_its_own_rows_instead():
    orders = everything("orders", privacy_unit="orders", max_epsilon=5.0)
    with pytest.raises(PolicyError, match="protect entities of orders"):
        checked(NOISY_GROUPS, {"orders": orders})
    per_order = NOISY_GROUPS.replace("tau = 2", 'tau = 1, unit = "orders"')
    assert set(checked(per_order, {"orders": orders}).budgets) == {"orders"}
    with pytest.raises(PolicyError, match="privacy_unit: a row of customers describes an "
                                          "entity of customers or regions, not of 'orders'"):
        everything("customers", privacy_unit="orders").check_against(
            schema, schema.table("customers"))


def test_max_epsilon_binds_the_whole_charge():
    """A level-5 training is charged its epsilon and its noisy size check's."""
    text = job(TRAIN.replace("privacy_level = 3", "privacy_level = 5\nepsilon = 0.95\n"
                             "delta = 1e-6\ntau = 2\nmin_join_size = 10"))
    capped = {"customers": everything("customers", max_epsilon=1.0)}
    with pytest.raises(PolicyError, match=r"epsilon <= 1; this job's charge is epsilon 1.05"):
        checked(text, capped)
    checked(text.replace("tau = 2", "tau = 2\nsize_check_epsilon = 0.05"), capped)
    with pytest.raises(PolicyError, match="this job is not differentially private"):
        checked(job(TRAIN), capped)


def test_review_lists_every_rule_for_explain():
    text = CASES["rows"][0]
    spec = parse_job_spec(text, schema, CLIENTS)
    policies = {t: everything(t) for t in spec.plan.tables}
    policies["customers"] = without(policies["customers"], "customers",
                                    Use("customers", "age", "row output"))
    findings = review(analyze(spec, schema), schema, policies, "carol")
    refused = [f for f in findings if not f.allowed]
    assert [f.rule for f in refused] == ["age: row output"]
    assert {f.table for f in findings} == {"orders", "customers", "regions"}
    assert any(f.rule == "outputs" and f.allowed for f in findings)


@pytest.mark.integration
def test_a_parent_tables_budget_through_the_servers(tmp_path):
    """dave's regions keep a budget, which protects regions: a per-customer noisy group-by is
    refused at submission, in one line; the same job bounding contributions per region runs,
    and spends from dave's budget alone, on both servers."""
    import asyncio

    import tomli_w

    from tests.support.servers import make_deployment, running, upload_file
    from twofold.client import run_job, table_budget
    from twofold.mpc.rpc import ServiceError

    (tmp_path / "regions.csv").write_text("id,income\n" + "".join(
        f"{i},{10 * i}\n" for i in range(4)))
    (tmp_path / "customers.csv").write_text("id,region,age,member,segment\n" + "".join(
        f"{i},{i % 4},{20 + i},{'yes' if i % 2 else 'no'},{'ab'[i % 2]}\n" for i in range(40)))
    (tmp_path / "orders.csv").write_text("oid,line,customer,amount\n" + "".join(
        f"{i},0,{i % 40},{i}\n" for i in range(80)))
    deployment = make_deployment(tmp_path, tomli_w.dumps(SCHEMA),
                                 owners=("alice", "bob", "carol", "dave"))
    budget = Privacy(epsilon=10.0, delta=1e-3)

    async def scenario():
        async with running(deployment):
            for owner, table in (("dave", "regions"), ("alice", "customers"),
                                 ("bob", "orders")):
                policy = everything(table, budget=budget if table == "regions" else None)
                await upload_file(deployment, owner, table, policy=policy)
            carol = deployment.client("carol")
            with pytest.raises(ServiceError) as refused:
                await run_job(carol, NOISY_GROUPS)
            per_region = NOISY_GROUPS.replace("tau = 2", 'tau = 40, unit = "regions"')
            _, result = await run_job(carol, per_region, timeout_s=120)
            spent = [(await table_budget(deployment.client(owner), table))
                     for owner, table in (("dave", "regions"), ("alice", "customers"))]
            return str(refused.value), result.data, spent

    refusal, groups, (regions, customers) = asyncio.run(scenario())
    assert "\n" not in refusal and refusal.endswith(
        'table regions: its owner\'s privacy rules protect entities of regions; this job bounds '
        'contributions per customers entity (give the job unit = "regions")')
    assert groups["dp_charge"]["epsilon"] == 1.0 and groups["dp_charge"]["delta"] == 2e-6
    assert [r["spent"] for r in regions] == [{"epsilon": 1.0, "delta": 2e-6}] * 2
    assert [r["spent"] for r in customers] == [{"epsilon": 0.0, "delta": 0.0}] * 2
