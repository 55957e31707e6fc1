"""Every correlation kind's checks and example parameters, by name: each kind declares them
in its own home (mpc.correlations, Kind.check, Kind.examples). Test-only: a check puts both
servers' parts together, which no server ever does. Shared by the dealer's and the OT
source's tests."""

from twofold.mpc.correlations import KINDS

PARAMS = {name: list(kind.examples) for name, kind in KINDS.items()}
MASK_FIRST = {name: kind.example_mask for name, kind in KINDS.items() if kind.example_mask}


def check(kind: str, params: dict, part0: tuple, part1: tuple, mask=None) -> None:
    """Assert that server 0's and server 1's parts form a correct correlation of `kind`;
    `mask`: both servers' shares of the row mask made before (masked products)."""
    KINDS[kind].check(params, part0, part1, mask)
