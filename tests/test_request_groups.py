"""Which announced requests are made together (mpc.request_groups), from the plan alone."""

import numpy as np

from twofold.mpc.correlations import KINDS
from twofold.mpc.request_groups import FIRST_WINDOW_ELEMENTS, groups, merged, split


def test_groups_hold_one_kind_and_parameters_in_order_of_their_first_member():
    plan = [("beaver_triples", {"shape": [5]}),
            ("truncation_pairs", {"shape": [5], "frac_bits": 16}),
            ("beaver_triples", {"shape": [7]}),
            ("truncation_pairs", {"shape": [5], "frac_bits": 20}),
            ("truncation_pairs", {"shape": [2], "frac_bits": 16}), ("dabits", {"shape": [3]})]
    assert groups(plan) == [[0, 2], [1, 4]]  # frac_bits 20 and the lone dabit stay alone


def test_windows_end_at_a_row_mask_and_grow_from_the_first():
    mask = ("row_mask", {"rows": 4, "columns": 2})
    beaver, alone = ("beaver_triples", {"shape": [10]}), ("matrix_triples", {"dims": [2, 3, 4]})
    assert groups([beaver, alone, beaver, mask, beaver, beaver]) == [[0, 2], [4, 5]]
    big = ("beaver_triples", {"shape": [FIRST_WINDOW_ELEMENTS // 2]})
    # the first window holds two of them, the next twice as many, the last one is alone
    assert groups([big] * 7) == [[0, 1], [2, 3, 4, 5]]
    assert groups([("beaver_triples", {"shape": [3, 4]})] * 3) == []  # not flat: never merged


def test_a_merged_value_splits_into_each_members_part():
    members = [{"shape": [3], "frac_bits": 16}, {"shape": [0], "frac_bits": 16},
               {"shape": [2], "frac_bits": 16}]
    assert merged("truncation_pairs", members) == {"shape": [5], "frac_bits": 16}
    value = KINDS["truncation_pairs"].Part(np.arange(5), np.arange(5) * 10, np.arange(5))
    parts = split("truncation_pairs", members, value)
    assert [len(part[0]) for part in parts] == [3, 0, 2]
    assert parts[2][1].tolist() == [30, 40]
    rows = [{"rows": [1, 2], "columns": 3}, {"rows": [0, 0], "columns": 3}]
    assert merged("masked_products", rows) == {"row_groups": [[1, 2], [0, 0]], "columns": 3}
    grouped = KINDS["masked_products"].Part(np.zeros((2, 3)), np.ones((2, 2)), np.zeros((2, 2)),
                                            np.ones((2, 3)))
    assert [part[1].shape for part in split("masked_products", rows, grouped)] == [(2,), (2,)]
