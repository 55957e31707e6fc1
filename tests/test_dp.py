"""The noise calibrations (ml.dp) against dp-accounting's own accountant, their refusals in the
project's words, what each job is charged (JobSpec.mechanisms) and the budgets' relative
slack."""

import tomllib

import dp_accounting
import pytest
from dp_accounting import rdp

from tests.support.servers import SCHEMA
from twofold.ml.dp import (
    MULTIPLIERS,
    Charge,
    _smallest_multiplier,
    calibrate,
    calibrate_statistics,
    gaussian_multiplier,
    spent_epsilon,
)
from twofold.mpc.privacy import Privacy, PrivacyError
from twofold.owners.schema import parse_schema
from twofold.servers.budget import BudgetLedger, check_budgets
from twofold.servers.jobspec import parse_job_spec

SHAPE = {"clip": 1.0, "iterations": 3000, "batch_size": 128, "rows": 30000,
         "min_join_size": 100}
LIBRARY_WORDS = ("brentq", "Bracket", "dp_accounting", "ValueError")


@pytest.mark.parametrize("epsilon, tau", [(0.1, 1), (2.0, 3), (50.0, 1), (1000.0, 2)])
def test_the_multiplier_is_the_smallest_that_meets_the_budget(epsilon, tau):
    ledger = calibrate(privacy=Privacy(epsilon=epsilon, delta=1e-5, tau=tau), **SHAPE)
    assert spent_epsilon(ledger) <= epsilon * (1 + 1e-9)
    event = dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(
        ledger.group_sampling_rate, dp_accounting.GaussianDpEvent(
            ledger.noise_multiplier * (1 - 1e-4))), ledger.iterations)
    assert rdp.RdpAccountant().compose(event).get_epsilon(1e-5) > epsilon  # a bit less: over


@pytest.mark.parametrize("epsilon, delta", [(1.0, 1e-6), (0.1, 1e-9), (1000.0, 0.5)])
def test_the_gaussian_multiplier_is_the_smallest_that_meets_the_budget(epsilon, delta):
    multiplier = gaussian_multiplier(Privacy(epsilon=epsilon, delta=delta))

    def spent(m):
        return rdp.RdpAccountant().compose(dp_accounting.GaussianDpEvent(m)).get_epsilon(delta)
    assert spent(multiplier) <= epsilon * (1 + 1e-9) < spent(multiplier * (1 - 1e-4))


def one_project_line(message: str) -> bool:
    return "\n" not in message and not any(word in message for word in LIBRARY_WORDS)


@pytest.mark.parametrize("epsilon, delta", [
    (1e-5, 1e-6),  # the accountant would find 7.4e5, above the range
    (1e-3, 1e-12),  # dp-accounting's brentq found no bracket in [1e-3, 1e6]
])
def test_a_gaussian_no_bounded_noise_meets_is_refused_in_one_line(epsilon, delta):
    with pytest.raises(PrivacyError) as refused:
        gaussian_multiplier(Privacy(epsilon=epsilon, delta=delta))
    assert str(refused.value) == (f"noise: epsilon {epsilon:g} at delta {delta:g} needs a noise "
                                  "multiplier above 10000; raise epsilon or delta")


def test_a_training_no_bounded_noise_meets_is_refused_in_one_line():
    with pytest.raises(PrivacyError) as refused:
        calibrate(privacy=Privacy(epsilon=1e-4, delta=1e-5, tau=5), **SHAPE)
    message = str(refused.value)
    assert message.startswith("training: epsilon 0.0001 at delta 1e-05 needs a noise "
                              "multiplier above 10000; raise epsilon or delta")
    assert one_project_line(message)


def test_a_target_the_lowest_multiplier_already_meets_gets_the_lowest():
    """A mechanism so insensitive that even the smallest multiplier in range is enough (here a
    Gaussian scaled 10^5 times): dp-accounting finds no root above it, and the lowest bound
    is the answer, not an error."""
    def event(m):
        return dp_accounting.GaussianDpEvent(1e5 * m)
    assert _smallest_multiplier("noise", Privacy(epsilon=1.0, delta=1e-6), event) == MULTIPLIERS[0]


SCHEMA_OBJECT = parse_schema(tomllib.loads(SCHEMA))
HEAD = '[job]\nrecipients = ["carol"]\n'
NOISE = "noise = { epsilon = 0.5, delta = 1e-6, tau = 3 }\n"


def mechanisms_of(text: str) -> dict[str, Charge]:
    return parse_job_spec(HEAD + text, SCHEMA_OBJECT, {"carol"}).mechanisms


def test_a_noisy_group_by_is_charged_for_its_noise_and_its_group_selection():
    mechanisms = mechanisms_of('[aggregate]\ngroup_by = ["customers.region"]\n' + NOISE)
    assert mechanisms == {"noise": Charge(0.5, 1e-6), "group selection": Charge(0.0, 1e-6)}
    spec = parse_job_spec(HEAD + '[aggregate]\n' + NOISE, SCHEMA_OBJECT, {"carol"})
    assert spec.charge == Charge(0.5, 2e-6)


def test_training_is_charged_for_itself_and_its_size_check():
    spec = parse_job_spec(
        HEAD + '[train]\nmodel = "logistic"\nfeatures = ["orders.amount"]\n'
        'label = "customers.member"\niterations = 5\nbatch_size = 1\nlearning_rate = 0.1\n'
        "min_join_size = 1\nprivacy_level = 5\nepsilon = 1.0\ndelta = 1e-6\ntau = 3\n"
        "size_check_epsilon = 0.25\n", SCHEMA_OBJECT, {"carol"})
    assert spec.mechanisms == {"training": Charge(1.0, 1e-6), "size check": Charge(0.25, 1e-6)}
    assert spec.charge == Charge(1.25, 2e-6)


def test_noisy_statistics_are_one_mechanism_and_exact_ones_none():
    statistics = '[statistics]\ncolumns = ["orders.amount"]\n'
    assert mechanisms_of(statistics + NOISE) == {"noise": Charge(0.5, 1e-6)}
    spec = parse_job_spec(HEAD + statistics, SCHEMA_OBJECT, {"carol"})
    assert spec.mechanisms == {} and spec.charge is None


@pytest.mark.parametrize("total", [Privacy(epsilon=1e-9, delta=1e-12),
                                   Privacy(epsilon=1000.0, delta=0.5)])
def test_the_budget_slack_is_relative(tmp_path, total):
    """Ten charges of a tenth of the total fit, whatever the rounding of their float sum; one
    more tenth, or the total and a thousandth of it, does not (an absolute slack of 1e-9
    would let a 1e-12 delta be spent a thousand times over)."""
    ledger = BudgetLedger(tmp_path)
    tenth = Charge(total.epsilon / 10, total.delta / 10)
    for step in range(10):
        check_budgets(ledger, tenth, {"t": total})
        ledger.record([("t", f"job{step}", tenth.epsilon, tenth.delta)])
    for charge in (tenth, Charge(total.epsilon / 1e3, 0.0), Charge(0.0, total.delta / 1e3)):
        with pytest.raises(ValueError, match="table t: its privacy budget has epsilon"):
            check_budgets(ledger, charge, {"t": total})
    check_budgets(ledger, Charge(total.epsilon, total.delta), {"other": total})  # unspent
    with pytest.raises(ValueError, match="this job needs epsilon"):
        check_budgets(ledger, Charge(total.epsilon, total.delta * 1.001), {"other": total})
    ledger.close()


def test_a_group_by_ledger_calibrates_only_the_blocks_it_releases():
    """A group-by releases counts and sums, no sums of squares: two blocks share the noise,
    not three, so each sum's deviation is sqrt(2/3) of the statistics job's."""
    common = {"privacy": Privacy(epsilon=1.0, delta=1e-6, tau=2), "bounds": {"x": 100.0},
              "histograms": [], "frac_bits": 16}
    grouped = calibrate_statistics(**common, squares=False)
    released = calibrate_statistics(**common)
    assert set(grouped.sigmas) == {"count", "sum(x)"}
    assert grouped.sigmas["sum(x)"] == pytest.approx(released.sigmas["sum(x)"] * (2 / 3) ** 0.5)
