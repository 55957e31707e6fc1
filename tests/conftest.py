import numpy as np
import pytest

# the correlation kinds' checks are asserts in their own modules: rewritten like a test's,
# a failing one shows its values (registered before anything imports them)
pytest.register_assert_rewrite("twofold.mpc.correlations")

from tests.support.harness import SOURCES  # noqa: E402


@pytest.fixture
def rng():
    """Seeded plaintext generator: test inputs only, never shares or masks in the product."""
    return np.random.default_rng(20261121)


@pytest.fixture(params=SOURCES, scope="session")
def source(request):
    """Where correlated randomness comes from: every test that takes this fixture runs once
    per source (the dealer, OT between the two servers, the dealer with the plan made ahead),
    one suite of plaintext comparisons over the matrix of sources."""
    return request.param
