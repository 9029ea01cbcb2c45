"""`mmserve scan FILE`: the privacy detectors as a dry run: findings with types, spans and lines,
never the values; keywords; clear errors for bad usage."""
import json
import subprocess

from conftest import BIN

TEXT = ("您好，请核对客户资料。\n"
        "身份证:110101199003071233，手机13812345678。\n"
        "订单号20231201123456，金额¥1,234.56，日期2023-12-01\n"
        "项目代号青龙的合同由 ACME 负责，邮箱 li.lei@example.com\n")


def scan(*args, stdin=None):
    return subprocess.run([BIN, "scan", *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_scan_reports_types_spans_and_lines_without_values(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text(TEXT, encoding="utf-8")
    run = scan(str(path), "--keyword", "青龙,acme", "--stats")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    raw = TEXT.encode()
    got = [(f["type"], raw[f["begin"]:f["end"]].decode(), f["line"], f["checksum_verified"]) for f in out["findings"]]
    assert ("cn_resident_id", "110101199003071233", 2, True) in got
    assert ("cn_mobile", "13812345678", 2, False) in got
    assert ("email", "li.lei@example.com", 4, False) in got
    assert ("keyword", "青龙", 4, False) in got and ("keyword", "ACME", 4, False) in got
    assert not any(line == 3 for _, _, line, _ in got)  # the order number, price and date are not data
    assert out["counts"]["cn_resident_id"] == 1 and out["stats"]["bytes"] == len(raw)
    for value in ("110101199003071233", "13812345678", "li.lei@example.com"):
        assert value not in run.stdout  # spans, never values


def test_scan_reads_standard_input_and_a_keywords_file(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("青龙\r\n\n", encoding="utf-8")
    run = scan("-", "--keywords-file", str(words), stdin=TEXT)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["counts"]["keyword"] == 1


def test_scan_usage_errors_are_one_line_and_non_zero(tmp_path):
    run = scan()
    assert run.returncode == 2 and "give one FILE" in run.stderr
    run = scan(str(tmp_path / "missing.txt"))
    assert run.returncode == 1 and "cannot read" in run.stderr
    run = scan(str(tmp_path), "--repeat", "0")
    assert run.returncode == 2 and "--repeat" in run.stderr
