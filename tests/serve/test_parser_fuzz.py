"""Fuzz of the two parsers that read untrusted bytes, called directly (no HTTP, so many
examples run in seconds): the inference request parser and the image preparation.

Inputs are mutations of valid ones (bytes flipped, cut short, spliced in; PNG and JPEG
of every mode the service handles; binary-extension bodies whose lengths lie). Each
must either parse into a well-formed input or fail with the service's own 4xx
`ApiError`; any other exception (or a warning: pytest turns those into errors) is a
bug that would be a 500.
"""

import io
import json
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from serve.config import Limits
from serve.errors import ApiError
from serve.preprocess import prepare_image
from serve.protocol import HEADER_LENGTH, parse_request

# Small limits, so that mutated dimensions also reach the size checks (413).
LIMITS = Limits(max_image_side=96, max_image_pixels=64 * 64)
MAX_ITEMS = 4


def _encode(im: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **options)
    return buf.getvalue()


def _seed_images() -> list[bytes]:
    a = np.full((40, 48), 230, np.uint8)
    a[8:32, 20:28] = 20  # a dark bar on light paper
    grey = Image.fromarray(a)
    rgba = Image.fromarray(np.dstack([a, a, a, 255 - a]))
    exif = Image.Exif()
    exif[0x0112] = 6
    return [
        _encode(grey, "PNG"),
        _encode(grey, "PNG", interlace=1),
        _encode(rgba, "PNG"),
        _encode(grey.convert("P"), "PNG", transparency=3),
        _encode(Image.fromarray(a.astype(np.uint16) * 257), "PNG"),
        _encode(grey.convert("1"), "PNG"),
        _encode(grey.convert("LA"), "PNG"),
        _encode(grey.convert("RGB"), "JPEG", quality=80),
        _encode(grey.convert("RGB"), "JPEG", quality=80, progressive=True, exif=exif.tobytes()),
        _encode(grey.convert("CMYK"), "JPEG"),
        _encode(grey, "JPEG"),
    ]


SEEDS = _seed_images()


def _set_dimensions(data: bytearray, width: int, height: int) -> None:
    """Rewrite the size an image's header claims (PNG IHDR with its CRC, JPEG SOF)."""
    if data[:4] == b"\x89PNG" and len(data) >= 33:
        data[16:24] = struct.pack(">II", width, height)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
        return
    for marker in (b"\xff\xc0", b"\xff\xc2"):  # baseline or progressive frame header
        at = data.find(marker)
        if at >= 0 and len(data) >= at + 9:
            data[at + 5:at + 9] = struct.pack(">HH", height & 0xFFFF, width & 0xFFFF)
            return


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a few edits; flips and splices land past the first 64 bytes half the
    time, so that not every case dies at the signature check."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "flip", "splice", "cut", "dimensions"]))
        if not data:
            break
        low = draw(st.sampled_from([0, min(64, len(data) - 1)]))
        at = draw(st.integers(low, len(data) - 1))
        if kind == "flip":
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:]
        elif kind == "splice":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        else:
            _set_dimensions(data, draw(st.integers(0, 70_000)), draw(st.integers(0, 70_000)))
    return bytes(data)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


@st.composite
def edited_request(draw: st.DrawFn, request: dict[str, object]) -> bytes:
    """`request` with a few values anywhere in it replaced by arbitrary JSON."""
    edited = json.loads(json.dumps(request))
    for _ in range(draw(st.integers(1, 3))):
        node: object = edited
        while isinstance(node, dict | list) and node and draw(st.booleans()):
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            key = draw(st.sampled_from(keys))
            child = node[key]  # type: ignore[index]
            if not isinstance(child, dict | list) or not child or draw(st.booleans()):
                node[key] = draw(JSON_VALUES)  # type: ignore[index]
                break
            node = child
    return json.dumps(edited).encode()


def only_our_4xx(fn: object, *args: object) -> object:
    try:
        return fn(*args)  # type: ignore[operator]
    except ApiError as e:
        assert 400 <= e.status < 500 and e.message, (e.status, e.message)
        return None


def test_the_seeds_are_valid() -> None:
    """Unmutated, every seed prepares (so the fuzz starts from the parsers' happy path)."""
    for seed in SEEDS:
        x = prepare_image(seed, LIMITS)
        assert x.shape == (784,)


@settings(max_examples=300)
@given(data=mutated(SEEDS))
def test_mutated_images_give_an_input_or_our_4xx(data: bytes) -> None:
    x = only_our_4xx(prepare_image, data, LIMITS)
    if x is not None:
        assert isinstance(x, np.ndarray) and x.shape == (784,) and x.dtype == np.float32
        assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1


def _binary_request(n: int, datatype: str, size: int | str | None, blob: bytes,
                    binary_output: object) -> bytes:
    tensor: dict[str, object] = {"name": "input", "shape": [n, 784], "datatype": datatype}
    if size is not None:
        tensor["parameters"] = {"binary_data_size": size}
    head: dict[str, object] = {"inputs": [tensor], "parameters": {"binary_data_output":
                                                                  binary_output}}
    return json.dumps(head).encode() + blob


@settings(max_examples=300)
@given(n=st.integers(-1, MAX_ITEMS + 1), datatype=st.sampled_from(["FP32", "UINT8", "FP64"]),
       size=st.one_of(st.none(), st.integers(-10, 4 * 784 * 6), st.just("784")),
       blob_size=st.integers(0, 4 * 784 * 6), fill=st.integers(0, 255),
       lie=st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=12)),
       binary_output=st.one_of(st.booleans(), st.integers(), st.none()))
def test_binary_bodies_with_lying_lengths_give_an_input_or_our_4xx(
        n: int, datatype: str, size: int | str | None, blob_size: int, fill: int,
        lie: int | str | None, binary_output: object) -> None:
    body = _binary_request(n, datatype, size, bytes([fill]) * blob_size, binary_output)
    json_size = len(body) - blob_size
    header = (None if lie is None else lie if isinstance(lie, str) else str(json_size + lie))
    parsed = only_our_4xx(parse_request, body, MAX_ITEMS, header)
    if parsed is not None:
        x = parsed.x  # type: ignore[attr-defined]
        assert x.shape == (n, 784) and x.dtype == np.float32 and np.isfinite(x).all()
        assert header is not None or blob_size == 0


VALID_REQUEST: dict[str, object] = {"id": "7", "inputs": [
    {"name": "input", "shape": [2, 28, 28], "datatype": "UINT8",
     "data": (np.arange(2 * 784).reshape(2, 28, 28) % 256).tolist()}],
    "outputs": [{"name": "label", "parameters": {"binary_data": True}}]}
VALID_JSON = json.dumps(VALID_REQUEST).encode()


@settings(max_examples=300)
@given(data=st.one_of(mutated([VALID_JSON]), edited_request(VALID_REQUEST)))
def test_mutated_json_requests_give_an_input_or_our_4xx(data: bytes) -> None:
    parsed = only_our_4xx(parse_request, data, MAX_ITEMS, None)
    if parsed is not None:
        x = parsed.x  # type: ignore[attr-defined]
        assert x.ndim == 2 and x.shape[1] == 784 and 1 <= len(x) <= MAX_ITEMS
        assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1


@pytest.mark.parametrize("header", ["", "0", "-1", "1" * 11, "zero-padded"])
def test_the_header_length_itself(header: str) -> None:
    body = _binary_request(1, "UINT8", 784, bytes(784), True)
    if header == "zero-padded":  # the true JSON length in 11 digits: refused by the digit cap
        header = str(len(body) - 784).zfill(11)
    with pytest.raises(ApiError) as e:
        parse_request(body, MAX_ITEMS, header)
    assert e.value.status == 400 and HEADER_LENGTH in e.value.message
