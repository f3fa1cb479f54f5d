"""What one admissible image costs to prepare, measured in a fresh process.

Each worst image sits at the pixel ceiling. Two numbers per image:
- the process's peak RSS increase (VmHWM; not ru_maxrss, which a child process
  inherits from its parent across exec), which includes the decoder's own full-size
  image (Pillow and libjpeg allocate outside Python), and
- the peak of memory traced by tracemalloc (Python objects and NumPy arrays): every
  float array the preparation makes, which must stay at the working size.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from serve.config import Limits
from serve.preprocess import WORK_SIDE
from tests.serve.images import ceiling_size, worst_images

ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20

MEASURE = """
import json, sys, tracemalloc
from serve.config import Limits
from serve.preprocess import prepare_image

def high_water():  # VmHWM: this process's peak RSS in bytes, its own since exec
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

data = open(sys.argv[1], "rb").read()
before = high_water()
tracemalloc.start()
prepare_image(data, Limits())
traced = tracemalloc.get_traced_memory()[1]
print(json.dumps({"rss": high_water() - before, "traced": traced}))
"""

# Bytes per pixel the decoder itself must hold at full size: an 8-bit grey PNG 1, a
# 16-bit grey PNG 2 (Pillow's I;16), RGBA 4; a progressive JPEG keeps every DCT
# coefficient (2 bytes) of every component until the last scan: 3 x 2 for RGB 4:4:4,
# 4 x 2 for CMYK, whatever scale it is then drawn at.
DECODER_BYTES_PER_PIXEL = {"png-grey8": 1, "png-grey16": 2, "png-rgba": 4,
                           "jpeg-progressive-rgb444": 6, "jpeg-progressive-cmyk": 8}
SLACK = 16 * MIB  # strips, the working-size image, zlib and libjpeg buffers (measured 2-9)
# The working image is at most WORK_SIDE^2 pixels; preparation holds a few float32
# copies of it (grey, ink, mask, crop): 6 x 4 bytes a pixel bounds them.
TRACED_LIMIT = 6 * 4 * WORK_SIDE * WORK_SIDE


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("worst")
    paths = {}
    for name, data in worst_images().items():
        paths[name] = out / name
        paths[name].write_bytes(data)
    return paths


@pytest.mark.parametrize("name", sorted(DECODER_BYTES_PER_PIXEL))
def test_an_image_at_the_ceiling_costs_its_decode_and_little_more(
        images: dict[str, Path], name: str) -> None:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(images[name])], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    got = json.loads(out.stdout)
    width, height = ceiling_size()
    budget = DECODER_BYTES_PER_PIXEL[name] * width * height + SLACK
    assert got["traced"] <= TRACED_LIMIT, (got["traced"] / MIB, TRACED_LIMIT / MIB)
    assert got["rss"] <= budget, (got["rss"] / MIB, budget / MIB)


def test_the_pixel_ceiling_fits_a_12_megapixel_phone_photo() -> None:
    limits = Limits()
    assert 4032 * 3024 <= limits.max_image_pixels <= 4096 * 3072
