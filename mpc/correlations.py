"""Correlated randomness: what each kind is, and how the dealer compresses it into seeds.

Correlation number k of a session is derived, for party p, from Prg(K_p, stream_id=k), where
K_p is the session key the dealer gave party p. Each party expands its own part locally; the
dealer expands both parts, computes the one piece that cannot come from a seed (the
"correction"), and sends it only to the party that needs it. So dealer traffic is about one
word per correlated element, and the other party needs no message at all.

Every kind below is a small object with:
- validate(params) and elements(params): checks, and the number of elements (for batching);
- receiver(params): the party that gets the correction;
- own(party, prg, params): the party's seed-derived arrays;
- correction(own0, own1, params): the dealer's correction for the receiver;
- dealer_correction(keys, seq, params, mask): the same from the session keys and the number
  of the session's latest row mask (masked products read that mask's stream);
- assemble(party, own, correction): the finished correlation, as the protocols use it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from mpc.prg import Prg, stream_rows

U64 = np.uint64

MAX_ELEMENTS = 1 << 28  # a request larger than this is refused (2 GiB of words)
MAX_MASKED_ROWS = 8192  # a batch's rows travel in a dealer request's header, 5 bytes each
LOW_HALF = (1 << 32) - 1
HIGH_HALF = LOW_HALF << 32


class CorrelationError(ValueError):
    """Malformed correlation parameters."""


def _count(shape) -> int:
    if not (isinstance(shape, (list, tuple)) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise CorrelationError(f"bad shape {shape!r}")
    count = math.prod(shape)  # exact: a huge shape cannot wrap around to a small count
    if count > MAX_ELEMENTS:
        raise CorrelationError(f"request for {count} elements exceeds {MAX_ELEMENTS}")
    return count


class Kind(ABC):
    name: str

    def validate(self, params: dict[str, Any]) -> None:
        _count(params["shape"])

    def elements(self, params: dict[str, Any]) -> int:
        return _count(params["shape"])

    def receiver(self, params: dict[str, Any]) -> int:
        return 1

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

    def assemble(self, party: int, own: list[np.ndarray], correction: list[np.ndarray]):
        return (*own, *correction)


def _triple_parts(party: int, prg: Prg, shape) -> list[np.ndarray]:
    """a and b for both parties; party 0 also draws its share of c (party 1's is corrected)."""
    shape = tuple(shape)
    parts = [prg.words(shape), prg.words(shape)]
    return parts + [prg.words(shape)] if party == 0 else parts


class BeaverTriples(Kind):
    """a, b, c with c = a * b in Z_2^64 (elementwise)."""

    name = "beaver"

    def own(self, party, prg, params):
        return _triple_parts(party, prg, params["shape"])

    def correction(self, own0, own1, params):
        (a0, b0, c0), (a1, b1) = own0, own1
        return [(a0 + a1) * (b0 + b1) - c0]


class AndTriples(Kind):
    """a, b, c with c = a & b, on packed bits (uint64 words, 64 bits each)."""

    name = "and"

    def own(self, party, prg, params):
        return _triple_parts(party, prg, params["shape"])

    def correction(self, own0, own1, params):
        (a0, b0, c0), (a1, b1) = own0, own1
        return [((a0 ^ a1) & (b0 ^ b1)) ^ c0]


MAX_AND_INPUTS = 4  # a monomial of k inputs costs 2^k terms online and 2^k - k - 1 products
MAX_AND_VARIABLES = 8
MAX_MONOMIALS = 8


def submasks(mask: int):
    """Every subset of the bit mask, itself first and the empty set last."""
    subset = mask
    while True:
        yield subset
        if not subset:
            return
        subset = (subset - 1) & mask


def monomial_mask(monomial) -> int:
    return sum(1 << i for i in monomial)


def product_subsets(monomials) -> list[int]:
    """The variable sets (as bit masks) of at least two variables inside some monomial, in
    increasing order: the mask products a multi-input AND of these monomials needs."""
    return sorted({subset for monomial in monomials
                   for subset in submasks(monomial_mask(monomial)) if subset.bit_count() >= 2})


def _variables(monomials) -> int:
    return 1 + max(max(monomial) for monomial in monomials)


class AndMonomials(Kind):
    """Masks a_0 .. a_{k-1} (XOR-shared words) and XOR shares of a_S = AND of a_i over i in S,
    for every set S of two or more variables inside one of the monomials (product_subsets):
    with d_i = x_i ^ a_i opened, the AND of a monomial's x_i is the XOR over S inside it of
    (AND of d_i outside S) & a_S, so monomials of up to MAX_AND_INPUTS inputs take one round.
    The dealer sends one word per product; a fan-in-4 carry node needs 22."""

    name = "and_monomials"

    def validate(self, params):
        _count(params["shape"])
        monomials = params["monomials"]
        if not (isinstance(monomials, list) and 0 < len(monomials) <= MAX_MONOMIALS and all(
                isinstance(m, list) and 2 <= len(m) <= MAX_AND_INPUTS and len(set(m)) == len(m)
                and all(isinstance(i, int) and not isinstance(i, bool)
                        and 0 <= i < MAX_AND_VARIABLES for i in m) for m in monomials)):
            raise CorrelationError(f"monomials must be 1 to {MAX_MONOMIALS} lists of 2 to "
                                   f"{MAX_AND_INPUTS} distinct variables below "
                                   f"{MAX_AND_VARIABLES}")
        _count([_variables(monomials) + len(product_subsets(monomials)), *params["shape"]])

    def elements(self, params):
        monomials = params["monomials"]
        return ((_variables(monomials) + len(product_subsets(monomials)))
                * _count(params["shape"]))

    def own(self, party, prg, params):
        monomials, shape = params["monomials"], tuple(params["shape"])
        parts = [prg.words((_variables(monomials), *shape))]
        if party == 0:
            parts.append(prg.words((len(product_subsets(monomials)), *shape)))
        return parts

    def correction(self, own0, own1, params):
        (a0, products0), (a1,) = own0, own1
        masks = np.bitwise_xor(a0, a1, out=a1)
        made: dict[int, np.ndarray] = {1 << i: masks[i] for i in range(len(masks))}
        for row, subset in enumerate(product_subsets(params["monomials"])):
            high = 1 << (subset.bit_length() - 1)  # every smaller subset is made before
            made[subset] = made[subset ^ high] & made[high]
            products0[row] ^= made[subset]
        return [products0]

    def assemble(self, party, own, correction):
        return (own[0], own[1] if party == 0 else correction[0])


class MatrixTriples(Kind):
    """A (m x k), B (k x n), C = A @ B in Z_2^64."""

    name = "matmul"

    def validate(self, params):
        m, k, n = params["dims"]
        _count([m, k]), _count([k, n]), _count([m, n])

    def elements(self, params):
        m, k, n = params["dims"]
        return m * k + k * n + m * n

    def own(self, party, prg, params):
        m, k, n = params["dims"]
        parts = [prg.words((m, k)), prg.words((k, n))]
        return parts + [prg.words((m, n))] if party == 0 else parts

    def correction(self, own0, own1, params):
        (a0, b0, c0), (a1, b1) = own0, own1
        return [np.matmul(a0 + a1, b0 + b1) - c0]


class DaBits(Kind):
    """Random bits r held both as XOR shares (uint8 0/1) and as additive shares (uint64)."""

    name = "dabit"

    def own(self, party, prg, params):
        (count,) = params["shape"]
        parts = [prg.bits(count)]
        return parts + [prg.words(count)] if party == 0 else parts

    def correction(self, own0, own1, params):
        (bits0, arith0), (bits1,) = own0, own1
        return [(bits0 ^ bits1).astype(np.uint64) - arith0]


class BitTriples(Kind):
    """daBits r plus a half Beaver triple (beta, gamma = r * beta): multiplies a shared bit by a
    shared value opening only one word (value - beta)."""

    name = "bitmul"

    def own(self, party, prg, params):
        (count,) = params["shape"]
        parts = [prg.bits(count), prg.words(count)]
        return parts + [prg.words(count), prg.words(count)] if party == 0 else parts

    def correction(self, own0, own1, params):
        (bits0, beta0, arith0, gamma0), (bits1, beta1) = own0, own1
        r = (bits0 ^ bits1).astype(np.uint64)
        return [r - arith0, r * (beta0 + beta1) - gamma0]

    def assemble(self, party, own, correction):
        if party == 0:
            return tuple(own)  # bits, beta, r_arith, gamma
        return (own[0], own[1], *correction)


class BitRowTriples(BitTriples):
    """bitmul for k values per bit: daBits r (n), beta (k x n) and gamma = r * beta row by
    row (bitmul's correction broadcasts over the rows). Multiplies a shared 0/1 flag by k
    shared values (mpc.protocols.boolean.flag_rows), opening one bit and k words per column."""

    name = "bitmul_rows"

    def validate(self, params):
        _positive(params, "rows")
        _count([params["rows"] + 1, params["n"]])

    def elements(self, params):
        return 2 * (params["rows"] + 1) * params["n"]

    def own(self, party, prg, params):
        rows, n = params["rows"], params["n"]
        parts = [prg.bits(n), prg.words((rows, n))]
        return parts + [prg.words(n), prg.words((rows, n))] if party == 0 else parts


CHOICE_WORD_BITS = 64  # a one_of_n sender's entries fill at most one word


def low_bits(count: int) -> np.uint64:
    """The word whose low `count` bits are set (count <= 64)."""
    return U64((1 << count) - 1)


class OneOfN(Kind):
    """Random 1-out-of-N OTs on entries of `width` bits (1 or 2): the sender gets N random
    entries, entry k in bits k * width onwards of a word; the receiver a random index below N
    (uint8) and the sender's entry there (uint8). N is a power of two, N * width <= 64."""

    name = "one_of_n"

    def validate(self, params):
        if len(params["shape"]) != 1:
            raise CorrelationError("one_of_n takes a 1-d shape")
        _count(params["shape"])
        entries, width = params["entries"], params["width"]
        if (not (isinstance(entries, int) and entries >= 2 and entries & (entries - 1) == 0)
                or width not in (1, 2) or entries * width > CHOICE_WORD_BITS
                or params["sender"] not in (0, 1)):
            raise CorrelationError("one_of_n takes a power of two of at least 2 entries of 1 "
                                   "or 2 bits, 64 bits in all at most, and a sender 0 or 1")

    def receiver(self, params):
        return 1 - params["sender"]

    def own(self, party, prg, params):
        (count,), entries = params["shape"], params["entries"]
        if party == params["sender"]:
            return [prg.words(count) & low_bits(entries * params["width"])]
        return [(prg.words(count) % U64(entries)).astype(np.uint8)]  # a power of two: uniform

    def correction(self, own0, own1, params):
        (bits,), (index,) = (own0, own1) if params["sender"] == 0 else (own1, own0)
        width = params["width"]
        return [((bits >> (index.astype(U64) * U64(width))) & low_bits(width)).astype(np.uint8)]


class EdaBits(Kind):
    """Random words r held both as XOR shares and as additive shares (uint64 each)."""

    name = "edabit"

    def own(self, party, prg, params):
        shape = tuple(params["shape"])
        parts = [prg.words(shape)]
        return parts + [prg.words(shape)] if party == 0 else parts

    def correction(self, own0, own1, params):
        (bool0, arith0), (bool1,) = own0, own1
        return [(bool0 ^ bool1) - arith0]


class TruncationPairs(Kind):
    """Random r with additive shares of r, of msb(r) and of (r mod 2^63) >> f."""

    name = "trunc"

    def validate(self, params):
        _count(params["shape"])
        if not (isinstance(params["frac_bits"], int) and 0 < params["frac_bits"] < 62):
            raise CorrelationError("frac_bits must be in 1..61")

    def own(self, party, prg, params):
        shape = tuple(params["shape"])
        parts = [prg.words(shape)]
        return parts + [prg.words(shape), prg.words(shape)] if party == 0 else parts

    def correction(self, own0, own1, params):
        (r0, msb0, low0), (r1,) = own0, own1
        r = r0 + r1
        low = (r & np.uint64((1 << 63) - 1)) >> np.uint64(params["frac_bits"])
        return [(r >> np.uint64(63)) - msb0, low - low0]


def _positive(params: dict[str, Any], *names: str) -> None:
    if not all(isinstance(params[n], int) and not isinstance(params[n], bool) and params[n] > 0
               for n in names):
        raise CorrelationError(f"{', '.join(names)} must be positive integers")


def _row_words(columns: int) -> int:
    """A row mask's rows are whole AES blocks in its stream, so the dealer can expand any row
    without the rows before it (mpc.prg.stream_rows)."""
    return columns + columns % 2


class RowMask(Kind):
    """A random matrix A (rows x columns), each party's share from its own seed: masks a data
    matrix X once (X - A is opened), so that products with rows of X need no further opening
    of X (SecureML). The dealer sends nothing; it remembers the session's latest row mask for
    the masked products that follow."""

    name = "row_mask"

    def validate(self, params):
        _positive(params, "rows", "columns")
        _count([params["rows"], _row_words(params["columns"])])

    def elements(self, params):
        return params["rows"] * params["columns"]

    def own(self, party, prg, params):
        rows, columns = params["rows"], params["columns"]
        return [prg.words((rows, _row_words(columns)))[:, :columns]]

    def dealer_correction(self, keys, seq, params, mask=None):
        return []


class MaskedProducts(Kind):
    """For the rows A_b of the latest row mask (params "rows", public indices, repeats
    allowed): b (columns) and c = A_b b, and b' (len(rows)) and c' = A_b^T b'. With X - A
    open, X_b w and X_b^T e each open only w - b or e - b'."""

    name = "masked_products"

    def validate(self, params):
        _positive(params, "columns")
        rows = params["rows"]
        if not (isinstance(rows, list) and 0 < len(rows) <= MAX_MASKED_ROWS
                and all(isinstance(r, int) and not isinstance(r, bool) and 0 <= r < MAX_ELEMENTS
                        for r in rows)):
            raise CorrelationError(f"rows must be a list of 1 to {MAX_MASKED_ROWS} row indices")
        _count([len(rows), params["columns"]])

    def elements(self, params):
        return 2 * (len(params["rows"]) + params["columns"])

    def own(self, party, prg, params):
        batch, columns = len(params["rows"]), params["columns"]
        parts = [prg.words(columns), prg.words(batch)]
        return parts + [prg.words(batch), prg.words(columns)] if party == 0 else parts

    def dealer_correction(self, keys, seq, params, mask=None):
        if mask is None:
            raise CorrelationError("masked products need a row mask made before them")
        (b0, b0_back, c0, c0_back), (b1, b1_back) = (
            self.own(p, Prg(keys[p], seq), params) for p in (0, 1))
        rows, columns = np.asarray(params["rows"]), params["columns"]
        rows_of_mask = sum(stream_rows(keys[p], mask, rows, _row_words(columns))[:, :columns]
                           for p in (0, 1))
        return [np.matmul(rows_of_mask, b0 + b1) - c0,
                np.matmul(rows_of_mask.T, b0_back + b1_back) - c0_back]


class TruncatedProducts(Kind):
    """A Beaver triple whose product comes masked for truncation: a, b, t = a * b + r, and
    shares of msb(r) and of (r mod 2^63) >> f for a random r that no server holds. A
    fixed-point product x * y opens x - a and y - b, then x * y + 2^62 + r = t + (x - a) b
    + (y - b) a + (x - a)(y - b) + 2^62, and truncates as truncate does: one request, one
    dealer message, for both rounds.

    16 bytes per element from the dealer (t and one packed word), not 24, because r is built
    around the servers' seeds: each server p draws L_p, and r's bits f to 62 are
    low = (L0 + L1) mod 2^(63 - f), so L_p is already a share of low up to k 2^(63 - f),
    k = (L0 + L1) >> (63 - f). k is independent of low and r (L0 is uniform), so server 1 may
    learn it; msb(r)'s shares only matter modulo 2^(f + 1), as truncation multiplies them by
    2^(63 - f). Server 1's word is (msb(r) - m0) mod 2^32 + k 2^(63 - f), the two in disjoint
    bits as f < 32: as it stands it is server 1's share of msb(r) (k 2^(63 - f) times
    2^(63 - f) vanishes), and its upper 32 bits are what L1 lacks. r's other bits come from
    a stream under K0 xor K1, a key neither server knows."""

    name = "trunc_mul"

    def validate(self, params):
        TruncationPairs().validate(params)
        if params["frac_bits"] >= 32:
            raise CorrelationError("trunc_mul needs frac_bits in 1..31")

    def own(self, party, prg, params):
        shape = tuple(params["shape"])
        parts = [prg.words(shape), prg.words(shape), prg.words(shape)]  # a, b, L
        return parts + [prg.words(shape), prg.words(shape)] if party == 0 else parts  # t, m

    def dealer_correction(self, keys, seq, params, mask=None):
        (a0, b0, low0, t0, msb0), (a1, b1, low1) = (self.own(p, Prg(keys[p], seq), params)
                                                    for p in (0, 1))
        shape, f = tuple(params["shape"]), U64(params["frac_bits"])
        bits = Prg(bytes(x ^ y for x, y in zip(*keys)), seq).words(shape)  # msb(r), r's low f
        # in place, reusing the seed-derived arrays: each 2^20-word temporary costs about 1 ms
        product = np.multiply(np.add(a0, a1, out=a0), np.add(b0, b1, out=b0), out=a0)
        shares_sum = np.add(low0, low1, out=low0)
        low_bits = np.left_shift(shares_sum, U64(1) + f, out=low1)
        low_bits >>= U64(1)  # low = (L0 + L1) mod 2^(63 - f), at bits f to 62
        product += low_bits
        product += np.bitwise_and(bits, U64((1 << 63) | ((1 << int(f)) - 1)), out=b0)
        t1 = np.subtract(product, t0, out=product)  # a b + r - t0
        word = np.right_shift(bits, U64(63), out=bits)
        word -= msb0
        word &= U64(LOW_HALF)
        shares_sum >>= U64(63) - f  # k
        shares_sum <<= U64(63) - f
        word |= shares_sum
        return [t1, word]

    def assemble(self, party, own, correction):
        if party == 0:
            a, b, low, t, msb = own
            return a, b, t, msb, low
        (a, b, low), (t, word) = own, correction
        low -= word & U64(HIGH_HALF)
        return a, b, t, word, low


class PermutationMasks(Kind):
    """One shuffle pass: the permuter gets a permutation pi and delta = pi(a) - b (or
    pi(a) ^ b for boolean columns); the helper gets the masks a and b, one row per column.
    Columns are described by a string of 'a' (additive) and 'x' (XOR) letters."""

    name = "permute"

    def validate(self, params):
        _count([len(params["columns"]), params["n"]])
        if params["permuter"] not in (0, 1) or set(params["columns"]) - {"a", "x"}:
            raise CorrelationError("bad permutation parameters")

    def elements(self, params):
        return params["n"] * (1 + len(params["columns"]))

    def receiver(self, params):
        return params["permuter"]

    def own(self, party, prg, params):
        n, width = params["n"], len(params["columns"])
        if party == params["permuter"]:
            return [prg.permutation(n)]
        return [prg.words((width, n)), prg.words((width, n))]

    def _split(self, own0, own1, params):
        return (own0, own1) if params["permuter"] == 0 else (own1, own0)

    def correction(self, own0, own1, params):
        (perm,), (masks_a, masks_b) = self._split(own0, own1, params)
        delta = np.take(masks_a, perm, axis=1)
        for row, kind in enumerate(params["columns"]):
            if kind == "a":
                np.subtract(delta[row], masks_b[row], out=delta[row])
            else:
                np.bitwise_xor(delta[row], masks_b[row], out=delta[row])
        return [delta]


KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    BeaverTriples(), AndTriples(), AndMonomials(), MatrixTriples(), DaBits(), BitTriples(),
    BitRowTriples(), OneOfN(), EdaBits(), TruncationPairs(), TruncatedProducts(),
    PermutationMasks(), RowMask(), MaskedProducts())}
