"""Owners' policies: what an owner allows jobs to do with its table.

A policy travels with each upload (and is part of what both servers compare), and every job is
checked against the policies of all the tables it reads before any work.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


class PolicyError(ValueError):
    """A job that breaks an owner's policy; the message names the table and the rule."""


@dataclass(frozen=True)
class Policy:
    recipients: tuple[str, ...] | None = None  # None: any registered client
    min_privacy_level: int = 3
    max_epsilon: float | None = None  # None: no differential privacy required

    def __post_init__(self):
        if self.min_privacy_level not in (3, 4, 5):
            raise PolicyError("the minimum privacy level must be 3, 4 or 5")
        if self.max_epsilon is not None and not 0 < self.max_epsilon <= 100:
            raise PolicyError("the largest epsilon must be in (0, 100]")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Policy":
        raw = json.loads(text or "{}")
        recipients = raw.get("recipients")
        return cls(tuple(recipients) if recipients is not None else None,
                   raw.get("min_privacy_level", 3), raw.get("max_epsilon"))


def check_policies(spec, policies: dict[str, Policy]) -> None:
    """Refuse the job (a servers.jobspec.JobSpec) if it breaks any table's policy."""
    level, epsilon = _privacy_of(spec)
    for table, policy in policies.items():
        if policy.recipients is not None:
            outsiders = sorted(set(spec.recipients) - set(policy.recipients))
            if outsiders:
                raise PolicyError(f"table {table}: its owner does not allow outputs to "
                                  f"{', '.join(outsiders)}")
        if level < policy.min_privacy_level:
            raise PolicyError(f"table {table}: its owner requires privacy level "
                              f"{policy.min_privacy_level} or more; this job has level {level}")
        if policy.max_epsilon is not None and (epsilon is None or epsilon > policy.max_epsilon):
            raise PolicyError(f"table {table}: its owner allows only differentially private "
                              f"jobs with epsilon <= {policy.max_epsilon:g}")


def _privacy_of(spec) -> tuple[int, float | None]:
    """(privacy level, epsilon or None) of a job: training declares its level; statistics
    with noise count as level 5; other outputs reveal unprotected results (level 3)."""
    if spec.train is not None:
        return spec.train.level, spec.train.epsilon if spec.train.level == 5 else None
    if spec.kind == "statistics" and spec.noise is not None:
        return 5, spec.noise[0]
    return 3, None
