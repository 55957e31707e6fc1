"""Errors a protocol run can end with. Each names the party and what to check."""


class MpcError(Exception):
    """Base class: the run is over and its correlations are spent."""


class PeerTimeout(MpcError):
    """The other server sent nothing within the timeout."""


class PeerAborted(MpcError):
    """The other server stopped the run and said why."""


class ProtocolMismatch(MpcError):
    """A message did not match what the protocol expects (job, sequence number, shape)."""


class SettingsMismatch(MpcError):
    """The two servers' configurations disagree on something both must share."""


class DealerError(MpcError):
    """The dealer refused a request or did not answer."""


class JobCancelled(MpcError):
    """The job was cancelled (by a client, or because the server is stopping)."""
