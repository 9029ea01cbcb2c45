"""Turns bench/run.py's results into docs/benchmarks.md: tables of both servers and ratios."""


# docs/benchmarks.md: make bench rewrites what comes before this line and keeps what follows.
END_MARKER = "<!-- end of make bench's part -->\n"


def ratio(ours, theirs, higher_is_better=True):
    if not ours or not theirs:
        return "n/a"
    r = ours / theirs if higher_is_better else theirs / ours
    return f"{r:.2f}x"


def markdown(res):
    m = res["machine"]
    lines = [
        "# Benchmarks: mmserve against llama-server and whisper-server",
        "",
        f"Measured {res['started']} to {res['finished']} ({res.get('elapsed_s', '?')} s) on "
        f"{m['cpus']} CPUs, {m['threads']} threads for every server, {m['platform']}.",
        "Peers are built by `bench/build_peers.sh` from the same pinned llama.cpp and whisper.cpp",
        "sources, linked to the very libggml mmserve's engines use (same kernels and CPU flags);",
        "models are synthetic with real shapes",
        "(`mmserve synth`), identical files for both sides. Ratios are mmserve / peer for",
        "throughput (higher is better) and peer / mmserve for latency (higher is better), taken",
        "in one run with the servers alternating. "
        f"Each figure is the median of {res.get('rounds', 1)} launches of its server, alternating with the "
        "other's (every launch is in the raw results); the shared system prompt and the long "
        "recording are measured once, and a launch's burst figures are the median of its bursts (each "
        "kept). Reproduce with `make bench`.",
        "",
        "## Single stream, by quantization (Llama 3.2 1B shape)",
        "",
        "| model | file MiB | prompt tok/s llama-server | prompt tok/s mmserve | ratio | gen tok/s llama-server | gen tok/s mmserve | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in res["quant"]:
        p, o = row["llama-server"], row["mmserve"]
        lines.append(f"| {row['model']} | {row['file_mib']} | {p['pp_tokens_per_s']} | {o['pp_tokens_per_s']} | "
                     f"{ratio(o['pp_tokens_per_s'], p['pp_tokens_per_s'])} | {p['tg_tokens_per_s']} | "
                     f"{o['tg_tokens_per_s']} | {ratio(o['tg_tokens_per_s'], p['tg_tokens_per_s'])} |")
    if res["quant"]:
        n = res["quant"][0]["mmserve"]
        lines += ["", f"Prompt: {n['prompt_tokens']} tokens; generation: {n['gen_tokens']} tokens."]
    lines += ["", "## Concurrent clients (Llama 3.2 1B shape, Q4_K_M)", "",
              "| clients | tok/s llama-server | tok/s mmserve | ratio | TTFT p50/p99 ms llama-server | TTFT p50/p99 ms mmserve | p99 ratio | e2e p50/p99 ms llama-server | e2e p50/p99 ms mmserve |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in res["concurrency"]:
        p, o = row["llama-server"], row["mmserve"]
        lines.append(f"| {row['clients']} | {p['tokens_per_s']} | {o['tokens_per_s']} | {ratio(o['tokens_per_s'], p['tokens_per_s'])} | "
                     f"{p['ttft_p50_ms']}/{p['ttft_p99_ms']} | {o['ttft_p50_ms']}/{o['ttft_p99_ms']} | "
                     f"{ratio(o['ttft_p99_ms'], p['ttft_p99_ms'], higher_is_better=False)} | "
                     f"{p['e2e_p50_ms']}/{p['e2e_p99_ms']} | {o['e2e_p50_ms']}/{o['e2e_p99_ms']} |")
    shared = res.get("shared_system")
    if shared and "mmserve" in shared and "llama-server" in shared:
        p, o = shared["llama-server"], shared["mmserve"]
        lines += ["", f"## {shared['clients']} clients behind one shared system prompt "
                      f"({shared['system_words']} words), sent together", "",
                  "| | tok/s | TTFT p50/p99 ms | e2e p50/p99 ms |", "|---|---|---|---|",
                  f"| llama-server | {p['tokens_per_s']} | {p['ttft_p50_ms']}/{p['ttft_p99_ms']} | {p['e2e_p50_ms']}/{p['e2e_p99_ms']} |",
                  f"| mmserve | {o['tokens_per_s']} | {o['ttft_p50_ms']}/{o['ttft_p99_ms']} | {o['e2e_p50_ms']}/{o['e2e_p99_ms']} |",
                  f"| ratio | {ratio(o['tokens_per_s'], p['tokens_per_s'])} | "
                  f"{ratio(o['ttft_p99_ms'], p['ttft_p99_ms'], higher_is_better=False)} (p99) | "
                  f"{ratio(o['e2e_p99_ms'], p['e2e_p99_ms'], higher_is_better=False)} (p99) |"]
    for row in res["moe"]:
        p, o = row["llama-server"], row["mmserve"]
        lines += ["", "## Mixture of experts (8 experts, 2 used per token, Q8_0)", "",
                  "| workload | llama-server | mmserve | ratio |", "|---|---|---|---|",
                  f"| prompt tok/s | {p['single']['pp_tokens_per_s']} | {o['single']['pp_tokens_per_s']} | {ratio(o['single']['pp_tokens_per_s'], p['single']['pp_tokens_per_s'])} |",
                  f"| generation tok/s | {p['single']['tg_tokens_per_s']} | {o['single']['tg_tokens_per_s']} | {ratio(o['single']['tg_tokens_per_s'], p['single']['tg_tokens_per_s'])} |",
                  f"| 4 clients tok/s | {p['clients4']['tokens_per_s']} | {o['clients4']['tokens_per_s']} | {ratio(o['clients4']['tokens_per_s'], p['clients4']['tokens_per_s'])} |"]
    if res["speech"]:
        lines += ["", "## Concurrent transcriptions (a burst: the clips sent 20 ms apart, shortest first)", "",
                  "| model | clips s | wall s whisper-server | wall s mmserve | throughput ratio | latency per clip whisper-server | latency per clip mmserve |",
                  "|---|---|---|---|---|---|---|"]
        for row in res["speech"]:
            p, o = row["whisper-server"], row["mmserve"]
            lines.append(f"| {row['model']} | {row['clips_s']} | {p['wall_s']} | {o['wall_s']} | "
                         f"{ratio(o['audio_s_per_s'], p['audio_s_per_s'])} | {p['latency_s']} | {o['latency_s']} |")
        lines += ["", "## A short clip behind a long recording", "",
                  "The long recording is sent first, the 3 s clip half a second later; latency of each "
                  "(s), and how much sooner the short clip is done with mmserve.", "",
                  "| model | long s | long: whisper-server | long: mmserve | short: whisper-server | "
                  "short: mmserve | short clip sooner |", "|---|---|---|---|---|---|---|"]
        for row in res["speech"]:
            p = row["whisper-server"].get("long_then_short")
            o = row["mmserve"].get("long_then_short")
            if p and o:
                lines.append(f"| {row['model']} | {o['long_s']} | {p['long_latency_s']} | {o['long_latency_s']} | "
                             f"{p['short_latency_s']} | {o['short_latency_s']} | "
                             f"{ratio(o['short_latency_s'], p['short_latency_s'], higher_is_better=False)} |")
    if res["mixed"]:
        by = {r["server"]: r for r in res["mixed"]}
        p, o = by.get("peers"), by.get("mmserve")
        lines += ["", "## Mixed load: text streams and transcriptions at once", "",
                  "Peers: llama-server and whisper-server side by side, each with every core. "
                  "mmserve: one process with both models.", "",
                  "| | wall s | text tok/s | audio s/s |", "|---|---|---|---|"]
        for name, r in (("llama-server + whisper-server", p), ("mmserve", o)):
            if r:
                lines.append(f"| {name} | {r['wall_s']} | {r['text']['tokens_per_s']} | {r['speech']['audio_s_per_s']} |")
        if p and o:
            lines += ["", f"Mixed-load ratio (peers' wall time / mmserve's): {ratio(o['wall_s'], p['wall_s'], higher_is_better=False)}."]
    lines += ["", "## Commands", ""]
    for name, cmd in sorted(res["commands"].items()):
        lines.append(f"- {name}: `{cmd}`")
    lines += ["", "Raw results: `bench/results/latest.json`.", ""]
    return "\n".join(lines)
