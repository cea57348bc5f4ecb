"""Formatting: clang-format for C, .editorconfig's rules for every text file."""
import fnmatch
import os
import subprocess

import qp_style


def c_files():
    return [f for f in qp_style.source_files() if f.endswith((".c", ".h"))]


def test_clang_format():
    files = c_files()
    assert files, "no C files found"
    bad = []
    for rel in files:
        res = subprocess.run(["clang-format", "--style=file", "--dry-run", "--Werror", rel],
                             cwd=qp_style.SOURCE_DIR, capture_output=True, text=True)
        if res.returncode != 0:
            bad.append(f"{rel} ({res.stderr.count('code should be clang-formatted')} places)")
    assert not bad, "not formatted as .clang-format says (clang-format -i FILE): " + ", ".join(bad)


# Files whose format is not ours to choose (generated elsewhere or binary by nature).
_EXEMPT = ["*.png", "*.qcow2", "*.mo", "*.gz", "tests/*/corpus/*", "tests/*/crashes/*",
           "tests/fuzz/*/*"]


def text_files():
    out = []
    for rel in qp_style.source_files():
        if any(fnmatch.fnmatch(rel, p) for p in _EXEMPT):
            continue
        data = qp_style.read_bytes(rel)
        if qp_style.is_text(data):
            out.append((rel, data))
    return out


def test_final_newline():
    bad = [rel for rel, data in text_files() if data and not data.endswith(b"\n")]
    assert not bad, "no final newline: " + ", ".join(bad)


def test_no_trailing_whitespace():
    bad = []
    for rel, data in text_files():
        for n, line in enumerate(data.split(b"\n"), 1):
            if line.rstrip(b" \t\r") != line:
                bad.append(f"{rel}:{n}")
                break
    assert not bad, "trailing whitespace (first line shown): " + ", ".join(bad)


def test_lf_line_endings():
    bad = [rel for rel, data in text_files() if b"\r\n" in data]
    assert not bad, "CRLF line endings: " + ", ".join(bad)


def test_utf8():
    bad = []
    for rel, data in text_files():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(rel)
    assert not bad, "not UTF-8: " + ", ".join(bad)


def test_no_tabs_in_space_indented_files():
    # .editorconfig: indent_style = space for C, Python, shell and meson files.
    patterns = ("*.c", "*.h", "*.py", "*.sh", "meson.build", "meson_options.txt")
    bad = []
    for rel, data in text_files():
        if any(fnmatch.fnmatch(os.path.basename(rel), p) for p in patterns):
            for n, line in enumerate(data.split(b"\n"), 1):
                if line.startswith(b"\t") or b"\n\t" in line:
                    bad.append(f"{rel}:{n}")
                    break
    assert not bad, "tab indentation where .editorconfig says spaces: " + ", ".join(bad)
