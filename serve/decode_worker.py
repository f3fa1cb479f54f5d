"""The image decoder's worker process: `python -m serve.decode_worker LIMITS_JSON`.

Decoding runs here, not in the server, so that a decode can be stopped (the process
is killed when it runs past its deadline: a thread cannot be) and its memory is given
back when it ends. It imports only NumPy, Pillow and the preparation code (not torch
or the web stack): ~27 MiB and a fifth of a second to start.

The protocol on stdin/stdout, one request at a time:
- the worker writes READY once, when it can take work;
- a request is an 8-byte big-endian length and that many bytes of an uploaded image;
- an answer is one byte of kind and its payload: OK + 784 little-endian float32 (the
  prepared input), REFUSED + a 2-byte status and a 4-byte length of UTF-8 message (an
  `ApiError`: a 4xx), or FAILED + a 4-byte length of UTF-8 exception type name.
It exits at the end of its input (the server closed the pipe, or died). SIGINT and
SIGTERM are the server's to handle (a terminal's Ctrl-C, or systemd, signals the whole
process group): the server stops the worker once its requests are answered.
"""

import json
import os
import signal
import struct
import sys

__all__ = ["FAILED", "OK", "READY", "REFUSED", "main"]

READY, OK, REFUSED, FAILED = b"r", b"o", b"e", b"x"


def _read_exactly(fd: int, n: int) -> bytes | None:
    """n bytes from fd, or None at the end of input."""
    parts, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import numpy as np

    from serve.api_error import ApiError
    from serve.config import Limits
    from serve.preprocess import prepare_image

    limits = Limits(**json.loads(sys.argv[1]))
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    _write_all(stdout, READY)
    while (head := _read_exactly(stdin, 8)) is not None:
        data = _read_exactly(stdin, int.from_bytes(head, "big"))
        if data is None:
            return
        try:
            x = prepare_image(data, limits)  # (784,) float32
        except ApiError as e:
            message = e.message.encode()
            answer = REFUSED + struct.pack(">HI", e.status, len(message)) + message
        except Exception as e:  # a bug, or a decoder failure the checks did not foresee
            name = type(e).__name__.encode()
            answer = FAILED + struct.pack(">I", len(name)) + name
        else:
            answer = OK + np.ascontiguousarray(x, dtype="<f4").tobytes()
        del data
        _write_all(stdout, answer)


if __name__ == "__main__":
    main()
