#!/usr/bin/env python3
"""Soak: one mmserve serving a vision-language model, its projector and a whisper model under
mixed load for a long time (default 30 minutes, 16 clients).

Load: text through /v1/inference, /v1/chat/completions and /v1/completions, streamed or not,
with random sampling parameters; image captions (JSON base64, multipart upload, chat image_url);
transcriptions (OpenAI's multipart form in every response_format, and /v1/inference); clients
that disconnect at random moments; malformed and bad inputs (JSON, HTTP framing, images, audio).
Every answer is checked strictly (tests/integration/chaos_support.py).

Prints a progress line every minute and a summary at the end, writes it as JSON to
bench/results/soak-latest.json, and exits non-zero when the server crashed (it is restarted and
counted), answered a 5xx, broke the protocol (malformed JSON or SSE, a wrong error shape, a
dropped connection) or did not exit 0 on SIGTERM, or when its RSS grew by 5% or more between
the warm-up (median of the 30 s after --warmup-minutes) and the end (median of the last 30 s).

Usage: python3 bench/soak.py [--minutes 30] [--clients 16] [--seed N]   (or `make soak`)
"""
import argparse
import base64
import json
import math
import os
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import chaos_support as cs  # noqa: E402  (standard library only)

# A small synthetic VLM (224-pixel images, 64 tokens each) as the vision tests use: image
# requests are frequent here, and the default 448-pixel tower would starve everything else of
# the two cores.
VLM_ARGS = ("--image-size", "224", "--vision-layers", "2")
RSS_WINDOW_S = 30
GROWTH_LIMIT_PERCENT = 5.0


def log(msg):
    print(msg, flush=True)


# ------------------------------------------------------------------ media


def _png_file(width, height, pixels):
    """A PNG of width x height whose compressed pixel data is `pixels` (filtered rows)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(pixels))
            + chunk(b"IEND", b""))


def png(width, height, seed=0):
    """An RGB PNG of a colour gradient, made here."""
    rows = b"".join(b"\0" + bytes(((x * 7 + y * 3 + seed) % 256, (x * y + seed) % 256, (y * 5) % 256)
                                  [c] for x in range(width) for c in range(3))
                    for y in range(height))
    return _png_file(width, height, rows)


def png_claiming(width, height):
    """A tiny PNG whose header claims width x height (a decompression bomb)."""
    return _png_file(width, height, b"\0" * 16)


def multipart(fields, files):
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                     + str(value).encode() + b"\r\n")
    for name, (filename, data) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
                     + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# ------------------------------------------------------------------ the server


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class Supervised:
    """The server process; restarted (and counted) when it dies."""

    def __init__(self, cmd, log_path):
        self.cmd, self.log_path = cmd, log_path
        self.lock = threading.Lock()
        self.generation = 0
        self.crashes = []
        self.proc = None
        self.port = None
        self.start()

    def start(self):
        with open(self.log_path, "ab") as logf:
            logf.write(f"\n$ {' '.join(map(str, self.cmd))}\n".encode())
            proc = subprocess.Popen(list(map(str, self.cmd)), stdout=subprocess.PIPE, stderr=logf)
        line = proc.stdout.readline().decode(errors="replace")
        if "listening on" not in line:
            proc.kill()
            raise RuntimeError(f"server did not start: {line!r}; see {self.log_path}")
        threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
        port = int(line.strip().rsplit(":", 1)[1])
        deadline = time.time() + 300
        while True:
            try:
                status = cs.raw_exchange(port, cs.raw_request("GET", "/ready", b"", content_type=None),
                                         timeout=10)[0]
            except cs.Violation:
                status = None
            if status == 200:
                break
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"server never became ready; see {self.log_path}")
            time.sleep(0.2)
        with self.lock:
            self.proc, self.port = proc, port
            self.generation += 1

    def log_tail(self, n=30):
        try:
            lines = self.log_path.read_bytes().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def check(self):
        """Restarts the server if it died; True if it did."""
        with self.lock:
            proc = self.proc
        code = proc.poll()
        if code is None:
            return False
        self.crashes.append({"at_s": round(time.time() - START, 1), "exit_code": code,
                             "log_tail": self.log_tail()})
        log(f"!! server died ({'signal ' + str(-code) if code < 0 else 'exit ' + str(code)}); "
            f"restarting. Log tail:\n{self.log_tail(15)}")
        self.start()
        return True

    def stop(self, timeout=60):
        proc = self.proc
        if proc.poll() is not None:
            return proc.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return "killed after SIGTERM timeout"


START = time.time()


# ------------------------------------------------------------------ the load


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.status = Counter()
        self.latency = defaultdict(list)
        self.by_label = defaultdict(Counter)
        self.unexpected_5xx = []
        self.violations = []
        self.n_5xx = 0
        self.n_violations = 0
        self.crash_affected = 0

    def record(self, label, status, seconds=None):
        with self.lock:
            self.status[str(status)] += 1
            self.by_label[label][str(status)] += 1
            if status == 200 and seconds is not None:
                self.latency[label].append(seconds)

    def five_xx(self, label, message):
        with self.lock:
            self.n_5xx += 1
            if len(self.unexpected_5xx) < 20:
                self.unexpected_5xx.append(f"[{label}] {message}")

    def violation(self, label, message):
        with self.lock:
            self.n_violations += 1
            if len(self.violations) < 20:
                self.violations.append(f"[{label}] {message}")


def expect_200(status, raw, what):
    if status >= 500:
        raise cs.ServerError(f"{what}: HTTP {status}: {cs.describe(raw)}")
    if status != 200:
        raise cs.Violation(f"{what}: a valid request answered HTTP {status}: {cs.describe(raw)}")


class Load:
    def __init__(self, server, stats, media):
        self.server, self.stats, self.media = server, stats, media

    # Each action returns (label, status) or raises cs.Violation.
    def text(self, rng, port):
        kind, stream, result = cs.random_text_call(port, rng, max_tokens_cap=64, timeout=300)
        label = ("text-gen" if kind == "inference" else kind) + ("-stream" if stream else "")
        return label, 200 if result[0] == "ok" else result[1]

    def image(self, rng, port):
        image, mime = rng.choice(self.media["images"])
        stream = rng.random() < 0.4
        params = {"max_tokens": rng.randint(4, 32), "temperature": rng.choice([0, 0.8, 100]),
                  "seed": rng.randrange(2 ** 32)}
        how = rng.choice(["json", "json", "chat", "multipart"])
        label = "image-caption" + ("-stream" if stream and how != "multipart" else "")
        if how == "json":
            body = {"task": "image-caption", "input": base64.b64encode(image).decode(),
                    "parameters": {**params, "prompt": rng.choice(["Describe this image.", "What is it?", "日本語で"])}}
            result = cs.text_call(port, "inference", {**body, "stream": stream}, stream, timeout=300)
        elif how == "chat":
            url = f"data:{mime};base64," + base64.b64encode(image).decode()
            body = {"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "text", "text": "Describe this image."}]}], **params}
            if stream:
                body["stream"] = True
            result = cs.text_call(port, "chat", body, stream, timeout=300)
        else:
            data, ctype = multipart({"task": "image-caption", "parameters": json.dumps(params)},
                                    {"input": ("picture", image)})
            status, headers, raw = cs.post_json(port, "/v1/inference", data, timeout=300,
                                                headers={"Content-Type": ctype})
            what = "multipart image-caption"
            if status != 200:
                cs.check_error(status, headers, raw, what)
                return label, status
            obj = cs.strict_json(raw, what)
            if obj.get("task") != "image-caption" or not isinstance(obj.get("output"), str):
                raise cs.Violation(f"{what}: answer {cs.describe(obj)}")
            return label, 200
        if result[0] != "ok":
            raise cs.Violation(f"image-caption ({how}) answered HTTP {result[1]}: {result[2]}")
        return label, 200

    def transcribe(self, rng, port):
        audio = self.media["audio"]
        if rng.random() < 0.3:
            body = {"task": "speech-transcribe", "input": base64.b64encode(audio).decode(),
                    "parameters": {"timestamps": rng.random() < 0.5}}
            status, headers, raw = cs.post_json(port, "/v1/inference", body, timeout=300)
            what = "speech-transcribe /v1/inference"
            expect_200(status, raw, what)
            obj = cs.strict_json(raw, what)
            if not isinstance(obj.get("output"), str) or not isinstance(obj.get("duration"), (int, float)):
                raise cs.Violation(f"{what}: answer {cs.describe(obj)}")
            return "transcribe", 200
        fmt = rng.choice(["json", "text", "srt", "vtt", "verbose_json"])
        path = rng.choice(["/v1/audio/transcriptions"] * 3 + ["/v1/audio/translations"])
        fields = {"model": "whisper-1", "response_format": fmt}
        if path.endswith("transcriptions") and rng.random() < 0.5:
            fields["language"] = "en"
        data, ctype = multipart(fields, {"file": ("jfk.wav", audio)})
        status, headers, raw = cs.post_json(port, path, data, timeout=300, headers={"Content-Type": ctype})
        what = f"{path} response_format={fmt}"
        expect_200(status, raw, what)
        if fmt in ("json", "verbose_json"):
            obj = cs.strict_json(raw, what)
            if not isinstance(obj.get("text"), str):
                raise cs.Violation(f"{what}: answer {cs.describe(obj)}")
        else:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise cs.Violation(f"{what}: not UTF-8 ({e})") from None
            if fmt == "vtt" and not text.startswith("WEBVTT"):
                raise cs.Violation(f"{what}: not WebVTT: {text[:80]!r}")
        return "transcribe", 200

    def disconnect(self, rng, port):
        cs.disconnect(port, rng, max_tokens_cap=64)
        return "disconnect", "disconnect"

    def bad(self, rng, port):
        roll = rng.randrange(5)
        if roll == 4:
            return "bad-content-type", cs.wrong_content_type(port, rng, timeout=300)
        if roll <= 1:
            return "bad-request", cs.malformed_case(rng, self.media["max_body"]).check(port, timeout=60)
        if roll == 2:
            jpeg = self.media["jpeg"]
            name, data = rng.choice([
                ("bomb", png_claiming(60000, 60000)), ("truncated jpeg", jpeg[:len(jpeg) // 3]),
                ("random bytes", bytes(rng.randrange(256) for _ in range(300))),
                ("empty", b""), ("png header only", png(8, 8)[:40])])
            how = rng.choice(["json", "chat", "bad-base64"])
            if how == "json":
                body = {"task": "image-caption", "input": base64.b64encode(data).decode()}
                if not data:
                    body["input"] = ""
            elif how == "chat":
                url = rng.choice([f"data:image/png;base64,{base64.b64encode(data).decode()}",
                                  "http://169.254.169.254/latest/meta-data", "file:///etc/passwd",
                                  "data:image/png;base64,!!!"])
                body = {"messages": [{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": url}}]}], "max_tokens": 4}
            else:
                body = {"task": "image-caption", "input": "data:image/png;base64,@@@not base64@@@"}
            path = "/v1/chat/completions" if how == "chat" else "/v1/inference"
            status, headers, raw = cs.post_json(port, path, body, timeout=60)
            cs.check_error(status, headers, raw, f"bad image ({name}, {how})")
            return "bad-image", status
        name, data = rng.choice([
            ("random bytes", bytes(rng.randrange(256) for _ in range(2000))), ("empty", b""),
            ("wav header only", self.media["audio"][:44]), ("cut inside the header", self.media["audio"][:20]),
            ("jpeg", self.media["jpeg"][:5000])])
        if rng.random() < 0.5:
            fields = {"model": "whisper-1",
                      "response_format": rng.choice(["json", "xml", "text"]),
                      "temperature": rng.choice(["0", "2", "abc"])}
            body, ctype = multipart(fields, {"file": ("x.bin", data)})
            status, headers, raw = cs.post_json(port, "/v1/audio/transcriptions", body, timeout=60,
                                                headers={"Content-Type": ctype})
        else:
            body = {"task": "speech-transcribe", "input": base64.b64encode(data).decode(),
                    "stream": rng.random() < 0.2}
            status, headers, raw = cs.post_json(port, "/v1/inference", body, timeout=60)
        cs.check_error(status, headers, raw, f"bad audio ({name})")
        return "bad-audio", status

    ACTIONS = [("text", 40), ("image", 12), ("transcribe", 8), ("disconnect", 10), ("bad", 30)]

    def client(self, index, seed, stop):
        rng = cs.make_rng(f"{seed}:{index}")
        names = [n for n, _ in self.ACTIONS]
        weights = [w for _, w in self.ACTIONS]
        while not stop.is_set():
            action = rng.choices(names, weights)[0]
            generation, port = self.server.generation, self.server.port
            t0 = time.time()
            try:
                label, status = getattr(self, action)(rng, port)
                self.stats.record(label, status, time.time() - t0)
                if isinstance(status, int) and status >= 500:
                    self.stats.five_xx(label, f"HTTP {status}")
            except cs.ServerError as e:
                self.stats.five_xx(action, str(e)[:2000])
                self.stats.record(action, "5xx")
            except cs.Violation as e:
                time.sleep(0.5)  # a dying server: let the supervisor see it first
                if self.server.generation != generation or self.server.proc.poll() is not None:
                    with self.stats.lock:
                        self.stats.crash_affected += 1
                    continue
                self.stats.violation(action, str(e)[:2000])
                self.stats.record(action, "violation")
            except Exception as e:  # a client bug must show, not stop the soak silently
                self.stats.violation(action, f"client error {e!r}")
                self.stats.record(action, "client-error")


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[max(0, math.ceil(q / 100 * len(values)) - 1)]  # nearest rank


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--warmup-minutes", type=float, default=2)
    ap.add_argument("--bin", default=os.environ.get("MMSERVE_BIN", str(ROOT / "build/default/mmserve")))
    ap.add_argument("--shared", default=os.environ.get("MMSERVE_SHARED_DIR", str(ROOT.parent / "shared")))
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--workdir", help="where models and the server log go (default: a new temp dir)")
    ap.add_argument("--out", default=str(ROOT / "bench/results/soak-latest.json"))
    args = ap.parse_args()
    if args.warmup_minutes * 60 + 2 * RSS_WINDOW_S > args.minutes * 60:
        ap.error("--minutes must leave a 30 s window after the warm-up and another at the end")

    shared = Path(args.shared)
    audio_path, jpeg_path = shared / "media/jfk.wav", shared / "media/test-1.jpeg"
    for p in (Path(args.bin), audio_path, jpeg_path):
        if not p.exists():
            sys.exit(f"soak: {p} is missing")
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="mmserve-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    log(f"soak: {args.minutes:g} min, {args.clients} clients, seed {args.seed}; work dir {work}")

    vlm = subprocess.run([args.bin, "synth", "vlm", "-o", str(work), *VLM_ARGS], capture_output=True,
                         text=True, check=True).stdout.split()
    whisper = work / "synth-whisper.bin"
    subprocess.run([args.bin, "synth", "whisper", "-o", str(whisper)], capture_output=True, check=True)
    max_body = 8 << 20
    cmd = [args.bin, "serve", "--port", "0", "-m", vlm[0], "--mmproj", vlm[1], "--whisper-model", whisper,
           "--parallel", args.parallel, "--max-body-size", max_body]
    log("$ " + " ".join(map(str, cmd)))
    global START
    START = time.time()
    server = Supervised(cmd, work / "server.log")
    log(f"server ready on port {server.port} after {time.time() - START:.1f} s")

    jpeg = jpeg_path.read_bytes()
    media = {"audio": audio_path.read_bytes(), "jpeg": jpeg, "max_body": max_body,
             "images": [(jpeg, "image/jpeg"), (png(96, 64, 1), "image/png"), (png(300, 200, 2), "image/png")]}
    stats = Stats()
    load = Load(server, stats, media)
    stop = threading.Event()
    START = time.time()
    clients = [threading.Thread(target=load.client, args=(i, args.seed, stop), daemon=True)
               for i in range(args.clients)]
    for t in clients:
        t.start()

    total_s = args.minutes * 60
    warm_at = args.warmup_minutes * 60
    rss_samples = []  # (seconds, generation, bytes)
    next_progress = 60
    while True:
        now = time.time() - START
        if now >= total_s:
            break
        server.check()
        rss = rss_bytes(server.proc.pid)
        if rss is not None:
            rss_samples.append((now, server.generation, rss))
        if now >= next_progress:
            with stats.lock:
                codes = dict(sorted(stats.status.items()))
                n = sum(stats.status.values())
            log(f"[{now / 60:4.1f}/{args.minutes:g} min] {n} requests {codes}; crashes {len(server.crashes)}, "
                f"unexpected 5xx {stats.n_5xx}, violations {stats.n_violations}, "
                f"RSS {rss / 2**20 if rss else float('nan'):.1f} MiB")
            next_progress += 60
        time.sleep(min(2.0, max(0.05, total_s - now)))
    stop.set()
    log("stopping the clients...")
    for t in clients:
        t.join(timeout=360)
    server.check()

    metrics_text = None
    try:
        status, _, raw = cs.raw_exchange(server.port, cs.raw_request("GET", "/metrics", b"", content_type=None),
                                         timeout=30)
        metrics_text = raw.decode()
    except cs.Violation as e:
        stats.violation("metrics", str(e))
    exit_code = server.stop()

    # RSS: the first process only (a restart starts from scratch; the run fails anyway).
    first = [(t, r) for t, g, r in rss_samples if g == 1]
    warm = [r for t, r in first if warm_at <= t < warm_at + RSS_WINDOW_S]
    end = [r for t, r in first if t >= total_s - RSS_WINDOW_S]
    warm_rss = statistics.median(warm) if warm else None
    end_rss = statistics.median(end) if end else None
    growth = (end_rss - warm_rss) / warm_rss * 100 if warm_rss and end_rss else None
    peak = max((r for _, r in first), default=None)
    by_minute = {}  # the last sample of each minute: where the growth happened
    for t, r in first:
        by_minute[int(t // 60)] = r

    server_5xx = 0
    if metrics_text:
        for line in metrics_text.splitlines():
            if line.startswith("mmserve_requests_total{") and 'status="5' in line:
                server_5xx += float(line.rsplit(" ", 1)[1])

    tasks = {}
    for label in sorted(set(stats.by_label) | set(stats.latency)):
        lat = stats.latency.get(label, [])
        tasks[label] = {"requests": sum(stats.by_label[label].values()),
                        "by_status": dict(sorted(stats.by_label[label].items())),
                        "p50_ms": round(percentile(lat, 50) * 1000, 1) if lat else None,
                        "p99_ms": round(percentile(lat, 99) * 1000, 1) if lat else None}
    failures = []
    if server.crashes:
        failures.append(f"{len(server.crashes)} crashes")
    if stats.n_5xx or server_5xx:
        failures.append(f"unexpected 5xx: {stats.n_5xx} seen by clients, {server_5xx:g} counted by the server")
    if stats.n_violations:
        failures.append(f"{stats.n_violations} protocol violations")
    if growth is None:
        failures.append("RSS could not be measured in both windows")
    elif growth >= GROWTH_LIMIT_PERCENT:
        failures.append(f"RSS grew {growth:.2f}% (limit {GROWTH_LIMIT_PERCENT}%)")
    if exit_code != 0:
        failures.append(f"exit code on SIGTERM: {exit_code}")

    mib = (lambda b: round(b / 2**20, 1) if b else None)
    summary = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "minutes": args.minutes, "clients": args.clients, "seed": args.seed, "parallel": args.parallel,
        "server_cmd": [str(c) for c in cmd], "server_log": str(work / "server.log"),
        "requests": sum(stats.status.values()), "by_status": dict(sorted(stats.status.items())),
        "crashes": len(server.crashes), "crash_details": server.crashes,
        "crash_affected_requests": stats.crash_affected,
        "unexpected_5xx": stats.n_5xx, "server_counted_5xx": server_5xx,
        "unexpected_5xx_samples": stats.unexpected_5xx,
        "violations": stats.n_violations, "violation_samples": stats.violations,
        "rss": {"warm_mib": mib(warm_rss), "warm_window_s": [warm_at, warm_at + RSS_WINDOW_S],
                "end_mib": mib(end_rss), "end_window_s": [total_s - RSS_WINDOW_S, total_s],
                "peak_mib": mib(peak), "growth_percent": round(growth, 2) if growth is not None else None,
                "by_minute_mib": [mib(by_minute[m]) for m in sorted(by_minute)]},
        "tasks": tasks, "sigterm_exit_code": exit_code, "failures": failures, "pass": not failures,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")

    log("\n=== soak summary ===")
    log(f"requests {summary['requests']} by status {summary['by_status']}")
    log(f"crashes {summary['crashes']}, unexpected 5xx {stats.n_5xx} (server counted {server_5xx:g}), "
        f"protocol violations {stats.n_violations}, SIGTERM exit {exit_code}")
    log(f"RSS warm {mib(warm_rss)} MiB, end {mib(end_rss)} MiB, peak {mib(peak)} MiB, growth "
        f"{'n/a' if growth is None else f'{growth:+.2f}%'}")
    log("RSS by minute (MiB): " + " ".join(f"{v:.0f}" for v in summary["rss"]["by_minute_mib"] if v))
    log(f"{'task':<22}{'requests':>9}{'p50 ms':>10}{'p99 ms':>10}  statuses")
    for label, t in tasks.items():
        p50 = "-" if t["p50_ms"] is None else f"{t['p50_ms']:.0f}"
        p99 = "-" if t["p99_ms"] is None else f"{t['p99_ms']:.0f}"
        log(f"{label:<22}{t['requests']:>9}{p50:>10}{p99:>10}  {t['by_status']}")
    for sample in stats.unexpected_5xx[:5] + stats.violations[:5]:
        log(f"  {sample[:600]}")
    log(f"written {out}")
    log("PASS" if not failures else "FAIL: " + "; ".join(failures))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
