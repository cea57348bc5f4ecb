"""Translations: every language of po/LINGUAS covers every message, and compiles cleanly."""
import os
import subprocess
import tempfile

import pytest

import qp_style

REQUIRED = ["de", "ja"]

# The keywords and format flags of meson's i18n.gettext(preset: 'glib').
XGETTEXT_GLIB = [
    "--from-code=UTF-8", "--add-comments",
    "--keyword=_", "--keyword=N_", "--keyword=C_:1c,2", "--keyword=NC_:1c,2",
    "--keyword=g_dcgettext:2", "--keyword=g_dngettext:2,3", "--keyword=g_dpgettext2:2c,3",
    "--flag=N_:1:pass-c-format", "--flag=C_:2:pass-c-format", "--flag=NC_:2:pass-c-format",
    "--flag=g_dngettext:2:pass-c-format", "--flag=g_strdup_printf:1:c-format",
    "--flag=g_string_printf:2:c-format", "--flag=g_string_append_printf:2:c-format",
    "--flag=g_error_new:3:c-format", "--flag=g_set_error:4:c-format",
    "--flag=g_prefix_error:2:c-format", "--flag=g_markup_printf_escaped:1:c-format",
    "--flag=g_log:3:c-format", "--flag=g_print:1:c-format", "--flag=g_printerr:1:c-format",
    "--flag=g_printf:1:c-format", "--flag=g_fprintf:2:c-format", "--flag=g_sprintf:2:c-format",
    "--flag=g_snprintf:3:c-format",
]


def linguas():
    qp_style.require_dirs()
    with open(os.path.join(qp_style.SOURCE_DIR, "po", "LINGUAS"), encoding="utf-8") as f:
        return [w for line in f if not line.startswith("#") for w in line.split()]


def po_path(lang):
    return os.path.join(qp_style.SOURCE_DIR, "po", lang + ".po")


@pytest.fixture(scope="module")
def pot():
    """A template made now from po/POTFILES, as the build's -pot target would make it."""
    qp_style.require_dirs()
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "qcow2-policyd.pot")
        res = subprocess.run(["xgettext", *XGETTEXT_GLIB, "--package-name=qcow2-policyd",
                              "-D", qp_style.SOURCE_DIR, "-f", os.path.join(qp_style.SOURCE_DIR, "po", "POTFILES"),
                              "-o", out], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert os.path.isfile(out), "xgettext found no messages at all"
        yield out


def test_sources_extract_cleanly():
    """xgettext warns when a msgid is cut short, e.g. by G_GUINT64_FORMAT, which it cannot
    expand: such a message can never be translated. Use PRIu64, PRIx64 and %zu instead."""
    qp_style.require_dirs()
    with tempfile.TemporaryDirectory() as d:
        res = subprocess.run(["xgettext", *XGETTEXT_GLIB, "-D", qp_style.SOURCE_DIR, "-f",
                              os.path.join(qp_style.SOURCE_DIR, "po", "POTFILES"),
                              "-o", os.path.join(d, "x.pot")],
                             capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"))
    assert res.returncode == 0, res.stderr
    assert "warning" not in res.stderr, res.stderr


def test_required_languages():
    missing = [l for l in REQUIRED if l not in linguas()]
    assert not missing, "po/LINGUAS lacks " + ", ".join(missing)


@pytest.mark.parametrize("lang", REQUIRED)
def test_msgfmt_check(lang):
    assert os.path.isfile(po_path(lang)), f"po/{lang}.po is missing"
    res = subprocess.run(["msgfmt", "-c", "--check-format", "--statistics", "-o", os.devnull, po_path(lang)],
                         capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"))
    assert res.returncode == 0, res.stderr
    # --statistics goes to stderr; anything else there is a warning.
    assert "fuzzy" not in res.stderr and "untranslated" not in res.stderr, res.stderr


@pytest.mark.parametrize("lang", REQUIRED)
def test_covers_every_message(lang, pot):
    assert os.path.isfile(po_path(lang)), f"po/{lang}.po is missing"
    # msgcmp fails for each message of the template that the catalog does not translate
    # (fuzzy and empty translations count as missing).
    res = subprocess.run(["msgcmp", po_path(lang), pot], capture_output=True, text=True,
                         env=dict(os.environ, LC_ALL="C"))
    assert res.returncode == 0, f"po/{lang}.po does not cover the sources:\n{res.stderr[:4000]}"


@pytest.mark.parametrize("lang", REQUIRED)
def test_compiled_in_build(lang):
    qp_style.require_dirs()
    mo = os.path.join(qp_style.BUILD_DIR, "po", lang, "LC_MESSAGES", "qcow2-policyd.mo")
    assert os.path.isfile(mo), f"{mo} was not built (is {lang} in po/LINGUAS?)"
    res = subprocess.run(["msgunfmt", mo], capture_output=True, text=True)
    assert res.returncode == 0 and "msgstr" in res.stdout, res.stderr


def test_polkit_actions_translated():
    """The built polkit policy carries every action's description and message in each language
    (i18n.merge_file from po/)."""
    import xml.etree.ElementTree as ET
    qp_style.require_dirs()
    path = os.path.join(qp_style.BUILD_DIR, "daemon", "data", "org.qcow2policyd.Policy1.policy")
    assert os.path.isfile(path), f"{path} was not built"
    lang_attr = "{http://www.w3.org/XML/1998/namespace}lang"
    actions = ET.parse(path).getroot().findall("action")
    assert actions, "no actions in the policy"
    missing = []
    for action in actions:
        for tag in ("description", "message"):
            langs = {e.get(lang_attr) for e in action.findall(tag)}
            missing += [f"{action.get('id')} {tag} [{l}]" for l in REQUIRED if l not in langs]
    assert not missing, "untranslated in the polkit policy: " + ", ".join(missing)


LOCALES = {"de": "de_DE.UTF-8", "ja": "ja_JP.UTF-8"}


@pytest.fixture(scope="module")
def locales():
    """The languages' locales compiled into a private LOCPATH: the machine need not have them."""
    with tempfile.TemporaryDirectory() as d:
        for lang, name in LOCALES.items():
            src, charset = name.split(".")
            res = subprocess.run(["localedef", "-i", src, "-f", charset, os.path.join(d, name)],
                                 capture_output=True, text=True)
            assert os.path.isdir(os.path.join(d, name)), f"localedef {name} failed: {res.stderr}"
        yield d


# msgids as the compiled programs pass them on this (LP64) machine: PRIu64 is "lu" there, so
# these also check that the catalogs' system-dependent strings expand.
LOOKUPS = {
    "de": [("Commands:", "Befehle:"), ("every %lu s", "alle %lu s")],
    "ja": [("Commands:", "コマンド:"),
           ("cannot read %zu bytes at offset %lu: %s", "%zu バイトをオフセット %lu から読み込めません: %s")],
}


@pytest.mark.parametrize("lang", REQUIRED)
def test_catalog_lookup(lang, locales):
    qp_style.require_dirs()
    env = dict(os.environ, LOCPATH=locales, LC_ALL=LOCALES[lang], LANGUAGE="",
               TEXTDOMAINDIR=os.path.join(qp_style.BUILD_DIR, "po"))
    for msgid, want in LOOKUPS[lang]:
        res = subprocess.run(["gettext", "-d", "qcow2-policyd", msgid], capture_output=True,
                             text=True, env=env)
        assert res.returncode == 0, res.stderr
        assert res.stdout == want, f"{lang}: {msgid!r} gave {res.stdout!r}"
