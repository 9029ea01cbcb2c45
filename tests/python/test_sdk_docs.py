"""The Python examples of docs/python-sdk.md run, in order, against a real server."""
import os
import re
import shutil
import subprocess
import sys

from conftest import GOLDEN, REPO, SHARED, STORIES, needs_stories, require_extension

DOC = REPO / "docs" / "python-sdk.md"
SKIP_MARK = "<!-- not run by the docs test"


def python_blocks():
    """The ```python blocks of the page, except those right after a SKIP_MARK comment."""
    text = DOC.read_text(encoding="utf-8")
    blocks = []
    for m in re.finditer(r"^```python\n(.*?)^```", text, re.M | re.S):
        before = text[:m.start()].rstrip().rsplit("\n", 1)[-1]
        if not before.startswith(SKIP_MARK):
            blocks.append(m.group(1))
    return blocks


@needs_stories
def test_the_docs_examples_run(server, tmp_path):
    require_extension()  # the page shows local mode too
    blocks = python_blocks()
    assert len(blocks) >= 5
    script = "\n".join(blocks)
    assert "http://localhost:8080" in script
    script = script.replace("http://localhost:8080", server.url)
    script = script.replace("../shared/models/stories260K.gguf", str(STORIES))
    (tmp_path / "example.py").write_text(script, encoding="utf-8")
    for name, source in (("product.jpg", SHARED / "media" / "test-1.jpeg"),
                         ("meeting.wav", SHARED / "media" / "jfk.wav")):
        if source.exists():
            shutil.copy(source, tmp_path / name)
        else:
            (tmp_path / name).write_bytes(b"stand-in bytes: the server has no model for them")
    env = {k: v for k, v in os.environ.items() if k != "MMSERVE_API_KEY"}
    env["PYTHONPATH"] = str(REPO / "python")
    proc = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.count(GOLDEN) >= 4, out  # remote plain and streamed, local plain and streamed
    assert "400 parameters.max_tokens prompt (5 tokens) plus max_tokens (100000)" in out
    # The comments showing output on the page are what the code prints.
    for shown in re.findall(r"^# (, there was .*|400 .*)$", DOC.read_text(encoding="utf-8"),
                            re.M):
        assert shown in out
