#!/usr/bin/env python3
"""Concurrent text-generation load against any OpenAI-compatible server (mmserve, llama-server).

Each client streams /v1/completions requests back to back with a fixed generation length
(ignore_eos), so runs compare across servers. Prints one JSON object: aggregate generated
tokens/s, time to first token and end-to-end latency percentiles.

  python3 bench/load_text.py --url http://127.0.0.1:8080 --clients 4 --requests 8 --max-tokens 128
"""
import argparse
import http.client
import json
import threading
import time
from urllib.parse import urlparse

PROMPTS = ["Once upon a time", "The cat sat on the mat", "Tom and Sue went to the park",
           "One day, a little bird", "Lily found a box", "The sun was hot", "A big dog ran",
           "Mom said to Ben"]


def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def one_request(host, port, prompt, max_tokens, model):
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "ignore_eos": True, "stream": True,
                       "stream_options": {"include_usage": True}})
    start = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=600)
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:200]!r}")
    first = None
    tokens = 0
    pieces = 0
    for raw in resp:
        line = raw.decode("utf-8").strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[6:])
        if event.get("choices") and event["choices"][0].get("text"):
            pieces += 1
            if first is None:
                first = time.perf_counter()
        if event.get("usage"):
            tokens = event["usage"]["completion_tokens"]
    conn.close()
    end = time.perf_counter()
    return {"ttft": (first or end) - start, "e2e": end - start, "tokens": tokens or pieces}


def run(url, clients, requests, max_tokens, model="default", system=""):
    """`system`: text every prompt starts with (a shared system prompt), then a blank line."""
    parsed = urlparse(url)
    results, errors = [], []
    lock = threading.Lock()

    def client(i):
        for r in range(requests):
            try:
                prompt = PROMPTS[(i + r) % len(PROMPTS)]
                res = one_request(parsed.hostname, parsed.port, f"{system}\n\n{prompt}" if system else prompt,
                                  max_tokens, model)
                with lock:
                    results.append(res)
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                with lock:
                    errors.append(str(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    tokens = sum(r["tokens"] for r in results)
    return {
        "clients": clients, "requests": len(results), "errors": len(errors), "max_tokens": max_tokens,
        "wall_s": round(wall, 3), "generated_tokens": tokens,
        "tokens_per_s": round(tokens / wall, 1) if wall else None,
        "ttft_p50_ms": round(1000 * percentile([r["ttft"] for r in results], 50), 1) if results else None,
        "ttft_p99_ms": round(1000 * percentile([r["ttft"] for r in results], 99), 1) if results else None,
        "e2e_p50_ms": round(1000 * percentile([r["e2e"] for r in results], 50), 1) if results else None,
        "e2e_p99_ms": round(1000 * percentile([r["e2e"] for r in results], 99), 1) if results else None,
        "first_error": errors[0] if errors else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=4, help="requests per client")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--model", default="default")
    ap.add_argument("--system", default="", help="a system prompt every request starts with")
    args = ap.parse_args()
    print(json.dumps(run(args.url, args.clients, args.requests, args.max_tokens, args.model, args.system)))


if __name__ == "__main__":
    main()
