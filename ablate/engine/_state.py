"""A cohort's whole training state, as bytes: what a rerun continues from, bit for bit.

Training a cohort is a deterministic function of its configs, seeds and data, so its
state at a step boundary is everything that function has not recomputed from those:

- the model's tensors (weights, biases, batch-norm running statistics) and the
  optimizer's state tensors and step count `t`;
- the position of every random stream: each replica's data-order `torch.Generator` as
  it was at the start of the epoch in progress (that epoch's permutation is drawn again
  from it), and the steps done in that epoch; dropout masks need nothing, being a hash
  of (seed, layer, step), with the step counted from the epoch;
- which replicas are alive (not diverged), the epoch's on-device metric accumulators
  (zero at an epoch's end), each replica's kept (best) epoch, its selection value,
  weights and validation predictions, and the epoch history so far; the training seconds spent.

`encode_state` writes it as one safetensors payload (every tensor as its exact bytes; NaN and
float64 history values included) behind a header line with the payload's sha256, so a
torn or altered file is refused, never half read. `decode_state` checks the sha256, the format
version and the cohort's identity (`state_digest`: configs, seeds, dtype), raising
`StateMismatch` for anything else; restoring then cannot mix two cohorts.
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import BinaryIO

import numpy as np
import torch
from safetensors.torch import load
from torch import Tensor

from ablate.engine._config import RunConfig
from ablate.engine._results import Epoch

__all__ = ["EVERY_EPOCH", "FORMAT", "CohortState", "SaveEvery", "SavedState", "StateMismatch",
           "decode_state", "encode_state", "state_digest", "state_position"]

FORMAT = 1  # the layout below; a file of another version is refused
_MAGIC = b"ablate-cohort-state"
_ARRAYS = tuple(f.name for f in fields(Epoch) if f.name not in ("epoch", "seconds"))


class StateMismatch(ValueError):
    """Bytes that are not a complete state of this cohort (torn, altered, another's)."""


@dataclass(frozen=True)
class SaveEvery:
    """When training saves its state: after every `epochs` epochs, and also mid-epoch once
    `seconds` have passed since the last save (None: only at epoch ends). The last epoch
    saves nothing: its result follows at once."""

    epochs: int = 1
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or (self.seconds is not None and not self.seconds > 0):
            raise ValueError(f"SaveEvery needs epochs >= 1 and seconds > 0, got {self}")


EVERY_EPOCH = SaveEvery()  # the default: after every epoch (a cohort loses one at most)


@dataclass
class CohortState:
    """The state of a cohort at a step boundary (see the module doc). Tensors are on the
    CPU; `epoch` epochs are complete and `steps` steps of epoch `epoch + 1` are done."""

    digest: str  # `state_digest` of the cohort's configs, seeds and dtype
    epoch: int
    steps: int
    seconds: float  # training wall time spent so far, over every session
    model: dict[str, Tensor]  # the model's state_dict
    optimizer_t: int
    optimizer: dict[str, list[Tensor]]  # state key -> one tensor per parameter
    order: list[Tensor]  # each replica's data-order generator state, at epoch start
    alive: Tensor  # (S,) bool
    accumulators: dict[str, Tensor]  # the Stepper's loss_sum, correct, grad_sq
    kept_best: Tensor  # (S,) float64
    kept_epoch: Tensor  # (S,) int64
    kept: dict[str, Tensor]  # the kept weights, named as `model`
    # the kept epoch's validation predictions ('predicted', 'p_true'; {} before any epoch)
    kept_images: dict[str, Tensor] = field(default_factory=dict)
    history: list[Epoch] = field(default_factory=list)


@dataclass(frozen=True)
class SavedState:
    """What training hands its `on_state` callback: the encoded state and where it is."""

    epoch: int  # epochs complete
    steps: int  # steps done in the epoch after those
    data: bytes = field(repr=False)  # `encode_state`d


def state_digest(configs: Sequence[RunConfig], seeds: Sequence[int], dtype: torch.dtype
                 ) -> str:
    """sha256 naming a cohort's state: its configs and seeds, in replica order, and dtype."""
    text = json.dumps({"format": FORMAT, "configs": [c.to_dict() for c in configs],
                       "seeds": [int(s) for s in seeds], "dtype": str(dtype)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def encode_state(state: CohortState) -> bytes:
    """The state as bytes: a header line (magic, format, sha256 of the payload), then a
    safetensors payload (tensors by role; the scalars and names in its metadata)."""
    tensors: dict[str, Tensor] = {}
    for name, t in state.model.items():
        tensors[f"model/{name}"] = t
    for name, t in state.kept.items():
        tensors[f"kept/{name}"] = t
    for name, t in state.kept_images.items():
        tensors[f"kept_images/{name}"] = t
    for key, ts in state.optimizer.items():
        for i, t in enumerate(ts):
            tensors[f"optimizer/{key}/{i}"] = t
    for i, t in enumerate(state.order):
        tensors[f"order/{i}"] = t
    for name, t in state.accumulators.items():
        tensors[f"accumulators/{name}"] = t
    tensors["alive"], tensors["kept_best"] = state.alive, state.kept_best
    tensors["kept_epoch"] = state.kept_epoch
    if state.history:  # each metric as one (epochs, S, ...) float64 tensor: exact bits
        for name in _ARRAYS:
            tensors[f"history/{name}"] = torch.from_numpy(
                np.stack([getattr(e, name) for e in state.history]))
        tensors["history/seconds"] = torch.tensor([e.seconds for e in state.history],
                                                  dtype=torch.float64)
    meta = {"digest": state.digest, "epoch": state.epoch, "steps": state.steps,
            "seconds": state.seconds, "optimizer_t": state.optimizer_t,
            "optimizer": {k: len(v) for k, v in state.optimizer.items()},
            "replicas": len(state.order), "history": len(state.history)}
    pieces = _safetensors(tensors, {"state": json.dumps(meta)})
    check = hashlib.sha256()
    for piece in pieces:
        check.update(piece)
    head = b"%s %d %s\n" % (_MAGIC, FORMAT, check.hexdigest().encode())
    return b"".join([head, *pieces])  # the one copy of the tensors' bytes


# torch dtype -> safetensors dtype name, for the dtypes a state holds
_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16",
           torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32",
           torch.int16: "I16", torch.uint8: "U8", torch.bool: "BOOL"}


def _safetensors(tensors: dict[str, Tensor], metadata: dict[str, str]
                 ) -> list[memoryview | bytes]:
    """A safetensors file as pieces: its header, then each tensor's bytes as a view of
    the tensor (CPU, contiguous), not a copy. What `safetensors.torch.save` writes, less
    its copies (this is most of the time a save takes)."""
    header: dict[str, object] = {"__metadata__": metadata}
    data: list[memoryview | bytes] = []
    offset = 0
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy()  # shares the tensor's memory
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + raw.nbytes]}
        offset += raw.nbytes
        data.append(raw.data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as safetensors pads
    return [len(text).to_bytes(8, "little"), text, *data]


def decode_state(data: bytes, digest: str) -> CohortState:
    """The state in `data`, which must be a complete state of the cohort named `digest`
    (`state_digest`); `StateMismatch` saying why not otherwise."""
    end = data.find(b"\n", 0, 200)
    parts = data[:max(end, 0)].split(b" ")
    if end < 0 or len(parts) != 3 or parts[0] != _MAGIC:
        raise StateMismatch("not a cohort state")
    payload = data[end + 1:]
    if parts[1] != str(FORMAT).encode():
        raise StateMismatch(f"state format {parts[1].decode(errors='replace')}, "
                            f"this version reads {FORMAT}")
    if hashlib.sha256(payload).hexdigest().encode() != parts[2]:
        raise StateMismatch("incomplete or altered (its checksum differs)")
    try:
        tensors = load(payload)
        meta = json.loads(_metadata(payload)["state"])
    except Exception as exc:  # a payload that hashes right but does not parse: refuse it
        raise StateMismatch(f"unreadable ({exc})") from None
    if meta["digest"] != digest:
        raise StateMismatch("saved by another cohort (its configs, seeds or dtype differ)")

    def group(prefix: str) -> dict[str, Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    history = []
    if meta["history"]:
        arrays = {name: tensors[f"history/{name}"].numpy() for name in _ARRAYS}
        seconds = tensors["history/seconds"].tolist()
        history = [Epoch(epoch=e + 1, seconds=seconds[e],
                         **{name: arrays[name][e].copy() for name in _ARRAYS})
                   for e in range(meta["history"])]
    return CohortState(
        digest=digest, epoch=meta["epoch"], steps=meta["steps"], seconds=meta["seconds"],
        model=group("model/"), optimizer_t=meta["optimizer_t"],
        optimizer={key: [tensors[f"optimizer/{key}/{i}"] for i in range(n)]
                   for key, n in meta["optimizer"].items()},
        order=[tensors[f"order/{i}"] for i in range(meta["replicas"])],
        alive=tensors["alive"], accumulators=group("accumulators/"),
        kept_best=tensors["kept_best"], kept_epoch=tensors["kept_epoch"],
        kept=group("kept/"), kept_images=group("kept_images/"), history=history)


def state_position(f: BinaryIO) -> tuple[int, int] | None:
    """(epochs complete, steps into the next) of the state file `f`, read from its header
    alone (not checked: `decode_state` checks); None if it is not a state."""
    head = f.readline(200).split(b" ")
    if len(head) != 3 or head[0] != _MAGIC or head[1] != str(FORMAT).encode():
        return None
    try:
        n = int.from_bytes(f.read(8), "little")
        meta = json.loads(json.loads(f.read(n))["__metadata__"]["state"])
        return int(meta["epoch"]), int(meta["steps"])
    except (ValueError, KeyError, TypeError):
        return None


def _metadata(payload: bytes) -> dict[str, str]:
    """The safetensors header's `__metadata__` (the format: 8-byte length, JSON header)."""
    n = int.from_bytes(payload[:8], "little")
    meta: dict[str, str] = json.loads(payload[8:8 + n])["__metadata__"]
    return meta
