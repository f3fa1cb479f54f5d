"""The most expensive images the service admits, for the memory tests and the abuse
benchmark: each is exactly at the pixel ceiling, a white page with a dark block inside
(so preparation runs to the end instead of stopping at "no digit"), in the encodings
that cost a decoder the most per pixel. Uniform areas compress well, so every one is
a small upload (tens to hundreds of KiB)."""

import io

import numpy as np
from PIL import Image

from serve.config import Limits


def ceiling_size(limits: Limits | None = None) -> tuple[int, int]:
    """(width, height) of a 4:3 image with as many pixels as the limits admit."""
    limits = limits or Limits()
    height = int((limits.max_image_pixels * 3 / 4) ** 0.5)
    width = limits.max_image_pixels // height
    assert width * height <= limits.max_image_pixels and width <= limits.max_image_side
    return width, height


def page(width: int, height: int) -> np.ndarray:
    """(height, width) uint8: white, with a dark block in the middle third."""
    a = np.full((height, width), 255, np.uint8)
    a[height // 4:3 * height // 4, width // 3:2 * width // 3] = 20
    return a


def _encode(im: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **options)
    return buf.getvalue()


def worst_images(limits: Limits | None = None) -> dict[str, bytes]:
    """Name -> encoded image at the pixel ceiling."""
    width, height = ceiling_size(limits)
    grey = page(width, height)
    rgb = np.dstack([grey] * 3)
    opaque = np.full_like(grey, 255)
    return {
        "png-grey8": _encode(Image.fromarray(grey), "PNG"),
        "png-grey16": _encode(Image.fromarray(grey.astype(np.uint16) * 257), "PNG"),
        "png-rgba": _encode(Image.fromarray(np.dstack([rgb, opaque])), "PNG"),
        "jpeg-progressive-rgb444": _encode(Image.fromarray(rgb), "JPEG", quality=50,
                                           progressive=True, subsampling=0),
        "jpeg-progressive-cmyk": _encode(Image.fromarray(rgb).convert("CMYK"), "JPEG",
                                         quality=50, progressive=True, subsampling=0),
    }
