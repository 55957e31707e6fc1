"""Requests announced together, made together: fewer exchanges with the peer in OT mode.

A training announces hundreds of iterations' requests at once, each iteration a score of small
ones (a few hundred truncation pairs, a batch's masked products, ...). Made one by one from
OT, each costs the producer at least one exchange with the peer: a round trip each, which
bounded an OT-mode training by the producer's latency, not by its work. Within a window of
consecutive announced requests, those of one kind and compatible parameters are made as one
request and split afterwards, in the same order and layout as if made alone.

Groups are formed from the announced plan alone (`groups`), which both servers hold alike, so
both make the same groups in the same order: a group when the producer reaches its first
member. A request that cannot be merged is made alone in its place; a window ends at a row
mask (Kind.ends_window: the masked products after it are of the new mask) and at
WINDOW_ELEMENTS; windows double from FIRST_WINDOW_ELEMENTS, so the requests just announced are
not held up by later ones. How requests of a kind merge and split is the kind's own
(Kind.merging, mpc.correlations.merging).
"""

from __future__ import annotations

from twofold.mpc.correlations import KINDS

FIRST_WINDOW_ELEMENTS = 1 << 14
WINDOW_ELEMENTS = 1 << 20


def merge_key(kind: str, params: dict):
    """Requests with equal keys can be made as one; None: this one cannot (Kind.merging)."""
    key = KINDS[kind].merging.key(params)
    return None if key is None else (kind, key)


def groups(plan: list[tuple[str, dict]]) -> list[list[int]]:
    """Positions in `plan` of the requests to make together (groups of two or more), in the
    order of their first members."""
    found: list[list[int]] = []
    window: dict[tuple, list[int]] = {}  # requests that merge, by their key
    size, limit = 0, FIRST_WINDOW_ELEMENTS

    def close():
        """End the window; the next may be twice as large if this one held anything."""
        nonlocal size, limit
        found.extend(members for members in window.values() if len(members) > 1)
        window.clear()
        size, limit = 0, min(2 * limit, WINDOW_ELEMENTS) if size else limit

    for position, (kind, params) in enumerate(plan):
        key = merge_key(kind, params)
        if key is None:  # made alone, in its place
            if KINDS[kind].ends_window:
                close()
            continue
        elements = KINDS[kind].elements(params)
        if size + elements > limit:
            close()
        window.setdefault(key, []).append(position)
        size += elements
    close()
    return found


def merged(kind: str, members: list[dict]) -> dict:
    """The parameters of one request that makes all of `members` (same merge key)."""
    return KINDS[kind].merging.merged(members)


def elements(kind: str, params: dict) -> int:
    """What a request counts in elements, merged or not."""
    spec = KINDS[kind]
    return spec.merging.elements(spec, params)


def split(kind: str, members: list[dict], value: tuple) -> list[tuple]:
    """Each member's part of the merged request's part, as made alone."""
    return KINDS[kind].merging.split(members, value)
