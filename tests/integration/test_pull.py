"""`mmserve pull`, `list` and `rm` against a fake Hugging Face Hub on loopback (fake_hub.py):
the choice of files, resume, verification, atomicity, the lock, the token and the errors."""
import hashlib
import json
import os
import shutil
import subprocess
import threading

import pytest

from conftest import BIN, SHARED, STORIES
from fake_hub import FakeHub, ForwardProxy

REPO = "test/Stories-GGUF"
WHISPER_TINY = SHARED / "models" / "for-tests-ggml-tiny.bin"
pytestmark = pytest.mark.skipif(not STORIES.exists() or not WHISPER_TINY.exists(),
                                reason="needs ../shared/models")


def rand(n, seed):
    return hashlib.shake_256(seed.encode()).digest(n)


@pytest.fixture
def hub():
    with FakeHub() as h:
        h.add(REPO, "README.md", b"# stories\n")
        h.add(REPO, "stories-Q4_K_M.gguf", STORIES.read_bytes())
        h.add(REPO, "stories-Q8_0.gguf", rand(3 << 20, "q8"))
        h.add(REPO, "mmproj-stories-Q8_0.gguf", rand(100_000, "mq8"))
        h.add(REPO, "mmproj-stories-F16.gguf", rand(200_000, "mf16"))
        h.add("test/Only-Q8", "Only-Q8_0.gguf", rand(50_000, "only"))
        h.add("test/Split-GGUF", "Q2_K/Big-Q2_K-00001-of-00002.gguf", rand(40_000, "s1"))
        h.add("test/Split-GGUF", "Q2_K/Big-Q2_K-00002-of-00002.gguf", rand(30_000, "s2"))
        h.add("ggerganov/whisper.cpp", "ggml-tiny.bin", WHISPER_TINY.read_bytes())
        h.add("ggerganov/whisper.cpp", "ggml-base.en.bin", rand(10_000, "base"))
        h.plain["blob.bin"] = rand(1 << 20, "blob")
        yield h


def run(args, hub, tmp_path, env=None, timeout=30):
    e = {k: v for k, v in os.environ.items()
         if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "hf_token")}
    e.update({"HF_ENDPOINT": hub.url, "MMSERVE_MODELS_DIR": str(tmp_path / "models")})
    e.update(env or {})
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=e, timeout=timeout)


def leftovers(d):
    return sorted(p.name for p in d.iterdir() if p.name.endswith((".partial", ".lock")))


def test_default_quant_takes_q4_k_m_and_the_f16_mmproj(hub, tmp_path):
    r = run(["pull", "hf:" + REPO], hub, tmp_path)
    assert r.returncode == 0, r.stderr
    d = tmp_path / "models"
    assert "default Q4_K_M" in r.stderr and "available: Q4_K_M, Q8_0" in r.stderr
    assert (d / "stories-Q4_K_M.gguf").read_bytes() == STORIES.read_bytes()
    assert (d / "mmproj-stories-F16.gguf").read_bytes() == hub.repos[REPO]["mmproj-stories-F16.gguf"]
    assert sorted(p.name for p in d.iterdir()) == ["mmproj-stories-F16.gguf", "stories-Q4_K_M.gguf"]
    assert f"serve it with: mmserve serve -m {d}/stories-Q4_K_M.gguf --mmproj {d}/mmproj-stories-F16.gguf" in r.stdout
    assert "verified" in r.stderr
    # The Hub itself is asked for the listing and the resolve URLs; the bytes come from the CDN.
    assert hub.seen("hub", "GET", "/api/models/test/Stories-GGUF/tree/main")
    assert len(hub.seen("cdn", "GET", "stories-Q4_K_M.gguf")) == 1
    # Again: nothing downloaded, the files are verified in place.
    r = run(["pull", REPO], hub, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("already present (size and sha256 match)") == 2
    assert len(hub.seen("cdn", "GET", "stories-Q4_K_M.gguf")) == 1


def test_explicit_quant_is_case_insensitive_and_json(hub, tmp_path):
    r = run(["pull", "hf:" + REPO + ":q8_0", "--json", "--dir", str(tmp_path / "elsewhere")], hub, tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    names = [os.path.basename(f["path"]) for f in out["files"]]
    assert names == ["stories-Q8_0.gguf", "mmproj-stories-F16.gguf"]
    data = hub.repos[REPO]["stories-Q8_0.gguf"]
    assert out["files"][0]["sha256"] == hashlib.sha256(data).hexdigest() and out["files"][0]["downloaded"]
    assert (tmp_path / "elsewhere" / "stories-Q8_0.gguf").read_bytes() == data
    assert not (tmp_path / "models").exists()


def test_exact_file_forms_and_no_mmproj(hub, tmp_path):
    r = run(["pull", f"hf:{REPO}/stories-Q8_0.gguf", "--no-mmproj"], hub, tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["stories-Q8_0.gguf"]
    r = run(["pull", f"{hub.url}/{REPO}/resolve/main/mmproj-stories-Q8_0.gguf"], hub, tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "models" / "mmproj-stories-Q8_0.gguf").exists()


def test_fallbacks_and_split_files(hub, tmp_path):
    r = run(["pull", "test/Only-Q8"], hub, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "no Q4_K_M, so Q8_0" in r.stderr
    r = run(["pull", "hf:test/Split-GGUF:Q2_K"], hub, tmp_path)
    assert r.returncode == 0, r.stderr
    d = tmp_path / "models"
    assert (d / "Big-Q2_K-00002-of-00002.gguf").read_bytes() == rand(30_000, "s2")
    assert f"mmserve serve -m {d}/Big-Q2_K-00001-of-00002.gguf" in r.stdout


def test_whisper_model_by_name(hub, tmp_path):
    r = run(["pull", "whisper:tiny"], hub, tmp_path)
    assert r.returncode == 0, r.stderr
    path = tmp_path / "models" / "ggml-tiny.bin"
    assert path.read_bytes() == WHISPER_TINY.read_bytes()
    assert f"mmserve serve --whisper-model {path}" in r.stdout
    assert hub.seen("hub", "GET", "/api/models/ggerganov/whisper.cpp/tree/main")
    r = run(["pull", "whisper:huge-v9"], hub, tmp_path)
    assert r.returncode == 1
    assert "no whisper.cpp model 'huge-v9'" in r.stderr and "base.en, tiny" in r.stderr


def test_plain_url_with_sha256_right_and_wrong(hub, tmp_path):
    data = hub.plain["blob.bin"]
    url = f"{hub.cdn_url}/files/blob.bin"
    wrong = "0" * 64
    r = run(["pull", url, "--sha256", wrong], hub, tmp_path)
    assert r.returncode == 1
    assert f"sha256 mismatch: expected {wrong}, got {hashlib.sha256(data).hexdigest()}" in r.stderr
    d = tmp_path / "models"
    assert list(d.iterdir()) == []  # no final file, no partial, no lock
    r = run(["pull", url, "--sha256", hashlib.sha256(data).hexdigest().upper(), "--output", "b.bin"], hub, tmp_path)
    assert r.returncode == 0, r.stderr
    assert (d / "b.bin").read_bytes() == data
    hub.refuse_head = True  # the size then comes from the GET's Content-Length
    r = run(["pull", url], hub, tmp_path)
    assert r.returncode == 0, r.stderr
    assert (d / "blob.bin").read_bytes() == data and "no remote hash to check" in r.stderr
    r = run(["pull", url, "--sha256", "abc"], hub, tmp_path)
    assert r.returncode == 2 and "--sha256" in r.stderr
    r = run(["pull", f"{hub.cdn_url}/files/absent.bin"], hub, tmp_path)
    assert r.returncode == 1 and "not found (HTTP 404)" in r.stderr


def test_resume_after_cuts_within_one_pull(hub, tmp_path):
    hub.cut_after = 700_000  # every response is cut after 700 kB: four requests for 3 MiB
    r = run(["pull", f"{REPO}:Q8_0", "--no-mmproj"], hub, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "transfer interrupted" in r.stderr
    gets = hub.seen("cdn", "GET", "stories-Q8_0.gguf")
    assert len(gets) == 5
    assert "range" not in gets[0][3] and gets[1][3]["range"] == "bytes=700000-"
    assert gets[4][3]["range"] == "bytes=2800000-"
    assert (tmp_path / "models" / "stories-Q8_0.gguf").read_bytes() == hub.repos[REPO]["stories-Q8_0.gguf"]
    assert leftovers(tmp_path / "models") == []


def test_a_failed_pull_keeps_the_partial_and_the_next_one_resumes(hub, tmp_path):
    hub.cut_at = 1_000_000  # never past 1 MB: the pull gives up, keeping what it has
    r = run(["pull", f"{REPO}:Q8_0", "--no-mmproj"], hub, tmp_path)
    assert r.returncode == 1
    d = tmp_path / "models"
    partial = d / "stories-Q8_0.gguf.partial"
    assert "run the same pull again to resume" in r.stderr and str(partial) in r.stderr
    assert partial.stat().st_size == 1_000_000 and not (d / "stories-Q8_0.gguf").exists()
    hub.cut_at = None
    before = len(hub.requests)
    r = run(["pull", f"{REPO}:Q8_0", "--no-mmproj"], hub, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "resuming stories-Q8_0.gguf from" in r.stderr
    gets = [q for q in hub.requests[before:] if q[0] == "cdn"]
    assert len(gets) == 1 and gets[0][3]["range"] == "bytes=1000000-"
    assert (d / "stories-Q8_0.gguf").read_bytes() == hub.repos[REPO]["stories-Q8_0.gguf"]
    assert leftovers(d) == []


def test_a_server_that_ignores_range_restarts_from_zero(hub, tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    data = hub.repos[REPO]["stories-Q8_0.gguf"]
    (d / "stories-Q8_0.gguf.partial").write_bytes(data[:500_000])
    hub.ignore_range = True
    r = run(["pull", f"{REPO}:Q8_0", "--no-mmproj"], hub, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "ignored the range request: starting again from 0" in r.stderr
    assert hub.seen("cdn", "GET")[0][3]["range"] == "bytes=500000-"
    assert (d / "stories-Q8_0.gguf").read_bytes() == data


def test_a_stalled_transfer_times_out_and_resumes(hub, tmp_path):
    hub.stall_once_at, hub.stall_seconds = 400_000, 4
    r = run(["pull", f"{REPO}:Q8_0", "--no-mmproj"], hub, tmp_path, env={"MMSERVE_PULL_STALL_SECONDS": "1"})
    assert r.returncode == 0, r.stderr
    assert "transfer interrupted at" in r.stderr
    assert hub.seen("cdn", "GET")[1][3]["range"] == "bytes=400000-"
    assert (tmp_path / "models" / "stories-Q8_0.gguf").read_bytes() == hub.repos[REPO]["stories-Q8_0.gguf"]


def test_wrong_bytes_fail_the_hash_and_leave_nothing(hub, tmp_path):
    hub.wrong_bytes = True
    r = run(["pull", f"{REPO}:Q8_0", "--no-mmproj"], hub, tmp_path)
    assert r.returncode == 1
    want = hashlib.sha256(hub.repos[REPO]["stories-Q8_0.gguf"]).hexdigest()
    assert f"sha256 mismatch: expected {want}, got " in r.stderr and "was deleted" in r.stderr
    assert list((tmp_path / "models").iterdir()) == []


@pytest.mark.parametrize("delta,message", [(1000, "size mismatch: expected 3146728 bytes, got 3145728"),
                                           (-1000, "more than the 3144728 bytes expected")])
def test_wrong_sizes_fail_and_leave_nothing(hub, tmp_path, delta, message):
    hub.size_delta = delta
    r = run(["pull", f"{REPO}:Q8_0", "--no-mmproj"], hub, tmp_path)
    assert r.returncode == 1
    assert message in r.stderr
    assert list((tmp_path / "models").iterdir()) == []


def test_hub_errors_and_bad_refs(hub, tmp_path):
    r = run(["pull", "hf:nobody/nothing"], hub, tmp_path)
    assert r.returncode == 1 and "nobody/nothing" in r.stderr and "not found on the Hub" in r.stderr
    r = run(["pull", f"hf:{REPO}:Q2_K"], hub, tmp_path)
    assert r.returncode == 1 and "has no Q2_K GGUF; available: Q4_K_M, Q8_0" in r.stderr
    r = run(["pull", f"hf:{REPO}:absent.gguf"], hub, tmp_path)
    assert r.returncode == 1 and "has no file 'absent.gguf'" in r.stderr
    for bad in ["hf:", "justaname", "hf:a/b:", "a/../b", "whisper:", "http://host", "hf:a/b/c:Q4"]:
        r = run(["pull", bad], hub, tmp_path)
        assert r.returncode == 2, (bad, r.stderr)
        assert f"bad model REF '{bad}'" in r.stderr, r.stderr
    r = run(["pull"], hub, tmp_path)
    assert r.returncode == 2 and "one REF" in r.stderr
    assert not hub.seen("cdn")


def test_the_token_goes_to_the_hub_and_not_to_the_cdn(hub, tmp_path):
    hub.require_token = "hf_secret"
    r = run(["pull", f"{REPO}:Q4_K_M"], hub, tmp_path)
    assert r.returncode == 1 and "HTTP 401" in r.stderr and "HF_TOKEN" in r.stderr
    r = run(["pull", f"{REPO}:Q4_K_M"], hub, tmp_path, env={"HF_TOKEN": "hf_secret"})
    assert r.returncode == 0, r.stderr
    hub_reqs, cdn_reqs = hub.seen("hub"), hub.seen("cdn")
    assert cdn_reqs and all(q[3].get("authorization") == "Bearer hf_secret" for q in hub_reqs[-3:])
    assert all("authorization" not in q[3] for q in cdn_reqs)


def test_two_pulls_at_once_download_once(hub, tmp_path):
    hub.throttle = 0.03  # 3 MiB in 48 chunks: about 1.5 s, long enough to overlap
    results = [None, None]

    def pull(i):
        results[i] = run(["pull", f"{REPO}:Q8_0", "--no-mmproj"], hub, tmp_path)

    threads = [threading.Thread(target=pull, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    joined = results[0].stderr + results[1].stderr
    assert "another pull of stories-Q8_0.gguf is running: waiting" in joined
    assert "already present" in joined
    assert len(hub.seen("cdn", "GET")) == 1
    d = tmp_path / "models"
    assert (d / "stories-Q8_0.gguf").read_bytes() == hub.repos[REPO]["stories-Q8_0.gguf"]
    assert leftovers(d) == []


def test_http_proxy_is_honoured(hub, tmp_path):
    proxy = ForwardProxy()
    try:
        r = run(["pull", "whisper:base.en"], hub, tmp_path, env={"http_proxy": proxy.url})
    finally:
        proxy.close()
    assert r.returncode == 0, r.stderr
    assert any(u.startswith(hub.url + "/api/models/") for u in proxy.urls)
    assert any(u.startswith(hub.cdn_url + "/lfs/") for u in proxy.urls)


def test_list_and_rm(hub, tmp_path):
    d = tmp_path / "models"
    assert run(["pull", REPO], hub, tmp_path).returncode == 0
    assert run(["pull", "whisper:tiny"], hub, tmp_path).returncode == 0
    shutil.copy(SHARED / "models" / "for-tests-silero-v6.2.0-ggml.bin", d / "silero.bin")
    (d / "half.gguf.partial").write_bytes(b"GGUF")
    (d / "notes.txt").write_text("not a model")
    r = run(["list"], hub, tmp_path)
    assert r.returncode == 0, r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines()[1:]}
    assert sorted(lines) == ["ggml-tiny.bin", "mmproj-stories-F16.gguf", "silero.bin", "stories-Q4_K_M.gguf"]
    assert lines["stories-Q4_K_M.gguf"].split()[1:4] == ["text", "llama", "F32"]
    assert lines["stories-Q4_K_M.gguf"].endswith("292.8K")
    assert "speech" in lines["ggml-tiny.bin"] and "whisper (tiny)" in lines["ggml-tiny.bin"]
    assert lines["silero.bin"].split()[1:3] == ["vad", "silero"]
    assert "unreadable" in lines["mmproj-stories-F16.gguf"] and "GGUF" in lines["mmproj-stories-F16.gguf"]
    j = json.loads(run(["list", "--json"], hub, tmp_path).stdout)
    stories = next(e for e in j if e["name"] == "stories-Q4_K_M.gguf")
    assert stories["parameters"] > 0 and stories["bytes"] == STORIES.stat().st_size
    assert "error" in next(e for e in j if e["kind"] == "unreadable")

    r = run(["rm", "stories-Q4_K_M", "ggml-tiny.bin", "half.gguf"], hub, tmp_path)
    assert r.returncode == 0, r.stderr
    assert not (d / "stories-Q4_K_M.gguf").exists() and not (d / "ggml-tiny.bin").exists()
    assert not (d / "half.gguf.partial").exists()
    r = run(["rm", "silero.bin", "absent"], hub, tmp_path)
    assert r.returncode == 1 and "no model 'absent'" in r.stderr
    assert (d / "silero.bin").exists()  # nothing removed when one name is wrong
    r = run(["rm", "../models/silero.bin"], hub, tmp_path)
    assert r.returncode == 2 and "not paths" in r.stderr
    r = run(["list", "--dir", str(tmp_path / "empty")], hub, tmp_path)
    assert r.returncode == 0 and "no models in" in r.stdout
