"""The README's first command, tools/demo.sh, runs to the end on the embedded default."""
import glob
import os
import subprocess

import qp_style


def test_demo_runs_and_cleans_up():
    qp_style.require_dirs()
    before = set(glob.glob("/tmp/qcow2-policyd-demo.*"))
    env = dict(os.environ, BUILDDIR=qp_style.BUILD_DIR, QP_DEMO_NO_BUILD="1")
    res = subprocess.run(["bash", os.path.join(qp_style.SOURCE_DIR, "tools", "demo.sh")],
                         capture_output=True, text=True, env=env, timeout=240)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    # The figures the demo exists to show: the 1 TiB image's 100% value, the extended-L2
    # image's, the default's quarter coverage, and both outcomes of setting a policy.
    for needle in ("134479872", "268697600", "25 %", "12.5 %", "pending-restart", "applied",
                   "<backingStore type='file'>", "Stopping the daemon"):
        assert needle in out, f"demo output lacks {needle!r}:\n{out[-4000:]}"
    # It removed its directory, and left no daemon behind.
    assert set(glob.glob("/tmp/qcow2-policyd-demo.*")) == before
    ps = subprocess.run(["pgrep", "-f", "qcow2-policyd --session --connect test:///tmp/qcow2-policyd-demo"],
                        capture_output=True, text=True)
    assert ps.stdout.strip() == "", f"daemon left running: {ps.stdout}"
