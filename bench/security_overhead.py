#!/usr/bin/env python3
"""What API keys, quotas and the audit log cost per request: the same server (the tiny model,
same threads) with and without --db, one keep-alive client, requests alternated in rounds so that
both see the same machine state. With --db every request is checked against the key database
(SQLite lookup + SHA-256), counted against the key's quotas (requests, tokens, concurrency) and
recorded in the audit log (one committed INSERT) before its answer goes out.

    python3 bench/security_overhead.py [--requests 2000] [--rounds 5] [--out bench/results/security-overhead-latest.json]

Two workloads: GET /v1/models (almost nothing but the stages: the overhead is most visible) and
POST /v1/completions with max_tokens 1 (a real, if tiny, inference call).
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = os.environ.get("MMSERVE_BIN", str(ROOT / "build/default/mmserve"))
MODEL = Path(os.environ.get("MMSERVE_SHARED_DIR", ROOT.parent / "shared")) / "models" / "stories260K.gguf"


def start(*args):
    proc = subprocess.Popen([BIN, "serve", "-m", str(MODEL), "--port", "0", "-t", "1", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    port = int(line.strip().rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(600):
        conn.request("GET", "/ready")
        resp = conn.getresponse()
        resp.read()
        if resp.status == 200:
            break
        time.sleep(0.05)
    return proc, conn


def timed(conn, method, path, body, headers, n):
    """Per-request latencies in microseconds."""
    data = json.dumps(body) if body is not None else None
    out = []
    for _ in range(n):
        t = time.perf_counter_ns()
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        resp.read()
        out.append((time.perf_counter_ns() - t) / 1000)
        assert resp.status == 200, resp.status
    return out


def summary(samples):
    samples = sorted(samples)
    return {"p50_us": round(statistics.median(samples), 1),
            "p99_us": round(samples[int(len(samples) * 0.99) - 1], 1),
            "mean_us": round(statistics.fmean(samples), 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000, help="per workload, per server")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "bench/results/security-overhead-latest.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "mmserve.db"
        def make_key(name, *limits):
            made = subprocess.run([BIN, "keys", "create", name, "--db", str(db), *limits, "--json"],
                                  check=True, capture_output=True, text=True)
            return json.loads(made.stdout)["key"]
        # Quotas high enough never to refuse: what is measured is their bookkeeping (and the
        # x-ratelimit-* headers, which the client must also read).
        limited = make_key("limited", "--rpm", "100000000", "--tpm", "100000000", "--concurrency", "64")
        unlimited = make_key("unlimited")
        plain, plain_conn = start()
        secured, secured_conn = start("--db", str(db))
        workloads = {
            "GET /v1/models": ("GET", "/v1/models", None),
            "POST /v1/completions (max_tokens 1)":
                ("POST", "/v1/completions", {"prompt": "Once", "max_tokens": 1, "temperature": 0}),
        }
        results = {}
        try:
            for name, (method, path, body) in workloads.items():
                per = max(1, args.requests // args.rounds)
                runs = {"without_db": (plain_conn, {}),
                        "key_and_audit": (secured_conn, {"Authorization": f"Bearer {unlimited}"}),
                        "key_quota_and_audit": (secured_conn, {"Authorization": f"Bearer {limited}"})}
                samples = {k: [] for k in runs}
                for conn, auth in runs.values():
                    timed(conn, method, path, body, {"Content-Type": "application/json", **auth}, 50)  # warm
                for _ in range(args.rounds):
                    for k, (conn, auth) in runs.items():
                        samples[k] += timed(conn, method, path, body,
                                            {"Content-Type": "application/json", **auth}, per)
                figures = {k: summary(v) for k, v in samples.items()}
                base = figures["without_db"]
                for k in ("key_and_audit", "key_quota_and_audit"):
                    figures[k]["overhead_p50_us"] = round(figures[k]["p50_us"] - base["p50_us"], 1)
                    figures[k]["overhead_mean_us"] = round(figures[k]["mean_us"] - base["mean_us"], 1)
                results[name] = figures
                print(f"{name}: p50 {base['p50_us']} us; key + audit +{figures['key_and_audit']['overhead_p50_us']} us; "
                      f"key + quota + audit +{figures['key_quota_and_audit']['overhead_p50_us']} us (p50)")
            rows = subprocess.run([BIN, "audit", "--db", str(db), "--format", "json"], check=True,
                                  capture_output=True, text=True).stdout.count("\n")
        finally:
            for proc in (plain, secured):
                proc.terminate()
                proc.wait(timeout=30)
    result = {"bench": "security-overhead", "date": time.strftime("%Y-%m-%d"),
              "machine": f"{os.cpu_count()} cores", "requests_per_workload": args.requests,
              "audit_rows_written": rows, "workloads": results}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
