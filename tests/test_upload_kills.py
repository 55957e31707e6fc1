"""kill -9 of a server at points of the upload protocol, restart, retry: the table ends equal
to the owner's data on both servers, and no version ever has mismatched shares (real
processes; tools/kill_uploads.py runs every point on each server)."""

import pytest

from tests.support.upload_kills import run_trial

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # server processes


@pytest.mark.parametrize("party, point", [
    (1, "record"),  # server 0 committed, server 1 did not answer: the retry used fresh masks
    (0, "live1"),  # server 1 made it live, server 0 died before recording it
    (1, "check"),  # server 1 died as the check of the values began: the retry checks again
])
def test_a_retry_after_a_kill_ends_with_the_owners_data(tmp_path, party, point):
    trial = run_trial(party, point, rows=2000, folder=tmp_path)
    assert trial.server_died and trial.first_exit != 0
    assert trial.passed, trial
