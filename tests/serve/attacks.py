"""What an attacker sends, for the attack tests and the abuse benchmark: costly image
files, mistaken multipart forms, and raw-socket helpers (requests no HTTP client
would send)."""

import io
import select
import socket
import struct
import time
import zlib

import numpy as np
from PIL import Image

CRLF = b"\r\n"


def _encode(a: np.ndarray, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format=fmt, **options)
    return buf.getvalue()


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each segment of a JPEG that Pillow wrote (no fill bytes,
    entropy-coded data after each SOS up to the next marker)."""
    out, pos = [], 2
    while pos < len(data):
        marker = data[pos + 1]
        if marker == 0xD9:
            out.append((marker, pos, pos + 2))
            break
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == 0xDA:
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
                end += 1
        out.append((marker, pos, end))
        pos = end
    return out


def many_scan_jpeg(width: int, height: int, extra_scans: int) -> bytes:
    """A black progressive greyscale JPEG whose last AC scan (27 bytes: its header and
    end-of-band runs) is sent `extra_scans` more times. libjpeg decodes it (warning
    about the progression), passing over every coefficient once per scan."""
    data = _encode(np.zeros((height, width), np.uint8), "JPEG", progressive=True, quality=50)
    _, start, end = [s for s in _jpeg_segments(data) if s[0] == 0xDA][-1]
    return data[:end] + data[start:end] * extra_scans + data[end:]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def png_chunk_flood(chunks: int) -> bytes:
    """A 28x28 PNG with `chunks` empty tEXt chunks before its image data."""
    a = np.zeros((28, 28), np.uint8)
    a[4:24, 12:16] = 255
    data = _encode(a, "PNG")
    ihdr_end = 8 + 25
    return data[:ihdr_end] + _png_chunk(b"tEXt", b"k\x00") * chunks + data[ihdr_end:]


BOUNDARY = "AaB03x"


def multipart(*parts: tuple[str, str | None, bytes]) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data form; each part is
    (Content-Disposition parameters, Content-Type or None, bytes)."""
    body = b""
    for disposition, kind, data in parts:
        body += f"--{BOUNDARY}\r\nContent-Disposition: form-data; {disposition}\r\n".encode()
        if kind is not None:
            body += f"Content-Type: {kind}\r\n".encode()
        body += CRLF + data + CRLF
    body += f"--{BOUNDARY}--\r\n".encode()
    return body, f"multipart/form-data; boundary={BOUNDARY}"


def multipart_mistakes(image: bytes) -> dict[str, tuple[bytes, str]]:
    """The forms of issue 20's item 3, each carrying `image`: what curl sends for
    `-F 'image=<digit.png'` (a plain field holding binary bytes), a filename given
    only as filename*=, an unknown charset, and binary fields beside the image."""
    return {
        "text field holding the image": multipart(('name="image"', None, image)),
        "filename*= only": multipart(("name=\"image\"; filename*=UTF-8''a.png", "image/png",
                                      image)),
        "unknown charset": multipart(('name="image"', "text/plain; charset=no-such-codec",
                                      image)),
        "binary fields beside it": multipart(('name="note"', None, bytes(range(256)) * 4),
                                             ('name="image"; filename="a.png"', "image/png",
                                              image),
                                             ('name="more"', "text/plain; charset=utf-8",
                                              b"\xff\xfe\xfd")),
    }


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def request_head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_until_closed(s: socket.socket) -> bytes:
    """Everything the server sends until it closes (what a reset cut short, too)."""
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def read_response(s: socket.socket) -> bytes:
    """One whole answer (its head and Content-Length body), leaving the socket open."""
    data = b""
    while b"\r\n\r\n" not in data or len(body_of(data)) < int(
            headers_of(data).get("content-length", 0)):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def headers_of(response: bytes) -> dict[str, str]:
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in head)}


def body_of(response: bytes) -> bytes:
    return response.split(b"\r\n\r\n", 1)[1]


def stream_open_header(port: int, piece: int = 65536, seconds: float = 10.0
                       ) -> tuple[bytes, int]:
    """Issue 20's item 1: a header value left open and streamed in `piece`-byte pieces
    until the server answers (or `seconds` pass). Returns the answer and the bytes
    sent before it was readable."""
    with connect(port) as s:
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        sent, start = 0, time.monotonic()
        try:
            while time.monotonic() - start < seconds:
                if select.select([s], [], [], 0)[0]:
                    break
                s.sendall(b"a" * piece)
                sent += piece
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_until_closed(s), sent


def health(port: int, timeout: float = 5.0) -> tuple[int | None, float]:
    """GET /v2/health/live on a new connection: (status or None, seconds)."""
    start = time.perf_counter()
    try:
        with connect(port, timeout) as s:
            s.sendall(request_head("GET", "/v2/health/live", "Connection: close"))
            response = read_until_closed(s)
        return (status_of(response) if response else None), time.perf_counter() - start
    except OSError:
        return None, time.perf_counter() - start
