"""What a client makes of the two servers' audit logs: whether they verify and agree
(`twofold audit verify`), every job that read an owner's table (`twofold owner audit`), and a
recipient's receipt for a job (`twofold job receipt`). docs/audit.md says what each proves.

Every report verifies first: each server's chain and the signatures it can see with the
verify keys in the client's config, then that the two servers agree on every event both log.
"""

from __future__ import annotations

from dataclasses import dataclass

from twofold.client import fetch_audit_logs, fetch_outputs, job_status
from twofold.config import ClientConfig, ClientConfigError
from twofold.mpc.audit import Entry, check_view, columns_digest, compare
from twofold.mpc.signing import VerifyKey


@dataclass(frozen=True)
class Audited:
    """Both servers' views of their logs, and what is wrong with them (nothing, ideally)."""

    views: list[list[Entry]]
    problems: list[str]

    def entries(self, party: int, kind: str, job: str | None = None) -> list[Entry]:
        return [e for e in self.views[party]
                if e.kind == kind and (job is None or e.event.get("job") == job)]


def _verify_keys(config: ClientConfig) -> tuple[VerifyKey, VerifyKey]:
    first, second = config.verify_keys
    for party, key in enumerate(config.verify_keys):
        if key is None:
            raise ClientConfigError(f"the config names no verify_key for server {party}: "
                                    "its [[servers]] entry needs the server's NAME.sign")
    assert first is not None and second is not None
    return first, second


def audited(views: list[list[Entry]], keys: tuple[VerifyKey, VerifyKey]) -> Audited:
    """Each view's chain and signatures, then the two views against each other."""
    problems = [*check_view(views[0], keys[0], 0), *check_view(views[1], keys[1], 1)]
    return Audited(views, problems + compare(views))


async def verify(config: ClientConfig) -> Audited:
    keys = _verify_keys(config)
    return audited(await fetch_audit_logs(config), keys)


def table_jobs(audit: Audited, table: str) -> list[dict]:
    """Every job that read `table`, as server 0 logs it (verification compares server 1's):
    when it was submitted and by whom, its recipients, kind, the table's columns and their
    roles, the version it read, the epsilon it spent on the table, and whether its output was
    released and who fetched it."""
    jobs = []
    for submit in audit.entries(0, "submit"):
        event = submit.event
        if table not in event.get("tables", []):
            continue
        job = event["job"]
        starts = audit.entries(0, "start", job)
        spends = [e.event.get("tables", {}).get(table) for e in audit.entries(0, "spend", job)]
        jobs.append({
            "job": job, "submitted_at": submit.own.get("at"), "submitter": event["submitter"],
            "recipients": event["recipients"], "kind": event["kind"],
            "output": event["output"], "level": event["level"],
            "columns": [{"column": column, "role": role, "function": function}
                        for used, column, role, function in event["uses"] if used == table],
            "version": starts[0].event["versions"].get(table) if starts else None,
            "started_at": starts[0].own.get("at") if starts else None,
            "epsilon": sum(spent["epsilon"] for spent in spends if spent) if spends else None,
            "released": bool(audit.entries(0, "release", job)),
            "fetched_by": sorted({e.event["client"] for e in audit.entries(0, "fetch", job)})})
    return jobs


async def receipt(config: ClientConfig, job: str) -> tuple[Audited, list[dict]]:
    """A recipient's receipt: each server's signed entries about the job (what it ran, on
    which versions, what it released) and whether the output shares fetched from it now are
    the ones it logged at release."""
    keys = _verify_keys(config)
    name = (await job_status(config, job))[0]["job"]  # submitter/id, as the logs name it
    outputs = await fetch_outputs(config, name)
    audit = audited(await fetch_audit_logs(config), keys)
    statements, problems = [], list(audit.problems)
    for party, output in enumerate(outputs):
        entries = [e for e in audit.views[party] if e.event.get("job") == name]
        releases = [e for e in entries if e.kind == "release"]
        fetched = columns_digest({c.name: values for c, values in
                                  zip(output.columns, output.shares, strict=True)})
        if not releases:
            problems.append(f"server {party} has no release for job {name}")
        elif releases[-1].own.get("output_digest") != fetched:
            problems.append(f"server {party} entry {releases[-1].seq}: the output shares "
                            f"fetched (digest {fetched[:16]}) are not the ones it logged for "
                            f"job {name}")
        statements.append({"server": party, "job": name, "fetched_digest": fetched,
                           "entries": [e.as_dict() for e in entries]})
    return Audited(audit.views, problems), statements
