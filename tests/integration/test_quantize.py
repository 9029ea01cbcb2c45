"""`mmserve quantize`: GGUF models through llama.cpp's quantizer (types, importance matrices in
both of llama.cpp's formats, tensor-type overrides) and whisper.cpp models through ggml's; the
outputs load and run, shrink as their types say, and bad input fails with one line and no OUT."""
import json
import re
import struct
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, GOLDEN, STORIES, needs_stories
from speech_support import FIXTURE, JFK, needs_jfk, synth_whisper

PROGRESS = re.compile(r"^\[\s*(\d+)/\s*(\d+)\] (\S+)\s+(\S+)$")


def mm(*args, timeout=300):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def quantize(src, dst, qtype, *args, ok=True):
    proc = mm("quantize", src, dst, qtype, "-t", "2", *args)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def info(path):
    proc = mm("info", path, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def one_error(proc, code, *needles):
    """Exit `code`, exactly one non-progress line on stderr, containing every needle."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = [l for l in proc.stderr.splitlines() if l.strip() and not PROGRESS.match(l)]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def no_output(path):
    assert not Path(path).exists()
    assert not Path(str(path) + ".partial").exists()


def progress(proc):
    events = [PROGRESS.match(l) for l in proc.stderr.splitlines()]
    events = [m.groups() for m in events if m]
    total = int(events[-1][1])
    assert [int(e[0]) for e in events] == list(range(1, total + 1))
    return {name: qtype for _, _, name, qtype in events}


# `mmserve info` names file types as llama.cpp does.
FILE_TYPE = {"Q8_0": "Q8_0", "Q4_K_M": "Q4_K - Medium", "Q4_0": "Q4_0",
             "IQ2_XXS": "IQ2_XXS - 2.0625 bpw", "F32": "F32", "F16": "F16"}


def bpw(summary):
    return summary["weights_bytes"] * 8 / summary["parameters"]


def gguf_tensors(path):
    """{name: ne0} of a GGUF file's tensors, from its header (enough of the format to skip KVs)."""
    data = Path(path).read_bytes()
    pos = 0

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return vals[0] if len(vals) == 1 else vals

    def string():
        nonlocal pos
        n = take("Q")
        pos += n
        return data[pos - n:pos].decode()

    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def value(t):
        nonlocal pos
        if t == 8:
            string()
        elif t == 9:
            inner, n = take("I"), take("Q")
            for _ in range(n):
                value(inner)
        else:
            pos += sizes[t]

    assert take("4s") == b"GGUF"
    _, n_tensors, n_kv = take("I"), take("Q"), take("Q")
    for _ in range(n_kv):
        string()
        value(take("I"))
    out = {}
    for _ in range(n_tensors):
        name = string()
        dims = [take("Q") for _ in range(take("I"))]
        take("I"), take("Q")
        out[name] = dims[0]
    return out


def matrix_inputs(model):
    """The weight matrices an importance matrix covers, with their input widths."""
    return {n: ne0 for n, ne0 in gguf_tensors(model).items()
            if n.startswith("blk.") and n.endswith(".weight") and "norm" not in n}


def legacy_imatrix(path, entries, ncall=10, tail=True):
    """llama.cpp's older binary imatrix file."""
    out = struct.pack("<i", len(entries))
    for name, values in entries.items():
        raw = name.encode()
        out += struct.pack("<i", len(raw)) + raw + struct.pack("<ii", ncall, len(values))
        out += struct.pack(f"<{len(values)}f", *(v * ncall for v in values))
    if tail:
        out += struct.pack("<i", 3) + struct.pack("<i", 4) + b"wiki"
    Path(path).write_bytes(out)
    return path


def gguf_imatrix(path, entries, count=20.0):
    """llama.cpp's GGUF imatrix: NAME.in_sum2 and NAME.counts tensors plus its metadata."""
    def s(text):
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    kv = s("imatrix.datasets") + struct.pack("<IIQ", 9, 8, 1) + s("wiki")
    kv += s("imatrix.chunk_count") + struct.pack("<II", 4, 3)
    kv += s("imatrix.chunk_size") + struct.pack("<II", 4, 512)
    tensors, blobs, offset = b"", b"", 0
    for name, values in entries.items():
        for suffix, vals in ((".in_sum2", [v * count for v in values]), (".counts", [count])):
            blob = struct.pack(f"<{len(vals)}f", *vals)
            blob += b"\0" * (-len(blob) % 32)
            tensors += s(name + suffix) + struct.pack("<IQIQ", 1, len(vals), 0, offset)
            blobs += blob
            offset += len(blob)
    head = b"GGUF" + struct.pack("<IQQ", 3, 2 * len(entries), 3) + kv + tensors
    head += b"\0" * (-len(head) % 32)
    Path(path).write_bytes(head + blobs)
    return path


def activations(inputs):
    """Plausible mean squared activations: uneven, so they change what the quantizer picks."""
    return {n: [0.1 + (i * 7919 % 97) / 10 for i in range(ne0)] for n, ne0 in inputs.items()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A llama-shaped F16 model (4 layers, 256 wide) with random weights."""
    path = tmp_path_factory.mktemp("quant") / "tiny-f16.gguf"
    proc = mm("synth", "llm", "--preset", "tiny", "-o", path)
    assert proc.returncode == 0, proc.stderr
    return path


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    """Whisper tiny's shape (F16) with the fixture's vocabulary and filters."""
    return synth_whisper(tmp_path_factory.mktemp("quant") / "whisper-f16.bin", "--like", FIXTURE)


@needs_stories
def test_stories_q8_0_and_q4_k_m_load_shrink_and_generate(tmp_path):
    source = info(STORIES)
    assert source["file_type"] == "F32"
    for qtype, low, high in (("Q8_0", 2.9, 3.6), ("Q4_K_M", 3.5, 5.0)):
        out = tmp_path / f"stories-{qtype}.gguf"
        proc = quantize(STORIES, out, qtype, "--json")
        report = json.loads(proc.stdout)
        summary = info(out)
        assert summary["file_type"] == FILE_TYPE[qtype]
        assert summary["parameters"] == source["parameters"]
        assert report["output_bytes"] == out.stat().st_size == summary["file_bytes"]
        assert low < report["ratio"] < high, report
        assert report["ratio"] == pytest.approx(STORIES.stat().st_size / out.stat().st_size)
        assert report["bits_per_weight"] == pytest.approx(bpw(summary), rel=1e-6)
        assert report["input_bits_per_weight"] == pytest.approx(32.0)
        types = progress(proc)
        assert len(types) == report["tensors"] == 48
        assert types["blk.0.attn_q.weight"] != "f32" and types["blk.0.attn_norm.weight"] == "f32"
        gen = mm("generate", "-m", out, "-n", "24", "--temp", "0", "-t", "2", "Once upon a time")
        assert gen.returncode == 0, gen.stderr
        assert gen.stdout.strip(), "the quantized model generates tokens"
        if qtype == "Q8_0":  # near-lossless: greedy text still follows the F32 model's
            assert gen.stdout.startswith(GOLDEN[:24]), gen.stdout


@needs_stories
def test_leave_output_tensor_keeps_output_weight(tmp_path):
    plain, kept = tmp_path / "plain.gguf", tmp_path / "kept.gguf"
    assert progress(quantize(STORIES, plain, "Q8_0"))["output.weight"] == "q8_0"
    types = progress(quantize(STORIES, kept, "Q8_0", "--leave-output-tensor"))
    assert types["output.weight"] == "f32" and types["token_embd.weight"] == "q8_0"
    assert kept.stat().st_size > plain.stat().st_size


def test_q8_0_is_8_5_bits_per_weight_and_q4_k_m_about_half(tiny, tmp_path):
    q8, q4 = tmp_path / "q8.gguf", tmp_path / "q4km.gguf"
    text = quantize(tiny, q8, "q8_0").stdout  # TYPE is case-insensitive
    assert re.search(r"ratio:\s+1\.8\dx smaller", text), text
    quantize(tiny, q4, "Q4_K_M")
    f16, s8, s4 = info(tiny), info(q8), info(q4)
    assert s8["file_type"] == "Q8_0" and s4["file_type"] == FILE_TYPE["Q4_K_M"]
    assert bpw(f16) == pytest.approx(16, abs=0.05)
    # Q8_0 blocks: 32 int8 weights + one f16 scale = 34 bytes per 32 weights = 8.5 bits.
    assert bpw(s8) == pytest.approx(8.5, abs=0.05)
    # The tied 32000-token embedding (72% of the weights) is Q6_K in a Q4_K_M file.
    assert 4.5 < bpw(s4) < 6.6
    gen = mm("generate", "-m", q4, "-n", "8", "--temp", "0", "-t", "2", "hello")
    assert gen.returncode == 0 and gen.stdout.strip(), gen.stderr


def test_tensor_type_overrides_and_pure(tiny, tmp_path):
    out = tmp_path / "mixed.gguf"
    proc = quantize(tiny, out, "Q8_0", "--tensor-type", r"attn_v=q4_0",
                    "--tensor-type", r"blk\.0\.ffn_up=q5_1")
    types = progress(proc)
    assert all(t == "q4_0" for n, t in types.items() if "attn_v" in n)
    assert types["blk.0.ffn_up.weight"] == "q5_1" and types["blk.1.ffn_up.weight"] == "q8_0"
    counts = {t["type"]: t["tensors"] for t in info(out)["tensor_types"]}
    assert counts["q4_0"] == 4 and counts["q5_1"] == 1
    pure = tmp_path / "pure.gguf"
    types = progress(quantize(tiny, pure, "Q4_K_M", "--pure"))
    assert {t for n, t in types.items() if n.startswith("blk.") and "norm" not in n} == {"q4_K"}


def test_bad_tensor_type_options_are_usage_errors(tiny, tmp_path):
    out = tmp_path / "x.gguf"
    one_error(quantize(tiny, out, "Q8_0", "--tensor-type", "attn_v", ok=False), 2, "PATTERN=TYPE")
    one_error(quantize(tiny, out, "Q8_0", "--tensor-type", "attn_v=q9_9", ok=False), 2, "q9_9")
    one_error(quantize(tiny, out, "Q8_0", "--tensor-type", "attn_[v=q8_0", ok=False), 2,
              "regular expression")
    no_output(out)


def test_requantizing_needs_the_flag(tiny, tmp_path):
    q8, q4 = tmp_path / "q8.gguf", tmp_path / "q4.gguf"
    quantize(tiny, q8, "Q8_0")
    one_error(quantize(q8, q4, "Q4_0", ok=False), 1, "requantizing")
    no_output(q4)
    quantize(q8, q4, "Q4_0", "--allow-requantize")
    assert info(q4)["file_type"] == "Q4_0"


def test_iq2_needs_an_importance_matrix_in_either_format(tiny, tmp_path):
    out = tmp_path / "iq2.gguf"
    one_error(quantize(tiny, out, "IQ2_XXS", ok=False), 1, "imatrix")
    no_output(out)
    inputs = matrix_inputs(tiny)
    assert len(inputs) == 4 * 7
    act = activations(inputs)
    for make in (legacy_imatrix, gguf_imatrix):
        imatrix = make(tmp_path / f"{make.__name__}.dat", act)
        quantize(tiny, out, "IQ2_XXS", "--imatrix", imatrix)
        summary = info(out)
        assert summary["file_type"] == FILE_TYPE["IQ2_XXS"] and bpw(summary) < 5.0
        out.unlink()


def test_an_importance_matrix_changes_the_quantization(tiny, tmp_path):
    plain, weighted = tmp_path / "plain.gguf", tmp_path / "weighted.gguf"
    quantize(tiny, plain, "Q4_K_M")
    imatrix = legacy_imatrix(tmp_path / "im.dat", activations(matrix_inputs(tiny)))
    quantize(tiny, weighted, "Q4_K_M", "--imatrix", imatrix)
    # The same tensor types (the imatrix adds a few metadata bytes), other quantized values.
    assert 0 < weighted.stat().st_size - plain.stat().st_size < 4096
    assert plain.read_bytes()[-1_000_000:] != weighted.read_bytes()[-1_000_000:]
    assert b"quantize.imatrix.file" in weighted.read_bytes()


def test_bad_importance_matrices_fail_clearly(tiny, tmp_path):
    out = tmp_path / "x.gguf"
    inputs = matrix_inputs(tiny)
    wrong = {n: [1.0] * (ne0 - 1) for n, ne0 in inputs.items()}
    bad = legacy_imatrix(tmp_path / "wrong.dat", wrong)
    one_error(quantize(tiny, out, "Q4_K_M", "--imatrix", bad, ok=False), 1, "imatrix size")
    good = legacy_imatrix(tmp_path / "good.dat", activations(inputs)).read_bytes()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(good[:len(good) // 2])
    one_error(quantize(tiny, out, "Q4_K_M", "--imatrix", cut, ok=False), 1, "truncated")
    nan = legacy_imatrix(tmp_path / "nan.dat", {n: [float("nan")] * ne0 for n, ne0 in inputs.items()})
    one_error(quantize(tiny, out, "Q4_K_M", "--imatrix", nan, ok=False), 1, "non-finite")
    gcut = tmp_path / "cut.gguf"
    gguf = gguf_imatrix(tmp_path / "g.gguf", activations(inputs)).read_bytes()
    gcut.write_bytes(gguf[:len(gguf) - 100])
    one_error(quantize(tiny, out, "Q4_K_M", "--imatrix", gcut, ok=False), 1, "corrupt or truncated")
    model_as_imatrix = quantize(tiny, out, "Q4_K_M", "--imatrix", tiny, ok=False)
    one_error(model_as_imatrix, 1, "without importance matrix")
    one_error(quantize(tiny, out, "Q4_K_M", "--imatrix", tmp_path / "none.dat", ok=False), 1,
              "not found")
    no_output(out)


def test_bad_type_lists_the_valid_ones(tiny, tmp_path):
    out = tmp_path / "x.gguf"
    line = one_error(quantize(tiny, out, "Q7_X", ok=False), 2, "Q7_X", "Q4_K_M", "Q8_0", "IQ4_XS")
    assert "F16" in line
    no_output(out)


def test_usage_and_path_errors(tiny, tmp_path):
    one_error(mm("quantize", tiny, tmp_path / "x.gguf"), 2, "usage")
    one_error(mm("quantize", tmp_path / "missing.gguf", tmp_path / "x.gguf", "Q8_0"), 1,
              "not found")
    one_error(quantize(tiny, tmp_path / "no" / "dir" / "x.gguf", "Q8_0", ok=False), 1,
              "directory does not exist")
    before = tiny.read_bytes()
    one_error(quantize(tiny, tiny.parent / "." / tiny.name, "Q8_0", ok=False), 2, "differ")
    assert tiny.read_bytes() == before
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a model\n")
    one_error(quantize(text, tmp_path / "x.gguf", "Q8_0", ok=False), 1, "neither")
    one_error(quantize(tiny, tmp_path / "x.gguf", "Q8_0", "--threads", "-3", ok=False), 2, "threads")


def test_truncated_gguf_fails_and_keeps_an_existing_out(tiny, tmp_path):
    cut = tmp_path / "cut.gguf"
    data = tiny.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    out = tmp_path / "out.gguf"
    one_error(quantize(cut, out, "Q8_0", ok=False), 1, "truncated")
    no_output(out)
    out.write_bytes(b"previous")
    one_error(quantize(cut, out, "Q8_0", ok=False), 1, "truncated")
    assert out.read_bytes() == b"previous"
    assert not Path(str(out) + ".partial").exists()


def transcript(model):
    proc = mm("transcribe", "-m", model, "-t", "2", "--language", "en", JFK, timeout=240)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@needs_jfk
def test_whisper_q8_0_and_q5_0_shrink_load_and_transcribe(whisper, tmp_path):
    reference = transcript(whisper)  # random weights: gibberish, but the F16 model's own
    assert reference
    for qtype, low in (("q8_0", 1.7), ("q5_0", 2.4)):
        out = tmp_path / f"whisper-{qtype}.bin"
        proc = quantize(whisper, out, qtype, "--json")
        report = json.loads(proc.stdout)
        assert report["format"] == "whisper" and report["type"] == qtype.upper()
        assert report["ratio"] > low and out.stat().st_size < whisper.stat().st_size / low
        types = progress(proc)
        assert types["decoder.blocks.0.attn.query.weight"] == qtype
        assert types["decoder.token_embedding.weight"] == qtype
        assert types["encoder.positional_embedding"] == "f32"
        assert types["encoder.conv1.weight"] == "f16" and types["encoder.conv1.bias"] == "f32"
        text = transcript(out)
        assert text, "the quantized model still transcribes"
        if qtype == "q8_0":  # close to the F16 weights: most of the same words
            ref, got = set(reference.split()), set(text.split())
            assert len(ref & got) >= len(ref) // 2, (reference, text)


def test_whisper_errors(whisper, tmp_path):
    out = tmp_path / "w.bin"
    one_error(quantize(whisper, out, "Q4_K", ok=False), 2, "multiple of 256", "384")
    one_error(quantize(whisper, out, "Q4_K_M", ok=False), 2, "Q8_0", "Q5_0")
    one_error(quantize(whisper, out, "Q8_0", "--imatrix", "x", ok=False), 2, "GGUF")
    one_error(quantize(whisper, out, "Q8_0", "--pure", ok=False), 2, "GGUF")
    cut = tmp_path / "cut.bin"
    data = whisper.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    one_error(quantize(cut, out, "Q8_0", ok=False), 1, "truncated")
    one_error(quantize(FIXTURE, out, "Q8_0", ok=False), 1, "no weights")
    q8 = tmp_path / "q8.bin"
    quantize(whisper, q8, "Q8_0")
    one_error(quantize(q8, out, "Q5_0", ok=False), 1, "already quantized")
    no_output(out)


def test_corrupt_whisper_headers_never_crash(whisper, tmp_path):
    data = bytearray(whisper.read_bytes()[:3_000_000])
    out = tmp_path / "w.bin"
    # Corrupt each header field in turn: hyperparameters, mel sizes, vocabulary size.
    for offset, value in ((4, -1), (8, 0), (44, -5), (48, 1 << 30), (56 + 80 * 201 * 4, -7)):
        bad = bytearray(data)
        struct.pack_into("<i", bad, offset, value)
        path = tmp_path / f"bad{offset}.bin"
        path.write_bytes(bytes(bad))
        one_error(quantize(path, out, "Q8_0", ok=False), 1, "whisper.cpp model")
    no_output(out)
