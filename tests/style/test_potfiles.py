"""po/POTFILES lists exactly the files with translatable strings."""
import os
import re

import qp_style

# _("…"), N_("…"), C_("ctx", "…"), NC_(…), ngettext/g_dngettext: the glib preset's keywords.
_MARK = re.compile(rb"(?<![A-Za-z0-9_])(?:N?C?_|g_dngettext|ngettext|g_dpgettext2)\s*\(")
# Files gettext's ITS rules translate: polkit actions, desktop and metainfo files.
_ITS_SUFFIXES = (".policy", ".policy.in")


def potfiles():
    path = os.path.join(qp_style.SOURCE_DIR, "po", "POTFILES")
    with open(path, encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f]
    return [l for l in lines if l.strip() and not l.lstrip().startswith("#")]


def translatable_files():
    found = []
    for rel in qp_style.source_files():
        if rel.startswith("tests/"):
            continue  # test programs' strings are not shown to users
        if rel.endswith((".c", ".h")):
            data = qp_style.read_bytes(rel)
            # Drop comments, so that a comment quoting _( does not count.
            data = re.sub(rb"/\*.*?\*/", b"", data, flags=re.S)
            if _MARK.search(data):
                found.append(rel)
        elif rel.endswith(_ITS_SUFFIXES):
            found.append(rel)
    return found


def test_listed_files_exist():
    qp_style.require_dirs()
    missing = [p for p in potfiles() if not os.path.isfile(os.path.join(qp_style.SOURCE_DIR, p))]
    assert not missing, "po/POTFILES lists files that do not exist: " + ", ".join(missing)


def test_no_duplicates_or_blanks():
    qp_style.require_dirs()
    listed = potfiles()
    dups = sorted({p for p in listed if listed.count(p) > 1})
    assert not dups, "po/POTFILES lists twice: " + ", ".join(dups)
    assert all(p == p.strip() for p in listed), "po/POTFILES has lines with surrounding spaces"


def test_every_translatable_file_listed():
    qp_style.require_dirs()
    listed = set(potfiles())
    missing = [f for f in translatable_files() if f not in listed]
    assert not missing, "files with translatable strings missing from po/POTFILES: " + ", ".join(missing)


def test_listed_files_have_strings():
    qp_style.require_dirs()
    have = set(translatable_files())
    idle = [p for p in potfiles() if p not in have]
    assert not idle, "po/POTFILES lists files without translatable strings: " + ", ".join(idle)
