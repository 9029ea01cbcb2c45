"""A fake Hugging Face Hub for the `mmserve pull` tests: real HTTP servers on loopback.

Two servers, as on huggingface.co: the Hub (127.0.0.1:P1) answers the API and the resolve URLs;
large files redirect (302) to a "CDN" on another host and port (localhost:P2), which serves the
bytes with Range support. What the Hub answers imitates huggingface.co:

    GET  /api/models/OWNER/REPO                       {"id", "siblings": [{"rfilename"}]}
    GET  /api/models/OWNER/REPO/tree/REV?recursive=.. [{"type": "file", "path", "size", "oid",
                                                        "lfs": {"oid": SHA256, "size"}}]
    HEAD|GET /OWNER/REPO/resolve/REV/PATH             302 to the CDN, with X-Linked-Etag
                                                      ("SHA256"), X-Linked-Size, ETag, X-Repo-Commit;
                                                      files not in LFS (README.md) served directly
    CDN: HEAD|GET /lfs/OWNER/REPO/PATH and /files/NAME (plain URLs), 206 + Content-Range on Range

Knobs (attributes, changed by the tests between pulls):
    cut_after       a CDN response sends this many body bytes, then drops the connection
    cut_at          the CDN never sends a byte past this offset of the file (drops there)
    stall_once_at   the first CDN response stops at this offset and then sends nothing for
                    `stall_seconds` (a stalled server), later ones are normal
    ignore_range    the CDN answers a Range request with 200 and the whole file
    wrong_bytes     the CDN flips one byte in the middle (the size stays right)
    size_delta      the listing and X-Linked-Size report the size plus this
    require_token   the Hub answers 401 without `Authorization: Bearer <token>`
    throttle        seconds to sleep after each 64 KiB the CDN sends
    refuse_head     the CDN answers HEAD with 405 (as some servers do)
Every request is recorded in `requests` as (server, method, path, headers-dict).
"""
import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

CHUNK = 64 * 1024


class FakeHub:
    def __init__(self):
        self.repos = {}   # "owner/repo" -> {path: bytes}
        self.plain = {}   # name -> bytes (plain URLs on the CDN)
        self.requests = []
        self.lock = threading.Lock()
        self.cut_after = None
        self.cut_at = None
        self.stall_once_at = None
        self.stall_seconds = 3.0
        self.ignore_range = False
        self.wrong_bytes = False
        self.size_delta = 0
        self.require_token = None
        self.throttle = 0.0
        self.refuse_head = False
        self._hub = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, "hub"))
        self._cdn = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, "cdn"))
        for s in (self._hub, self._cdn):
            s.daemon_threads = True
            threading.Thread(target=s.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._hub.server_address[1]}"
        # Another host name for the same loopback: another origin, as the real CDN is.
        self.cdn_url = f"http://localhost:{self._cdn.server_address[1]}"

    def add(self, repo, path, data):
        self.repos.setdefault(repo, {})[path] = data

    def seen(self, server=None, method=None, contains=""):
        with self.lock:
            return [r for r in self.requests
                    if (server is None or r[0] == server) and (method is None or r[1] == method)
                    and contains in r[2]]

    def close(self):
        for s in (self._hub, self._cdn):
            s.shutdown()
            s.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _handler(hub, role):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _record(self):
            with hub.lock:
                hub.requests.append((role, self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))

        def _send(self, status, body=b"", headers=None, ctype="application/json"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            self._record()
            path = unquote(urlparse(self.path).path)
            if role == "hub":
                self._hub(path)
            else:
                self._cdn(path)

        # --- the Hub ---------------------------------------------------------------------
        def _hub(self, path):
            import json
            if hub.require_token and self.headers.get("Authorization") != f"Bearer {hub.require_token}":
                return self._send(401, b'{"error":"Invalid credentials in Authorization header"}')
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                repo = "/".join(parts[2:4])
                if repo not in hub.repos:
                    return self._send(404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound"})
                files = hub.repos[repo]
                if len(parts) == 4:
                    body = {"id": repo, "siblings": [{"rfilename": p} for p in sorted(files)]}
                    return self._send(200, json.dumps(body).encode())
                if len(parts) >= 6 and parts[4] == "tree":
                    listing = []
                    for p, data in sorted(files.items()):
                        entry = {"type": "file", "path": p, "size": len(data) + hub.size_delta,
                                 "oid": hashlib.sha1(data).hexdigest()}
                        if not p.endswith(".md"):
                            entry["lfs"] = {"oid": _sha(data), "size": len(data) + hub.size_delta,
                                            "pointerSize": 134}
                        listing.append(entry)
                    return self._send(200, json.dumps(listing).encode())
                return self._send(404, b'{"error":"not found"}')
            if len(parts) >= 5 and parts[2] == "resolve":
                repo, rel = "/".join(parts[:2]), "/".join(parts[4:])
                if repo not in hub.repos:
                    return self._send(404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound"})
                data = hub.repos[repo].get(rel)
                if data is None:
                    return self._send(404, b'{"error":"Entry not found"}', {"X-Error-Code": "EntryNotFound"})
                if rel.endswith(".md"):
                    return self._send(200, data, {"ETag": f'"{hashlib.sha1(data).hexdigest()}"'}, "text/plain")
                return self._send(302, b"", {
                    "Location": f"{hub.cdn_url}/lfs/{repo}/{rel}",
                    "X-Linked-Etag": f'"{_sha(data)}"',
                    "X-Linked-Size": str(len(data) + hub.size_delta),
                    "ETag": f'"{_sha(data)}"',
                    "X-Repo-Commit": "0123456789abcdef0123456789abcdef01234567"})
            return self._send(404, b'{"error":"not found"}')

        # --- the CDN ---------------------------------------------------------------------
        def _cdn(self, path):
            parts = path.strip("/").split("/")
            data = None
            if parts[0] == "lfs" and len(parts) >= 4:
                data = hub.repos.get("/".join(parts[1:3]), {}).get("/".join(parts[3:]))
            elif parts[0] == "files" and len(parts) == 2:
                data = hub.plain.get(parts[1])
            if data is None:
                return self._send(404, b"<Error>NoSuchKey</Error>", ctype="application/xml")
            if hub.refuse_head and self.command == "HEAD":
                return self._send(405, b"", {"Allow": "GET"})
            if hub.wrong_bytes:
                mid = len(data) // 2
                data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:]
            start, end = 0, len(data) - 1
            rng = self.headers.get("Range")
            status = 200
            if rng and not hub.ignore_range:
                spec = rng.split("=", 1)[1]
                a, b = spec.split("-", 1)
                start = int(a)
                end = int(b) if b else len(data) - 1
                end = min(end, len(data) - 1)
                if start >= len(data):
                    return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                status = 206
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{_sha(data)}"')
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            if self.command == "HEAD":
                return
            stop = end + 1
            cut = False
            if hub.cut_after is not None and start + hub.cut_after < stop:
                stop, cut = start + hub.cut_after, True
            if hub.cut_at is not None and hub.cut_at < stop:
                stop, cut = max(start, hub.cut_at), True
            stall_at = hub.stall_once_at
            if stall_at is not None and start <= stall_at < stop:
                hub.stall_once_at = None
            else:
                stall_at = None
            pos = start
            try:
                while pos < stop:
                    if stall_at is not None and pos >= stall_at:
                        self.wfile.flush()
                        time.sleep(hub.stall_seconds)
                        cut = True
                        break
                    n = min(CHUNK, stop - pos, (stall_at - pos) if stall_at is not None else CHUNK)
                    self.wfile.write(data[pos:pos + n])
                    pos += n
                    if hub.throttle:
                        self.wfile.flush()
                        time.sleep(hub.throttle)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                cut = True
            if cut:
                self.close_connection = True
                try:
                    self.connection.shutdown(2)
                except OSError:
                    pass

    return Handler


class ForwardProxy:
    """A plain-HTTP forward proxy on 127.0.0.1 that records each absolute URL it forwards."""

    def __init__(self):
        import http.client
        proxy = self
        self.urls = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                proxy.urls.append(self.path)
                u = urlparse(self.path)
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
                conn.request(self.command, u.path + (f"?{u.query}" if u.query else ""), headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body) if self.command != "HEAD" else resp.getheader("Content-Length", "0")))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                conn.close()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self):
        self._server.shutdown()
        self._server.server_close()
