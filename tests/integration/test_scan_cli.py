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


def test_scan_patterns_and_the_optional_name_and_address_tier(tmp_path):
    text = "合同HT-123456已签，联系人：张伟先生，寄往浙江省杭州市西湖区文三路90号。\nMr. John Smith called.\n"
    path = tmp_path / "contract.txt"
    path.write_text(text, encoding="utf-8")
    patterns = tmp_path / "patterns.txt"
    patterns.write_text("HT-[0-9]{6}\n", encoding="utf-8")
    raw = text.encode()

    def found(*args):
        run = scan(str(path), *args)
        assert run.returncode == 0, run.stderr
        return {(f["type"], raw[f["begin"]:f["end"]].decode()) for f in json.loads(run.stdout)["findings"]}

    assert found() == set()  # the tier is off by default, and no pattern is given
    assert found("--patterns-file", str(patterns)) == {("pattern", "HT-123456")}
    tier = found("--names", "--addresses")
    assert ("person_name", "张伟") in tier and ("person_name", "John Smith") in tier
    assert any(kind == "address" and "文三路90号" in value for kind, value in tier)
    bad = tmp_path / "bad.txt"
    bad.write_text("(unclosed\n", encoding="utf-8")
    run = scan(str(path), "--patterns-file", str(bad))
    assert run.returncode == 2 and "--patterns-file" in run.stderr and "not a valid regular expression" in run.stderr
