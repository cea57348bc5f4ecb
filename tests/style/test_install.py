"""`meson install` puts every part an operator needs where the system looks for it."""
import fnmatch
import json
import subprocess

import pytest

import qp_style


@pytest.fixture(scope="module")
def installed():
    qp_style.require_dirs()
    res = subprocess.run(["meson", "introspect", "--installed", qp_style.BUILD_DIR],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return sorted(set(json.loads(res.stdout).values()))


# (what, pattern of the installed path)
EXPECTED = [
    ("daemon", "*/qcow2-policyd"),
    ("client", "*/bin/qcow2-policyctl"),
    ("man qcow2-policyd(8)", "*/man/man8/qcow2-policyd.8"),
    ("man qcow2-policyctl(1)", "*/man/man1/qcow2-policyctl.1"),
    ("man qcow2-policyd.conf(5)", "*/man/man5/qcow2-policyd.conf.5"),
    ("man qcow2-policyd-l2cache(5)", "*/man/man5/qcow2-policyd-l2cache.5"),
    ("bash completion", "*/bash-completion/completions/qcow2-policyctl"),
    ("operator's guide", "*/doc/qcow2-policyd/guide.md"),
    ("systemd unit", "*/system/qcow2-policyd.service"),
    ("D-Bus system policy", "*/dbus-1/system.d/org.qcow2policyd.Policy1.conf"),
    ("D-Bus activation file", "*/dbus-1/system-services/org.qcow2policyd.Policy1.service"),
    ("D-Bus introspection XML", "*/dbus-1/interfaces/org.qcow2policyd.Policy1*.xml"),
    ("polkit actions", "*/polkit-1/actions/org.qcow2policyd.Policy1.policy"),
    ("RelaxNG schema", "*.rng"),
    ("configuration file", "*/qcow2-policyd/qcow2-policyd.conf"),
    ("German translation", "*/locale/de/LC_MESSAGES/qcow2-policyd.mo"),
    ("Japanese translation", "*/locale/ja/LC_MESSAGES/qcow2-policyd.mo"),
]


@pytest.mark.parametrize("what,pattern", EXPECTED, ids=[e[0] for e in EXPECTED])
def test_installed(installed, what, pattern):
    hits = [p for p in installed if fnmatch.fnmatch(p, pattern)]
    assert hits, f"{what} ({pattern}) is not installed; installed: {installed}"
