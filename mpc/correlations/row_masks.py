"""SecureML's data masking for training (ml/sgd.py): a row mask A, shared once, and masked
products for the rows of each batch, which read the session's latest row mask."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from twofold.mpc.correlations.kind import (
    MAX_ELEMENTS,
    CorrelationError,
    Kind,
    count_of,
    require_positive,
)
from twofold.mpc.correlations.merging import Merging
from twofold.mpc.prg import Prg, stream_rows

MAX_MASKED_ROWS = 8192  # a batch's rows travel in a dealer request's header, 5 bytes each


class MaskRecord(NamedTuple):
    """The dealer's record of a session's latest row mask."""

    seq: int  # its correlation number
    rows: int
    columns: int


def _row_words(columns: int) -> int:
    """A row mask's rows are whole AES blocks in its stream, so the dealer can expand any row
    without the rows before it (mpc.prg.stream_rows)."""
    return columns + columns % 2


class RowMask(Kind):
    """A random matrix A (rows x columns), each party's share from its own seed: masks a data
    matrix X once (X - A is opened), so that products with rows of X need no further opening
    of X (SecureML). The dealer sends nothing; it remembers the session's latest row mask for
    the masked products that follow. No group of requests spans one (mpc.request_groups):
    the masked products after it are of the new mask."""

    name = "row_mask"
    ends_window = True
    examples = ({"rows": 9, "columns": 5}, {"rows": 3, "columns": 2})

    class Part(NamedTuple):
        mask: np.ndarray  # this party's share of A

    def validate(self, params):
        require_positive(params, "rows", "columns")
        count_of([params["rows"], _row_words(params["columns"])])

    def elements(self, params):
        return params["rows"] * params["columns"]

    def own(self, party, prg, params):
        rows, columns = params["rows"], params["columns"]
        return [prg.words((rows, _row_words(columns)))[:, :columns]]

    def dealer_correction(self, keys, seq, params, mask=None):
        return []

    def mask_after(self, mask, seq, params):
        return MaskRecord(seq, params["rows"], params["columns"])

    async def by_ot(self, ot, params):
        return self.Part(ot.row_mask(params["rows"], params["columns"]))

    def check(self, params, part0, part1, mask=None):
        for (share,) in (part0, part1):
            assert share.shape == (params["rows"], params["columns"]) and share.dtype == np.uint64


class RowGroups(Merging):
    """Masked products of one width and batch size, made as one request for several batches
    (params "row_groups", one list of rows per batch): every array has one row per batch."""

    def key(self, params):
        return params["columns"], len(params["rows"])

    def merged(self, members):
        return {"row_groups": [params["rows"] for params in members],
                "columns": members[0]["columns"]}

    def split(self, members, value):
        return [value._make(array[g] for array in value) for g in range(len(members))]

    def elements(self, kind, params):
        if "row_groups" not in params:
            return kind.elements(params)
        return sum(kind.elements({**params, "rows": rows}) for rows in params["row_groups"])


class MaskedProducts(Kind):
    """For the rows A_b of the latest row mask (params "rows", public indices, repeats
    allowed): b (columns) and c = A_b b, and b' (len(rows)) and c' = A_b^T b'. With X - A
    open, X_b w and X_b^T e each open only w - b or e - b'."""

    name = "masked_products"
    merging = RowGroups()
    examples = ({"rows": [0, 8, 8, 3], "columns": 5},)
    example_mask = {"rows": 9, "columns": 5}

    class Part(NamedTuple):
        forward: np.ndarray  # b
        backward: np.ndarray  # b'
        product: np.ndarray  # A_b b
        product_back: np.ndarray  # A_b^T b'

    def validate(self, params):
        require_positive(params, "columns")
        rows = params["rows"]
        if not (isinstance(rows, list) and 0 < len(rows) <= MAX_MASKED_ROWS
                and all(isinstance(r, int) and not isinstance(r, bool) and 0 <= r < MAX_ELEMENTS
                        for r in rows)):
            raise CorrelationError(f"rows must be a list of 1 to {MAX_MASKED_ROWS} row indices")
        count_of([len(rows), params["columns"]])

    def elements(self, params):
        return 2 * (len(params["rows"]) + params["columns"])

    def own(self, party, prg, params):
        batch, columns = len(params["rows"]), params["columns"]
        parts = [prg.words(columns), prg.words(batch)]
        return parts + [prg.words(batch), prg.words(columns)] if party == 0 else parts

    def mask_after(self, mask, seq, params):
        if (mask is None or mask.seq > seq or params["columns"] != mask.columns
                or max(params["rows"]) >= mask.rows):
            raise CorrelationError(f"masked products {seq} do not fit a row mask made before "
                                   "them")
        return mask

    def dealer_correction(self, keys, seq, params, mask=None):
        if mask is None:
            raise CorrelationError("masked products need a row mask made before them")
        (b0, b0_back, c0, c0_back), (b1, b1_back) = (
            self.own(p, Prg(keys[p], seq), params) for p in (0, 1))
        rows, columns = np.asarray(params["rows"]), params["columns"]
        mask_rows = [stream_rows(keys[p], mask, rows, _row_words(columns))[:, :columns]
                     for p in (0, 1)]
        rows_of_mask = mask_rows[0] + mask_rows[1]
        return [np.matmul(rows_of_mask, b0 + b1) - c0,
                np.matmul(rows_of_mask.T, b0_back + b1_back) - c0_back]

    async def by_ot(self, ot, params):
        """One batch's rows, or several batches' (merged: every array gets a row per batch)."""
        merged = "row_groups" in params
        row_groups = params["row_groups"] if merged else [params["rows"]]
        value = self.Part(*await ot.masked_products(row_groups, params["columns"]))
        return value if merged else self.Part(*(array[0] for array in value))

    def check(self, params, part0, part1, mask=None):
        """mask: both servers' shares of the row mask made before."""
        rows = (mask[0] + mask[1])[params["rows"]]
        forward, backward, product, product_back = (x + y for x, y in zip(part0, part1,
                                                                          strict=True))
        assert forward.shape == (params["columns"],) and backward.shape == (len(rows),)
        assert np.array_equal(np.matmul(rows, forward), product)
        assert np.array_equal(np.matmul(rows.T, backward), product_back)
