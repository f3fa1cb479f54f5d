"""MNIST-style preparation of drawn and photographed digits."""

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from ablate.data import load_npz
from serve.config import Limits
from serve.errors import ApiError
from serve.preprocess import WORK_SIDE, decode_image, mnist_style, prepare_image
from tests.data_fixtures import SUBSET, subset_expected

LIMITS = Limits()


@pytest.fixture(scope="module")
def mnist_digits() -> np.ndarray:
    return load_npz(SUBSET, subset_expected()).x_test[:20]  # (20, 28, 28) uint8


def centre_of_mass(a: np.ndarray) -> tuple[float, float]:
    ii, jj = np.mgrid[0:a.shape[0], 0:a.shape[1]]
    return float((a * ii).sum() / a.sum()), float((a * jj).sum() / a.sum())


def ink_box(a: np.ndarray, level: float = 0.25) -> tuple[int, int]:
    rows, cols = np.nonzero(a > level)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def on_paper(digit: np.ndarray, scale: int, canvas: tuple[int, int], at: tuple[int, int],
             paper: int = 255, ink: int = 0) -> np.ndarray:
    """An MNIST digit drawn big, dark on light paper, at `at` (row, col) of a canvas."""
    big = Image.fromarray(digit).resize((28 * scale, 28 * scale), Image.Resampling.BILINEAR)
    alpha = np.asarray(big, dtype=np.float64) / 255.0  # 1 where the ink is
    out = np.full(canvas, float(paper))
    r, c = at
    region = out[r:r + 28 * scale, c:c + 28 * scale]
    region[:] = paper + (ink - paper) * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def encode(a: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(a)
    if mode:
        im = im.convert(mode)
    im.save(buf, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buf.getvalue()


def test_an_off_centre_digit_lands_centred(mnist_digits: np.ndarray) -> None:
    for digit in mnist_digits[:8]:
        page = on_paper(digit, scale=7, canvas=(500, 700), at=(10, 480))  # top right
        x = prepare_image(encode(page), LIMITS).reshape(28, 28)
        cy, cx = centre_of_mass(x)
        # Whole-pixel shifts put the centre of mass within half a pixel of MNIST's
        # (14.0, 14.0); the ink box's longer side is MNIST's 20 (+-1 for the
        # anti-aliased edge at the 0.25 level).
        assert abs(cy - 14.0) <= 0.5 and abs(cx - 14.0) <= 0.5, (cy, cx)
        assert 19 <= max(ink_box(x)) <= 21
        # And it is the same digit as MNIST's own preparation of it.
        assert np.corrcoef(x.ravel(), digit.ravel() / 255.0)[0, 1] > 0.8


def test_mnist_digits_are_a_fixed_point(mnist_digits: np.ndarray) -> None:
    """MNIST's images were made this way, so preparing one changes it little."""
    for digit in mnist_digits:
        x = mnist_style(digit.astype(np.float32) / 255.0)
        assert np.corrcoef(x.ravel(), digit.ravel())[0, 1] > 0.85


def test_aspect_ratio_is_kept() -> None:
    page = np.full((300, 300), 255, np.uint8)
    page[50:250, 140:160] = 0  # a tall bar: 200 x 20
    x = prepare_image(encode(page), LIMITS).reshape(28, 28)
    height, width = ink_box(x)
    assert height == 20 and width <= 3  # 20 x 2 after fitting, not stretched to 20 x 20


def test_light_and_dark_backgrounds_give_the_same_input(mnist_digits: np.ndarray) -> None:
    dark = on_paper(mnist_digits[0], 5, (200, 200), (30, 40), paper=0, ink=255)
    light = 255 - dark
    a = prepare_image(encode(dark), LIMITS)
    b = prepare_image(encode(light), LIMITS)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_a_noisy_grey_photo_as_jpeg(mnist_digits: np.ndarray) -> None:
    """Grey paper, grey ink, sensor noise, JPEG artefacts, RGB."""
    rng = np.random.default_rng(1)
    page = on_paper(mnist_digits[1], 9, (600, 800), (250, 100), paper=190, ink=60)
    page = np.clip(page + rng.normal(0, 8, page.shape), 0, 255).astype(np.uint8)
    x = prepare_image(encode(np.stack([page] * 3, axis=-1), "JPEG"), LIMITS).reshape(28, 28)
    cy, cx = centre_of_mass(x)
    assert abs(cy - 14.0) <= 0.5 and abs(cx - 14.0) <= 0.5
    assert np.corrcoef(x.ravel(), mnist_digits[1].ravel())[0, 1] > 0.75


def test_transparent_canvas_counts_as_white_paper(mnist_digits: np.ndarray) -> None:
    """A browser canvas left unfilled is transparent black; the strokes are opaque."""
    alpha = on_paper(mnist_digits[2], 4, (160, 160), (20, 20), paper=0, ink=255)
    rgba = np.zeros((160, 160, 4), np.uint8)
    rgba[..., 3] = alpha  # black ink, visible only where drawn
    x = prepare_image(encode(rgba), LIMITS)
    y = prepare_image(encode(255 - alpha), LIMITS)  # the same drawing on white paper
    np.testing.assert_allclose(x, y, atol=1e-6)


def test_sixteen_bit_png(mnist_digits: np.ndarray) -> None:
    page = on_paper(mnist_digits[3], 3, (120, 120), (10, 10)).astype(np.uint16) * 257
    buf = io.BytesIO()
    Image.fromarray(page).save(buf, format="PNG")
    x = prepare_image(buf.getvalue(), LIMITS)
    y = prepare_image(encode((page // 257).astype(np.uint8)), LIMITS)
    np.testing.assert_allclose(x, y, atol=1e-6)


def test_dimensions_are_checked_before_decoding() -> None:
    """The limit applies to the header's size: the pixels are never decoded."""
    small = Limits(max_image_side=100, max_image_pixels=5000)
    page = np.full((101, 10), 255, np.uint8)
    with pytest.raises(ApiError) as e:
        decode_image(encode(page), small)
    assert e.value.status == 413
    with pytest.raises(ApiError) as e:
        decode_image(encode(np.full((80, 80), 255, np.uint8)), small)  # 6400 > 5000
    assert e.value.status == 413
    assert decode_image(encode(np.full((50, 100), 255, np.uint8)), small).shape == (50, 100)


@pytest.mark.parametrize("data", [b"", b"hello", b"\x89PNG\r\n\x1a\n" + b"\x00" * 30,
                                  b"\xff\xd8\xff\xe0" + b"\x00" * 30, b"BM" + b"\x00" * 60])
def test_non_images_are_400(data: bytes) -> None:
    with pytest.raises(ApiError) as e:
        decode_image(data, LIMITS)
    assert e.value.status == 400


def test_a_blank_page_has_no_digit() -> None:
    with pytest.raises(ApiError, match="no digit"):
        prepare_image(encode(np.full((64, 64), 240, np.uint8)), LIMITS)


def test_a_big_image_is_shrunk_to_the_working_size_first(mnist_digits: np.ndarray) -> None:
    """A 3000 px page becomes at most WORK_SIDE px of 8-bit grey before any float
    array, and reads like the same page drawn a third the size."""
    big = on_paper(mnist_digits[4], 40, (2400, 3000), (300, 1500))
    grey = decode_image(encode(big), LIMITS)
    assert grey.dtype == np.uint8 and grey.shape == (800, 1000)  # shrunk by 3
    assert max(grey.shape) <= WORK_SIDE
    small = np.asarray(Image.fromarray(big).reduce(3))
    a = prepare_image(encode(big), LIMITS)
    b = prepare_image(encode(small), LIMITS)
    np.testing.assert_allclose(a, b, atol=2 / 255)  # rounding of the two box filters


@pytest.mark.parametrize("orientation, stored", [
    (3, lambda a: np.rot90(a, 2)), (6, lambda a: np.rot90(a, 1)), (8, lambda a: np.rot90(a, -1)),
    (2, lambda a: a[:, ::-1]),
])
def test_the_exif_orientation_is_applied(mnist_digits: np.ndarray, orientation: int,
                                         stored: Callable[[np.ndarray], np.ndarray]) -> None:
    """A camera held sideways stores the pixels turned and says so in EXIF."""
    upright = on_paper(mnist_digits[5], 6, (300, 200), (40, 20))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(stored(upright))).save(buf, format="PNG",
                                                                exif=exif.tobytes())
    np.testing.assert_array_equal(decode_image(buf.getvalue(), LIMITS), upright)
