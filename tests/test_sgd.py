"""SGD on shares against the same training in numpy floats, on scikit-learn's breast cancer
data (569 rows, 30 features)."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from tests.support.harness import reconstruct, run_pair, shares_of
from twofold.ml.features import FeatureRangeError, scale, scaling_for
from twofold.ml.plaintext import accuracy, train_plain
from twofold.ml.sgd import Hyper, poisson_batches, sequential_batches, step_constant, train
from twofold.mpc.prg import Prg, fresh_key
from twofold.mpc.ring import FixedPoint, PrecisionError

FIXED = FixedPoint()


@pytest.fixture(scope="module")
def cancer():
    data = load_breast_cancer()
    x, y = data.data, data.target.astype(float)
    ranges = [(float(c.min()), float(c.max())) for c in x.T] + [(1.0, 1.0)]
    return np.hstack([x, np.ones((len(x), 1))]), y, ranges


def scaled_plain(x, scaling):
    return (x - np.array(scaling.centers)) * np.array(scaling.factors)


@pytest.mark.parametrize("model", ["logistic", "linear"])
def test_training_on_shares_matches_plaintext(cancer, model):
    x, y, ranges = cancer
    hyper = Hyper(model, iterations=120, batch_size=32,
                  learning_rate=0.5 if model == "logistic" else 0.05)
    scaling = scaling_for(ranges, unit_norm=False, fixed=FIXED)
    rng = np.random.default_rng(3)
    columns = [shares_of(FIXED.encode(c), rng) for c in x.T]
    labels = shares_of(FIXED.encode(y), rng)

    async def program(party, cols, ys):
        features = await scale(party, cols, scaling)
        return await train(party, features, ys, hyper, sequential_batches(len(ys), hyper))

    w = FIXED.decode(reconstruct(run_pair(
        program, ([c[0] for c in columns], labels[0]), ([c[1] for c in columns], labels[1]),
        timeout_s=120)))
    plain_x = scaled_plain(x, scaling)
    w_plain = train_plain(plain_x, y, hyper, sequential_batches(len(y), hyper))
    assert np.max(np.abs(w - w_plain)) < 0.02
    assert abs(accuracy(plain_x, y, w, model) - accuracy(plain_x, y, w_plain, model)) <= 0.01
    assert accuracy(plain_x, y, w, model) > 0.9


def test_poisson_batches_follow_the_rate():
    hyper = Hyper("linear", iterations=2000, batch_size=50, learning_rate=0.1)
    sizes = [len(b) for b in poisson_batches(Prg.fresh(), 1000, hyper)]
    assert abs(np.mean(sizes) - 50) < 1.0 and min(sizes) >= 0


def test_noisy_training_with_dummy_rows_and_empty_batches(cancer):
    """Dummy rows give no gradient; noise moves the weights but the model still learns."""
    x, y, ranges = cancer
    hyper = Hyper("logistic", iterations=60, batch_size=64, learning_rate=8.0)
    scaling = scaling_for(ranges, unit_norm=True, fixed=FIXED)
    valid = np.ones(len(y), np.int64)
    valid[::5] = 0
    rng = np.random.default_rng(4)
    columns = [shares_of(FIXED.encode(c), rng) for c in x.T]
    labels = shares_of(FIXED.encode(y), rng)
    mask = shares_of(valid, rng)
    seed = fresh_key()  # public randomness both servers agree on

    async def program(party, cols, ys, v):
        features = await scale(party, cols, scaling)
        batches = [np.zeros(0, np.int64)] + list(poisson_batches(Prg(seed), len(ys), hyper))[1:]
        return await train(party, features, ys, hyper, batches, valid=v, noise_sigma=0.05,
                           expected_batch=hyper.batch_size)

    w = FIXED.decode(reconstruct(run_pair(
        program, ([c[0] for c in columns], labels[0], mask[0]),
        ([c[1] for c in columns], labels[1], mask[1]), timeout_s=120)))
    assert accuracy(scaled_plain(x, scaling), y, w, "logistic") > 0.8


def test_training_announces_every_later_iteration_ahead(cancer):
    """Poisson batches of varying sizes are padded to the longest, so every iteration asks for
    the same correlations but for its rows: after the first, all are made ahead."""
    x, y, ranges = cancer
    hyper = Hyper("logistic", iterations=20, batch_size=40, learning_rate=1.0)
    scaling = scaling_for(ranges, unit_norm=True, fixed=FIXED)
    rng = np.random.default_rng(5)
    columns = [shares_of(FIXED.encode(c), rng) for c in x.T]
    labels = shares_of(FIXED.encode(y), rng)
    seed = fresh_key()
    sizes = {len(b) for b in poisson_batches(Prg(seed), len(y), hyper)}

    async def program(party, cols, ys):
        features = await scale(party, cols, scaling)
        source, on_demand = party.corr, []
        ask = source.get

        async def get(kind, **params):
            on_demand.append(not source._announced)
            return await ask(kind, **params)

        source.get = get
        await train(party, features, ys, hyper, poisson_batches(Prg(seed), len(ys), hyper))
        return on_demand

    on_demand, _ = run_pair(program, ([c[0] for c in columns], labels[0]),
                            ([c[1] for c in columns], labels[1]), timeout_s=120)
    per_iteration = (len(on_demand) - sum(on_demand)) // (hyper.iterations - 1)
    assert len(sizes) > 1 and per_iteration >= 5
    assert sum(on_demand) == len(on_demand) - per_iteration * (hyper.iterations - 1) < 30
    assert all(on_demand[:sum(on_demand)]) and not any(on_demand[sum(on_demand):])


@pytest.mark.parametrize("rate, batch, frac_bits", [
    (0.01, 1024, 16),  # a 16-bit scale applied 1 / 2^16: 56% too large
    (1e-4, 1024, 16),  # below 2^-17: a 16-bit scale applied 0, training did nothing
    (0.3, 7, 8), (2.0, 32, 24), (2.0**-20, 4, 28)])
def test_the_step_constant_is_applied_within_2_to_the_minus_12(rate, batch, frac_bits):
    factor, shift = step_constant(rate / batch, batch, 1.0, frac_bits)
    assert abs(factor / 2**shift / (rate / batch) - 1) <= 2.0**-12
    gradient = batch * (1 + 2.0**-frac_bits) * 2.0 ** (2 * frac_bits)
    assert gradient * factor < 2**61 and frac_bits + shift <= 61


@pytest.mark.parametrize("rate, batch, frac_bits", [
    (0.3, 2**22, 16),  # the gradient of 2^22 rows leaves 7 bits for 0.3 / 2^22
    (1e-6, 1, 28),  # 2f = 56 fractional bits leave 5 bits for 1e-6
    (0.5, 2**12, 28),  # 2^12 rows at 2f = 56 fractional bits leave the ring
])
def test_a_step_constant_that_cannot_be_applied_is_refused(rate, batch, frac_bits):
    with pytest.raises(PrecisionError):
        step_constant(rate / batch, batch, 1.0, frac_bits)


def train_on_shares(x, y, hyper, fixed, unit_norm=False):
    """(weights from shares, weights from the float reference, scaled plaintext rows)."""
    ranges = [(float(c.min()), float(c.max())) for c in x[:, :-1].T] + [(1.0, 1.0)]
    scaling = scaling_for(ranges, unit_norm=unit_norm, fixed=fixed)
    rng = np.random.default_rng(3)
    columns = [shares_of(fixed.encode(c), rng) for c in x.T]
    labels = shares_of(fixed.encode(y), rng)

    async def program(party, cols, ys):
        party.fixed = fixed
        features = await scale(party, cols, scaling)
        return await train(party, features, ys, hyper, sequential_batches(len(ys), hyper))

    w = fixed.decode(reconstruct(run_pair(
        program, ([c[0] for c in columns], labels[0]), ([c[1] for c in columns], labels[1]),
        timeout_s=120)))
    plain_x = scaled_plain(x, scaling)
    return w, train_plain(plain_x, y, hyper, sequential_batches(len(y), hyper)), plain_x


def test_a_small_step_is_applied_exactly(cancer):
    """lr / batch = 0.01 / 1024: the weights match the float reference within 2%, where the
    16-bit step constant made every step 56% too large."""
    x, y, _ = cancer
    hyper = Hyper("logistic", iterations=20, batch_size=1024, learning_rate=0.01)
    w, w_plain, _ = train_on_shares(x, y, hyper, FIXED)
    assert np.max(np.abs(w - w_plain)) < 0.02 * np.max(np.abs(w_plain))


def test_training_at_24_fractional_bits_matches_plaintext(cancer):
    """The overflow checks used 16 bits whatever the schema said: at 24 bits the step's
    product overflowed the truncation and the weights were garbage."""
    x, y, _ = cancer
    hyper = Hyper("logistic", iterations=120, batch_size=32, learning_rate=2.0)
    w, w_plain, plain_x = train_on_shares(x, y, hyper, FixedPoint(24))
    assert np.max(np.abs(w - w_plain)) < 0.02
    assert accuracy(plain_x, y, w, "logistic") > 0.9


def test_scaled_rows_keep_norm_at_most_one(rng):
    """Level 5 scaling with a feature of range [0, 200000]: every row's norm stays within
    1 + sqrt(d) 2^-f, the bound the privacy calibration assumes, and the wide feature still
    reaches 1 / sqrt(d) (16-bit factors turned it into 0 or let a norm reach 1.2)."""
    ranges = [(0.0, 200000.0), (-5.0, 5.0), (0.0, 1e-3), (3.0, 3.0), (-1e6, 1e6), (1.0, 1.0)]
    scaling = scaling_for(ranges, unit_norm=True, fixed=FIXED)
    extremes = np.array([[0, 200000, 200000, 123456.789, 1.0],
                         [-5, 5, 5, -5, 0.0],
                         [0, 1e-3, 0, 1e-3, 5e-4],
                         [3, 3, 3, 3, 3],
                         [-1e6, 1e6, -1e6, 1e6, 0],
                         [1, 1, 1, 1, 1]], dtype=float)
    shares = [shares_of(FIXED.encode(row), rng) for row in extremes]

    async def program(party, columns):
        return await scale(party, columns, scaling)

    scaled = FIXED.decode(reconstruct(run_pair(program, ([s[0] for s in shares],),
                                               ([s[1] for s in shares],))))
    d = len(ranges)
    assert np.all(np.linalg.norm(scaled, axis=1) <= 1 + np.sqrt(d) * 2.0**-16)
    assert np.abs(scaled[1, 0]) >= 1 / np.sqrt(d) - 2 * 2.0**-16  # 200000 at the top
    reference = scaled_plain(FIXED.decode(FIXED.encode(extremes.T)), scaling)
    assert np.max(np.abs(scaled - reference)) <= 2.0**-16


def test_a_feature_range_too_wide_to_scale_is_refused():
    with pytest.raises(FeatureRangeError, match="x: its range"):
        scaling_for([(0.0, 2.0**44), (1.0, 1.0)], unit_norm=True, fixed=FIXED,
                    names=["x", "the intercept"])
