"""SGD on shares against the same training in numpy floats, on scikit-learn's breast cancer
data (569 rows, 30 features)."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from ml.features import scale, scaling_for
from ml.plaintext import accuracy, train_plain
from ml.sgd import Hyper, poisson_batches, sequential_batches, train
from mpc.prg import Prg, fresh_key
from mpc.ring import FixedPoint
from tests.harness import reconstruct, run_pair, shares_of

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
    scaling = scaling_for(ranges, unit_norm=False)
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
    scaling = scaling_for(ranges, unit_norm=True)
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
