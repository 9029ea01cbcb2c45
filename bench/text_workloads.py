"""Text workloads shared by every server under test (OpenAI-compatible /v1/completions).

single_stream: prompt processing of a ~512-token prompt (time to first token) and generation of
128 tokens, one request at a time. concurrent: N clients streaming back to back (load_text),
optionally all behind one shared system prompt.
"""
import http.client
import json
import time
from urllib.parse import urlparse

from load_text import run as concurrent_load

WORDS = ("the little dog ran to the park and played with a red ball while the sun was shining "
         "over the green hills and the children laughed ").split()


def long_prompt(n_words):
    return " ".join(WORDS[i % len(WORDS)] for i in range(n_words))


def completion(url, prompt, max_tokens, stream):
    parsed = urlparse(url)
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
                       "stream": stream, "stream_options": {"include_usage": True}, "cache_prompt": False})
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=1800)
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:300]!r}")
    first, usage = None, None
    if stream:
        for raw in resp:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if first is None and event.get("choices") and event["choices"][0].get("text"):
                first = time.perf_counter()
            if event.get("usage"):
                usage = event["usage"]
    else:
        usage = json.loads(resp.read())["usage"]
    end = time.perf_counter()
    conn.close()
    return {"ttft_s": (first or end) - t0, "total_s": end - t0, "usage": usage}


def single_stream(url, prompt_words=400, gen_tokens=128, repeats=2):
    """Best of `repeats`: prompt tokens/s from a 1-token request, generation tokens/s from the
    stream's time after its first token."""
    prompt = long_prompt(prompt_words)
    pp, tg, n_prompt = [], [], 0
    for r in range(repeats):
        # A distinct first word per run keeps any prompt cache from helping.
        p = f"run{r} {prompt}"
        one = completion(url, p, 1, stream=False)
        n_prompt = one["usage"]["prompt_tokens"]
        pp.append(n_prompt / one["total_s"])
        gen = completion(url, f"gen{r} Once upon a time", gen_tokens, stream=True)
        n_gen = gen["usage"]["completion_tokens"] if gen["usage"] else gen_tokens
        tg.append((n_gen - 1) / max(1e-9, gen["total_s"] - gen["ttft_s"]))
    return {"prompt_tokens": n_prompt, "pp_tokens_per_s": round(max(pp), 2),
            "gen_tokens": gen_tokens, "tg_tokens_per_s": round(max(tg), 2)}


def concurrent(url, clients, requests_per_client, gen_tokens, system_words=0):
    """`system_words` > 0: every prompt starts with the same system prompt of that many words."""
    system = f"You are a helpful assistant. {long_prompt(system_words)}" if system_words else ""
    return concurrent_load(url, clients, requests_per_client, gen_tokens, system=system)
