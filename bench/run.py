#!/usr/bin/env python3
"""mmserve against llama-server and whisper-server: same pinned sources, same model files, same
threads, in one run, as ratios. Writes docs/benchmarks.md and bench/results/latest.json.

  make bench                 # or: python3 bench/run.py [--quick] [--threads N]

Models are synthetic with real shapes (`mmserve synth`), made once into the cache: speed depends
on shapes and types, not weight values. Every generation has a fixed length (ignore_eos).
"""
import argparse
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
from rounds import measured, median_of  # noqa: E402
import speech_workloads  # noqa: E402
import text_workloads  # noqa: E402

CACHE = Path(os.environ.get("MMSERVE_CACHE", Path.home() / ".cache/mmserve"))
MODELS = CACHE / "bench-models"
LOG = ROOT / "build" / "bench.log"
BURSTS = 3  # bursts per launch of a speech server (see the speech workload)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def synth_models(mmserve, quick, speech_only=False):
    MODELS.mkdir(parents=True, exist_ok=True)
    wanted = {
        "llama-3.2-1b-f16": ["llm", "--preset", "llama-3.2-1b", "--type", "f16"],
        "llama-3.2-1b-q8_0": ["llm", "--preset", "llama-3.2-1b", "--type", "q8_0"],
        "llama-3.2-1b-q4_k_m": ["llm", "--preset", "llama-3.2-1b", "--type", "q4_k_m"],
        "moe-small-q8_0": ["llm", "--preset", "moe-small", "--type", "q8_0"],
        "whisper-tiny": ["whisper", "--size", "tiny"],
        "whisper-base": ["whisper", "--size", "base"],
    }
    if quick:
        wanted.pop("llama-3.2-1b-f16")
        wanted.pop("whisper-base")
    if speech_only:
        wanted = {k: v for k, v in wanted.items() if k.startswith("whisper")}
    paths = {}
    for name, args in wanted.items():
        ext = ".bin" if args[0] == "whisper" else ".gguf"
        path = MODELS / (name + ext)
        if not path.exists():
            print(f"[bench] synthesising {name}", file=sys.stderr)
            sh([mmserve, "synth", *args, "-o", str(path)])
        paths[name] = str(path)
    return paths


def text_server(kind, bins, mmserve, model, threads, parallel, ctx, batch=512):
    if kind == "llama-server":
        cmd = servers.llama_server_cmd(str(bins / "llama-server"), model, threads, parallel, ctx, batch)
        return servers.launched(cmd, "/health", LOG)
    cmd = servers.mmserve_cmd(mmserve, threads, parallel, ctx, batch, model=model)
    return servers.launched(cmd, "/ready", LOG)


def run(args):
    mmserve = str(ROOT / "build" / "default" / "mmserve")
    bins = Path(sh([str(HERE / "build_peers.sh")]).strip().splitlines()[-1])
    models = synth_models(mmserve, args.quick, args.speech_only)
    threads = args.threads
    results = {"machine": {"cpus": os.cpu_count(), "threads": threads, "platform": platform.platform()},
               "started": time.strftime("%Y-%m-%d %H:%M:%S"), "quant": [], "concurrency": [], "moe": [],
               "speech": [], "mixed": [], "commands": {}}
    pair = ["llama-server", "mmserve"]
    gen = 32 if args.quick else 128
    prompt_words = 150 if args.quick else 400

    # Each comparison launches both servers `rounds` times, alternating, and reports medians
    # (rounds.py); the shared system prompt and the long recording, where the gaps are several
    # times over, once.
    rounds = args.rounds or (1 if args.quick else 3)
    results["rounds"] = rounds

    # 1. Single stream per quantization: prompt processing and generation.
    text_models = [] if args.speech_only else [n for n in models if n.startswith("llama-3.2-1b")]
    for i, name in enumerate(text_models):
        size = Path(models[name]).stat().st_size
        row = {"model": name, "file_mib": round(size / 2**20, 1)}

        def single(kind, _round, name=name):
            with text_server(kind, bins, mmserve, models[name], threads, 1, 2048) as (url, cmd):
                results["commands"][kind + " (single stream)"] = " ".join(cmd)
                return text_workloads.single_stream(url, prompt_words, gen, repeats=1 if args.quick else 2)
        row.update(measured(rounds, i, pair, single))
        print(f"[bench] {json.dumps(row)}", file=sys.stderr)
        results["quant"].append(row)

    # 2. Concurrent clients on the 4-bit model.
    q4 = models.get("llama-3.2-1b-q4_k_m")
    for i, clients in enumerate([] if args.speech_only else [4, 16]):
        row = {"model": "llama-3.2-1b-q4_k_m", "clients": clients}

        def concurrent(kind, _round, clients=clients):
            with text_server(kind, bins, mmserve, q4, threads, clients, 256 * clients) as (url, cmd):
                results["commands"][kind + " (concurrent)"] = " ".join(cmd)
                return text_workloads.concurrent(url, clients, 1, gen // 2)
        row.update(measured(rounds, i, pair, concurrent))
        print(f"[bench] {json.dumps(row)}", file=sys.stderr)
        results["concurrency"].append(row)

    # 2b. Clients behind one shared system prompt, arriving together: is it computed once?
    system_words = 40 if args.quick else 100
    for kind in [] if args.speech_only else pair:
        row = results.setdefault("shared_system", {"model": "llama-3.2-1b-q4_k_m", "clients": 8,
                                                   "system_words": system_words})
        with text_server(kind, bins, mmserve, q4, threads, 8, 512 * 8) as (url, _):
            row[kind] = text_workloads.concurrent(url, 8, 1, gen // 2, system_words=system_words)
    if not args.speech_only:
        print(f"[bench] shared system prompt {json.dumps(results['shared_system'])}", file=sys.stderr)

    # 3. Mixture of experts: single stream and 4 clients.
    moe = models.get("moe-small-q8_0")

    def moe_round(kind, _round):
        with text_server(kind, bins, mmserve, moe, threads, 4, 2048) as (url, _):
            return {"single": text_workloads.single_stream(url, prompt_words, gen, repeats=1),
                    "clients4": text_workloads.concurrent(url, 4, 1, gen // 2)}
    if not args.speech_only:
        row = {"model": "moe-small-q8_0", **measured(rounds, 0, pair, moe_round)}
        print(f"[bench] {json.dumps(row)}", file=sys.stderr)
        results["moe"].append(row)

    if args.text_only:
        results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        return results

    # 4. Concurrent transcriptions of clips of different lengths.
    jfk = ROOT.parent / "shared" / "media" / "jfk.wav"
    lengths = [3, 8, 15, 30] if not args.quick else [3, 12]
    clips = [(s, speech_workloads.make_clip(str(jfk), s)) for s in lengths]
    long_clip = (120 if not args.quick else 40, None)
    long_clip = (long_clip[0], speech_workloads.make_clip(str(jfk), long_clip[0]))
    short_clip = (3, speech_workloads.make_clip(str(jfk), 3))
    whisper_models = [m for m in ("whisper-tiny", "whisper-base") if m in models]
    for i, wname in enumerate(whisper_models):
        row = {"model": wname, "clips_s": lengths}

        def speech(kind, round_, wname=wname):
            if kind == "whisper-server":
                cmd = servers.whisper_server_cmd(str(bins / "whisper-server"), models[wname], threads)
                ctx = servers.launched(cmd, "/", LOG)
            else:
                cmd = servers.mmserve_cmd(mmserve, threads, 1, 512, 512, whisper=models[wname],
                                          speech_parallel=len(clips))
                ctx = servers.launched(cmd, "/ready", LOG)
            with ctx as (url, cmd):
                results["commands"][kind + " (speech)"] = " ".join(cmd)
                # A burst's first clips finish in well under a second, where one stray scheduling
                # delay shows: each launch takes the median of BURSTS bursts.
                bursts = [speech_workloads.concurrent_transcriptions(url, kind, clips)
                          for _ in range(1 if args.quick else BURSTS)]
                out = {**median_of(bursts), "bursts": bursts}
                if round_ == 0:  # a long recording, then a short clip half a second later
                    out["long_then_short"] = speech_workloads.long_then_short(url, kind, long_clip, short_clip)
                return out
        row.update(measured(rounds, i, ["whisper-server", "mmserve"], speech))
        print(f"[bench] {json.dumps(row)}", file=sys.stderr)
        results["speech"].append(row)

    # 5. Mixed load: text streams and transcriptions at once. Peers: llama-server and
    # whisper-server side by side, each given every core (what a user would deploy).
    mixed_clients = 4

    def mixed(kind, _round):
        if kind == "peers":
            with text_server("llama-server", bins, mmserve, q4, threads, mixed_clients, 256 * mixed_clients) as (turl, _), \
                 servers.launched(servers.whisper_server_cmd(str(bins / "whisper-server"), models["whisper-tiny"], threads),
                                  "/", LOG) as (surl, _):
                return mixed_round(turl, surl, "whisper-server", clips, mixed_clients, gen // 2)
        cmd = servers.mmserve_cmd(mmserve, threads, mixed_clients, 256 * mixed_clients, 512, model=q4,
                                  whisper=models["whisper-tiny"], speech_parallel=2)
        with servers.launched(cmd, "/ready", LOG) as (url, _):
            return mixed_round(url, url, "mmserve", clips, mixed_clients, gen // 2)
    if not args.speech_only:
        t0 = time.perf_counter()
        for kind, row in measured(rounds, 0, ["peers", "mmserve"], mixed).items():
            results["mixed"].append({**row, "server": kind})
        print(f"[bench] mixed {json.dumps(results['mixed'])} ({time.perf_counter() - t0:.0f}s)", file=sys.stderr)

    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return results


def mixed_round(text_url, speech_url, speech_kind, clips, clients, gen):
    import threading
    out = {}

    def text():
        out["text"] = text_workloads.concurrent(text_url, clients, 1, gen)

    def speech():
        out["speech"] = speech_workloads.concurrent_transcriptions(speech_url, speech_kind, clips)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=text), threading.Thread(target=speech)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller models and workloads (a smoke run)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=None,
                    help="launches of each server per comparison, alternating; medians are reported "
                         "(default 3, --quick 1)")
    ap.add_argument("--text-only", action="store_true", help="skip the speech and mixed workloads")
    ap.add_argument("--speech-only", action="store_true", help="only the speech workloads")
    ap.add_argument("--json", default=str(HERE / "results" / "latest.json"))
    ap.add_argument("--markdown", default=str(ROOT / "docs" / "benchmarks.md"))
    args = ap.parse_args()
    LOG.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    results = run(args)
    results["elapsed_s"] = round(time.time() - t0)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    import report
    # What follows the marker (other benchmarks' sections, written by hand) is kept.
    doc = Path(args.markdown)
    tail = doc.read_text().partition(report.END_MARKER)[2] if doc.exists() else ""
    doc.write_text(report.markdown(results) + report.END_MARKER + tail)
    print(f"[bench] wrote {args.json} and {args.markdown} in {results['elapsed_s']} s", file=sys.stderr)


if __name__ == "__main__":
    main()
