"""The errors Twofold reports to its users, and those a protocol run can end with.

TwofoldError is the base of every error whose message is meant for a person (a refused
schema, policy, job spec or config, a failed upload, job or run): the command line prints
it as one line. It lives here, in the lowest layer, so that every package can derive from it.
Errors that other code catches as ValueError (or RuntimeError) keep that base too.
"""


class TwofoldError(Exception):
    """Base class: a failure the user can act on; its message says what and where."""


class MpcError(TwofoldError):
    """Base class of a protocol run's errors (each names the party and what to check): the
    run is over and its correlations are spent."""


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
