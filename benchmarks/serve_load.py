"""Load benchmark of `ablate serve`: micro-batching on vs off, same run, same machine.

Starts two real servers on 127.0.0.1 (ABLATE_SERVE_BATCHING=on and =off) serving the
same model, and drives each with wrk (a C load generator; Debian package `wrk`) at
concurrency 1, 16 and 64: POST /v2/models/mnist/infer with one real MNIST digit as
FP32 [1, 784], the way a V2 client sends it. Every run is bounded in time (-d) and in
count (each wrk thread stops after its share of --requests). Modes and concurrencies
are interleaved and repeated; medians are printed. The last line reads
`batching speedup at 64: N.NNx` (requests/s on / off at concurrency 64).

    python benchmarks/serve_load.py                  # a small trained model, built here
    python benchmarks/serve_load.py runs/dropout     # the best run of a real study
    python benchmarks/serve_load.py model.safetensors --repeats 5 --duration 5
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*all")
f:close()
local cap = tonumber(os.getenv("BENCH_PER_THREAD"))
local count = 0
response = function(status, headers, body)
  count = count + 1
  if count >= cap then wrk.thread:stop() end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %.6f, "p50": %d, "p95": %d, "p99": %d, ' ..
    '"socket_errors": %d, "bad_status": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def model_source(arg: str | None, workdir: Path) -> Path:
    if arg:
        return Path(arg)
    from tests.serve.model_fixture import make_run_dir

    print("training a small model on the committed MNIST subset ...", flush=True)
    return make_run_dir(workdir / "runs")


def start(source: Path, batching: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ablate.cli", "serve", str(source), "--port", str(port)],
            env={**os.environ, "ABLATE_SERVE_BATCHING": batching}, cwd=ROOT, stdout=out,
            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the {batching} server exited; see {log}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit(f"the {batching} server did not become ready; see {log}")


def wrk(url: str, concurrency: int, seconds: float, requests: int, lua: Path, body: Path
        ) -> dict[str, float]:
    threads = min(concurrency, 2)
    env = {**os.environ, "BENCH_BODY": str(body),
           "BENCH_PER_THREAD": str(max(1, requests // threads))}
    cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(seconds))}s",
           "--timeout", "10s", "-s", str(lua), f"{url}/v2/models/mnist/infer"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"wrk failed: {out.stdout}\n{out.stderr}")
    r = json.loads(line[len("RESULT "):])
    return {"rps": r["requests"] / r["seconds"], "p50": r["p50"] / 1000, "p95": r["p95"] / 1000,
            "p99": r["p99"] / 1000, "errors": r["socket_errors"] + r["bad_status"],
            "requests": r["requests"]}


def batch_totals(url: str) -> tuple[float, float]:
    """(images inferred, forward passes) so far, from the server's /metrics."""
    values = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("ablate_inference_batch_size_") and "bucket" not in line:
            name, value = line.split()
            values[name] = float(value)
    return (values.get("ablate_inference_batch_size_sum", 0.0),
            values.get("ablate_inference_batch_size_count", 0.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", nargs="?", help="run directory or exported model "
                    "(default: train a small one)")
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per run (cap)")
    ap.add_argument("--requests", type=int, default=40_000, help="requests per run (cap)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    levels = [int(c) for c in args.concurrency.split(",")]

    from ablate.data import load_npz
    from tests.data_fixtures import SUBSET, subset_expected

    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        work = Path(tmp)
        source = model_source(args.source, work)
        digit = load_npz(SUBSET, subset_expected()).x_test[0].reshape(784) / np.float32(255)
        body = work / "body.json"
        body.write_text(json.dumps({"inputs": [{"name": "input", "shape": [1, 784],
                                                "datatype": "FP32",
                                                "data": [round(float(v), 6) for v in digit]}]}))
        lua = work / "post.lua"
        lua.write_text(LUA)
        servers = {mode: start(source, mode, work / f"{mode}.log") for mode in ("on", "off")}
        try:
            for _, url in servers.values():  # warm up: first requests pay lazy imports
                wrk(url, 16, 1.0, 2000, lua, body)
            results: dict[tuple[str, int], list[dict[str, float]]] = {}
            for rep in range(args.repeats):
                for c in levels:
                    for mode, (_, url) in servers.items():
                        images0, passes0 = batch_totals(url)
                        r = wrk(url, c, args.duration, args.requests, lua, body)
                        images1, passes1 = batch_totals(url)
                        r["batch"] = (images1 - images0) / max(passes1 - passes0, 1.0)
                        results.setdefault((mode, c), []).append(r)
                print(f"repeat {rep + 1}/{args.repeats} done", flush=True)
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=10)
    report(results, levels)


def report(results: dict[tuple[str, int], list[dict[str, float]]], levels: list[int]) -> None:
    keys = ("rps", "p50", "p95", "p99", "batch")
    med = {k: {m: statistics.median(r[m] for r in v) for m in keys} for k, v in results.items()}
    errors = {k: int(sum(r["errors"] for r in v)) for k, v in results.items()}
    print(f"\n{'batching':<9}{'conc':>5}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
          f"{'batch':>7}{'errors':>8}")
    for c in levels:
        for mode in ("on", "off"):
            m = med[(mode, c)]
            print(f"{mode:<9}{c:>5}{m['rps']:>10.0f}{m['p50']:>9.2f}{m['p95']:>9.2f}"
                  f"{m['p99']:>9.2f}{m['batch']:>7.1f}{errors[(mode, c)]:>8}")
    runs = len(next(iter(results.values())))
    print(f"(medians of {runs} runs each, modes interleaved; wrk, POST /v2/models/mnist/infer "
          "with one FP32 [1, 784] image; batch: mean images per forward pass)")
    if 1 in levels:
        added = med[("on", 1)]["p50"] - med[("off", 1)]["p50"]
        print(f"batching adds at concurrency 1: {added:+.3f} ms to p50")
    if 64 in levels:
        print(f"batching speedup at 64: {med[('on', 64)]['rps'] / med[('off', 64)]['rps']:.2f}x")


if __name__ == "__main__":
    main()
