"""Abuse benchmark of `ablate serve`: every attack of issues 10 and 20, one after another,
against one server with default settings, while a prober checks its health.

Starts a real `ablate serve RUN_DIR` on 127.0.0.1 (default settings; the run directory
of a model trained here from the committed MNIST subset, so the model is exported on
the fly into a temporary folder), then runs each attack for `--seconds`:

- image ceiling: 32 wrk connections POST the most expensive image the service admits
  (a progressive CMYK JPEG at the pixel ceiling, 4096 x 3072, whose decoder holds 8
  bytes a pixel) over and over, retrying at once on 503, beside 8 wrk connections
  sending one real digit at a time to POST /v2/models/mnist/infer (their p50/p99);
- open header streamed: 4 connections each leave a header value open and stream it
  in 64 KiB pieces (reconnecting when answered);
- JPEG of 15,000 scans: a black 4096 x 3072 progressive JPEG whose 27-byte AC scan is
  repeated (454 KB), POSTed on 4 connections;
- PNG of 500,000 chunks: a 28 x 28 PNG with 500,000 empty text chunks (6.5 MB), on 2;
- multipart mistakes: the four forms of issue 20 (a text field holding the image,
  filename*=, an unknown charset, binary fields beside it), on 2 connections;
- 8 MiB bodies: 40 connections each POSTing an 8 MiB inference request (a valid one,
  padded with spaces) as fast as they can;
- long arrays: 8 connections POSTing /v1/predict pixels of 4,190,000 values (8 MiB),
  and 8 POSTing V2 data of 4,190,000 values for a [256, 784] tensor;
- silent sockets: 300 connections that send nothing (reopened as they are closed);
- stalled bodies: 300 connections that send headers announcing a body, and no body;
- connection flood: wrk with 300 connections GETting /v2/health/live (every refusal
  must show in /metrics);
- shutdown: 64 uploads in flight (still sending after the signal), then SIGTERM: each
  must get an answer, the log must stay short, the temporary export must go.

A prober opens a new connection every 50 ms for GET /v2/health/live (5 s timeout) and
records the worst latency under each attack. The server's memory is sampled every 20
ms over its process tree (the server and its image decoder's worker processes); the
kernel's high-water marks (VmHWM) give an upper bound that no sample can miss. Both
kinds of wrk client are C (Debian package `wrk`); the rest are Python threads, whose
CPU competes with the server's on a small machine.

Prints one line per attack, then `peak RSS over all attacks: N MiB` and `worst
health-check latency: S s`. Exits 1 if the server answered any 500, a normal request
failed, or a request in flight at shutdown got no answer.

    python benchmarks/serve_abuse.py               # every attack, 6 s each
    python benchmarks/serve_abuse.py --seconds 3 --only silent,stalled
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.serve import attacks  # noqa: E402
from tests.serve.conftest import free_port, start_server  # noqa: E402

WORST = "jpeg-progressive-cmyk"
MIB = 1 << 20
SIDE = (4096, 3072)
LONG = 4_190_000  # values in the long-array attacks: 8 MiB of "0,"
TARGET_RSS_MIB, TARGET_HEALTH_S = 600, 0.5


def status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def children(pid: int) -> list[int]:
    """The child processes of `pid` (of any of its threads: the decoder's workers are
    started from a worker thread)."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            kids += [int(p) for p in (task / "children").read_text().split()]
    return kids


class Watch(threading.Thread):
    """Samples the tree's RSS every 20 ms and probes health every 50 ms, both filed
    under the current attack's name."""

    def __init__(self, pid: int, port: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.port, self.phase = pid, port, "idle"
        self.stop = threading.Event()
        self.rss: dict[str, int] = {}  # phase -> max tree VmRSS (KiB)
        self.child_hwm: dict[int, int] = {}  # child pid -> VmHWM (KiB)
        self.latency: dict[str, float] = {}  # phase -> worst health latency
        self.failed: Counter[str] = Counter()  # phase -> probes without a 200
        self.probes: Counter[str] = Counter()
        self.prober = threading.Thread(target=self._probe, daemon=True)

    def run(self) -> None:
        self.prober.start()
        while not self.stop.is_set():
            kids = children(self.pid)
            total = status_kib(self.pid, "VmRSS") + sum(status_kib(k, "VmRSS") for k in kids)
            for k in kids:
                self.child_hwm[k] = max(self.child_hwm.get(k, 0), status_kib(k, "VmHWM"))
            self.rss[self.phase] = max(self.rss.get(self.phase, 0), total)
            self.stop.wait(0.02)

    def _probe(self) -> None:
        while not self.stop.is_set():
            phase = self.phase
            status, seconds = attacks.health(self.port, timeout=5.0)
            self.probes[phase] += 1
            self.latency[phase] = max(self.latency.get(phase, 0.0), seconds)
            if status != 200:
                self.failed[phase] += 1
            self.stop.wait(0.05)


# One wrk script for every wrk client: BENCH_METHOD (POST by default) the file
# BENCH_BODY with BENCH_TYPE, count answers by status, print them and the latency
# percentiles as one JSON line.
LUA = r"""
wrk.method = os.getenv("BENCH_METHOD") or "POST"
if os.getenv("BENCH_BODY") then
  wrk.headers["Content-Type"] = os.getenv("BENCH_TYPE")
  local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
  wrk.body = f:read("*all")
  f:close()
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses")) do total[status] = (total[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(total) do table.insert(parts, string.format('"%d": %d', status, n)) end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "p50": %d, "p99": %d, "socket_errors": %d, "statuses": {%s}}\n',
    summary.requests, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, table.concat(parts, ", ")))
end
"""


def wrk(url: str, clients: int, seconds: float, lua: Path, body: Path | None = None,
        kind: str = "", method: str = "POST") -> "subprocess.Popen[str]":
    env = {**os.environ, "BENCH_METHOD": method, "BENCH_TYPE": kind}
    if body is not None:
        env["BENCH_BODY"] = str(body)
    return subprocess.Popen(["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s",
                             "--timeout", "30s", "-s", str(lua), url],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wrk_result(proc: "subprocess.Popen[str]") -> dict[str, Any]:
    out, _ = proc.communicate(timeout=120)
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"wrk failed: {out}")
    r: dict[str, Any] = json.loads(line[len("RESULT "):])
    r["statuses"] = {int(k): v for k, v in sorted(r["statuses"].items())}
    return r


def metrics(port: int) -> dict[tuple[str, str], float]:
    """(sample name, label summary) -> value, of the server's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[(s.name, labels)] = s.value
    return out


def statuses_by(port: int, before: dict[tuple[str, str], float]) -> Counter[str]:
    """Answers by status since `before`, from the server's own count."""
    now, out = metrics(port), Counter[str]()
    for (name, labels), value in now.items():
        if name == "ablate_http_requests_total":
            parts = dict(kv.split("=", 1) for kv in labels.split(","))
            if parts["endpoint"] == "/metrics":
                continue
            delta = value - before.get((name, labels), 0.0)
            if delta:
                out[parts["status"]] += int(delta)
    return out


def loop_threads(n: int, seconds: float, attempt: Callable[[], int | None]) -> Counter[str]:
    """n threads calling `attempt` (returns a status, None for no answer) until the
    time is up; the statuses seen."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def run() -> None:
        while time.monotonic() < end:
            try:
                status = attempt()
            except OSError:
                status = None
            with lock:
                seen["no answer" if status is None else str(status)] += 1

    threads = [threading.Thread(target=run, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    return seen


def post_raw(port: int, path: str, kind: str, body: bytes, timeout: float = 30.0) -> int | None:
    with attacks.connect(port, timeout) as s:
        s.sendall(attacks.request_head("POST", path, f"Content-Type: {kind}",
                                       f"Content-Length: {len(body)}", "Connection: close"))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(body)
        response = attacks.read_until_closed(s)
    return attacks.status_of(response) if response else None


def hold_sockets(port: int, n: int, seconds: float, first: bytes) -> Counter[str]:
    """n connections that send `first` and then nothing, reopened as the server closes
    them; the statuses of what the closed ones were told."""
    told: Counter[str] = Counter()
    held: list[socket.socket] = []
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            alive = []
            for s in held:
                s.setblocking(False)
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    alive.append(s)
                    continue
                except OSError:
                    data = b""
                told[str(attacks.status_of(data)) if data[:5] == b"HTTP/" else "closed"] += 1
                s.close()
            held = alive
            while len(held) < n and time.monotonic() < end:
                try:
                    s = attacks.connect(port, 5)
                    if first:
                        s.sendall(first)
                    held.append(s)
                except OSError:
                    told["connect failed"] += 1
                    break
            time.sleep(0.05)
    finally:
        for s in held:
            s.close()
    return told


def shutdown_under_uploads(proc: "subprocess.Popen[bytes]", port: int, uploads: int,
                           grace: float) -> dict[str, Any]:
    """`uploads` connections sending a 1 MiB body slowly; SIGTERM; what each got."""
    size = MIB
    sockets = [attacks.connect(port, grace + 30) for _ in range(uploads)]
    head = attacks.request_head("POST", "/v2/models/mnist/infer", "Content-Type: application/json",
                                f"Content-Length: {size}")
    for s in sockets:
        s.sendall(head + b" " * 4096)
    time.sleep(0.5)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    answers: list[bytes] = [b""] * uploads

    def upload_and_read(i: int) -> None:
        s = sockets[i]
        with contextlib.suppress(OSError):
            for _ in range(int(grace * 10) + 20):  # 4 KiB every 0.1 s, past the grace
                s.sendall(b" " * 4096)
                time.sleep(0.1)
        answers[i] = attacks.read_until_closed(s)
        s.close()

    threads = [threading.Thread(target=upload_and_read, args=(i,)) for i in range(uploads)]
    for t in threads:
        t.start()
    code = proc.wait(timeout=grace + 60)
    exited = time.monotonic() - start
    for t in threads:
        t.join(30)
    got = Counter(str(attacks.status_of(a)) if a[:5] == b"HTTP/" else "no answer"
                  for a in answers)
    json_503 = sum(1 for a in answers if a[:12] == b"HTTP/1.1 503" and b"retry-after: 1"
                   in a.lower() and attacks.body_of(a).startswith(b'{"error":'))
    return {"answers": got, "json_503": json_503, "exit": code, "exited_s": exited}


@contextlib.contextmanager
def phase(watch: Watch, name: str) -> Iterator[None]:
    watch.phase = name
    try:
        yield
    finally:
        watch.phase = "between"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=6.0, help="per attack")
    ap.add_argument("--only", default="", help="comma-separated attack keys (default all)")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")

    from ablate.data import load_npz
    from tests.data_fixtures import SUBSET, subset_expected
    from tests.serve.images import worst_images
    from tests.serve.model_fixture import make_run_dir
    from tests.serve.test_predict import drawn

    secs = args.seconds
    digit = load_npz(SUBSET, subset_expected()).x_test[0]
    v2_digit = json.dumps({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "UINT8",
                                       "data": digit.reshape(784).tolist()}]}).encode()
    worst = worst_images()[WORST]
    scans = attacks.many_scan_jpeg(*SIDE, 15_000)
    chunks = attacks.png_chunk_flood(500_000)
    forms = list(attacks.multipart_mistakes(drawn(digit)).values())
    padded = v2_digit + b" " * (8 * MIB - len(v2_digit) - 1024)
    pixels = b'{"pixels": [' + b"0," * (LONG - 1) + b"0]}"
    v2_long = (b'{"inputs": [{"name": "input", "shape": [256, 784], "datatype": "UINT8", '
               b'"data": [' + b"0," * (LONG - 1) + b"0]}]}")
    results: list[tuple[str, str, str]] = []  # (key, attack, what it got)
    server_errors = 0

    with tempfile.TemporaryDirectory(prefix="serve-abuse-") as tmp:
        work = Path(tmp)
        (work / "image.jpg").write_bytes(worst)
        (work / "digit.json").write_bytes(v2_digit)
        (work / "post.lua").write_text(LUA)
        (work / "tmp").mkdir()
        print("training a small model on the committed MNIST subset ...", flush=True)
        run_dir = make_run_dir(work / "runs")
        port = free_port()
        log = work / "server.log"
        proc = start_server(run_dir, port, timeout=180, log=log, env={"TMPDIR": str(work / "tmp")})
        url = f"http://127.0.0.1:{port}"
        wanted = set(filter(None, args.only.split(",")))
        try:
            for _ in range(3):  # the first image and inference requests pay lazy imports
                httpx.post(f"{url}/v1/predict", content=worst,
                           headers={"content-type": "image/jpeg"}, timeout=60)
                httpx.post(f"{url}/v1/predict", json={"pixels": digit.tolist()}, timeout=60)
            idle_kib = status_kib(proc.pid, "VmRSS") + sum(status_kib(k, "VmRSS")
                                                           for k in children(proc.pid))
            watch = Watch(proc.pid, port)
            watch.start()
            time.sleep(min(secs, 2.0))  # the idle baseline

            def attack(key: str, name: str, run: Callable[[], str]) -> None:
                nonlocal server_errors
                if wanted and key not in wanted:
                    return
                before = metrics(port)
                with phase(watch, name):
                    got = run()
                time.sleep(1.0)  # let refusals drain before the next attack
                by_status = statuses_by(port, before)
                server_errors += by_status.get("500", 0)
                answered = dict(sorted(by_status.items()))
                results.append((key, name, f"{got}; server answered {answered}"))
                print(f"  {name}: {results[-1][2]}", flush=True)

            normal: dict[str, Any] = {}

            def image_ceiling() -> str:
                abusers = wrk(f"{url}/v1/predict", 32, secs, work / "post.lua",
                              work / "image.jpg", "image/jpeg")
                good = wrk(f"{url}/v2/models/mnist/infer", 8, secs, work / "post.lua",
                           work / "digit.json", "application/json")
                normal.update(wrk_result(good))
                bad = wrk_result(abusers)
                return (f"abusers {bad['statuses']}; normal {normal['statuses']} p50 "
                        f"{normal['p50'] / 1000:.1f} ms p99 {normal['p99'] / 1000:.1f} ms, "
                        f"socket errors {normal['socket_errors']}")

            def open_header() -> str:
                got = loop_threads(4, secs, lambda: _answer(
                    attacks.stream_open_header(port, 65536, secs)[0]))
                return f"answers {dict(got)}"

            def posting(n: int, path: str, kind: str, body: bytes) -> Callable[[], str]:
                def run() -> str:
                    got = loop_threads(n, secs, lambda: post_raw(port, path, kind, body))
                    return f"answers {dict(got)}"
                return run

            def multipart_forms() -> str:
                i = iter(range(1 << 30))

                def one() -> int | None:
                    body, kind = forms[next(i) % len(forms)]
                    return post_raw(port, "/v1/predict", kind, body)
                return f"answers {dict(loop_threads(2, secs, one))}"

            def long_arrays() -> str:
                both: Counter[str] = Counter()
                done = [threading.Thread(target=lambda b=b, p=p: both.update(
                    loop_threads(8, secs, lambda: post_raw(port, p, "application/json", b))))
                    for p, b in (("/v1/predict", pixels), ("/v2/models/mnist/infer", v2_long))]
                for t in done:
                    t.start()
                for t in done:
                    t.join()
                return f"answers {dict(both)}"

            def silent() -> str:
                return f"closed sockets were told {dict(hold_sockets(port, 300, secs, b''))}"

            def stalled() -> str:
                head = attacks.request_head("POST", "/v1/predict", "Content-Type: application/json",
                                            "Content-Length: 1000")
                return f"closed sockets were told {dict(hold_sockets(port, 300, secs, head))}"

            def flood() -> str:
                before = metrics(port)
                r = wrk_result(wrk(f"{url}/v2/health/live", 300, secs, work / "post.lua",
                                   method="GET"))
                time.sleep(1.0)
                after = metrics(port)
                counted = sum(v - before.get(k, 0.0) for k, v in after.items()
                              if k[0] == "ablate_http_requests_total"
                              and "endpoint=connection" in k[1] and "status=503" in k[1])
                return (f"wrk saw {r['statuses']} and {r['socket_errors']} socket errors; "
                        f"/metrics counted {counted:.0f} refusals with 503")

            attack("image", "image ceiling (32 abusers + 8 normal)", image_ceiling)
            attack("header", "open header streamed, 4 connections", open_header)
            attack("scans", "JPEG of 15,000 scans, 4 connections",
                   posting(4, "/v1/predict", "image/jpeg", scans))
            attack("chunks", "PNG of 500,000 chunks, 2 connections",
                   posting(2, "/v1/predict", "image/png", chunks))
            attack("multipart", "multipart mistakes, 2 connections", multipart_forms)
            attack("bodies", "8 MiB bodies, 40 connections",
                   posting(40, "/v2/models/mnist/infer", "application/json", padded))
            attack("arrays", "arrays of 4,190,000 values, 8 + 8 connections", long_arrays)
            attack("silent", "300 silent sockets", silent)
            attack("stalled", "300 stalled bodies", stalled)
            attack("flood", "connection flood, 300 wrk connections", flood)
            watch.stop.set()
            watch.join()
            main_hwm = status_kib(proc.pid, "VmHWM")
            shutdown: dict[str, Any] | None = None
            if not wanted or "shutdown" in wanted:
                log_before = len(log.read_text().splitlines())
                shutdown = shutdown_under_uploads(proc, port, 64, grace=10)
                shutdown["log_lines"] = len(log.read_text().splitlines()) - log_before
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
        leftover = list((work / "tmp").iterdir())
        text = log.read_text()

    attacked = [name for _, name, _ in results]
    peak_sampled = max((watch.rss.get(name, 0) for name in attacked), default=0)
    hwm_bound = main_hwm + max(watch.child_hwm.values(), default=0)
    print(f"\nmachine: {os.cpu_count()} CPUs, shared (load average {os.getloadavg()[0]:.1f} at "
          "the end, this benchmark's clients and server included)")
    print(f"server process tree after warm-up: {idle_kib / 1024:.0f} MiB")
    print(f"{'attack':<48} {'peak RSS':>9} {'worst health':>13} {'health fails':>13}")
    for name in ["idle", *attacked]:
        print(f"{name:<48} {watch.rss.get(name, 0) / 1024:>5.0f} MiB "
              f"{watch.latency.get(name, 0.0):>11.3f} s {watch.failed[name]:>5} / "
              f"{watch.probes[name]:<5}")
    if shutdown is not None:
        print(f"shutdown with 64 uploads in flight: answers {dict(shutdown['answers'])} "
              f"({shutdown['json_503']} JSON 503 with Retry-After), exit status "
              f"{shutdown['exit']} after {shutdown['exited_s']:.1f} s, "
              f"{shutdown['log_lines']} log lines, temporary export "
              f"{'left behind' if leftover else 'removed'}")
    errors = [line for line in text.splitlines() if line.startswith(("ERROR", "CRITICAL"))]
    print(f"server log: {len(errors)} error lines, {text.count('Traceback')} tracebacks; "
          f"server 500 answers: {server_errors}")
    print(f"high-water marks: server {main_hwm / 1024:.0f} MiB + largest decoder worker "
          f"{max(watch.child_hwm.values(), default=0) / 1024:.0f} MiB = {hwm_bound / 1024:.0f} "
          "MiB (an upper bound of the tree's peak)")
    worst_phase = max(attacked, key=lambda n: watch.latency.get(n, 0.0), default="idle")
    print(f"peak RSS over all attacks: {peak_sampled / 1024:.0f} MiB "
          f"(target <= {TARGET_RSS_MIB})")
    print(f"worst health-check latency: {watch.latency.get(worst_phase, 0.0):.3f} s under "
          f"{worst_phase} (target <= {TARGET_HEALTH_S})")
    failed = (server_errors or errors or (normal and (normal["socket_errors"] or any(
        s >= 500 for s in normal["statuses"]))) or (shutdown is not None and (
            shutdown["answers"].get("no answer") or leftover)))
    sys.exit(1 if failed else 0)


def _answer(response: bytes) -> int | None:
    return attacks.status_of(response) if response[:5] == b"HTTP/" else None


if __name__ == "__main__":
    main()
