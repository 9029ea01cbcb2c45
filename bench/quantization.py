#!/usr/bin/env python3
"""What quantization buys: file size, bits per weight and speed of F32, F16, Q8_0 and Q4_K_M
copies of one real-shaped model, every copy made with `mmserve quantize`.

  python3 bench/quantization.py [--preset llama-3.2-1b] [--layers N] [--threads 2]

The F16 model is synthetic (`mmserve synth llm`: random weights, real shape; speed depends on
shape and type, not on values). F32 is `mmserve quantize F16 -> F32` (exact), and Q8_0 / Q4_K_M
are quantized from that F32 file, the full-precision starting point the usual claim compares
against. Speeds come from `mmserve serve` on one stream, the same threads for every type:
prompt tokens/s from a 1-token completion of a long prompt, generation tokens/s from a fixed-
length (ignore_eos) stream after its first token; best of --repeats. Prints a Markdown table
and writes bench/results/quantization-latest.json.
"""
import argparse
import http.client
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import servers  # noqa: E402
from text_workloads import long_prompt  # noqa: E402

CACHE = Path(os.environ.get("MMSERVE_CACHE", Path.home() / ".cache/mmserve"))
LOG = ROOT / "build" / "bench-quantization.log"
TYPES = ["F32", "F16", "Q8_0", "Q4_K_M"]


def run(cmd):
    proc = subprocess.run([str(c) for c in cmd], text=True, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def info(mmserve, path):
    return json.loads(run([mmserve, "info", path, "--json"]))


def make_models(mmserve, workdir, preset, layers, threads):
    """{type: (path, quantize report or None)}, made once into workdir."""
    workdir.mkdir(parents=True, exist_ok=True)
    stem = preset + (f"-{layers}l" if layers else "")
    f16 = workdir / f"{stem}-F16.gguf"
    if not f16.exists():
        print(f"[quant] synthesising {f16.name}", file=sys.stderr)
        extra = ["--layers", str(layers)] if layers else []
        run([mmserve, "synth", "llm", "--preset", preset, "--type", "f16", "-o", f16, *extra])
    models = {"F16": (f16, None)}
    for qtype, source in (("F32", f16), ("Q8_0", None), ("Q4_K_M", None)):
        src = source or models["F32"][0]
        out = workdir / f"{stem}-{qtype}.gguf"
        print(f"[quant] mmserve quantize {src.name} {out.name} {qtype}", file=sys.stderr)
        report = json.loads(run([mmserve, "quantize", src, out, qtype, "-t", threads, "--json"]))
        models[qtype] = (out, report)
    return models


def completion(port, prompt, max_tokens):
    """One streamed /v1/completions: (seconds to the first token, seconds in all, usage)."""
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "ignore_eos": True, "stream": True,
                       "stream_options": {"include_usage": True}})
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:300]!r}")
    first, usage = None, None
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[6:])
        if first is None and event.get("choices"):
            first = time.perf_counter()
        usage = event.get("usage") or usage
    end = time.perf_counter()
    conn.close()
    return (first or end) - t0, end - t0, usage


def speed(mmserve, model, threads, prompt_words, gen, repeats):
    """Best of `repeats`: prompt tokens/s from a 1-token completion of a long prompt (a new first
    word each time, so no cached prefix helps), generation tokens/s after the first token."""
    cmd = servers.mmserve_cmd(mmserve, threads, 1, 2048, 512, model=str(model))
    with servers.launched(cmd, "/ready", LOG) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        pp, tg, n_prompt = [], [], 0
        for r in range(repeats):
            _, total, usage = completion(port, f"run{r} {long_prompt(prompt_words)}", 1)
            n_prompt = usage["prompt_tokens"]
            pp.append(n_prompt / total)
            ttft, total, usage = completion(port, f"gen{r} Once upon a time", gen)
            tg.append((usage["completion_tokens"] - 1) / max(1e-9, total - ttft))
        return {"prompt_tokens": n_prompt, "pp_tokens_per_s": round(max(pp), 2),
                "gen_tokens": gen, "tg_tokens_per_s": round(max(tg), 2)}


def table(rows):
    f32 = rows["F32"]
    lines = ["| type | file MiB | bits per weight | smaller than F32 | prompt tok/s | "
             "vs F32 | generation tok/s | vs F32 | quantize s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for t in TYPES:
        r = rows[t]
        q = f"{r['quantize_s']:.1f}" if r["quantize_s"] is not None else "(synthesised)"
        lines.append(
            f"| {t} | {r['file_bytes'] / 2**20:.1f} | {r['bits_per_weight']:.2f} | "
            f"{f32['file_bytes'] / r['file_bytes']:.2f}x | {r['pp_tokens_per_s']:.1f} | "
            f"{r['pp_tokens_per_s'] / f32['pp_tokens_per_s']:.2f}x | {r['tg_tokens_per_s']:.2f} | "
            f"{r['tg_tokens_per_s'] / f32['tg_tokens_per_s']:.2f}x | {q} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mmserve", default=str(ROOT / "build/default/mmserve"))
    ap.add_argument("--preset", default="llama-3.2-1b")
    ap.add_argument("--layers", type=int, default=0, help="override the preset's layer count")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-words", type=int, default=200)
    ap.add_argument("--gen", type=int, default=64, help="generated tokens per measurement")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workdir", default=str(CACHE / "bench-models" / "quantization"))
    ap.add_argument("--json", default=str(HERE / "results" / "quantization-latest.json"))
    args = ap.parse_args()
    LOG.parent.mkdir(parents=True, exist_ok=True)

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    models = make_models(args.mmserve, Path(args.workdir), args.preset, args.layers, args.threads)
    rows = {}
    for t in TYPES:  # F32 first: the baseline every ratio is against
        path, report = models[t]
        summary = info(args.mmserve, path)
        print(f"[quant] measuring {path.name}", file=sys.stderr)
        s = speed(args.mmserve, path, args.threads, args.prompt_words, args.gen, args.repeats)
        rows[t] = {"file": str(path), "file_bytes": path.stat().st_size,
                   "parameters": summary["parameters"], "file_type": summary["file_type"],
                   "bits_per_weight": summary["weights_bytes"] * 8 / summary["parameters"],
                   "quantize_s": report["seconds"] if report else None, **s}
        print(f"[quant] {json.dumps(rows[t])}", file=sys.stderr)
    result = {"started": started, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
              "machine": f"{os.cpu_count()} CPUs, {platform.platform()}",
              "preset": args.preset, "layers": args.layers or None, "threads": args.threads,
              "prompt_words": args.prompt_words, "gen_tokens": args.gen, "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    n = rows["F32"]["parameters"]
    print(f"{args.preset}{f' ({args.layers} layers)' if args.layers else ''}: {n / 1e6:.1f}M "
          f"parameters, {args.threads} threads, prompt {rows['F32']['prompt_tokens']} tokens, "
          f"generation {args.gen} tokens; {result['machine']}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
