"""The audit log's entries, and how a client checks what a server shows it of its log: the
format both sides share (servers/audit.py keeps the log, client/audit.py verifies).

An entry is one event as one server saw it: its position (`seq`, from 0), the hash of the
entry before it (`prev`; GENESIS for the first), its `kind`, the fields of the event that both
servers know (`event`) and those only this server knows (`own`: when, digests of its own
shares, a random nonce), signed with the server's Ed25519 key over its canonical JSON (sorted
keys, no spaces). An entry's hash is the SHA-256 of those same bytes, so each entry commits to
every entry before it.

The two servers see the same events in orders of their own (an owner uploads to each server in
turn, clients ask each server separately), so entries are matched across servers by their
event identity (IDENTITY: the kind and who/what it is about, e.g. an upload by its owner and
upload id, a job's entries by the job), the n-th entry of an identity on one server with the
n-th on the other, and then every `event` field must be equal.

A client sees only some entries in full (servers/audit.py decides which); the others come as
stubs: their position, their `prev` and their hash, nothing of their content. The view is
still the whole chain, so a client checks every link, and the signature of every entry it
sees in full.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from twofold.mpc.errors import TwofoldError
from twofold.mpc.signing import VerifyKey, signature_holds

GENESIS = "0" * 64
# kind -> the event fields that identify it across the two servers
IDENTITY = {
    "upload": ("owner", "upload_id"),  # an upload became its table's live version
    "withdraw": ("owner", "table", "withdrawal"),
    "submit": ("job",),  # "submitter/id"
    "start": ("job",),
    "spend": ("job",),
    "release": ("job",),
    "fetch": ("job", "client"),
}
# a client may ask one server only (the other did not answer): such an entry may be missing
# on the other server without either being wrong
ONE_SIDED = ("fetch",)


class AuditError(TwofoldError, ValueError):
    """An audit log that cannot be read, or a check that cannot be made."""


def columns_digest(columns: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of named columns of shares, in order: a table version as a server stores it, an
    output as a server releases it and as a recipient fetches it."""
    digest = hashlib.sha256()
    for name, values in columns.items():
        digest.update(name.encode() + b"\0")
        digest.update(np.ascontiguousarray(values, np.uint64).tobytes())
    return digest.hexdigest()


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Entry:
    seq: int
    prev: str
    kind: str
    event: dict
    own: dict
    signature: str = ""  # hex; empty in a stub
    stub_hash: str = ""  # a stub's hash as the server gives it; empty in a full entry

    @property
    def is_stub(self) -> bool:
        return bool(self.stub_hash)

    def body(self) -> bytes:
        """The signed bytes."""
        return canonical({"seq": self.seq, "prev": self.prev, "kind": self.kind,
                          "event": self.event, "own": self.own})

    @property
    def hash(self) -> str:
        return self.stub_hash or hashlib.sha256(self.body()).hexdigest()

    @property
    def identity(self) -> tuple:
        return (self.kind, *(str(self.event.get(field)) for field in IDENTITY.get(self.kind, ())))

    def describe(self) -> str:
        """The event in words: "release for job carol/j1", "upload alice/u1"."""
        fields = [str(self.event.get(field)) for field in IDENTITY.get(self.kind, ())]
        if "job" in IDENTITY.get(self.kind, ()):
            return f"{self.kind} for job {fields[0]}" + (f" by {fields[1]}" if fields[1:]
                                                         else "")
        return f"{self.kind} {'/'.join(fields)}"

    def as_dict(self) -> dict:
        if self.is_stub:
            return {"seq": self.seq, "prev": self.prev, "hash": self.stub_hash}
        return {"seq": self.seq, "prev": self.prev, "kind": self.kind, "event": self.event,
                "own": self.own, "signature": self.signature}

    def stub(self) -> Entry:
        return Entry(self.seq, self.prev, "", {}, {}, stub_hash=self.hash)

    @classmethod
    def from_dict(cls, data) -> Entry:
        """An entry or a stub as a server stored or sent it, its fields' types checked."""
        if not isinstance(data, dict) or not isinstance(data.get("seq"), int) or not (
                isinstance(data.get("prev"), str)):
            raise ValueError(f"not an audit entry: {str(data)[:80]}")
        if "hash" in data:
            if not isinstance(data["hash"], str) or not data["hash"]:
                raise ValueError(f"entry {data['seq']}: a stub needs its hash")
            return cls(data["seq"], data["prev"], "", {}, {}, stub_hash=data["hash"])
        kinds = {"kind": str, "event": dict, "own": dict, "signature": str}
        for name, kind in kinds.items():
            if not isinstance(data.get(name), kind):
                raise ValueError(f"entry {data['seq']}: '{name}' must be a {kind.__name__}")
        return cls(data["seq"], data["prev"], data["kind"], data["event"], data["own"],
                   data["signature"])


def encode_view(entries: list[Entry]) -> bytes:
    """Entries and stubs as JSON lines: how a log is stored and sent."""
    return b"".join(canonical(entry.as_dict()) + b"\n" for entry in entries)


def decode_view(data: bytes) -> list[Entry]:
    """Every complete line (a last line without its newline was cut short by a crash before
    it was acknowledged); ValueError names a line that is not an entry."""
    entries = []
    for number, line in enumerate(data.split(b"\n")[:-1], start=1):
        try:
            entries.append(Entry.from_dict(json.loads(line)))
        except ValueError as error:  # json's errors are ValueErrors too
            raise ValueError(f"line {number}: {error}") from None
    return entries


def check_view(entries: list[Entry], key: VerifyKey, party: int) -> list[str]:
    """What is wrong with one server's view of its log: each problem in one line naming the
    entry. Every link of the chain is checked, and the signature of every full entry."""
    problems = []
    seqs = [entry.seq for entry in entries]
    last = max(seqs, default=-1)
    absent = sorted(set(range(last + 1)) - set(seqs)) if last < 2 * len(seqs) + 16 else []
    if last >= 2 * len(seqs) + 16:  # a count a server made up: not worth listing
        problems.append(f"server {party}: entry numbers run to {last} in a log of "
                        f"{len(seqs)} entries")
    if absent:
        which = (f"entry {absent[0]}" if len(absent) == 1 else
                 f"entries {', '.join(map(str, absent))}")
        problems.append(f"server {party} {which}: missing (removed from the log)")
    before: Entry | None = None
    for entry in entries:
        name = f"server {party} entry {entry.seq}"
        if before is not None and entry.seq <= before.seq:
            problems.append(f"{name}: out of order (it comes after entry {before.seq})")
        if entry.seq == 0 and entry.prev != GENESIS:
            problems.append(f"{name}: does not start the chain")
        elif (before is not None and entry.seq == before.seq + 1
              and entry.prev != before.hash):
            problems.append(f"{name}: does not follow entry {before.seq} (an entry changed, "
                            "removed or reordered)")
        if not entry.is_stub and not signature_holds(key, _bytes(entry.signature),
                                                     entry.body()):
            problems.append(f"{name}: signature does not verify")
        before = entry
    return problems


def _bytes(hex_text: str) -> bytes:
    try:
        return bytes.fromhex(hex_text)
    except ValueError:
        return b""


def compare(views: list[list[Entry]]) -> list[str]:
    """Where the two servers' logs disagree: an event one of them has and the other has not,
    or an event whose fields differ (entries matched by identity and occurrence)."""
    indexed = [_by_identity(view) for view in views]
    problems = []
    for identity in sorted(set(indexed[0]) | set(indexed[1]), key=str):
        pairs = [indexed[0].get(identity, []), indexed[1].get(identity, [])]
        for n in range(max(map(len, pairs))):
            mine = [side[n] if n < len(side) else None for side in pairs]
            if None in mine:
                present = mine[0] or mine[1]
                assert present is not None
                if present.kind not in ONE_SIDED:
                    problems.append(f"server {mine.index(None)} has no {present.describe()}"
                                    + (f" (occurrence {n + 1})" if n else ""))
                continue
            first, second = mine
            assert first is not None and second is not None
            fields = sorted(set(first.event) | set(second.event))
            differing = [f for f in fields if first.event.get(f) != second.event.get(f)]
            if differing:
                problems.append(f"server 0 entry {first.seq} and server 1 entry {second.seq} "
                                f"({first.describe()}) differ in field"
                                f"{'s' if len(differing) > 1 else ''} {', '.join(differing)}")
    return problems


def _by_identity(view: list[Entry]) -> dict[tuple, list[Entry]]:
    found: dict[tuple, list[Entry]] = {}
    for entry in view:
        if not entry.is_stub:
            found.setdefault(entry.identity, []).append(entry)
    return found
