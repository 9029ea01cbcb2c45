#!/usr/bin/env python3
"""Several models in one server, measured: each model's load time and memory (the registry's
estimate and the process's resident growth), then unload/reload cycles under a two-model
budget, on synthetic models of real shapes (mmserve synth).

    python3 bench/model_cycle.py [--cycles 3] [--threads 2] [--out bench/results/model-cycle-latest.json]

Models: "chat-1b" (Llama 3.2 1B's widths and vocabulary, 2 layers, Q8_0), "chat-tiny" (the tiny
preset, F16) and "whisper-base" (Whisper base's shape). The server runs with --max-models 2 and
no preloads, so every request to the third model unloads the least recently used one.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = os.environ.get("MMSERVE_BIN", str(ROOT / "build/default/mmserve"))


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def http(port, method, path, body=None, timeout=600):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def synth(kind, out, *args):
    if out.exists():
        return
    t = time.time()
    subprocess.run([BIN, "synth", kind, "-o", str(out), *args], check=True, capture_output=True, timeout=1800)
    log(f"wrote {out.name} ({out.stat().st_size / 2**20:.0f} MiB) in {time.time() - t:.0f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "mmserve-model-cycle"))
    ap.add_argument("--out", default=str(ROOT / "bench/results/model-cycle-latest.json"))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    synth("llm", work / "chat-1b.gguf", "--preset", "llama-3.2-1b", "--layers", "2", "--type", "q8_0",
          "-t", str(args.threads))
    synth("llm", work / "chat-tiny.gguf")
    synth("whisper", work / "whisper-base.bin", "--size", "base")
    (work / "models.toml").write_text("""
[[model]]
name = "chat-1b"
path = "chat-1b.gguf"
parallel = 2
ctx_size = 4096
preload = false

[[model]]
name = "chat-tiny"
path = "chat-tiny.gguf"
parallel = 2
preload = false

[[model]]
name = "whisper-base"
kind = "speech"
path = "whisper-base.bin"
parallel = 1
preload = false
""")
    cmd = [BIN, "serve", "--port", "0", "--models", str(work / "models.toml"), "--max-models", "2",
           "-t", str(args.threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(proc.stdout.readline().strip().rsplit(":", 1)[1])
        while http(port, "GET", "/ready")[0] != 200:
            time.sleep(0.05)
        names = ["chat-1b", "chat-tiny", "whisper-base"]
        loads = []
        order = []  # loaded models, least recently loaded first
        for cycle in range(args.cycles):
            for name in names:
                freed = None
                if len(order) == 2:  # what the budget would unload: measured on its own
                    victim = order.pop(0)
                    before = rss_bytes(proc.pid)
                    status, body = http(port, "POST", "/models/unload", {"model": victim})
                    assert status == 200 and body["unloaded"], body
                    time.sleep(0.5)  # the allocator hands pages back (malloc_trim runs per response)
                    freed = round((before - rss_bytes(proc.pid)) / 2**20, 1)
                before = rss_bytes(proc.pid)
                t = time.time()
                status, body = http(port, "POST", "/models/load", {"model": name})
                took = time.time() - t
                assert status == 200, body
                order.append(name)
                meta = body["meta"]
                loads.append({"cycle": cycle, "model": name, "load_seconds": round(meta["load_seconds"], 3),
                              "request_seconds": round(took, 3), "estimate_mib": round(meta["memory_bytes"] / 2**20, 1),
                              "rss_growth_mib": round((rss_bytes(proc.pid) - before) / 2**20, 1),
                              "rss_freed_by_unload_before_mib": freed})
                log(f"cycle {cycle} {name}: load {meta['load_seconds']:.2f} s, estimate "
                    f"{meta['memory_bytes'] / 2**20:.0f} MiB, RSS {loads[-1]['rss_growth_mib']:+.0f} MiB"
                    + (f" (unloading {victim} freed {freed:.0f} MiB)" if freed is not None else ""))
        # The budget's own path: one request to the model that is not loaded unloads the LRU one.
        t = time.time()
        status, body = http(port, "POST", "/v1/inference", {"task": "text-gen", "model": names[0], "input": "Hi",
                                                             "parameters": {"max_tokens": 4}})
        budget_request_seconds = round(time.time() - t, 3)
        assert status == 200, body
        _, models = http(port, "GET", "/v1/models")
        final = {m["id"]: {"loads": m["meta"]["loads"], "unloads": m["meta"]["unloads"],
                           "loaded": m["meta"]["loaded"]} for m in models["data"]}
        rss_end = rss_bytes(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    summary = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "threads": args.threads,
               "cycles": args.cycles, "files_mib": {p.name: round(p.stat().st_size / 2**20, 1)
                                                    for p in sorted(work.glob("*.gguf")) + sorted(work.glob("*.bin"))},
               "loads": loads, "budget_request_seconds": budget_request_seconds, "final": final,
               "rss_end_mib": round(rss_end / 2**20, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    log(f"{'model':<14}{'load s (first/later)':>24}{'estimate MiB':>14}{'RSS MiB (first load)':>22}")
    for name in ["chat-1b", "chat-tiny", "whisper-base"]:
        rows = [r for r in loads if r["model"] == name]
        later = [r["load_seconds"] for r in rows[1:]]
        log(f"{name:<14}{rows[0]['load_seconds']:>12.2f} / {(sum(later) / len(later) if later else 0):>9.2f}"
            f"{rows[0]['estimate_mib']:>14.0f}{rows[0]['rss_growth_mib']:>22.0f}")
    log(f"a request to an unloaded model (LRU unload + load + answer): {budget_request_seconds:.2f} s")
    log(f"final: {final}; RSS at the end {rss_end / 2**20:.0f} MiB; written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
