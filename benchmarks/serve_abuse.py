"""Abuse benchmark of `ablate serve`: the worst admissible images next to normal traffic.

Starts a real `ablate serve` on 127.0.0.1 (default settings) serving a model trained
and exported here from the committed MNIST subset, then for `--duration` seconds keeps
`--abusers` connections POSTing the most expensive image the service admits, over and
over (a 503 is followed at once by the next try, as an attacker would), alongside
`--normal` connections sending one real digit at a time to POST /v2/models/mnist/infer.
Both kinds of client are wrk (a C load generator; Debian package `wrk`), so the
clients' own CPU stays small. The most expensive
image is a progressive CMYK JPEG at the pixel ceiling (4096 x 3072): libjpeg keeps all
of its DCT coefficients, 8 bytes a pixel, whatever scale it is drawn at
(tests/serve/test_decode_memory.py measures each kind).

Reports the server's RSS before and during the abuse (VmHWM, the kernel's high-water
mark, so no peak is missed between samples), the normal requests' p50/p99 latency and
status counts, and the abusers' status counts. The last line reads
`peak RSS under abuse: N MiB`. Exits 1 if a normal request got a 5xx.

    python benchmarks/serve_abuse.py                 # 32 abusers, 8 normal, 20 s
    python benchmarks/serve_abuse.py --abusers 0     # the same normal traffic alone
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.serve.conftest import free_port, start_server  # noqa: E402

WORST = "jpeg-progressive-cmyk"
MIB = 1 << 20


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def model_file(work: Path) -> Path:
    from ablate.export import export_best
    from tests.serve.model_fixture import make_run_dir

    print("training a small model on the committed MNIST subset ...", flush=True)
    return export_best(make_run_dir(work / "runs"), to=work / "model.safetensors")


class Sampler(threading.Thread):
    """VmRSS of `pid` every 20 ms, for the timeline; VmHWM gives the true peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), status_kib(self.pid, "VmRSS")))
            self.stop.wait(0.02)


# One wrk script for both kinds of client: POST the file BENCH_BODY with BENCH_TYPE,
# count answers by status, print them and the latency percentiles as one JSON line.
LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("BENCH_TYPE")
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*all")
f:close()
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


def wrk(url: str, path: str, clients: int, seconds: float, body: Path, kind: str, lua: Path
        ) -> "subprocess.Popen[str]":
    env = {**os.environ, "BENCH_BODY": str(body), "BENCH_TYPE": kind}
    return subprocess.Popen(["wrk", "-t1", f"-c{clients}", f"-d{round(seconds)}s",
                             "--timeout", "30s", "-s", str(lua), url + path],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def result(proc: "subprocess.Popen[str]") -> dict[str, Any]:
    out, _ = proc.communicate(timeout=120)
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"wrk failed: {out}")
    r: dict[str, Any] = json.loads(line[len("RESULT "):])
    r["statuses"] = {int(k): v for k, v in sorted(r["statuses"].items())}
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--abusers", type=int, default=32)
    ap.add_argument("--normal", type=int, default=8)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds")
    args = ap.parse_args()

    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")

    from ablate.data import load_npz
    from tests.data_fixtures import SUBSET, subset_expected
    from tests.serve.images import ceiling_size, worst_images

    digit = load_npz(SUBSET, subset_expected()).x_test[0].reshape(784).tolist()
    image = worst_images()[WORST]
    width, height = ceiling_size()
    with tempfile.TemporaryDirectory(prefix="serve-abuse-") as tmp:
        work = Path(tmp)
        (work / "image.jpg").write_bytes(image)
        (work / "digit.json").write_text(json.dumps({"inputs": [
            {"name": "input", "shape": [1, 784], "datatype": "UINT8", "data": digit}]}))
        (work / "post.lua").write_text(LUA)
        port = free_port()
        proc = start_server(model_file(work), port, timeout=120, log=work / "server.log")
        url = f"http://127.0.0.1:{port}"
        try:
            # Warm up: the first image and inference requests pay lazy imports.
            for _ in range(3):
                httpx.post(f"{url}/v1/predict", content=image,
                           headers={"content-type": "image/jpeg"}, timeout=60)
                httpx.post(f"{url}/v1/predict", json={"pixels": digit}, timeout=60)
            idle = status_kib(proc.pid, "VmRSS")
            before_peak = status_kib(proc.pid, "VmHWM")
            sampler = Sampler(proc.pid)
            sampler.start()
            clients = []
            if args.abusers:
                clients.append(wrk(url, "/v1/predict", args.abusers, args.duration,
                                   work / "image.jpg", "image/jpeg", work / "post.lua"))
            normal_run = wrk(url, "/v2/models/mnist/infer", args.normal, args.duration,
                             work / "digit.json", "application/json", work / "post.lua")
            normal = result(normal_run)
            abuse = result(clients[0]) if clients else {"requests": 0, "statuses": {}}
            sampler.stop.set()
            sampler.join()
            peak = status_kib(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        log = (work / "server.log").read_text()
    sampled = max(kib for _, kib in sampler.samples)
    print(f"\nmachine: {os.cpu_count()} CPUs, shared (load average {os.getloadavg()[0]:.1f} "
          "at the end, this benchmark's clients and server included)")
    print(f"abusers: {args.abusers} connections x {WORST} {width}x{height} "
          f"({len(image) / 1024:.0f} KiB) on POST /v1/predict for {args.duration:g} s: "
          f"{abuse['requests']} requests, status {abuse['statuses']}")
    print(f"normal: {args.normal} connections x one digit on POST /v2/models/mnist/infer: "
          f"{normal['requests']} requests, status {normal['statuses']}, socket errors "
          f"{normal['socket_errors']}, p50 {normal['p50'] / 1000:.1f} ms, "
          f"p99 {normal['p99'] / 1000:.1f} ms")
    print(f"server RSS: idle after warm-up {idle / 1024:.0f} MiB (peak so far "
          f"{before_peak / 1024:.0f}); sampled every 20 ms under abuse, max "
          f"{sampled / 1024:.0f} MiB")
    errors = [line for line in log.splitlines() if line.startswith(("ERROR", "CRITICAL"))]
    print(f"server log: {len(errors)} error lines")
    print(f"peak RSS under abuse: {peak / 1024:.0f} MiB")
    if normal["socket_errors"] or any(status >= 500 for status in normal["statuses"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
