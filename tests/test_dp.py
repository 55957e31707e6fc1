"""The training noise calibration (ml.dp.calibrate) against dp-accounting's own accountant."""

import dp_accounting
import pytest
from dp_accounting import rdp

from ml.dp import Privacy, PrivacyError, calibrate, spent_epsilon

SHAPE = {"clip": 1.0, "iterations": 3000, "batch_size": 128, "rows": 30000,
         "min_join_size": 100}


@pytest.mark.parametrize("epsilon, tau", [(0.1, 1), (2.0, 3), (50.0, 1), (1000.0, 2)])
def test_the_multiplier_is_the_smallest_that_meets_the_budget(epsilon, tau):
    ledger = calibrate(privacy=Privacy(epsilon=epsilon, delta=1e-5, tau=tau), **SHAPE)
    assert spent_epsilon(ledger) <= epsilon * (1 + 1e-9)
    event = dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(
        ledger.group_sampling_rate, dp_accounting.GaussianDpEvent(
            ledger.noise_multiplier * (1 - 1e-4))), ledger.iterations)
    assert rdp.RdpAccountant().compose(event).get_epsilon(1e-5) > epsilon  # a bit less: over


def test_a_budget_no_bounded_noise_meets_is_refused():
    with pytest.raises(PrivacyError, match="cannot reach epsilon 0.0001 at delta 1e-05"):
        calibrate(privacy=Privacy(epsilon=1e-4, delta=1e-5, tau=5), **SHAPE)
