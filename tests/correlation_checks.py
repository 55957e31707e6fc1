"""What each correlation kind must satisfy, checked on both servers' parts (test-only: a test
may put the two halves together; no server ever does). Shared by the dealer's and the OT
source's tests."""

import itertools

import numpy as np

from mpc.correlations import low_bits

U64 = np.uint64
PARAMS = {  # sizes chosen off word and power-of-two boundaries
    "beaver": [{"shape": [50]}, {"shape": [3, 7]}],
    "and": [{"shape": [3, 7]}],
    "and_monomials": [{"shape": [3, 5],
                       "monomials": [[5, 2], [5, 4, 1], [5, 4, 3, 0], [5, 4, 3, 6]]},
                      {"shape": [1], "monomials": [[0, 1]]}],
    "matmul": [{"dims": [4, 5, 3]}, {"dims": [2, 30, 40]}],
    "dabit": [{"shape": [70]}],
    "bitmul": [{"shape": [70]}],
    "bitmul_rows": [{"rows": 3, "n": 70}, {"rows": 1, "n": 5}, {"rows": 2, "n": 0}],
    "edabit": [{"shape": [40]}],
    "one_of_n": [{"shape": [2000], "entries": 64, "sender": 0, "width": 1},
                 {"shape": [2000], "entries": 32, "sender": 1, "width": 2},
                 {"shape": [70], "entries": 2, "sender": 1, "width": 1},
                 {"shape": [0], "entries": 16, "sender": 1, "width": 2}],
    "trunc": [{"shape": [60], "frac_bits": 16}, {"shape": [5], "frac_bits": 40}],
    "trunc_mul": [{"shape": [60], "frac_bits": 16}, {"shape": [3, 5], "frac_bits": 31},
                  {"shape": [7], "frac_bits": 1}],
    "permute": [{"n": 30, "columns": "axa", "permuter": 1}, {"n": 1, "columns": "x", "permuter": 0},
                {"n": 64, "columns": "a", "permuter": 0}, {"n": 0, "columns": "a", "permuter": 1},
                {"n": 7, "columns": "xa", "permuter": 1}],
    "row_mask": [{"rows": 9, "columns": 5}, {"rows": 3, "columns": 2}],
    "masked_products": [{"rows": [0, 8, 8, 3], "columns": 5}],
}
MASK_FIRST = {"masked_products": {"rows": 9, "columns": 5}}  # the row mask made just before


def _bits(values):
    assert values.dtype == np.uint8 and set(np.unique(values).tolist()) <= {0, 1}
    return values


def check(kind: str, params: dict, part0: tuple, part1: tuple, mask=None) -> None:
    """Assert that server 0's and server 1's parts form a correct correlation of `kind`;
    `mask`: both servers' shares of the row mask made before (masked products)."""
    if kind == "row_mask":
        for (share,) in (part0, part1):
            assert share.shape == (params["rows"], params["columns"]) and share.dtype == U64
    elif kind == "masked_products":
        rows = (mask[0] + mask[1])[params["rows"]]
        forward, backward, product, product_back = (x + y for x, y in zip(part0, part1))
        assert forward.shape == (params["columns"],) and backward.shape == (len(rows),)
        assert np.array_equal(np.matmul(rows, forward), product)
        assert np.array_equal(np.matmul(rows.T, backward), product_back)
    elif kind in ("beaver", "matmul"):
        (a0, b0, c0), (a1, b1, c1) = part0, part1
        product = {"beaver": np.multiply, "matmul": np.matmul}[kind]
        assert np.array_equal(product(a0 + a1, b0 + b1), c0 + c1)
    elif kind == "and":
        (a0, b0, c0), (a1, b1, c1) = part0, part1
        assert a0.shape == tuple(params["shape"])
        assert np.array_equal((a0 ^ a1) & (b0 ^ b1), c0 ^ c1)
    elif kind == "and_monomials":
        (a0, c0), (a1, c1) = part0, part1
        masks, monomials = a0 ^ a1, params["monomials"]
        assert masks.shape == (1 + max(map(max, monomials)), *params["shape"])
        subsets = sorted({sum(1 << i for i in chosen) for m in monomials
                          for size in range(2, len(m) + 1)
                          for chosen in itertools.combinations(m, size)})
        assert len(subsets) == len(c0)
        for subset, product in zip(subsets, c0 ^ c1):
            expected = ~np.zeros_like(masks[0])
            for i in range(len(masks)):
                if subset >> i & 1:
                    expected &= masks[i]
            assert np.array_equal(product, expected)
    elif kind == "dabit":
        (r0, ra0), (r1, ra1) = part0, part1
        assert np.array_equal((_bits(r0) ^ _bits(r1)).astype(U64), ra0 + ra1)
    elif kind in ("bitmul", "bitmul_rows"):
        (r0, beta0, ra0, g0), (r1, beta1, ra1, g1) = part0, part1
        r = (_bits(r0) ^ _bits(r1)).astype(U64)
        shape = (params["rows"], params["n"]) if kind == "bitmul_rows" else r.shape
        assert beta0.shape == beta1.shape == g0.shape == g1.shape == shape
        assert np.array_equal(r, ra0 + ra1) and np.array_equal(r * (beta0 + beta1), g0 + g1)
    elif kind == "one_of_n":
        entries, width, (count,) = params["entries"], params["width"], params["shape"]
        ((bits,), (index, entry)) = (part0, part1) if params["sender"] == 0 else (part1, part0)
        assert bits.dtype == U64 and bits.shape == index.shape == entry.shape == (count,)
        assert np.all(bits <= low_bits(entries * width)) and np.all(index < entries)
        shift = index.astype(U64) * U64(width)
        assert entry.dtype == np.uint8
        assert np.array_equal(entry, ((bits >> shift) & low_bits(width)).astype(np.uint8))
        if count >= 2000:  # random: every index drawn, bits balanced
            assert len(np.unique(index)) == entries
            ones = np.unpackbits(bits.view(np.uint8)).mean()
            assert abs(ones - entries * width / 128) < 0.05
    elif kind == "edabit":
        (r0, ra0), (r1, ra1) = part0, part1
        assert np.array_equal(r0 ^ r1, ra0 + ra1)
    elif kind == "trunc":
        (r0, m0, l0), (r1, m1, l1) = part0, part1
        r, f = r0 + r1, params["frac_bits"]
        assert np.array_equal(m0 + m1, r >> U64(63))
        assert np.array_equal(l0 + l1, (r & U64(2**63 - 1)) >> U64(f))
    elif kind == "trunc_mul":  # t - a * b is a truncation pair's r, whose msb is shared
        (a0, b0, t0, m0, l0), (a1, b1, t1, m1, l1) = part0, part1  # modulo 2^(f + 1) only
        r, f = t0 + t1 - (a0 + a1) * (b0 + b1), params["frac_bits"]
        assert a0.shape == tuple(params["shape"])
        assert np.array_equal((m0 + m1) << U64(63 - f), (r >> U64(63)) << U64(63 - f))
        assert np.array_equal(l0 + l1, (r & U64(2**63 - 1)) >> U64(f))
    elif kind == "permute":
        n, columns = params["n"], params["columns"]
        helper, permuter = (part0, part1) if params["permuter"] == 1 else (part1, part0)
        (a, b), (perm, delta) = helper, permuter
        assert sorted(perm.tolist()) == list(range(n))  # a permutation, of the permuter's
        assert a.shape == b.shape == delta.shape == (len(columns), n)
        moved = a[:, perm]
        for row, column in enumerate(columns):
            expected = moved[row] - b[row] if column == "a" else moved[row] ^ b[row]
            assert np.array_equal(delta[row], expected)
    else:
        raise AssertionError(f"no check for {kind}")
