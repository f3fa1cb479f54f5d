"""Graph capture names the data's device in every CUDA call, and warms up on one stream.

The CUDA graph path cannot run without a GPU (tests/engine/test_cuda.py runs it there, on
a second GPU too when there is one). What can be checked here is what it asks of CUDA:
the CUDA calls the captured step makes are recorded by stand-ins, while the step itself
runs for real on the CPU. On cuda:1 with cuda:0 current, a stream, capture or replay
that did not name the data's device would record or replay nothing of the step.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import torch

from ablate.data import load_npz
from ablate.engine import CohortMLP, Optimizer, prepare_data
from ablate.engine._step import WARMUP, Stepper
from tests.data_fixtures import SUBSET
from tests.engine.test_train import _config


@dataclass
class CudaCalls:
    """What the step asked of torch.cuda, in order."""

    streams: list[object] = field(default_factory=list)  # device= of each Stream made
    current: list[object] = field(default_factory=list)  # devices of current_stream()
    devices: list[object] = field(default_factory=list)  # devices made current
    captures: list[object] = field(default_factory=list)  # stream= of each capture
    replays: int = 0


class _Stream:
    def __init__(self, calls: CudaCalls, device: object = None) -> None:
        self.device = device
        calls.streams.append(device)

    def wait_stream(self, other: object) -> None:
        pass


def _fake_cuda(monkeypatch: pytest.MonkeyPatch) -> CudaCalls:
    calls = CudaCalls()

    @contextmanager
    def device(d: object) -> Iterator[None]:
        calls.devices.append(d)
        yield

    @contextmanager
    def stream(s: object) -> Iterator[None]:
        yield

    @contextmanager
    def graph(g: object, stream: object = None) -> Iterator[None]:
        calls.captures.append(stream)
        yield

    class Graph:
        def replay(self) -> None:
            calls.replays += 1

    def current_stream(d: object = None) -> _Stream:
        calls.current.append(d)
        return _Stream(CudaCalls(), d)

    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: _Stream(calls, device))
    monkeypatch.setattr(torch.cuda, "current_stream", current_stream)
    monkeypatch.setattr(torch.cuda, "device", device)
    monkeypatch.setattr(torch.cuda, "stream", stream)
    monkeypatch.setattr(torch.cuda, "graph", graph)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    return calls


def test_capture_names_the_datas_device_and_reuses_one_side_stream(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = prepare_data(load_npz(SUBSET), validation=400, subset=600, device="cpu")
    config = _config("sgd", dropout=0.5)
    seeds = [0, 1, 2]
    model = CohortMLP(config, seeds)
    opt = Optimizer(config.optimizer, list(model.parameters()))
    x = data.train_images(torch.float32)
    step = Stepper(model, opt, x, data.y_train, 64, "static")
    step.mode = "graph"  # the graph path, its CUDA calls recorded (see the module doc)
    calls = _fake_cuda(monkeypatch)
    words = model.dropout_words(0, WARMUP + 3)
    idx = torch.randint(0, len(data.y_train), (len(seeds), 64))
    for k in range(WARMUP + 3):
        step(idx, words[k])
    assert calls.streams == [x.device]  # one side stream, on the data's device
    assert calls.captures == [step.side] and step.side is not None
    assert calls.current == [x.device] * WARMUP
    # warm-ups, the capture, and every replay (3: the capturing step's and two more)
    assert calls.devices == [x.device] * (WARMUP + 1 + 3) and calls.replays == 3
