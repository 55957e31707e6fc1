"""What a correlation kind declares, in one place: the Kind every kind derives from.

Correlation number k of a dealer session is derived, for party p, from Prg(K_p, stream_id=k),
where K_p is the session key the dealer gave party p. Each party expands its own arrays
locally; the dealer expands both, computes the one piece that cannot come from a seed (the
"correction") and sends it only to the party that needs it. So dealer traffic is about one
word per correlated element, and the other party needs no message at all. In OT mode the two
servers make the same parts between themselves (mpc.ot.constructions).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from twofold.mpc.correlations.merging import ALONE, Merging
from twofold.mpc.prg import Prg

if TYPE_CHECKING:
    from twofold.mpc.correlations.row_masks import MaskRecord
    from twofold.mpc.ot.constructions import Constructions

MAX_ELEMENTS = 1 << 28  # a request larger than this is refused (2 GiB of words)


class CorrelationError(ValueError):
    """Malformed correlation parameters."""


def count_of(shape) -> int:
    """The number of elements of a shape; refuses malformed and oversized shapes."""
    if not (isinstance(shape, (list, tuple)) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise CorrelationError(f"bad shape {shape!r}")
    count = math.prod(shape)  # exact: a huge shape cannot wrap around to a small count
    if count > MAX_ELEMENTS:
        raise CorrelationError(f"request for {count} elements exceeds {MAX_ELEMENTS}")
    return count


def require_positive(params: dict[str, Any], *names: str) -> None:
    if not all(isinstance(params[n], int) and not isinstance(params[n], bool) and params[n] > 0
               for n in names):
        raise CorrelationError(f"{', '.join(names)} must be positive integers")


class Kind(ABC):
    """One kind of correlation. A request is (name, params); a party's part of it is a named
    tuple of arrays (`Part`, or one type per role where the parties receive different things).

    - parameters: validate, elements (for batching and budgets), receiver (the party that
      gets the dealer's correction);
    - the dealer: own (a party's seed-derived arrays), correction (the receiver's, from both
      parties' own arrays), dealer_correction (the same from the session keys), mask_after
      (the session's latest row mask after a request), assemble (a party's part);
    - OT: by_ot, this server's part, made with the peer from mpc.ot.constructions;
    - merging: `merging` (merging.py) and `ends_window`, for a request that no group of
      requests may span (mpc.request_groups);
    - tests: `examples` (parameters off word and power-of-two boundaries), `example_mask`
      (the row mask a test makes just before them, if they read one), `dealer_only`, and
      check, which asserts that both servers' parts form a correct correlation (test-only:
      no server ever holds both).
    """

    name: ClassVar[str]  # the one name: registry key, on the wire, in cost reports
    Part: ClassVar[Callable[..., tuple]]  # a party's part (a named tuple), for assemble
    merging: ClassVar[Merging] = ALONE
    ends_window: ClassVar[bool] = False
    examples: ClassVar[tuple[dict, ...]] = ()
    example_mask: ClassVar[dict | None] = None
    dealer_only: ClassVar[bool] = False  # OT never makes it (by_ot refuses)

    # ---- parameters ----------------------------------------------------------------------

    def validate(self, params: dict[str, Any]) -> None:
        count_of(params["shape"])

    def elements(self, params: dict[str, Any]) -> int:
        return count_of(params["shape"])

    def receiver(self, params: dict[str, Any]) -> int:
        return 1

    # ---- the dealer ----------------------------------------------------------------------

    @abstractmethod
    def own(self, party: int, prg: Prg, params: dict[str, Any]) -> list[np.ndarray]: ...

    def correction(self, own0, own1, params) -> list[np.ndarray]:
        raise NotImplementedError(f"{self.name}: the dealer computes its correction otherwise")

    def dealer_correction(self, keys: tuple[bytes, bytes], seq: int, params: dict[str, Any],
                          mask: int | None = None) -> list[np.ndarray]:
        """What the dealer sends for correlation number seq of a session with these keys, whose
        latest row mask is correlation number `mask`."""
        own = [self.own(p, Prg(keys[p], seq), params) for p in (0, 1)]
        return self.correction(own[0], own[1], params)

    def mask_after(self, mask: MaskRecord | None, seq: int,
                   params: dict[str, Any]) -> MaskRecord | None:
        """The session's latest row mask once request `seq` is served (the dealer's view);
        refuses a request that needs a row mask it does not fit."""
        return mask

    def assemble(self, party: int, own: list[np.ndarray], correction: list[np.ndarray],
                 params: dict[str, Any]) -> tuple:
        return self.Part(*own, *correction)

    # ---- OT ------------------------------------------------------------------------------

    @abstractmethod
    async def by_ot(self, ot: Constructions, params: dict[str, Any]) -> tuple: ...

    # ---- tests ---------------------------------------------------------------------------

    @abstractmethod
    def check(self, params: dict[str, Any], part0: tuple, part1: tuple, mask=None) -> None: ...
