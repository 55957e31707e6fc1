"""How requests of one kind, announced together, are made as one request and split again.

mpc.request_groups forms the groups from an announced plan; each kind names here how its
requests merge (Kind.merging). Every member's part of a merged request is exactly the part
it would have been made alone, in the same layout.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from twofold.mpc.correlations.kind import Kind


class Merging:
    """Requests that are never merged: each is made alone, in its place."""

    def key(self, params: dict) -> Hashable | None:
        """Requests of one kind with equal keys can be made as one; None: this one cannot."""
        return None

    def merged(self, members: list[dict]) -> dict:
        """The parameters of one request that makes all of `members` (equal keys)."""
        raise NotImplementedError("requests of this kind are made alone")

    def split(self, members: list[dict], value: tuple) -> list[tuple]:
        """Each member's part of the merged request's part `value` (a named tuple)."""
        raise NotImplementedError("requests of this kind are made alone")

    def elements(self, kind: Kind, params: dict) -> int:
        """What a request counts in elements, merged or not."""
        return kind.elements(params)


class Elementwise(Merging):
    """Kinds made elementwise over a flat shape: requests whose other parameters are equal
    are made as one request of the summed length, and each member's part is its slice."""

    def key(self, params):
        if len(params["shape"]) != 1:
            return None
        return tuple(sorted((name, value) for name, value in params.items() if name != "shape"))

    def merged(self, members):
        total = sum(params["shape"][0] for params in members)
        return {**members[0], "shape": [total]}

    def split(self, members, value):
        ends = np.cumsum([params["shape"][0] for params in members])[:-1]
        pieces = [np.split(array, ends) for array in value]
        return [value._make(piece[g] for piece in pieces) for g in range(len(members))]


ALONE = Merging()
ELEMENTWISE = Elementwise()
