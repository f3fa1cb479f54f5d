"""Drawn or photographed digits -> 28x28 inputs, prepared the way MNIST itself was.

MNIST's digits were size-normalized to fit a 20x20 box keeping their aspect ratio
(anti-aliasing gives grey levels), then centred in a 28x28 field by their centre of
mass. So: grayscale, invert a light background (MNIST has bright ink on black), crop
to the ink, fit into 20x20, paste into 28x28 with the centre of mass at MNIST's.

Untrusted images are checked before any pixel is decoded: only PNG and JPEG, and the
dimensions from the header must be within the limits (decompression bombs).
"""

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from serve.config import Limits
from serve.errors import bad_request, too_large

BOX = 20  # the digit's longer side after fitting, as in MNIST
SIDE = 28
CENTRE = 14.0  # MNIST's mean centre of mass (row, column), in pixel-index units: 14.0
#                on the training images (measured on the committed subset: 14.00, 14.01)
INK = 0.15  # after contrast stretching, darker than this is background noise
FORMATS = ("PNG", "JPEG")


def decode_image(data: bytes, limits: Limits) -> np.ndarray:
    """PNG or JPEG bytes -> (H, W) float32 gray levels in [0, 1] (0 black, 1 white).

    Transparent pixels count as white paper (a canvas drawing's background)."""
    if not data:
        raise bad_request("empty image: send a PNG or JPEG")
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns above 89 MP; ours (below) is stricter.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im: Image.Image = Image.open(io.BytesIO(data), formats=FORMATS)  # header only
    except Image.DecompressionBombError:
        raise _too_big(limits) from None
    except Exception:  # Pillow raises many types on hostile bytes
        raise bad_request("not a PNG or JPEG image") from None
    width, height = im.size
    if width < 1 or height < 1:
        raise bad_request("the image has no pixels")
    if max(width, height) > limits.max_image_side or width * height > limits.max_image_pixels:
        raise _too_big(limits)
    try:
        if im.format == "JPEG":
            # Decode a big photo at a reduced scale (DCT scaling): faster, less memory.
            im.draft("L", (max(256, width // 8), max(256, height // 8)))
        im = ImageOps.exif_transpose(im) or im
        return _gray(im)
    except Exception:
        raise bad_request("the image could not be decoded (truncated or corrupt)") from None


def _too_big(limits: Limits) -> Exception:
    side = limits.max_image_side
    return too_large(f"image too large: at most {side} pixels a side and "
                     f"{limits.max_image_pixels:,} pixels in all")


def _gray(im: Image.Image) -> np.ndarray:
    if im.mode.startswith("I;16") or im.mode == "I":
        a = np.asarray(im, dtype=np.float64)
        return (a / (65535.0 if a.max(initial=0) > 255 else 255.0)).astype(np.float32)
    has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    if has_alpha:
        rgba = im.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        paper.alpha_composite(rgba)
        im = paper
    return np.asarray(im.convert("L"), dtype=np.float32) / np.float32(255.0)


def mnist_style(gray: np.ndarray) -> np.ndarray:
    """(H, W) gray levels in [0, 1] -> (28, 28) float32 MNIST-style input in [0, 1].

    Raises a 400 when the image holds no ink (blank, or no contrast)."""
    g = gray.astype(np.float32)
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    if np.median(border) > 0.5:  # light paper, dark ink: MNIST's ink is bright
        g, border = 1.0 - g, 1.0 - border
    background, peak = float(np.median(border)), float(g.max())
    if peak - background < 0.1:
        raise bad_request("no digit found: the image is blank or has no contrast")
    ink = np.clip((g - background) / (peak - background), 0.0, 1.0)  # (H, W)
    ink[ink < INK] = 0.0
    rows, cols = np.nonzero(ink)
    if rows.size == 0:
        raise bad_request("no digit found: the image is blank or has no contrast")
    crop = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]  # (h, w)
    fitted = _fit(crop)  # longer side BOX
    return _centre(fitted)


def _fit(crop: np.ndarray) -> np.ndarray:
    """Scale (h, w) so its longer side is BOX, keeping the aspect ratio (anti-aliased)."""
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL: (width, height)
    im = Image.fromarray(np.ascontiguousarray(crop, dtype=np.float32))  # mode "F"
    out = np.asarray(im.resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


def _centre(digit: np.ndarray) -> np.ndarray:
    """Paste (h, w) into 28x28 so that its centre of mass lands on CENTRE, as near as
    whole-pixel shifts allow without cutting the digit."""
    h, w = digit.shape
    mass = float(digit.sum())
    if mass <= 0.0:
        raise bad_request("no digit found: the image is blank or has no contrast")
    cy = float((digit.sum(axis=1) * np.arange(h)).sum()) / mass
    cx = float((digit.sum(axis=0) * np.arange(w)).sum()) / mass
    top = min(max(round(CENTRE - cy), 0), SIDE - h)
    left = min(max(round(CENTRE - cx), 0), SIDE - w)
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    out[top:top + h, left:left + w] = digit
    return out


def prepare_image(data: bytes, limits: Limits) -> np.ndarray:
    """An uploaded PNG/JPEG -> (784,) float32 model input in [0, 1]."""
    return mnist_style(decode_image(data, limits)).reshape(SIDE * SIDE)


def pixels_input(values: np.ndarray) -> np.ndarray:
    """JSON pixels, 784 or 28x28 values 0..255 already MNIST-style -> (784,) float32."""
    if values.shape not in ((SIDE * SIDE,), (SIDE, SIDE)):
        raise bad_request("pixels must be 784 numbers or 28 rows of 28")
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 255:
        raise bad_request("pixels must be numbers 0..255 (0 background, 255 ink)")
    return (values.astype(np.float32) / np.float32(255.0)).reshape(SIDE * SIDE)
