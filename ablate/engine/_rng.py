"""Controlled random streams: independent, device-independent, per (seed, purpose, key...).

Each run draws its randomness from streams derived from its seed and the purpose of
the draw (one per layer for initialization, one for data order, one per dropout layer).
Turning dropout off therefore leaves the initial weights and the minibatch order of a
seed unchanged, and adding a layer leaves the other layers' initial weights alone:
paired differences between arms measure the factor, not the luck (common random
numbers). Every stream gives the same bits on every device, so a seed's run is the same
stream on a CPU and on a GPU:

- initial weights and minibatch order come from `torch.Generator`s on the CPU (moved to
  the training device afterwards);
- dropout masks come from a counter-based hash of (seed, layer, step, unit) computed
  with 32-bit integer arithmetic, which is exact and identical on every device, needs no
  generator state (a training step can be captured and replayed) and costs one hash per
  two units (16 random bits per unit).

The dropout rule, exactly (all arithmetic modulo 2^32, `>>` a logical shift):

    mix(x)   = lowbias32: x ^= x >> 16; x *= 0x7FEB352D; x ^= x >> 15; x *= 0x846CA68B;
               x ^= x >> 16
    k        = derive_seed(seed, "dropout", layer); lo, hi = k mod 2^32, k >> 32
    a        = mix(lo ^ mix(step ^ hi))              one word per (seed, layer, step)
    h_j      = mix((j * 0x9E3779B9) ^ a)             one word per pair j of units
    u        = bits 0-15 of h_{n // 2} for unit n even, bits 16-31 for n odd
    U        = (u ^ 0x8000) / 65536                  a uniform draw in [0, 1)
    keep     = U >= round(p * 65536) / 65536

where `step` counts the replica's optimizer steps from 0 over the whole run and unit
n = row * features + feature indexes the (batch, features) activations of that step.
The drop probability is thus p rounded to a multiple of 2^-16 (exact for p = 0.5);
kept units are scaled by 1 / (1 - p). `dropout_keep` computes the mask of one replica
for a reference run; `ablate.checks._reference.dropout_keep` is an independent NumPy
version, and a test holds them equal bit for bit.
"""

import hashlib
import sys

import torch
from torch import Tensor

__all__ = ["DROPOUT_BITS", "GOLDEN", "MIX_MULTIPLIERS", "derive_seed", "dropout_keep",
           "dropout_key", "key_words", "mix32", "mix_constants", "pair_counters",
           "permutations", "seed_generator", "step_words", "threshold16", "uniform16"]

# 63 bits keeps the derived seed a valid non-negative int64 for torch.Generator.
_MASK = (1 << 63) - 1
_WORD = (1 << 32) - 1
GOLDEN = 0x9E3779B9  # 2^32 / golden ratio, odd: j -> j * GOLDEN is a bijection mod 2^32
MIX_MULTIPLIERS = (0x7FEB352D, 0x846CA68B)  # lowbias32 (C. Wellons's hash prospector)
DROPOUT_BITS = 16  # random bits per unit


def derive_seed(seed: int, purpose: str, *keys: int | str) -> int:
    """A stable 63-bit seed for (seed, purpose, *keys), independent across purposes.

    sha256 of the canonical text makes streams for different purposes statistically
    independent and stable across Python versions and platforms.
    """
    text = "/".join([str(int(seed)), purpose, *(str(k) for k in keys)])
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "little") & _MASK


def seed_generator(seed: int, purpose: str, *keys: int | str) -> torch.Generator:
    """A fresh CPU `torch.Generator` seeded with `derive_seed(seed, purpose, *keys)`.

    Always on the CPU: CUDA's generators draw different numbers from the same seed, so
    draws are made here and moved to the training device.
    """
    g = torch.Generator()
    g.manual_seed(derive_seed(seed, purpose, *keys))
    return g


def permutations(generators: list[torch.Generator], n: int, device: torch.device | str
                 ) -> Tensor:
    """The next minibatch order of every replica: (S, n) int64 on `device`, drawn on the CPU."""
    return torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device)


def _signed(x: int) -> int:
    """The int32 with the same 32 bits as `x` (torch has no uint32 arithmetic)."""
    x &= _WORD
    return x - (1 << 32) if x >= 1 << 31 else x


_M1, _M2, _GOLDEN32 = _signed(MIX_MULTIPLIERS[0]), _signed(MIX_MULTIPLIERS[1]), _signed(GOLDEN)


def mix_constants(device: torch.device | str) -> Tensor:
    """mix32's constants as an int32 tensor on `device`: multipliers, shifts, masks.

    Passing them as device tensors spares every op converting a Python number."""
    return torch.tensor([_M1, _M2, 16, 15, 0xFFFF, 0x1FFFF], dtype=torch.int32, device=device)


def mix32(x: Tensor, constants: Tensor | None = None, scratch: Tensor | None = None
          ) -> Tensor:
    """lowbias32 of every element of an int32 tensor (bits as uint32), in place.

    int32 multiplication wraps modulo 2^32 on every device; the masks make the
    arithmetic right shifts logical. `constants`: `mix_constants(x.device)`, or None.
    Each shift goes through one scratch tensor shaped like x (`scratch`, or one made
    here), instead of two new tensors per shift.
    """
    c = mix_constants(x.device) if constants is None else constants
    m1, m2, s16, s15, k16, k17 = (c[i] for i in range(6))  # 0-dim views, no copies
    t = torch.empty_like(x) if scratch is None else scratch
    torch.bitwise_right_shift(x, s16, out=t)
    x ^= t.bitwise_and_(k16)
    x *= m1
    torch.bitwise_right_shift(x, s15, out=t)
    x ^= t.bitwise_and_(k17)
    x *= m2
    torch.bitwise_right_shift(x, s16, out=t)
    x ^= t.bitwise_and_(k16)
    return x


def dropout_key(seed: int, layer: int) -> int:
    """The 63-bit key of the dropout stream of `seed` at hidden layer `layer`."""
    return derive_seed(seed, "dropout", layer)


def key_words(keys: list[int], device: torch.device | str) -> tuple[Tensor, Tensor]:
    """The (lo, hi) 32-bit words of 63-bit keys, as two (S,) int32 tensors."""
    lo = torch.tensor([_signed(k) for k in keys], dtype=torch.int32, device=device)
    hi = torch.tensor([_signed(k >> 32) for k in keys], dtype=torch.int32, device=device)
    return lo, hi


def step_words(lo: Tensor, hi: Tensor, step: Tensor | int) -> Tensor:
    """a = mix(lo ^ mix(step ^ hi)): lo, hi int32 keys (S,) and a step (an int or an int32
    tensor that broadcasts with them, e.g. (T, 1) for T steps at once) -> int32 words."""
    return mix32(lo ^ mix32(hi ^ step))


def pair_counters(n: int, device: torch.device | str) -> Tensor:
    """j * GOLDEN mod 2^32 as int32 for the ceil(n / 2) unit pairs j of an n-unit mask."""
    j = torch.arange((n + 1) // 2, dtype=torch.int32, device=device)
    return j * _GOLDEN32


def uniform16(words: Tensor, counters: Tensor, n: int, constants: Tensor | None = None
              ) -> Tensor:
    """The 16 random bits u of n units per replica, read as signed int16 v.

    words (S,) int32 step words, counters (pairs,) from `pair_counters` -> (S, n) int16.
    v + 32768 = u ^ 0x8000, so U >= q  <=>  v >= round(q * 65536) - 32768 with no
    further pass over the draws.
    """
    h = mix32(counters ^ words.unsqueeze(1), constants)  # (S, pairs) int32
    if sys.byteorder == "little":  # bits 0-15 are the first int16, bits 16-31 the second
        halves = h.view(torch.int16)  # (S, 2 * pairs)
    else:
        halves = torch.stack([h & 0xFFFF, (h >> 16) & 0xFFFF], -1).view(h.shape[0], -1)
        halves = halves.to(torch.int16)
    return halves[:, :n]


def threshold16(p: float) -> int:
    """The threshold of drop probability p: keep iff draw >= threshold16(p).

    32768 for p = 1 (nothing kept) does not fit an int16; callers compare in int32 or
    clamp it and scale by 0.
    """
    return round(p * 65536) - 32768


def dropout_keep(key: int, step: int, rows: int, features: int, p: float,
                 device: torch.device | str = "cpu") -> Tensor:
    """The (rows, features) keep mask of the dropout stream `key` (`dropout_key(seed,
    layer)`) at `step`: what replica `seed`'s hidden layer `layer` keeps at that step."""
    lo, hi = key_words([key], device)
    n = rows * features
    draws = uniform16(step_words(lo, hi, step), pair_counters(n, device), n)
    return (draws.to(torch.int32) >= threshold16(p)).view(rows, features)
