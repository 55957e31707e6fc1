"""The shuffle's permutation correlation without a dealer: an oblivious switching network
(Mohassel and Sadeghian, EUROCRYPT 2013) over a Benes network of any size, one OT product per
switch.

Correlation (permutation_masks, mpc.correlations.permutations): the permuter P ends with a
uniformly random permutation pi of its own and delta = pi(a) - b, the helper H with masks a, b;
delta[j] pairs output j with input pi[j]. Additive columns use -, XOR columns use ^.

The network is the arbitrary-size Benes (AS-Waksman) network on the n wires themselves (Beauquier
and Darrot, 2002): for n > 2, floor(n/2) input switches split the wires between an upper network
of floor(n/2) wires and a lower one of ceil(n/2) (an odd last wire goes straight down), and
output switches merge them back, one fewer than floor(n/2) when n is even (the last two outputs
come straight from the two halves). It has about n log2 n - n + 1 switches and realises any
permutation; padding n to a power of two N instead costs (log2 N - 1/2) N, up to twice as many.
P routes pi (the looping algorithm; the wires whose switch is missing fix where their cycle
starts) and so knows every switch's bit; H knows none.

Both servers derive the schedule from n alone: level by level, each level's input switches and
then a local gather that puts every sub-network's upper half before its lower half; at the
bottom, back up, a scatter that interleaves the halves again and each level's output switches.
So every switch acts in place on two adjacent wires. Each wire's value is shared: P holds y, H
holds a mask t (initially y = 0, t = a). At a switch on wires (u0, u1) with bit c and OT pads,
H offers d = t(u1) - t(u0) in an OT product; P receives e = p0 + c * d and H keeps p0. Then P
sets y(u0), y(u1) = y(u_c) + e, y(u_(1-c)) - e, and H sets t(u0), t(u1) = t(u0) - p0,
t(u1) + p0, which keeps y + t equal to the values routed through the switch. At the end P's y is
pi(a) - t and H's t is b. Each e is masked by a fresh pad p0 that only H knows, and H learns
nothing of the bits (OT), so neither learns anything beyond its own part of the correlation.

Costs for n rows and w columns: one COT per switch in H's direction; P sends one bit per switch
(its chosen choice bits), H sends w words per switch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from twofold.mpc.ot.multiply import Multiplier
from twofold.mpc.prg import Prg
from twofold.mpc.ring import U64

CHUNK_WORDS = 1 << 21  # pad words per message


@njit(cache=True, nogil=True)
def _level(starts, sizes, local, routing):
    """One level of the recursion. The level's networks lie side by side in the wire array,
    network k on positions starts[k] .. starts[k] + sizes[k] (local: each one's permutation,
    in its own positions). Returns the level's first switches (input switches, and the single
    switch of 2-wire networks) and last switches (output switches) as (left position, bit),
    the gather that then puts every network's upper half before its lower half, the halves'
    permutations, and the next level's networks."""
    firsts = lasts = children = 0
    for k in range(starts.shape[0]):
        m = sizes[k]
        if m == 2:
            firsts += 1
        elif m > 2:
            firsts += m // 2
            lasts += m // 2 - 1 if m % 2 == 0 else m // 2
            children += 2
    first_at, first_bits = np.empty(firsts, np.int32), np.zeros(firsts, np.uint8)
    last_at, last_bits = np.empty(lasts, np.int32), np.zeros(lasts, np.uint8)
    n = local.shape[0]
    gather = np.arange(n).astype(np.int32)
    next_local = local.copy()
    child_starts, child_sizes = np.empty(children, np.int64), np.empty(children, np.int64)
    inverse = np.empty(n, np.int32)
    side = np.empty(n, np.int8)  # per output: 0 from the upper half, 1 from the lower
    f = o = c = 0
    for k in range(starts.shape[0]):
        start, m = starts[k], sizes[k]
        if m == 2:
            first_at[f] = start
            first_bits[f] = local[start] if routing else 0
            f += 1
        if m <= 2:
            continue
        half = m // 2
        outputs = half - 1 if m % 2 == 0 else half
        if routing:
            for j in range(m):
                inverse[start + local[start + j]] = j
                side[start + j] = -1
            # the outputs whose switch is missing fix where their cycle or path starts: with m
            # even output m - 2 comes from the upper half (m - 1 from the lower); with m odd
            # output m - 1 comes from the lower half, as does input m - 1
            forced = m - 2 if m % 2 == 0 else m - 1
            for origin in range(-1, m):
                j = forced if origin == -1 else origin
                if side[start + j] != -1:
                    continue
                s = 1 if origin == -1 and m % 2 == 1 else 0
                while side[start + j] == -1:
                    side[start + j] = s
                    i = local[start + j]
                    if i >= 2 * half:  # the unpaired input: the path ends
                        break
                    partner = inverse[start + (i ^ 1)]  # beside i at the input: other half
                    if side[start + partner] != -1:
                        break
                    side[start + partner] = 1 - s
                    if m % 2 == 1 and partner == m - 1:  # no output switch: the path ends
                        break
                    j = partner ^ 1  # beside it at the output: this half again
            for j in range(m):
                next_local[start + side[start + j] * half + j // 2] = local[start + j] // 2
        for i in range(half):
            first_at[f] = start + 2 * i
            if routing:
                first_bits[f] = side[start + inverse[start + 2 * i]]  # 1: input 2i goes lower
            f += 1
        for t in range(outputs):
            last_at[o] = start + 2 * t
            if routing:
                last_bits[o] = side[start + 2 * t]  # 1: output 2t comes from the lower half
            o += 1
        for i in range(half):
            gather[start + i] = start + 2 * i
        for i in range(m - half):
            gather[start + half + i] = start + min(2 * i + 1, m - 1)
        child_starts[c], child_sizes[c] = start, half
        child_starts[c + 1], child_sizes[c + 1] = start + half, m - half
        c += 2
    return (first_at, first_bits, last_at, last_bits, gather, next_local, child_starts,
            child_sizes)


@dataclass
class Network:
    """The network on n wires, as both servers apply it: `ops` in order, each ("switches",
    lo, hi), switches lo .. hi - 1 of `at` (left positions of adjacent pairs) and `bits`, or
    ("gather", index) / ("scatter", index), a local move of every wire (values = values[:,
    index], or its inverse). Routed, `bits` send input perm[j] to output j; unrouted (the
    helper's view) they are all 0."""

    at: np.ndarray
    bits: np.ndarray
    ops: list

    @property
    def switches(self) -> int:
        return len(self.at)


def network(perm: np.ndarray, routing: bool = True) -> Network:
    """The network for perm (or, unrouted, for any permutation of len(perm) wires): each level
    of input switches is followed by the gather that makes its halves contiguous, and each
    level of output switches preceded by the scatter that interleaves them again, so that
    every switch acts on adjacent wires."""
    n = len(perm)
    local = np.asarray(perm, np.int32)
    starts, sizes = np.zeros(1, np.int64), np.full(1, n, np.int64)
    forward, backward = [], []
    while len(starts):
        (first_at, first_bits, last_at, last_bits, gather, local, starts,
         sizes) = _level(starts, sizes, local, routing)
        forward.append((first_at, first_bits, gather if len(starts) else None))
        backward.append((last_at, last_bits, gather if len(starts) else None))
    at: list[np.ndarray] = []
    bits: list[np.ndarray] = []
    ops: list = []  # as Network.ops
    count = 0

    def add(positions, values):
        nonlocal count
        if len(positions):
            at.append(positions)
            bits.append(values)
            ops.append(("switches", count, count + len(positions)))
            count += len(positions)

    for positions, values, gather in forward:
        add(positions, values)
        if gather is not None:
            ops.append(("gather", gather))
    for positions, values, gather in reversed(backward):
        if gather is not None:
            ops.append(("scatter", gather))
        add(positions, values)

    def join(parts, dtype):
        return np.concatenate(parts) if parts else np.zeros(0, dtype)

    return Network(join(at, np.int32), join(bits, np.uint8), ops)


class Layouts:
    """The helper's view of the latest network it used: a sort shuffles the same n rows many
    times. Held per job (by its source), so no large network outlives the job."""

    def __init__(self):
        self._latest: tuple[int, Network] | None = None

    def get(self, n: int) -> Network:
        if self._latest is None or self._latest[0] != n:
            self._latest = (n, network(np.arange(n), routing=False))
        return self._latest[1]


@njit(cache=True, nogil=True)
def _moved(rows, index, gather, out):
    """out[:, j] = rows[:, index[j]] (gather) or out[:, index[j]] = rows[:, j] (scatter)."""
    for k in range(rows.shape[0]):
        source, target = rows[k], out[k]
        if gather:
            for j in range(index.shape[0]):
                target[j] = source[index[j]]
        else:
            for j in range(index.shape[0]):
                target[index[j]] = source[j]


class _Wires:
    """A party's (w, n) wire values and a second buffer for the moves between levels."""

    def __init__(self, values: np.ndarray):
        self.values, self._spare = values, np.empty_like(values)

    def move(self, op) -> None:
        _moved(self.values, op[1], op[0] == "gather", self._spare)
        self.values, self._spare = self._spare, self.values

    def runs(self, ops, first: int):
        """A message's runs of switches (its switches start at `first`) as (their indices in
        the network, their rows in the message), the moves between them applied in turn."""
        for op in ops:
            if op[0] == "switches":
                yield slice(op[1], op[2]), slice(op[1] - first, op[2] - first)
            else:
                self.move(op)


def apply_plain(values: np.ndarray, net: Network) -> np.ndarray:
    """The network on plaintext values (tests): output j = values[perm[j]]."""
    wires = _Wires(values.reshape(1, -1).copy())
    for op in net.ops:
        if op[0] == "switches":
            for s in range(op[1], op[2]):
                if net.bits[s]:
                    row, a = wires.values[0], net.at[s]
                    row[a], row[a + 1] = row[a + 1], row[a]
        else:
            wires.move(op)
    return wires.values[0]


def _messages(net: Network, limit: int):
    """The ops in messages of at most `limit` switches each: (ops, the message's switches as
    a slice of the network's, which are consecutive) per message; a long run of switches is
    split, moves stay between the switches they separate."""
    chunk, first, done = [], 0, 0
    for op in net.ops:
        if op[0] != "switches":
            chunk.append(op)
            continue
        lo, hi = op[1], op[2]
        while lo < hi:
            take = min(hi - lo, limit - (done - first))
            chunk.append(("switches", lo, lo + take))
            lo, done = lo + take, lo + take
            if done - first == limit:
                yield chunk, slice(first, done)
                chunk, first = [], done
    if chunk:
        yield chunk, slice(first, done)


@njit(cache=True, nogil=True)
def _helper_switches(masks, at, pad0, pad1, tau, xor):
    """H's side of consecutive switches (on wires at[s] and at[s] + 1), in place: corrections
    tau and the masks t."""
    width = masks.shape[0]
    for s in range(at.shape[0]):
        a, b = at[s], at[s] + 1
        for k in range(width):
            u0, u1, p0 = masks[k, a], masks[k, b], pad0[s, k]
            if xor[k]:
                tau[s, k] = p0 ^ pad1[s, k] ^ u0 ^ u1
                masks[k, a], masks[k, b] = u0 ^ p0, u1 ^ p0
            else:
                tau[s, k] = p0 - pad1[s, k] + u1 - u0
                masks[k, a], masks[k, b] = u0 - p0, u1 + p0


@njit(cache=True, nogil=True)
def _permuter_switches(values, at, pad, tau, bits, xor):
    """P's side of consecutive switches, in place: e = pad + c * tau moves the shares through
    switch bit c."""
    width = values.shape[0]
    for s in range(at.shape[0]):
        a, b = at[s], at[s] + 1
        c = bits[s]
        for k in range(width):
            e = pad[s, k]
            if c:
                e = e ^ tau[s, k] if xor[k] else e + tau[s, k]
            first, second = (values[k, b], values[k, a]) if c else (values[k, a], values[k, b])
            if xor[k]:
                values[k, a], values[k, b] = first ^ e, second ^ e
            else:
                values[k, a], values[k, b] = first + e, second - e


async def permutation_masks(mult: Multiplier, party: int, prg: Prg, n: int, columns: str,
                            permuter: int, layouts: Layouts):
    """This server's part: (pi, delta) as permuter, (a, b) as helper; both (w, n) uint64."""
    width = len(columns)
    xor = np.array([kind == "x" for kind in columns], np.bool_)
    limit = max(1, CHUNK_WORDS // max(width, 1))  # switches per message
    if party == permuter:
        perm = prg.permutation(n)
        net = network(perm)
        wires = _Wires(np.zeros((width, n), U64))
        for ops, switches in _messages(net, limit):
            count = switches.stop - switches.start
            if count:
                _, received = await mult.take(0, count)
                wanted = net.bits[switches]
                await mult.channel.send(np.packbits(wanted ^ received.choices,
                                                    bitorder="little"))
                (tau,) = await mult.channel.recv()
                pads, tau = mult.receiver_pads(received, width), tau.reshape(count, width)
            for part, mine in wires.runs(ops, switches.start):
                _permuter_switches(wires.values, net.at[part], pads[mine], tau[mine],
                                   net.bits[part], xor)
        return perm, wires.values
    first = prg.words((width, n))
    wires = _Wires(first.copy())
    net = layouts.get(n)
    for ops, switches in _messages(net, limit):
        count = switches.stop - switches.start
        if count:
            sent, _ = await mult.take(count, 0)
            (flips,) = await mult.channel.recv()
            sent = mult.chosen(sent, np.unpackbits(flips, count=count, bitorder="little"))
            pad0, pad1 = mult.sender_pads(sent, width)
            tau = np.empty((count, width), U64)
        for part, mine in wires.runs(ops, switches.start):
            _helper_switches(wires.values, net.at[part], pad0[mine], pad1[mine], tau[mine],
                             xor)
        if count:
            await mult.channel.send(tau)
    return first, wires.values
