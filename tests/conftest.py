import numpy as np
import pytest


@pytest.fixture
def rng():
    """Seeded plaintext generator: test inputs only, never shares or masks in the product."""
    return np.random.default_rng(20261121)
