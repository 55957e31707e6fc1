"""What a server checks before it queues a job, and which jobs a client may name.

At submission a job passes the owners' rules (servers/rules.py) for the live version of every
table it reads, who may submit among them and first of all, then the sizes it would compute
on, a prediction's model and the tables' privacy budgets. `explain` runs the same checks
without queueing anything. A job is checked again when it starts (servers/jobs.py).

Job ids are per submitter: a client names a job "submitter/id", or by an id, its own job of
that id or else the one job of that id it receives; every other job is answered for exactly
as one that does not exist.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from twofold.ml.model import ModelDescription
from twofold.mpc.actions import State
from twofold.mpc.outputs import Output
from twofold.mpc.service import RequestError
from twofold.owners.policy import Policy
from twofold.owners.schema import Schema
from twofold.servers.budget import BudgetLedger, check_budgets
from twofold.servers.costs import RATES_MEASURED, estimate, total
from twofold.servers.exposure import analyze
from twofold.servers.jobs import JobState, JobStore
from twofold.servers.jobspec import JobSpec, PredictSection, check_sizes
from twofold.servers.rules import check_job, review
from twofold.servers.storage import Storage, UploadRecord, check_job_name
from twofold.sorting_join.plan import describe_plan


def known_job(jobs: JobStore, client: str, name: str) -> JobState:
    """The job a client names, among those it may see (it submitted or receives them)."""
    submitter, job_id = check_job_name(name)
    state = jobs.states.get((submitter or client, job_id))
    if state is not None and client in (state.submitter, *state.recipients):
        return state
    if submitter is None:
        received = [s for s in jobs.states.values()
                    if s.job_id == job_id and client in s.recipients]
        if len(received) == 1:
            return received[0]
        if received:
            names = ", ".join(sorted(s.name for s in received))
            raise RequestError(f"{job_id} is the id of several jobs {client} receives: "
                               f"{names}; name one as submitter/id")
    raise RequestError(f"no job {name} for {client}")


def _policies(records: dict[str, UploadRecord]) -> dict[str, Policy]:
    """The owners' rules of these versions of their tables."""
    return {name: Policy.from_json(record.policy) for name, record in records.items()}


class Admission:
    def __init__(self, schema: Schema, storage: Storage, jobs: JobStore, data_dir: Path):
        self.schema = schema
        self.storage = storage
        self.jobs = jobs
        self.data_dir = data_dir

    def admit(self, client: str, spec: JobSpec) -> str:
        """Every check a job must pass before it is queued, the owners' rules (who may submit
        among them) first: nothing else is looked at for a client the rules refuse. Returns
        the name ("submitter/id") of a prediction's model, resolved by the client's view."""
        records = self._records(spec)
        rules = check_job(analyze(spec, self.schema), self.schema, _policies(records), client)
        model, kind = None, None
        if isinstance(spec.section, PredictSection):
            model, kind = self._check_model(client, spec.recipients, spec.section)
        check_sizes(spec, self.schema, records[spec.plan.root].rows, kind)
        if spec.charge is not None:
            ledger = BudgetLedger(self.data_dir)
            try:
                check_budgets(ledger, spec.charge, rules.budgets)
            finally:
                ledger.close()
        return model.name if model else ""

    def explain(self, client: str, spec: JobSpec) -> dict:
        """What a spec would read and release, every rule that applies to it, and whether it
        would be queued; nothing is queued or run."""
        exposure = analyze(spec, self.schema)
        records = self._records(spec)
        findings = review(exposure, self.schema, _policies(records), client)
        try:
            self.admit(client, spec)
            refusal = ""
        except (RequestError, ValueError) as error:  # the rules' and the checks' refusals
            refusal = str(error)
        rows = {name: record.rows for name, record in records.items()}
        plan = describe_plan(spec.plan, rows)
        return {"exposure": exposure.as_dict(), "findings": [asdict(f) for f in findings],
                "plan": plan, "costs": self._costs(client, spec, rows, records),
                "accepted": not refusal, "refusal": refusal}

    def _costs(self, client: str, spec: JobSpec, rows: dict[str, int],
               records: dict[str, UploadRecord]) -> dict:
        """The job's expected rounds, bytes and seconds per stage and in all (servers/costs.py),
        counting the entities of the tables whose owners set a minimum group size and, for a
        prediction, its model's kind (as far as the rules let the client see them)."""
        exposure = analyze(spec, self.schema)
        sizes, model = {}, None
        try:
            sizes = check_job(exposure, self.schema, _policies(records), client).min_group_sizes
            if isinstance(spec.section, PredictSection):
                model = self._check_model(client, spec.recipients, spec.section)[1]
        except (RequestError, ValueError):
            pass  # a refused job: its costs as far as they can be told
        entities = {table: key for table, key in exposure.entities.items() if table in sizes}
        stages = estimate(spec, self.schema, rows, entities, model)
        return {"stages": {name: cost.as_dict() for name, cost in stages.items()},
                "total": total(stages).as_dict(), "rates": RATES_MEASURED}

    def _records(self, spec: JobSpec) -> dict[str, UploadRecord]:
        """The live version of every table the job reads."""
        records, missing = self.storage.live(spec.plan.tables)
        if missing:
            raise RequestError(f"table(s) {', '.join(missing)} not uploaded to both servers")
        return records

    def _check_model(self, client: str, recipients: tuple[str, ...],
                     section: PredictSection) -> tuple[JobState, str]:
        """A prediction uses a finished model its submitter may see, and goes only to that
        model's recipients; the model's job, resolved once, is recorded with the prediction.
        Returns that job and the model's kind (linear or logistic)."""
        model = known_job(self.jobs, client, section.model_job)
        if model.state != State.DONE:
            raise RequestError(f"model job {section.model_job} is not a finished job")
        output = Output.load(self.jobs.output_folder(*model.key))
        if output.kind != "model":
            raise RequestError(f"job {section.model_job} did not train a model")
        description = ModelDescription.from_dict(output.info)
        if section.features != description.features:  # what the owners granted
            raise RequestError(f"the features must be the model's: "
                               f"{', '.join(description.features)}")
        if section.label_range is not None and section.label_range != description.label_range:
            low, high = section.label_range
            raise RequestError(f"the label {section.label} ranges over [{low:g}, {high:g}]; "
                               f"the model's over {list(description.label_range)}")
        outsiders = set(recipients) - set(model.recipients)
        if outsiders:
            raise RequestError(f"{', '.join(sorted(outsiders))} may not receive outputs of "
                               f"model {section.model_job}")
        return model, description.model
