"""One server's handle on a running job: who it is, its link, its randomness, its costs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twofold.mpc.accounting import Accounting
from twofold.mpc.correlation_source import CorrelationSource
from twofold.mpc.link import PeerLink
from twofold.mpc.prg import Prg
from twofold.mpc.ring import FixedPoint
from twofold.mpc.shares import Additive


@dataclass
class Party:
    id: int
    link: PeerLink
    corr: CorrelationSource  # made with the party, for its whole job
    rng: Prg  # this server's private CSPRNG, for masks it draws itself
    accounting: Accounting
    fixed: FixedPoint = FixedPoint()

    def stage(self, name: str):
        """Account everything inside the with-block to the stage `name`."""
        return self.accounting.stage(name)

    def public(self, values) -> Additive:
        """Shares of a public value: party 0 holds it, party 1 holds zero."""
        values = np.asarray(values, dtype=np.uint64)
        return Additive(values.copy() if self.id == 0 else np.zeros_like(values))
