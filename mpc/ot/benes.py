"""The shuffle's permutation correlation without a dealer: an oblivious switching network
(Mohassel and Sadeghian, EUROCRYPT 2013) over a Benes network, one OT product per switch.

Correlation (mpc.correlations.PermutationMasks): the permuter P ends with a uniformly random
permutation pi of its own and delta = pi(a) - b, the helper H with masks a, b; delta[j] pairs
output j with input pi[j]. Additive columns use -, XOR columns use ^.

A Benes network on N = 2^L wires has 2L - 1 layers of N/2 two-wire switches and realises any
permutation; P routes pi (padded to N) and so knows every switch's bit, H knows none. Each wire
value is shared: P holds y, H holds a mask t (initially y = 0, t = a). At a switch with inputs
(u0, u1), bit c and fresh OT pads, H offers d = t(u1) - t(u0) in an OT product; P receives
e = p0 + c * d and H keeps p0. Then P sets y(out0) = y(u_c) + e and y(out1) = y(u_(1-c)) - e,
and H sets t(out0) = t(u0) - p0 and t(out1) = t(u1) + p0, which keeps y + t equal to the value
routed through the switch. At the end P's y is pi(a) - t and H's t is b. Each e is masked by a
fresh pad p0 that only H knows, and H learns nothing of the bits (OT), so neither learns
anything beyond its own part of the correlation.

Costs for n rows (N the next power of two) and w columns: (2 log2 N - 1) N / 2 COTs in H's
direction; P sends one bit per switch (its chosen choice bits), H sends w words per switch.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mpc.ot.multiply import Multiplier
from mpc.prg import Prg

U64 = np.uint64
CHUNK_WORDS = 1 << 21  # pad words per message


@njit(cache=True, nogil=True)
def _source(layer, depth, size, position):
    """Which wire of the previous layer's outputs feeds `position` of `layer`'s inputs:
    layers 1 .. depth-1 split each block into its even and odd wires (two sub-networks),
    layers depth .. 2 depth - 2 merge two sub-networks' outputs pairwise."""
    if layer == 0:
        return position
    if layer < depth:
        block = size >> (layer - 1)
    else:
        block = 1 << (layer - depth + 2)
    start = position - position % block
    offset = position - start
    half = block // 2
    if layer < depth:
        return start + (2 * offset if offset < half else 2 * (offset - half) + 1)
    return start + (offset // 2 if offset % 2 == 0 else half + offset // 2)


@njit(cache=True, nogil=True)
def route(perm, depth):
    """Switch bits (2 depth - 1, N / 2) that make the network send input perm[j] to output j
    (the looping algorithm, level by level: a sub-network's two halves get alternate inputs
    of every cycle)."""
    size = perm.shape[0]
    layers = 2 * depth - 1
    bits = np.zeros((layers, size // 2), np.uint8)
    # 32-bit indices: the top levels jump around arrays larger than the cache, and halving
    # them made routing 2^20 wires a quarter faster
    current = perm.astype(np.int32)  # per block of the level, local indices
    inverse = np.empty(size, np.int32)
    side = np.empty(size, np.int8)  # per output of the block: 0 upper, 1 lower sub-network
    following = np.empty(size, np.int32)
    for level in range(depth - 1):
        block = size >> level
        half = block // 2
        for start in range(0, size, block):
            for j in range(block):
                inverse[start + current[start + j]] = j
                side[start + j] = -1
            for first in range(0, block, 2):
                if side[start + first] != -1:
                    continue
                j = first
                while side[start + j] == -1:
                    side[start + j] = 0  # output j through the upper half
                    i = current[start + j]
                    partner_out = inverse[start + (i ^ 1)]  # the input beside i goes lower
                    side[start + partner_out] = 1
                    j = partner_out ^ 1  # and the output beside that one goes upper
            for j in range(block):
                i = current[start + j]
                lower = side[start + j]
                bits[level, (start + i - i % 2) // 2] = (i % 2) ^ lower
                bits[layers - 1 - level, (start + j - j % 2) // 2] = (j % 2) ^ lower
                # sub-network input i // 2 feeds sub-network output j // 2
                following[start + lower * half + j // 2] = i // 2
        current[:] = following
    for start in range(0, size, 2):
        bits[depth - 1, start // 2] = current[start]
    return bits


@njit(cache=True, nogil=True)
def _apply_plain(values, bits, depth):
    """The network on plaintext values (tests): output j = values[perm[j]]."""
    size = values.shape[0]
    current = values.copy()
    nxt = np.empty_like(current)
    for layer in range(2 * depth - 1):
        for s in range(size // 2):
            v0 = current[_source(layer, depth, size, 2 * s)]
            v1 = current[_source(layer, depth, size, 2 * s + 1)]
            if bits[layer, s]:
                v0, v1 = v1, v0
            nxt[2 * s], nxt[2 * s + 1] = v0, v1
        current, nxt = nxt, current
    return current


@njit(cache=True, nogil=True)
def _helper_layer(masks, out, pad0, pad1, tau, xor, layer, depth):
    """H's side of one layer: corrections tau and the masks t of the layer's outputs."""
    width, size = masks.shape
    for s in range(size // 2):
        a = _source(layer, depth, size, 2 * s)
        b = _source(layer, depth, size, 2 * s + 1)
        for k in range(width):
            u0, u1, p0 = masks[k, a], masks[k, b], pad0[s, k]
            if xor[k]:
                tau[s, k] = p0 ^ pad1[s, k] ^ u0 ^ u1
                out[k, 2 * s], out[k, 2 * s + 1] = u0 ^ p0, u1 ^ p0
            else:
                tau[s, k] = p0 - pad1[s, k] + u1 - u0
                out[k, 2 * s], out[k, 2 * s + 1] = u0 - p0, u1 + p0


@njit(cache=True, nogil=True)
def _permuter_layer(values, out, pad, tau, bits, xor, layer, depth):
    """P's side of one layer: e = pad + c * tau moves the shares through switch bit c."""
    width, size = values.shape
    for s in range(size // 2):
        a = _source(layer, depth, size, 2 * s)
        b = _source(layer, depth, size, 2 * s + 1)
        if bits[s]:
            a, b = b, a
        for k in range(width):
            e = pad[s, k]
            if bits[s]:
                e = e ^ tau[s, k] if xor[k] else e + tau[s, k]
            if xor[k]:
                out[k, 2 * s], out[k, 2 * s + 1] = values[k, a] ^ e, values[k, b] ^ e
            else:
                out[k, 2 * s], out[k, 2 * s + 1] = values[k, a] + e, values[k, b] - e


def network_size(n: int) -> tuple[int, int]:
    """(N, log2 N): the smallest power of two >= max(n, 2)."""
    depth = max(1, (max(n, 2) - 1).bit_length())
    return 1 << depth, depth


def _layer_groups(depth: int, size: int, width: int):
    per_layer = max(1, CHUNK_WORDS // max(size // 2 * width, 1))
    layers = list(range(2 * depth - 1))
    return [layers[i:i + per_layer] for i in range(0, len(layers), per_layer)]


async def permutation_masks(mult: Multiplier, party: int, prg: Prg, n: int, columns: str,
                            permuter: int):
    """This server's part: (pi, delta) as permuter, (a, b) as helper; both (w, n) uint64."""
    width = len(columns)
    xor = np.array([kind == "x" for kind in columns], np.bool_)
    if n == 0:
        empty = np.zeros((width, 0), U64)
        return (np.zeros(0, np.int64), empty) if party == permuter else (empty, empty.copy())
    size, depth = network_size(n)
    switches = size // 2
    groups = _layer_groups(depth, size, width)
    if party == permuter:
        perm = prg.permutation(n)
        bits = route(np.concatenate([perm, np.arange(n, size)]), depth)
        values = np.zeros((width, size), U64)
        for group in groups:
            _, cots = await mult.take(0, switches * len(group))
            wanted = bits[group].reshape(-1)
            await mult.channel.send(np.packbits(wanted ^ cots.choices, bitorder="little"))
            (tau,) = await mult.channel.recv()
            pads = mult.receiver_pads(cots, width).reshape(len(group), switches, width)
            tau = tau.reshape(len(group), switches, width)
            for index, layer in enumerate(group):
                out = np.empty_like(values)
                _permuter_layer(values, out, pads[index], tau[index], bits[layer], xor, layer,
                                depth)
                values = out
        return perm, np.ascontiguousarray(values[:, :n])
    masks = prg.words((width, size))
    first = masks[:, :n].copy()
    for group in groups:
        cots, _ = await mult.take(switches * len(group), 0)
        (flips,) = await mult.channel.recv()
        count = switches * len(group)
        cots = mult.chosen(cots, np.unpackbits(flips, count=count, bitorder="little"))
        pad0, pad1 = mult.sender_pads(cots, width)
        pad0 = pad0.reshape(len(group), switches, width)
        pad1 = pad1.reshape(len(group), switches, width)
        tau = np.empty((len(group), switches, width), U64)
        for index, layer in enumerate(group):
            out = np.empty_like(masks)
            _helper_layer(masks, out, pad0[index], pad1[index], tau[index], xor, layer, depth)
            masks = out
        await mult.channel.send(tau.reshape(count, width))
    return first, np.ascontiguousarray(masks[:, :n])
