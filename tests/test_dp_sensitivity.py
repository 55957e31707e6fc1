"""Differential privacy's sensitivities hold for the values the servers actually compute:
stored values are round(x 2^f) and every product is truncated (the floor or one unit above),
so one row can move a released sum by more than its declared bound. For tuples at the edges
of the declared ranges, two real servers compute every noisy block (statistics, group-by, a
model's metrics) with and without the tuple's tau rows, and the change never exceeds the
sensitivity in the job's ledger (servers.jobspec.noise_ledger). The other rows hold integers,
whose products are exact, so the change is exactly the tuple's: checked, since without the
tuple every block equals the plaintext sum of the others. Expressions (a model's label) stay
within the range their sensitivities assume (Expression.stored_range)."""

import tomllib

import numpy as np
import pytest

from tests.support.harness import reconstruct, run_pair, shares_of
from twofold.ml.metrics import linear_sums, logistic_counts
from twofold.mpc.ring import U64, FixedPoint, to_signed
from twofold.owners.schema import parse_schema
from twofold.servers.jobspec import noise_ledger, parse_job_spec
from twofold.sorting_join.aggregate import Aggregate, group_by, statistics
from twofold.sorting_join.predicate import Expression, column_type
from twofold.sorting_join.table import SharedTable

FIXED = FixedPoint(16)
ULP = 2.0 ** -FIXED.frac_bits
TAU, ROWS = 3, 40  # the tuple's rows are the first TAU
BOUND = 1000.00001  # BOUND 2^16 = 65536000.66: the encoding of the edge lies beyond it
SCHEMA = parse_schema(tomllib.loads(f"""
[schema]
fact = "t"
primary_private = "t"
[tables.t]
owner = "alice"
primary_key = "id"
[tables.t.columns]
id = {{ type = "key" }}
x = {{ type = "decimal", min = {-BOUND}, max = {BOUND} }}
g = {{ type = "categorical", values = ["p", "q", "r", "s"] }}
a = {{ type = "decimal", min = -2.5, max = 3.70001 }}
b = {{ type = "decimal", min = -1.6, max = 8 }}
c = {{ type = "decimal", min = -6, max = 6.1 }}
"""))
NOISE = f"noise = {{ epsilon = 1.0, delta = 1e-6, tau = {TAU} }}\n"
LABEL = "t.a * t.b + t.c / 3"  # over [-22, 31.6334]: a product, a public factor


def ledger(section: str, model: str | None = None):
    spec = parse_job_spec(f'[job]\nrecipients = ["carol"]\n{section}{NOISE}', SCHEMA, {"carol"})
    return noise_ledger(spec, SCHEMA, model)


def with_and_without_tuple() -> list[np.ndarray]:
    """The valid column with the tuple's rows, then without them (dummies, as if removed)."""
    without = np.ones(ROWS, U64)
    without[:TAU] = 0
    return [np.ones(ROWS, U64), without]


def shared(rng, tables: list[dict[str, np.ndarray]]):
    """Each server's shares of the tables' columns (ring values) and of both valid columns."""
    pairs = [{name: shares_of(values, rng) for name, values in table.items()}
             for table in tables]
    valids = [shares_of(valid, rng) for valid in with_and_without_tuple()]
    return [([{name: pair[p] for name, pair in table.items()} for table in pairs],
             [valid[p] for valid in valids]) for p in (0, 1)]


def edges(rng, low: float, high: float, count: int) -> np.ndarray:
    """Values within one unit of the last bit of either end of [low, high]."""
    inward = rng.uniform(0, ULP, count)
    return np.where(rng.integers(0, 2, count) == 1, high - inward, low + inward)


def others(rng, low: int, high: int) -> np.ndarray:
    """The other rows: integers, whose sums, products and squares are exact."""
    return rng.integers(low, high + 1, ROWS - TAU).astype(np.float64)


def change(with_tuple, without_tuple, scale: float = ULP) -> float:
    """The L2 norm of a block's change (decoded: fixed point unless scale = 1)."""
    return float(np.linalg.norm((to_signed(with_tuple) - to_signed(without_tuple)) * scale))


def test_statistics_move_by_at_most_their_sensitivities(rng):
    """Sums and sums of squares of six columns (the tuple at +BOUND, at -BOUND, then near
    either edge) and a histogram whose one bin only the tuple fills."""
    columns = {f"x{i}": np.concatenate([
        np.full(TAU, BOUND) if i == 0 else -np.full(TAU, BOUND) if i == 1
        else edges(rng, -BOUND, BOUND, TAU), others(rng, -1000, 1000)]) for i in range(6)}
    codes = np.concatenate([np.full(TAU, 3), rng.integers(0, 3, ROWS - TAU)]).astype(U64)
    blocks = ["count", "histogram(t.g)",
              *(f"{kind}({name})" for name in columns for kind in ("sum", "sumsq"))]

    async def program(party, tables, valids):
        results = []
        for valid in valids:
            out = await statistics(party, SharedTable(tables[0], valid), list(columns),
                                   {"t.g": 4}, extremes=False)
            results.append([out[name] for name in blocks])
        return results

    stored = {name: FIXED.encode(values) for name, values in columns.items()}
    args = shared(rng, [{**stored, "t.g": codes}])
    with_tuple, without_tuple = reconstruct(run_pair(program, args[0], args[1]))
    sensitivities = ledger('[statistics]\ncolumns = ["t.x"]\nhistogram = ["t.g"]\n').sensitivities
    in_ledger = {f"{kind}({name})": f"{kind}(t.x)" for name in columns
                 for kind in ("sum", "sumsq")}
    moved = {}
    for name, new, old in zip(blocks, with_tuple, without_tuple, strict=True):
        moved[name] = change(new, old, ULP if name in in_ledger else 1.0)
        assert moved[name] <= sensitivities[in_ledger.get(name, name)], name
    assert moved["count"] == TAU and moved["histogram(t.g)"] == TAU
    integers = {name: values[TAU:].astype(np.int64) for name, values in columns.items()}
    decoded = dict(zip(blocks, without_tuple, strict=True))  # the others alone, exactly
    for name, values in integers.items():
        assert to_signed(decoded[f"sum({name})"])[0] == values.sum() * 2 ** 16
        assert to_signed(decoded[f"sumsq({name})"])[0] == (values ** 2).sum() * 2 ** 16
    assert list(decoded["histogram(t.g)"]) == [*np.bincount(codes[TAU:], minlength=3), 0]
    # the bounds the ledger had before: tau times the declared bound, and its square
    assert moved["sum(x0)"] > TAU * BOUND and moved["sumsq(x0)"] > TAU * BOUND ** 2


def test_group_counts_and_sums_move_by_at_most_their_sensitivities(rng):
    """The tuple's rows fall in three groups, one of which only they make."""
    x = np.concatenate([edges(rng, -BOUND, BOUND, TAU), others(rng, -1000, 1000)])
    codes = np.concatenate([[3, 0, 1], rng.integers(0, 3, ROWS - TAU)]).astype(U64)
    aggregates = [Aggregate("count"), Aggregate("sum", "t.x")]

    async def program(party, tables, valids):
        results = []
        for valid in valids:
            grouped = await group_by(party, SharedTable(tables[0], valid), ["t.g"],
                                     [column_type(SCHEMA, "t.g")], aggregates)
            results.append([grouped.valid, *(grouped.column(n)
                                             for n in ("t.g", "count", "sum(t.x)"))])
        return results

    args = shared(rng, [{"t.x": FIXED.encode(x), "t.g": codes}])
    runs = reconstruct(run_pair(program, args[0], args[1]))
    groups = [{int(g): (to_signed(count), to_signed(total)) for keep, g, count, total
               in zip(*(np.asarray(column) for column in run), strict=True) if keep}
              for run in runs]
    assert sorted(groups[0]) == [0, 1, 2, 3] and sorted(groups[1]) == [0, 1, 2]
    sensitivities = ledger('[aggregate]\ngroup_by = ["t.g"]\nsum = ["t.x"]\n').sensitivities
    for index, name, scale in ((0, "count", 1.0), (1, "sum(t.x)", ULP)):
        moved = np.linalg.norm([(groups[0][g][index] - groups[1].get(g, (0, 0))[index]) * scale
                                for g in groups[0]])
        assert moved <= sensitivities[name], name
    for g, (count, total) in groups[1].items():  # the others alone, exactly
        assert count == np.sum(codes[TAU:] == g)
        assert total == x[TAU:][codes[TAU:] == g].sum() * 2 ** 16


METRIC_TRIALS = [  # the tuple's (a, b, c, score) for each of its rows; None: random edges
    [(-2.5, 8.0, -6.0, 1.5)] * TAU,  # the lowest label, the highest (clamped) prediction
    [(3.70001, 8.0, 6.1, -0.5)] * TAU,  # the highest label, the lowest prediction
    None, None,
]


def test_metrics_move_by_at_most_their_sensitivities(rng):
    """A linear model's sums of errors and labels for a label computed with a product and a
    public factor (whose stored values stay within Expression.stored_range), and a logistic
    model's counts; the tuple's rows push both label and prediction to the edges."""
    label = Expression(SCHEMA, LABEL, condition=False)
    assert (label.low, label.high) == (-22.0, pytest.approx(31.6334133))
    positive = Expression(SCHEMA, "t.c > 0")
    columns = {"t.a": others(rng, -2, 3), "t.b": others(rng, -1, 8),
               "t.c": np.zeros(ROWS - TAU)}
    columns["score"] = np.full(ROWS - TAU, -1.0)  # predictions clamped to the lowest label
    ranges = {"t.a": (-2.5, 3.70001), "t.b": (-1.6, 8.0), "t.c": (-6.0, 6.1),
              "score": (-0.5, 1.5)}
    trials = []
    for rows in METRIC_TRIALS:
        tuple_columns = (dict(zip(ranges, zip(*rows, strict=True), strict=True))
                         if rows is not None else
                         {name: edges(rng, *ranges[name], TAU) for name in ranges})
        trials.append({name: FIXED.encode(np.concatenate([tuple_columns[name], columns[name]]))
                       for name in ranges})
    blocks = ["count", "sum_squared_error", "sum_absolute_error", "sum_label",
              "sum_label_squared", "true_positive", "false_positive", "false_negative"]

    async def program(party, tables, valids):
        results = []
        for table in tables:
            labels = await label.evaluate_fixed(party, table)
            truth = await positive.evaluate_fixed(party, table)
            for valid in valids:
                sums = await linear_sums(party, table["score"], labels, valid,
                                         (label.low, label.high), classes=False)
                counts = await logistic_counts(party, table["score"], truth, valid)
                values = {"count": valid.sum(dtype=U64, keepdims=True), **sums, **counts}
                results.append([values[name] for name in blocks])
            results.append([labels])
        return results

    args = shared(rng, trials)
    runs = reconstruct(run_pair(program, args[0], args[1]))
    linear = ledger(f'[predict]\nmodel_job = "m"\nfeatures = ["t.x"]\nlabel = "{LABEL}"\n',
                    "linear").sensitivities
    logistic = ledger('[predict]\nmodel_job = "m"\nfeatures = ["t.x"]\nlabel = "t.c > 0"\n',
                      "logistic").sensitivities
    low, high = label.stored_range()
    integers = columns["t.a"] * columns["t.b"]  # the others' labels; their prediction is -22
    for index in range(len(trials)):
        with_tuple, without_tuple, (labels,) = runs[3 * index:3 * index + 3]
        assert low <= to_signed(labels).min() and to_signed(labels).max() <= high
        moved = {}
        for name, new, old in zip(blocks, with_tuple, without_tuple, strict=True):
            sensitivities = linear if name in linear else logistic
            moved[name] = change(new, old, ULP if name.startswith("sum_") else 1.0)
            assert moved[name] <= sensitivities[name], (index, name)
        exact = dict(zip(blocks, (to_signed(v)[0] for v in without_tuple), strict=True))
        assert exact["sum_squared_error"] == ((integers + 22) ** 2).sum() * 2 ** 16
        assert exact["sum_absolute_error"] == np.abs(integers + 22).sum() * 2 ** 16
        assert exact["sum_label"] == integers.sum() * 2 ** 16
        assert exact["sum_label_squared"] == (integers ** 2).sum() * 2 ** 16
        if index == 0:  # the edges reach the sensitivity, up to the truncations' last bits
            assert moved["sum_absolute_error"] > linear["sum_absolute_error"] - 4 * TAU * ULP
        if index == 1:  # 3.70001 is stored rounded up, 8 times that beyond the declared range
            assert moved["sum_label"] > TAU * label.high  # the ledger's bound before


@pytest.mark.parametrize("text", ["-t.a - t.b * 2.5", "t.a * t.a - t.c / 7 + 1.1",
                                  "(t.a - 1) * (t.b + t.c) / 3"])
def test_expressions_stay_within_their_stored_range(rng, text):
    """Every corner of the columns' declared ranges, and values one unit inside them, through
    two real servers: the stored values lie in Expression.stored_range, the declared range
    widened by a few units of the last bit, and do leave the declared range."""
    expression = Expression(SCHEMA, text, condition=False)
    ranges = {"t.a": (-2.5, 3.70001), "t.b": (-1.6, 8.0), "t.c": (-6.0, 6.1)}
    corners = np.array(np.meshgrid(*ranges.values())).reshape(3, -1)
    inside = np.stack([edges(rng, *ranges[name], 200) for name in ranges])
    values = np.concatenate([corners, inside], axis=1)
    pairs = {name: shares_of(FIXED.encode(column), rng)
             for name, column in zip(ranges, values, strict=True)}

    async def program(party, columns):
        return await expression.evaluate_fixed(party, columns)

    computed = to_signed(reconstruct(run_pair(
        program, ({n: pair[0] for n, pair in pairs.items()},),
        ({n: pair[1] for n, pair in pairs.items()},))))
    low, high = expression.stored_range()
    assert low <= computed.min() and computed.max() <= high
    assert abs(low * ULP - expression.low) < 1e-3 and abs(high * ULP - expression.high) < 1e-3
    assert computed.max() > expression.high / ULP  # encodings round 3.70001 and 6.1 outward
