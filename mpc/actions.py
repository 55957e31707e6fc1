"""The wire protocol's action names: every request's header names one as its "action".

Three conversations, each with a service on a CurveZMQ socket (mpc/service.py):
- a client (an owner, an analyst, a recipient) asks a server: owners/upload.py,
  client/client.py, and the hello of mpc/rpc.py;
- one server asks the other: uploads' checks (metadata, then values), starting and failing
  jobs, idle preprocessing;
- a server asks the dealer for a job's correlations (mpc/dealer.py).

A job's state, as status replies carry it and each server stores it (state.json), is one of
State's values.
"""

from enum import StrEnum

# ---- a client to a server ------------------------------------------------------------------
HELLO = "hello"  # no fields: a client checks its key and the address with a short wait
BEGIN = "begin"  # an upload: its id, table, rows, columns, digest and policy
CHUNK = "chunk"  # rows of an upload in progress, as share arrays
COMMIT = "commit"  # every row of an upload received: store it durably
ACTIVATE = "activate"  # make an upload its table's live version on both servers
STATUS = "status"  # a table's live version
JOB_SUBMIT = "job_submit"
JOB_EXPLAIN = "job_explain"  # what a spec would read and release; nothing is queued
JOB_STATUS = "job_status"
JOB_CANCEL = "job_cancel"
FETCH_OUTPUT = "fetch_output"  # a job's output shares, for its recipients
BUDGET = "budget"  # a table's privacy budget, for its owner
TABLES = "tables"  # the owner's tables and their versions on this server
WITHDRAW = "withdraw"  # mark the owner's table withdrawn and delete every version of it
WITHDRAW_END = "withdraw_end"  # both servers deleted the table: it may be uploaded again
AUDIT_LOG = "audit_log"  # the server's audit log, as this client may see it
SCHEMA = "schema"  # the schema's text (public) and the caller's registered name, for SQL

# ---- one server to the other -----------------------------------------------------------------
PEER_CHECK = "peer_check"  # do you hold this upload, the same? (live once both checked it)
CHECK_START = "check_start"  # server 0 to server 1: check this upload's values with me
JOB_START = "job_start"  # server 0 to server 1: start your side of this job
JOB_ABANDON = "job_abandon"  # server 0 to server 1: fail this job, I could not start it
JOB_STOP = "job_stop"  # server 0 to server 1: stop this running job (past its time limit)
PREPROCESS_START = "preprocess_start"  # server 0 to server 1: an idle-time session

# ---- a server to the dealer ------------------------------------------------------------------
OPEN = "open"  # a job's session: this server's seed key
GET = "get"  # a batch of corrections
CLOSE = "close"  # this server is done with the job's session

CLIENT_ACTIONS = (HELLO, BEGIN, CHUNK, COMMIT, ACTIVATE, STATUS, JOB_SUBMIT, JOB_EXPLAIN,
                  JOB_STATUS, JOB_CANCEL, FETCH_OUTPUT, BUDGET, TABLES, WITHDRAW, WITHDRAW_END,
                  AUDIT_LOG, SCHEMA)
PEER_ACTIONS = (PEER_CHECK, CHECK_START, JOB_START, JOB_ABANDON, JOB_STOP, PREPROCESS_START)
DEALER_ACTIONS = (OPEN, GET, CLOSE)


class State(StrEnum):
    """A job's state: its members are the strings on the wire and on disk."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # cancelled included
    UNREACHABLE = "unreachable"  # the client's only: a server that did not answer
