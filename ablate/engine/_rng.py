"""Controlled random streams: one independent generator per (seed, purpose, key...).

Each run draws its randomness from streams derived from its seed and the purpose of
the draw (one per layer for initialization, one for data order, one for dropout).
Turning dropout off therefore leaves the initial weights and the minibatch order of a
seed unchanged, and adding a layer leaves the other layers' initial weights alone:
paired differences between arms measure the factor, not the luck (common random
numbers).
"""

import hashlib

import torch

# 63 bits keeps the derived seed a valid non-negative int64 for torch.Generator.
_MASK = (1 << 63) - 1


def derive_seed(seed: int, purpose: str, *keys: int | str) -> int:
    """A stable 63-bit seed for (seed, purpose, *keys), independent across purposes.

    sha256 of the canonical text makes streams for different purposes statistically
    independent and stable across Python versions and platforms.
    """
    text = "/".join([str(int(seed)), purpose, *(str(k) for k in keys)])
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "little") & _MASK


def generator(
    seed: int, purpose: str, *keys: int | str, device: torch.device | str = "cpu"
) -> torch.Generator:
    """A fresh `torch.Generator` on `device` seeded with `derive_seed(seed, purpose, *keys)`."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, purpose, *keys))
    return g
