"""Rounds, bytes and seconds per named stage, for one party.

A round is one online message flight the party takes part in: an exchange (both send at once)
counts one, a one-way send counts one for the sender and one for the receiver. Offline time is
the time the stage spent waiting for correlated randomness (from the dealer, or made with the
peer in OT mode); online time is the rest of the stage's wall time. Offline bytes are what this
server sent to make correlations with its peer (OT mode); dealer bytes what the dealer sent it.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field


@dataclass
class StageCost:
    rounds: int = 0
    bytes_sent: int = 0
    messages: int = 0
    dealer_bytes: int = 0
    offline_bytes: int = 0
    wall_s: float = 0.0
    offline_s: float = 0.0

    @property
    def online_s(self) -> float:
        return max(self.wall_s - self.offline_s, 0.0)

    def as_dict(self) -> dict:
        return {**asdict(self), "online_s": self.online_s}


@dataclass
class Accounting:
    """Costs per stage. Stages partition time: a stage entered inside another pauses it, so
    the wall seconds of all stages add up to the time spent inside any stage, each second
    counted once; time outside every stage is not counted."""

    stages: dict[str, StageCost] = field(default_factory=dict)
    current: str = "default"
    message_sizes: list | None = None  # set to [] to record (stream, size) of each send
    _depth: int = 0  # stages entered and not left
    _since: float = 0.0  # when the current stage's clock last started

    def cost(self, name: str | None = None) -> StageCost:
        name = self.current if name is None else name
        if name not in self.stages:
            self.stages[name] = StageCost()
        return self.stages[name]

    def record_send(self, nbytes: int, channel: str = "online") -> None:
        """A message to the peer; on a channel other than "online", offline traffic."""
        cost = self.cost()
        if channel == "online":
            cost.bytes_sent += nbytes
            cost.messages += 1
        else:
            cost.offline_bytes += nbytes
        if self.message_sizes is not None:
            self.message_sizes.append((channel, nbytes))

    def record_dealer_request(self, nbytes: int) -> None:
        if self.message_sizes is not None:
            self.message_sizes.append(("dealer", nbytes))

    def record_round(self) -> None:
        self.cost().rounds += 1

    @contextmanager
    def offline(self):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.cost().offline_s += time.perf_counter() - start

    def _charge(self) -> None:
        """The time since the current stage's clock started goes to that stage."""
        now = time.perf_counter()
        if self._depth:
            self.cost().wall_s += now - self._since
        self._since = now

    @contextmanager
    def stage(self, name: str):
        self._charge()
        previous, self.current = self.current, name
        self._depth += 1
        try:
            yield self.cost(name)
        finally:
            self._charge()
            self._depth -= 1
            self.current = previous
