"""kill -9 of either server at every step of a withdrawal, restart, retry (real processes):
before the retry no job can read the table, after it neither server holds anything of it, and
the owner can upload it again; the two servers' audit logs agree."""

import pytest

from tests.support.withdraw_kills import WITHDRAW_POINTS, run_trial, usable

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # server processes


@pytest.mark.parametrize("point", WITHDRAW_POINTS)
@pytest.mark.parametrize("party", [0, 1])
def test_a_withdrawal_killed_at_any_step_completes_on_retry(tmp_path, party, point):
    trial = run_trial(party, point, tmp_path)
    assert trial.server_died and trial.first_exit != 0
    assert not usable(trial.before), trial.before
    assert trial.retry.returncode == 0, trial.retry.stderr
    assert all(view.empty for view in trial.after), trial.after
    assert trial.upload_again_exit == 0
    assert trial.again[0].live is not None and trial.again[0].live == trial.again[1].live
    assert trial.audit.returncode == 0, trial.audit.stdout + trial.audit.stderr
