"""OT extension: many correlated OTs (COTs) from 128 base OTs, after SoftSpokenOT (Roy,
CRYPTO 2022), semi-honest; with BLOCK_BITS = 1 it is exactly IKNP.

A batch of m COTs in one direction gives the receiver random choice bits c_j and 128-bit rows
t_j, and the sender rows q_j = t_j XOR c_j * Delta for its session-long secret Delta.

How (per direction, k = BLOCK_BITS, 128 / k blocks):
- setup: for each block the receiver expands a GGM tree with 2^k leaf seeds; the sender picks
  the block's digit Delta_b in F_2^k and learns, through k base OTs (one per tree level, the XOR
  of the level's left or right nodes), every leaf seed except the one at Delta_b;
- per batch every leaf seed is stretched to m bits r_x by AES-CTR. The receiver computes
  u = XOR of all r_x and v = XOR of x * r_x (x in F_2^k as a vector); the sender, missing
  r_Delta, computes w = XOR of (Delta_b + x) * r_x = v + u * Delta_b: a small-field VOLE. The
  choice bits are block 0's u; the receiver sends d_b = u_b + u_0 for the other blocks (one bit
  per block and COT), and the sender adds d_b * Delta_b. Concatenated over the blocks:
  q = t + c * Delta with t = v.
The sender never sees anything but d_b, which hides u_b behind the leaf r_Delta it lacks; the
receiver never learns Delta, which only ever entered base OTs as choices.

Costs per COT: (128/k - 1) bits sent by the receiver; 128 * 2^k / k bits of AES-CTR stretched
by the receiver (the sender one leaf per block less), and a bit transpose on each side. k = 2
halves IKNP's traffic (8 bytes instead of 16) for a little more AES; the choice is argued in
docs/mpc.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from twofold.mpc.link import Channel
from twofold.mpc.ot.base import base_ots
from twofold.mpc.ot.kernels import (
    add_digit_corrections,
    finish_pads,
    leaf_sums,
    transpose_rows,
    tweak_blocks,
    xor_delta,
)
from twofold.mpc.prg import SLACK_WORDS, Prg
from twofold.mpc.ring import U64

BLOCK_BITS = 2  # k
LEAVES = 1 << BLOCK_BITS
BLOCKS = 128 // BLOCK_BITS
TREE_STREAM = 1  # Prg stream that splits a GGM node; leaves are stretched on stream 0
BYTES_PER_COT = (BLOCKS - 1) / 8  # the receiver's message, per COT of a batch
EVERY_ROW = np.ones(1, np.uint8)  # xor_delta's selection when all rows are flipped
PAD_BLOCK_ROWS = 1 << 15  # 128-bit blocks hashed at a time (512 KiB per pass)
# Room after each of the 128 bit rows that are transposed into COTs. Batches are powers of two
# words long, so unpadded rows would lie a power of two bytes apart, all in the same few cache
# sets: the transpose, which reads a word of every row at once, then runs 1.5 to 2 times slower.
ROW_PAD_WORDS = 8


def _children(seed: bytes) -> tuple[bytes, bytes]:
    both = Prg(seed, TREE_STREAM).random_bytes(32).tobytes()
    return both[:16], both[16:]


def _tree(root: bytes) -> list[list[bytes]]:
    """Levels of a GGM tree; node i of level l splits into nodes 2i and 2i + 1 of level l + 1,
    so leaf x is reached by the bits of x, most significant first."""
    levels = [[root]]
    for _ in range(BLOCK_BITS):
        levels.append([child for node in levels[-1] for child in _children(node)])
    return levels


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _xor_all(seeds) -> bytes:
    total = bytes(16)
    for seed in seeds:
        total = _xor(total, seed)
    return total


def _punctured_leaves(missing: int, sibling_sums: list[bytes]) -> list[bytes | None]:
    """Every leaf but `missing`, from the XOR of the off-path nodes of each level."""
    known: dict[int, bytes] = {}  # node index -> seed, at the current level
    path = 0
    for level in range(1, BLOCK_BITS + 1):
        bit = (missing >> (BLOCK_BITS - level)) & 1
        children: dict[int, bytes] = {}
        for index, seed in known.items():
            children[2 * index], children[2 * index + 1] = _children(seed)
        off_path = 2 * path + (1 - bit)
        same_side = [seed for index, seed in children.items() if index % 2 == 1 - bit]
        children[off_path] = _xor(sibling_sums[level - 1], _xor_all(same_side))
        known, path = children, 2 * path + bit
    return [known.get(x) for x in range(LEAVES)]


class Scratch:
    """Reused work buffers, one per name: fresh memory costs page faults (several times
    the work on this kind of machine), so arrays that live only within one call are kept."""

    def __init__(self):
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape) -> np.ndarray:
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = self._buffers[name] = np.empty(size, U64)
        return buffer[:size].reshape(shape)

    def rows(self, name: str, count: int, words: int) -> np.ndarray:
        """(count, words) rows that lie ROW_PAD_WORDS apart (a strided view)."""
        return self.get(name, (count, words + ROW_PAD_WORDS))[:, :words]


class _Leaves:
    """AES-CTR streams of the leaf seeds a party knows, stretched a batch at a time."""

    def __init__(self, seeds: Sequence[Sequence[bytes | None]]):
        self.streams = [[Prg(seed) if seed is not None else None for seed in block]
                        for block in seeds]
        self.scratch = Scratch()  # the XOR sums' buffers (_sums)
        self._leaves = np.zeros((BLOCKS, LEAVES, 0), U64)
        self._fills: list = []  # (stream, its row's bytes) in self._leaves

    def _layout(self, words: int) -> None:
        """A zeroed leaves buffer for batches of `words` and a view of each known leaf's row;
        the rows of unknown leaves stay zero (streams write exactly their row)."""
        flat = np.zeros(BLOCKS * LEAVES * words + SLACK_WORDS, U64)
        data = flat.view(np.uint8).data
        row_bytes = 8 * words
        self._fills = [(stream, data[row * row_bytes:(row + 1) * row_bytes + 8 * SLACK_WORDS])
                       for row, stream in enumerate(s for block in self.streams for s in block)
                       if stream is not None]  # the room past a row is the next row
        self._leaves = flat[:-SLACK_WORDS].reshape(BLOCKS, LEAVES, words)

    def stretch(self, words: int) -> np.ndarray:
        """(BLOCKS, LEAVES, words) uint64, valid until the next call; zero for a leaf this
        party does not know. Streams fill their rows in place: per-call overhead is a fifth
        of the work at these lengths."""
        if self._leaves.shape[2] != words:
            self._layout(words)
        for stream, row in self._fills:
            stream.bytes_into(row)
        return self._leaves


def _sums(leaves: np.ndarray, scratch: Scratch) -> tuple[np.ndarray, np.ndarray]:
    """The XOR sums, in scratch buffers valid until the next call."""
    words = leaves.shape[2]
    total = scratch.get("total", (BLOCKS, words))
    weighted = scratch.rows("weighted", 128, words).reshape(BLOCKS, BLOCK_BITS, words)
    leaf_sums(leaves, BLOCK_BITS, total, weighted)
    return total, weighted


def _rows_to_cots(rows: np.ndarray) -> np.ndarray:
    """(128, words) bit rows (padded, see ROW_PAD_WORDS) -> (64 * words, 2) uint64: one
    128-bit row per COT."""
    out = np.empty((rows.shape[1] * 64, 2), U64)
    transpose_rows(rows, out)
    return out


class CotReceiver:
    """The choosing side of one direction: knows every leaf."""

    def __init__(self, roots: list[bytes]):
        self.trees = [_tree(root) for root in roots]
        self.leaves = _Leaves([tree[-1] for tree in self.trees])

    def base_ot_pairs(self) -> list[tuple[bytes, bytes]]:
        """Per block and level: (XOR of the level's left nodes, XOR of its right nodes)."""
        return [(_xor_all(level[0::2]), _xor_all(level[1::2]))
                for tree in self.trees for level in tree[1:]]

    def extend(self, words: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """64 * words COTs: (message for the sender, rows t, choice bits as 0/1 uint8)."""
        total, weighted = _sums(self.leaves.stretch(words), self.leaves.scratch)
        message = total[1:] ^ total[0]
        choices = np.unpackbits(total[0].view(np.uint8), bitorder="little")
        return message, _rows_to_cots(weighted.reshape(128, words)), choices


class CotSender:
    """The other side of one direction: knows Delta, and every leaf but one per block."""

    def __init__(self, delta: np.ndarray):
        self.delta = np.asarray(delta, U64)  # (2,): bit b * k + i is bit i of digit b
        value = int(self.delta[0]) | int(self.delta[1]) << 64
        self.digits = [(value >> (BLOCK_BITS * b)) & (LEAVES - 1) for b in range(BLOCKS)]
        self.digit_bits = np.array([[(digit >> i) & 1 for i in range(BLOCK_BITS)]
                                    for digit in self.digits], np.uint8)  # (BLOCKS, k)
        self.leaves: _Leaves | None = None

    def base_ot_choices(self) -> list[int]:
        """Per block and level: the side off the path to the digit's leaf."""
        return [1 - ((digit >> (BLOCK_BITS - level)) & 1)
                for digit in self.digits for level in range(1, BLOCK_BITS + 1)]

    def receive_base_ots(self, sibling_sums: list[bytes]) -> None:
        self.leaves = _Leaves([
            _punctured_leaves(digit, sibling_sums[b * BLOCK_BITS:(b + 1) * BLOCK_BITS])
            for b, digit in enumerate(self.digits)])

    def extend(self, message: np.ndarray) -> np.ndarray:
        """Rows q = t + c * Delta of the COTs whose receiver sent `message`."""
        words = message.shape[1]
        leaves = self.leaves
        if leaves is None:
            raise RuntimeError("COTs extend once the base OTs are received")
        total, weighted = _sums(leaves.stretch(words), leaves.scratch)
        add_digit_corrections(weighted, total, message, self.digit_bits)
        return _rows_to_cots(weighted.reshape(128, words))


async def setup(channel: Channel, prg: Prg) -> tuple[CotSender, CotReceiver]:
    """Both directions' base OTs at once: this party's sender side (towards the peer's
    choices) and its receiver side."""
    receiver = CotReceiver([prg.random_bytes(16).tobytes() for _ in range(BLOCKS)])
    sender = CotSender(prg.words(2))
    sums = await base_ots(channel, receiver.base_ot_pairs(), sender.base_ot_choices())
    sender.receive_base_ots(sums)
    return sender, receiver


class PadHash:
    """Turns COT rows into independent pads: the tweakable correlation-robust hash
    H(i, x) = pi(pi(x) + i) + pi(x) with pi fixed-key AES (Guo, Katz, Wang, Yu, S&P 2020),
    with AES-ECB over blocks of rows. The key is public (both servers know it)."""

    def __init__(self, key: bytes):
        self._aes = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        self.scratch = Scratch()

    def _permute(self, blocks: np.ndarray, out: np.ndarray) -> np.ndarray:
        """pi of each block into out, which has one block of room more (update_into's)."""
        self._aes.update_into(np.ascontiguousarray(blocks).view(np.uint8).data,
                              out.view(np.uint8).data)
        return out[:-1]

    def pads(self, rows: np.ndarray, first: int, sender: int, words: int,
             delta: np.ndarray | None = None) -> np.ndarray:
        """(m, words) uint64 pads of (m, 2) rows, or of rows ^ delta (delta (2,) or one row per
        COT): COTs number first, first + 1, ... of the direction whose sender is `sender`;
        the tweak (number, sender, block) is never repeated within a session. Hashed
        PAD_BLOCK_ROWS rows at a time, so that the AES passes and the compiled passes between
        them stay in cache (twice as fast as whole arrays)."""
        blocks = -(-words // 2)
        high = np.arange(blocks, dtype=U64) | U64(sender << 32)
        if delta is not None:
            delta = np.atleast_2d(delta)
        out = np.empty((len(rows), words), U64)
        step = max(1, PAD_BLOCK_ROWS // blocks)
        for start in range(0, len(rows), step):
            part = rows[start:start + step]
            if delta is not None:
                flipped = self.scratch.get("flipped", part.shape)
                xor_delta(part, delta if len(delta) == 1 else delta[start:start + step], EVERY_ROW,
                          flipped)
                part = flipped
            self._hash(part, first + start, high, out[start:start + len(part)])
        return out

    def _hash(self, rows: np.ndarray, first: int, high: np.ndarray, out: np.ndarray) -> None:
        count, blocks = len(rows), len(high)
        permuted = self._permute(rows, self.scratch.get("permuted", (count + 1, 2)))
        tweaked = self.scratch.get("tweaked", (count, blocks, 2))
        tweak_blocks(permuted, first, high, tweaked)
        hashed = self._permute(tweaked.reshape(-1, 2),
                               self.scratch.get("hashed", (count * blocks + 1, 2)))
        finish_pads(hashed.reshape(count, 2 * blocks), permuted, out)
