"""An image file's segments (JPEG markers, PNG chunks), counted before anything is
decoded: each one costs the decoder time, whatever the pixel count.

JPEG. A progressive JPEG may repeat its scans: each one makes the decoder pass over every
coefficient of the image again, so a 479 KB file of 15,000 tiny scans at the pixel
ceiling keeps libjpeg busy for ~27 s (1.8 to 8.5 ms a scan at 4096 x 3072, on a quiet
and a busy machine). Encoders write one scan per spectral band and component:
libjpeg's default progression has 10 for colour, 18 for CMYK. libjpeg-turbo's own
tools refuse more than 500 (`-maxscans`); MAX_SCANS here is 64, which costs at most
~0.5 s of decoding at the ceiling.

Every other segment (APPn, COM, DHT, ...) before the first scan is read by Pillow in
Python, one object each, so their number is bounded too (a photo has 10 to 30).

`count_jpeg` walks the segment headers and, after each scan header, jumps over the
entropy-coded data to the next marker (0xFF followed by anything but 0x00, a fill
byte or RSTn) with one regular-expression search: linear in the file, in C.

PNG. Pillow reads every chunk in Python: 560,000 empty tEXt chunks (8 MiB) took 9 s,
700,000 unknown ones 2.8 s. Encoders write a handful of chunks besides the image data,
which they split into IDAT chunks of 8 to 64 KiB; `count_png` allows MAX_PNG_CHUNKS
others, and IDAT chunks of 1 KiB on average (plus 64), so at most a few thousand in
all.
"""

import re
from dataclasses import dataclass

__all__ = ["MAX_PNG_CHUNKS", "MAX_SCANS", "MAX_SEGMENTS", "Segments", "count_jpeg",
           "count_png", "idat_allowance"]

MAX_SCANS = 64
MAX_SEGMENTS = 1000  # JPEG markers of every kind, scans included
MAX_PNG_CHUNKS = 256  # PNG chunks other than IDAT
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RST0-7 stand alone
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # the last 0xFF of a fill run


@dataclass(frozen=True)
class Segments:
    total: int  # segments read: JPEG markers (SOI and EOI included), PNG chunks
    scans: int  # JPEG: SOS segments among them; PNG: IDAT chunks


def count_jpeg(data: bytes, stop_after: int = MAX_SEGMENTS) -> Segments:
    """The segments of JPEG `data`, reading no further than `stop_after` + 1 of them
    (enough to know there are too many). Stops quietly at a truncation or at bytes
    that are not a marker: the decoder itself reports those."""
    if data[:2] != b"\xff\xd8":
        return Segments(0, 0)
    pos, total, scans, size = 2, 1, 0, len(data)
    while pos + 1 < size and total <= stop_after:
        if data[pos] != 0xFF:
            break
        while pos + 1 < size and data[pos + 1] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos + 1 >= size:
            break
        marker = data[pos + 1]
        total += 1
        if marker == _EOI:
            break
        if marker in _NO_LENGTH or marker == _SOI:
            pos += 2
            continue
        if pos + 3 >= size:
            break
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")  # the length counts itself
        if marker == _SOS:
            scans += 1
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                break
            pos = found.start()
    return Segments(total, scans)


def idat_allowance(size: int) -> int:
    """IDAT chunks a PNG of `size` bytes may have."""
    return 64 + size // 1024


def count_png(data: bytes, stop_after: int = MAX_PNG_CHUNKS) -> Segments:
    """The chunks of PNG `data`, reading no further than `stop_after` + 1 chunks other
    than IDAT or `idat_allowance` + 1 IDAT chunks. Stops quietly at a truncation."""
    if not data.startswith(_PNG_SIGNATURE):
        return Segments(0, 0)
    pos, others, idat, size = len(_PNG_SIGNATURE), 0, 0, len(data)
    max_idat = idat_allowance(size)
    while pos + 8 <= size and others <= stop_after and idat <= max_idat:
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += 1
        else:
            others += 1
            if kind == b"IEND":
                break
        pos += 12 + length  # length, type, data, CRC
    return Segments(others + idat, idat)
