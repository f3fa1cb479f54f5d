"""Drawn or photographed digits -> 28x28 inputs, prepared the way MNIST itself was.

MNIST's digits were size-normalized to fit a 20x20 box keeping their aspect ratio
(anti-aliasing gives grey levels), then centred in a 28x28 field by their centre of
mass. So: grayscale, invert a light background (MNIST has bright ink on black), crop
to the ink, fit into 20x20, paste into 28x28 with the centre of mass at MNIST's.

Untrusted images are checked before any pixel is decoded: only PNG and JPEG, a
bounded number of segments (JPEG scans and markers, PNG chunks: `serve.segments`),
and the dimensions from the header must be within the limits (decompression bombs). Memory
is then bounded by the decode itself: the decoder's full-size image (a JPEG drawn at a
reduced scale), which is turned into 8-bit grey and shrunk by a whole factor, strip by
strip, to at most WORK_SIDE pixels a side before any float array exists.
"""

import io
import math
import warnings

import numpy as np
from PIL import Image, PngImagePlugin

from serve import segments
from serve.api_error import bad_request, too_large
from serve.config import Limits

__all__ = [
    "BOX", "CENTRE", "FORMATS", "INK", "SIDE", "WORK_SIDE", "decode_image",
    "mnist_style", "pixels_input", "prepare_image",
]

# Pillow holds a PNG's text chunks, decompressed: by default up to 1 MiB each and 64
# MiB in all. A digit needs none of them.
PngImagePlugin.MAX_TEXT_CHUNK = 64 * 1024
PngImagePlugin.MAX_TEXT_MEMORY = 256 * 1024

BOX = 20  # the digit's longer side after fitting, as in MNIST
SIDE = 28
CENTRE = 14.0  # MNIST's mean centre of mass (row, column), in pixel-index units: 14.0
#                on the training images (measured on the committed subset: 14.00, 14.01)
INK = 0.15  # after contrast stretching, darker than this is background noise
FORMATS = ("PNG", "JPEG")
WORK_SIDE = 1024  # longest side of the grey image preparation works on: a digit a tenth
#                   of a 12 MP photo's height (300 px) still spans 75 px, well over BOX
_STRIP_PIXELS = 1 << 18  # pixels converted at a time: a few MiB at 4 bytes a pixel
_ORIENTATION = 0x0112  # the EXIF tag: how the camera was held
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # more than 8 bits a sample


def decode_image(data: bytes, limits: Limits) -> np.ndarray:
    """PNG or JPEG bytes -> (H, W) uint8 grey levels (0 black, 255 white), shrunk by a
    whole factor (box filter) so that max(H, W) <= WORK_SIDE, upright as the EXIF
    orientation says.

    Transparent pixels count as white paper (a canvas drawing's background)."""
    if not data:
        raise bad_request("empty image: send a PNG or JPEG")
    # Pillow warns about hostile input it still reads (its own bomb check above 89 MP,
    # which ours below undercuts; corrupt EXIF): nothing a server can act on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        im = _open(data, limits)
        try:
            if im.format == "JPEG":
                # DCT scaling: the decoder draws a photo at 1/2, 1/4 or 1/8 scale, no
                # smaller than 256 px a side; cheaper, and it averages out sensor noise.
                want = (max(256, im.width // 8), max(256, im.height // 8))
                im.draft("L" if im.mode in ("L", "RGB", "YCbCr") else None, want)
            im.load()
            grey = _grey(im, math.ceil(max(im.size) / WORK_SIDE))
            turn = _TRANSPOSE.get(im.getexif().get(_ORIENTATION, 1))
        except Exception:  # Pillow raises many types on hostile bytes
            raise bad_request("the image could not be decoded (truncated or corrupt)") from None
    if turn is not None:
        grey = np.asarray(Image.fromarray(grey).transpose(turn))
    return grey


def _open(data: bytes, limits: Limits) -> Image.Image:
    """The image with only its header read, after checking its segments (each costs
    decoding time, see `serve.segments`) and its dimensions."""
    _check_segments(data)
    try:
        im = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:
        raise _too_big(limits) from None
    except Exception:  # Pillow raises many types on hostile bytes
        raise bad_request("not a PNG or JPEG image") from None
    width, height = im.size
    if width < 1 or height < 1:
        raise bad_request("the image has no pixels")
    if max(width, height) > limits.max_image_side or width * height > limits.max_image_pixels:
        raise _too_big(limits)
    return im


def _check_segments(data: bytes) -> None:
    jpeg = segments.count_jpeg(data)
    if jpeg.scans > segments.MAX_SCANS or jpeg.total > segments.MAX_SEGMENTS:
        raise too_large(f"JPEG too complex: at most {segments.MAX_SCANS} scans and "
                        f"{segments.MAX_SEGMENTS} segments (re-save it as a baseline JPEG)")
    png = segments.count_png(data)
    if (png.total - png.scans > segments.MAX_PNG_CHUNKS
            or png.scans > segments.idat_allowance(len(data))):
        raise too_large(f"PNG too complex: at most {segments.MAX_PNG_CHUNKS} chunks besides "
                        "its image data, which must not be split into chunks under ~1 KiB "
                        "(re-save it)")


def _too_big(limits: Limits) -> Exception:
    side = limits.max_image_side
    return too_large(f"image too large: at most {side} pixels a side and "
                     f"{limits.max_image_pixels:,} pixels in all")


def _grey(im: Image.Image, factor: int) -> np.ndarray:
    """The decoded image -> (ceil(H/factor), ceil(W/factor)) uint8 grey, converted and
    box-shrunk a strip of rows at a time, so no full-size copy is ever made."""
    rows = max(1, _STRIP_PIXELS // (im.width * factor)) * factor  # a multiple of factor
    wide_shift = 0
    if im.mode in _WIDE_MODES:
        top = im.getextrema()[1]
        wide_shift = 8 if isinstance(top, int | float) and top > 255 else 0
    strips = [_grey_strip(im.crop((0, y, im.width, min(im.height, y + rows))), factor,
                          wide_shift) for y in range(0, im.height, rows)]
    return np.concatenate(strips, axis=0)


def _grey_strip(strip: Image.Image, factor: int, wide_shift: int) -> np.ndarray:
    if strip.mode in _WIDE_MODES:
        # 16-bit samples keep their high byte (v * 257 >> 8 == v for 8-bit values).
        wide = np.asarray(strip).astype(np.int64) >> wide_shift
        strip = Image.fromarray(np.clip(wide, 0, 255).astype(np.uint8))
    if strip.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in strip.info:
        # Premultiplied, so the box filter averages what is seen; then onto white paper:
        # grey = luma * alpha + 255 * (1 - alpha).
        rgba = np.asarray(strip.convert("RGBA").convert("RGBa").reduce(factor),
                          dtype=np.float32)  # (h, w, 4)
        seen = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32) + 255 - rgba[..., 3]
        grey: np.ndarray = np.clip(np.rint(seen), 0, 255).astype(np.uint8)  # (h, w)
        return grey
    return np.asarray(strip.convert("L").reduce(factor), dtype=np.uint8)


def mnist_style(gray: np.ndarray) -> np.ndarray:
    """(H, W) grey levels, uint8 0..255 or float in [0, 1] -> (28, 28) float32
    MNIST-style input in [0, 1].

    Raises a 400 when the image holds no ink (blank, or no contrast)."""
    g = gray.astype(np.float32) / (np.float32(255.0) if gray.dtype == np.uint8 else 1.0)
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
