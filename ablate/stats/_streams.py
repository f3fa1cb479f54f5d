"""Random streams keyed by name, so that results never depend on the order of contrasts.

A Monte Carlo p value or a power simulation draws from `stream(key, name)`: the same
study key and contrast name always give the same numbers, whatever the other arms are
and in whatever order they come.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["stream"]


def stream(*parts: str) -> np.random.Generator:
    """A generator seeded by the SHA-256 of the parts (e.g. study key, contrast name)."""
    digest = hashlib.sha256("\x1f".join(("ablate.stats", *parts)).encode()).digest()
    return np.random.default_rng(np.random.SeedSequence(int.from_bytes(digest[:16], "little")))
