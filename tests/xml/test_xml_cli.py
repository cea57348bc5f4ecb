# SPDX-License-Identifier: LGPL-2.1-or-later
"""qcow2-policyctl plan / apply-xml on a corpus of domain XMLs as libvirt writes them,
images made with qemu-img, the RelaxNG schema, invalid policies, chain mismatches and
hostile documents."""

import json
import os
import re

import pytest

from conftest import (GIB, MIB, QC_NS, RNG, canonical, chain_of, corpus_files, ctl,
                      explicit_depths,
                      expected_max_size, info, load_corpus, max_size_of, need, parse,
                      policy_for, qemu_img, run, strip_owned)

HERE = os.path.dirname(os.path.abspath(__file__))


def validate_domain(path):
    p = run([need("virt-xml-validate"), path, "domain"])
    assert p.returncode == 0, (p.stdout + p.stderr).decode(errors="replace")


def backing_chain(path):
    """[(filename, format)] as qemu-img resolves it, top first."""
    out = json.loads(qemu_img("info", "--output=json", "--backing-chain", path))
    return [(os.path.realpath(i["filename"]), i["format"]) for i in out]


def layer_path(el):
    src = el.find("source")
    return None if src is None else (src.get("file") or src.get("dev"))


# -- the corpus ---------------------------------------------------------------------

_MC = re.compile(rb"\s*<metadata_cache>.*?</metadata_cache>", re.S)
_EMPTIED = re.compile(rb"<(driver|format)((?:\s[^>]*?)?)>((?:\s*<!--.*?-->)*)\s*</\1>", re.S)
_LAYER = re.compile(rb"\s*<backingStore type='(?:file|block)'>\s*<format type='\w+'/>\s*"
                    rb"<source (?:file|dev)='[^']*'/>(?:\s*<backingStore/>)?\s*</backingStore>")
_END = re.compile(rb"\s*<backingStore/>")


def reduce_owned(text):
    """@text without what the policy owns: <metadata_cache> elements (a <driver> or
    <format> they leave empty closes as before) and backing layers of the form the rewrite
    adds, innermost first, and chain terminators."""
    text = _MC.sub(b"", text)
    text = _EMPTIED.sub(lambda m: b"<%s%s%s/>" % (m.group(1), m.group(2), m.group(3))
                        if not m.group(3) else m.group(0), text)
    while True:
        reduced = _END.sub(b"", _LAYER.sub(b"", text))
        if reduced == text:
            return text
        text = reduced

@pytest.mark.parametrize("path", corpus_files(), ids=os.path.basename)
def test_corpus_apply(path, image_dir, work_dir):
    data = load_corpus(path, image_dir)
    p = ctl("apply-xml", "-", input=data)
    assert p.returncode == 0, p.stderr.decode()
    for line in p.stderr.decode().splitlines():
        assert line.startswith("qcow2-policyctl: warning: -: disk "), line
        assert "raised to" in line
    out = p.stdout
    out_file = work_dir / "out.xml"
    out_file.write_bytes(out)
    validate_domain(str(out_file))

    inp_tree, out_tree = parse(data), parse(out)
    pol = policy_for(inp_tree)
    if pol is None:
        assert out == data, "a document without a policy must come out byte for byte"
        return

    # Round trip: everything but the owned elements is the same.
    keep = explicit_depths(inp_tree)
    assert canonical(strip_owned(out_tree, keep)) == canonical(strip_owned(inp_tree))

    # Strings that a tree comparison would not see: prefixes, comments, CDATA, secrets.
    for token in re.findall(rb"<!\[CDATA\[.*?\]\]>|<!--.*?-->|xmlns:\w+=", data, re.S):
        assert token in out, token
    for secret in re.findall(rb"passwd='[^']*'", data):
        assert secret in out

    # Byte for byte: with the owned constructs taken out of both, the texts are equal.
    assert reduce_owned(out) == reduce_owned(data)

    # The policy element, as it stands in the output, is valid by the schema.
    m = re.search(rb"<qc:l2cache\b[^>]*?/>|<qc:l2cache\b.*?</qc:l2cache>", out, re.S)
    assert m, "no policy element"
    policy_file = work_dir / "policy.xml"
    policy_file.write_bytes(m.group(0))
    p = run([need("xmllint"), "--noout", "--relaxng", RNG, str(policy_file)])
    assert p.returncode == 0, p.stderr.decode()

    default, overrides = pol
    in_disks = {d.find("target").get("dev"): d for d in inp_tree.iterfind("devices/disk")}
    for disk in out_tree.iterfind("devices/disk"):
        dev = disk.find("target").get("dev")
        before = in_disks[dev]
        eff = overrides.get(dev, default)
        driver = disk.find("driver")
        qcow2_file = (disk.get("type", "file") in ("file", "block")
                      and driver is not None and driver.get("type") == "qcow2"
                      and layer_path(disk) is not None)
        if eff is None or not qcow2_file:
            assert max_size_of(driver) == max_size_of(before.find("driver")), dev
            continue
        percent, cap, chain = eff
        top = layer_path(disk)
        assert max_size_of(driver) == expected_max_size(top, percent, cap), dev
        layers = chain_of(disk)
        if chain == "top":
            assert ([max_size_of(x.find("format")) for x in layers]
                    == [max_size_of(x.find("format")) for x in chain_of(before)]), dev
            continue
        # chain="all": the written chain is qemu-img's, terminated, sized per layer.
        want = backing_chain(top)[1:]
        got = [(os.path.realpath(layer_path(x)), x.find("format").get("type")) for x in layers]
        assert got == want, dev
        if layers:
            end = layers[-1].find("backingStore")
            assert end is not None and end.get("type") is None and len(end) == 0, "unterminated"
        else:
            # an image with no backing file needs no chain, and gets none added
            assert disk.find("backingStore") is None or before.find("backingStore") is not None
        for x, (p_, fmt) in zip(layers, want):
            if fmt == "qcow2":
                assert max_size_of(x.find("format")) == expected_max_size(p_, percent, cap)
            else:
                assert x.find("format/metadata_cache") is None

    # Idempotent: a second pass changes nothing, byte for byte.
    again = ctl("apply-xml", "-", input=out)
    assert again.returncode == 0, again.stderr.decode()
    assert again.stdout == out


@pytest.mark.parametrize("path", corpus_files(), ids=os.path.basename)
def test_corpus_plan(path, image_dir):
    data = load_corpus(path, image_dir)
    p = ctl("plan", "--json", "-", input=data)
    assert p.returncode == 0, p.stderr.decode()
    plan = json.loads(p.stdout)
    tree = parse(data)
    assert plan["name"] == tree.findtext("name")
    if policy_for(tree) is None:
        assert plan["policy"] is None and plan["items"] == [] and plan["changes"] is False
        return
    devs = [d.find("target").get("dev") for d in tree.iterfind("devices/disk")]
    assert [i["dev"] for i in plan["items"] if i["depth"] == 0] == devs
    for item in plan["items"]:
        assert item["action"] in ("write", "unchanged", "skip")
        if item["action"] == "skip":
            assert item["reason"], item
            assert item["failed"] is False, item
        else:
            assert item["max-size"] == expected_max_size(item["path"], item["percent"],
                                                         _cap(tree, item["dev"]))
            assert 0 < item["policy"]["l2-coverage"] <= 1
            assert item["policy"]["cache-size"] == item["max-size"]
    table = ctl("plan", "-", input=data)
    assert table.returncode == 0
    for dev in devs:
        assert re.search(rb"^" + dev.encode() + rb"\s", table.stdout, re.M), dev


def _cap(tree, dev):
    default, overrides = policy_for(tree)
    eff = overrides.get(dev, default)
    return eff[1] if eff else 0


def test_skip_reasons(image_dir):
    data = load_corpus(os.path.join(HERE, "corpus", "05-network-volume-block.xml"), image_dir)
    plan = json.loads(ctl("plan", "--json", "-", input=data).stdout)
    reasons = {i["dev"]: i["reason"] for i in plan["items"]}
    assert reasons["vda"] == "network source (rbd)"
    assert reasons["vdb"] == "network source (iscsi)"
    assert reasons["vdc"] == "network source (nbd)"
    assert "volume source (pool default, volume vol1.qcow2)" in reasons["vdd"]
    assert reasons["vde"] == "not qcow2 (raw)"
    assert reasons["vdf"] is None
    data = load_corpus(os.path.join(HERE, "corpus", "06-cdrom-floppy-raw.xml"), image_dir)
    plan = json.loads(ctl("plan", "--json", "-", input=data).stdout)
    reasons = {i["dev"]: i["reason"] for i in plan["items"]}
    assert reasons == {"hda": "no source (empty cdrom)", "hdb": 'skip="yes" in the policy',
                       "hdc": None, "fda": "no source (empty floppy)",
                       "hdd": "not qcow2 (raw)"}


def test_raised_to_minimum(image_dir):
    data = load_corpus(os.path.join(HERE, "corpus", "11-many-devices.xml"), image_dir)
    plan = json.loads(ctl("plan", "--json", "-", input=data).stdout)
    items = {i["dev"]: i for i in plan["items"]}
    # max="1K" is below 4C + 2*min(C, 4096) for every image: raised, flagged
    assert items["sda"]["raised-to-minimum"] is True
    assert items["sda"]["max-size"] == 4 * 65536 + 2 * 4096
    assert items["sdc"]["max-size"] == 4 * 512 + 2 * 512
    assert items["sdb"]["raised-to-minimum"] is False
    p = ctl("plan", "-", input=data)
    assert p.returncode == 0
    assert "raised to QEMU's minimum" in p.stdout.decode()
    warnings = p.stderr.decode().splitlines()
    assert len(warnings) == 2 and all("warning" in w and "raised to" in w for w in warnings)


def test_existing_value_unchanged(image_dir):
    data = load_corpus(os.path.join(HERE, "corpus", "01-minimal-top.xml"), image_dir)
    out = ctl("apply-xml", "-", input=data).stdout
    plan = json.loads(ctl("plan", "--json", "-", input=out).stdout)
    assert plan["changes"] is False
    assert [i["action"] for i in plan["items"]] == ["unchanged"]
    assert plan["items"][0]["current-max-size"] == 128 * MIB + 4 * 65536


# -- default policy and usage ---------------------------------------------------------

def test_default_policy_only_without_own(image_dir):
    data = load_corpus(os.path.join(HERE, "corpus", "10-no-policy.xml"), image_dir)
    p = ctl("apply-xml", "--percent", "50", "-", input=data)
    assert p.returncode == 0, p.stderr
    got = max_size_of(parse(p.stdout).find("devices/disk/driver"))
    assert got == expected_max_size(os.path.join(image_dir, "big.qcow2"), 50)
    assert b"l2cache" not in p.stdout  # the default is not written into the document
    # a document's own policy wins over the default
    data = load_corpus(os.path.join(HERE, "corpus", "01-minimal-top.xml"), image_dir)
    p = ctl("apply-xml", "--percent", "50", "-", input=data)
    got = max_size_of(parse(p.stdout).find("devices/disk/driver"))
    assert got == expected_max_size(os.path.join(image_dir, "big.qcow2"), 100)


@pytest.mark.parametrize("args", [
    [], ["a.xml", "b.xml"], ["--max", "1G", "-"], ["--chain", "all", "-"],
    ["--percent", "0", "-"], ["--percent", "50%", "-"], ["--percent", "50", "--chain", "x", "-"],
    ["--bogus", "-"],
])
@pytest.mark.parametrize("cmd", ["plan", "apply-xml"])
def test_usage_errors(cmd, args):
    p = ctl(cmd, *args, input=b"")
    assert p.returncode == 2, (args, p.stderr)
    assert p.stdout == b""
    assert p.stderr


def test_missing_file():
    p = ctl("apply-xml", "/nonexistent/domain.xml")
    assert p.returncode == 1
    assert p.stdout == b"" and b"/nonexistent/domain.xml" in p.stderr


def test_unreadable_image_reported(image_dir):
    data = load_corpus(os.path.join(HERE, "corpus", "01-minimal-top.xml"), image_dir)
    data = data.replace(b"big.qcow2", b"missing.qcow2")
    p = ctl("apply-xml", "-", input=data)
    assert p.returncode == 1
    assert b'disk \xe2\x80\x9cvda\xe2\x80\x9d' in p.stderr and b"missing.qcow2" in p.stderr
    # the document still comes out, that disk untouched
    assert p.stdout == data
    p = ctl("plan", "--json", "-", input=data)
    assert p.returncode == 1
    item = json.loads(p.stdout)["items"][0]
    assert item["failed"] is True and "missing.qcow2" in item["reason"]


# -- the schema and invalid policies ---------------------------------------------------

def policy_files(kind):
    d = os.path.join(HERE, kind)
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".xml"))


def embed(policy_text, image_dir):
    tmpl = load_corpus(os.path.join(HERE, "corpus", "01-minimal-top.xml"), image_dir)
    return re.sub(rb"<qc:l2cache[^>]*/>", lambda m: policy_text, tmpl, count=1)


@pytest.mark.parametrize("path", policy_files("policy-good"), ids=os.path.basename)
def test_policy_good(path, image_dir):
    p = run([need("xmllint"), "--noout", "--relaxng", RNG, path])
    assert p.returncode == 0, p.stderr
    text = open(path, "rb").read().strip()
    p = ctl("apply-xml", "-", input=embed(text, image_dir))
    assert p.returncode == 0, p.stderr.decode()
    assert b"<metadata_cache>" in p.stdout


@pytest.mark.parametrize("path", policy_files("policy-bad"), ids=os.path.basename)
def test_policy_bad(path, image_dir):
    text = open(path, "rb").read()
    m = re.match(rb"<!-- expect: (.*?)(?: ; rng: (accepts).*?)? -->", text)
    assert m, "policy-bad files start with an expect comment"
    expect = [e.strip() for e in m.group(1).decode().split("|")]
    p = run([need("xmllint"), "--noout", "--relaxng", RNG, path])
    if m.group(2):
        assert p.returncode == 0
    else:
        assert p.returncode != 0, "the schema must refuse " + path
    p = ctl("apply-xml", "-", input=embed(text.strip(), image_dir))
    assert p.returncode == 1
    assert p.stdout == b""
    err = p.stderr.decode()
    assert "corpus-minimal" in err, err  # names the domain
    for e in expect:
        e = e.replace('"', "\u201c", 1).replace('"', "\u201d", 1) if e.startswith('"') else e
        assert e in err, (e, err)
    plan = ctl("plan", "-", input=embed(text.strip(), image_dir))
    assert plan.returncode == 1 and plan.stdout == b""


def test_policy_several_problems_one_line_each(image_dir):
    text = (b'<qc:l2cache xmlns:qc="%s" percent="0" max="1e2" chain="both" x="1"/>'
            % QC_NS.encode())
    p = ctl("apply-xml", "-", input=embed(text, image_dir))
    assert p.returncode == 1 and p.stdout == b""
    lines = p.stderr.decode().splitlines()
    assert len(lines) == 4, lines
    for attr, line in zip(["percent", "max", "chain", "x"], lines):
        assert f"\u201c{attr}\u201d" in line and line.startswith("qcow2-policyctl: -: ")


def test_two_policy_elements(image_dir):
    one = b'<qc:l2cache xmlns:qc="%s" percent="50"/>' % QC_NS.encode()
    p = ctl("apply-xml", "-", input=embed(one + one, image_dir))
    assert p.returncode == 1 and p.stdout == b""
    assert b"2 <l2cache> elements" in p.stderr


def test_huge_attribute_value_message_is_bounded(image_dir):
    text = b'<qc:l2cache xmlns:qc="%s" percent="%s"/>' % (QC_NS.encode(), b"9" * 100000)
    p = ctl("apply-xml", "-", input=embed(text, image_dir))
    assert p.returncode == 1 and p.stdout == b""
    assert len(p.stderr) < 1000


# -- chain mismatches ----------------------------------------------------------------

MISMATCH_DOC = """<domain type='qemu'>
  <name>mismatch</name>
  <metadata>
    <qc:l2cache xmlns:qc="http://qcow2policyd.org/schemas/l2cache/1.0" percent="100" chain="all"/>
  </metadata>
  <memory unit='KiB'>65536</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='@DIR@/top.qcow2'/>
      %s
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
"""


@pytest.mark.parametrize("chain,needles", [
    # wrong file at depth 1
    ("<backingStore type='file'><format type='qcow2'/><source file='@DIR@/base.qcow2'/>"
     "</backingStore>", ["depth 1", "base.qcow2", "mid.qcow2"]),
    # wrong format
    ("<backingStore type='file'><format type='raw'/><source file='@DIR@/mid.qcow2'/>"
     "</backingStore>", ["depth 1", "(raw)", "(qcow2)"]),
    # terminated too early: mid.qcow2 has a backing file
    ("<backingStore type='file'><format type='qcow2'/><source file='@DIR@/mid.qcow2'/>"
     "<backingStore/></backingStore>", ["depth 2", "base.qcow2"]),
    # one layer too many
    ("<backingStore type='file'><format type='qcow2'/><source file='@DIR@/mid.qcow2'/>"
     "<backingStore type='file'><format type='qcow2'/><source file='@DIR@/base.qcow2'/>"
     "<backingStore type='file'><format type='qcow2'/><source file='@DIR@/big.qcow2'/>"
     "</backingStore></backingStore></backingStore>", ["depth 3", "big.qcow2"]),
    # a network layer where the headers give a file
    ("<backingStore type='network'><format type='qcow2'/><source protocol='nbd' name='x'>"
     "<host name='h'/></source></backingStore>", ["depth 1", "network", "mid.qcow2"]),
])
def test_chain_mismatch(image_dir, chain, needles):
    data = (MISMATCH_DOC % chain).replace("@DIR@", image_dir).encode()
    for cmd in ("apply-xml", "plan"):
        p = ctl(cmd, "-", input=data)
        assert p.returncode == 1, p.stdout
        assert p.stdout == b""
        err = p.stderr.decode()
        assert "mismatch" in err and "\u201cvda\u201d" in err, err
        for n in needles:
            assert n in err, (n, err)


def test_chain_match_via_other_spelling(image_dir, work_dir):
    """A chain naming the same files by another path (a symlinked directory) matches."""
    link = work_dir / "imgs"
    os.symlink(image_dir, link)
    chain = ("<backingStore type='file'><format type='qcow2'/><source file='%s/mid.qcow2'/>"
             "</backingStore>" % link)
    data = (MISMATCH_DOC % chain).replace("@DIR@", image_dir).encode()
    p = ctl("apply-xml", "-", input=data)
    assert p.returncode == 0, p.stderr.decode()
    assert ("%s/mid.qcow2" % link).encode() in p.stdout  # never overwritten


# -- hostile documents ---------------------------------------------------------------

def refused(data, timeout=30):
    for cmd in ("apply-xml", "plan"):
        p = ctl(cmd, "-", input=data, timeout=timeout)
        assert p.returncode == 1, (cmd, p.stderr[:500])
        assert p.stdout == b""
        assert p.stderr.count(b"\n") >= 1
    return p.stderr.decode(errors="replace")


def test_xxe_refused():
    passwd = open("/etc/passwd", "rb").read().splitlines()[0]
    doc = (b'<?xml version="1.0"?>\n<!DOCTYPE domain [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
           b"\n<domain><name>&xxe;</name></domain>\n")
    err = refused(doc)
    assert "DTD" in err
    assert passwd.decode() not in err


def test_xxe_parameter_entity_refused():
    doc = (b'<!DOCTYPE domain [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
           b"<domain><name>x</name></domain>")
    assert "DTD" in refused(doc)


def test_billion_laughs_refused():
    ents = ['<!ENTITY lol "lol">'] + [
        '<!ENTITY lol%d "%s">' % (i, ("&lol%s;" % (i - 1 if i > 1 else "")) * 10)
        for i in range(1, 10)]
    doc = ("<!DOCTYPE domain [%s]><domain><name>&lol9;</name></domain>" % "".join(ents))
    assert "DTD" in refused(doc.encode(), timeout=10)


def test_external_dtd_refused():
    doc = b'<!DOCTYPE domain SYSTEM "http://127.0.0.1:9/domain.dtd"><domain/>'
    assert "DTD" in refused(doc, timeout=10)


def test_undeclared_entity_is_parse_error():
    assert "line 1" in refused(b"<domain><name>&foo;</name></domain>")


def test_xinclude_not_processed(image_dir):
    data = load_corpus(os.path.join(HERE, "corpus", "01-minimal-top.xml"), image_dir)
    data = data.replace(b"<devices>", b'<devices><xi:include xmlns:xi="http://www.w3.org/2001/'
                        b'XInclude" href="/etc/passwd" parse="text"/>', 1)
    p = ctl("apply-xml", "-", input=data)
    assert p.returncode == 0
    assert open("/etc/passwd", "rb").read().splitlines()[0] not in p.stdout
    assert b"xi:include" in p.stdout


def test_truncated_documents(image_dir):
    data = load_corpus(os.path.join(HERE, "corpus", "07-qemu-commandline-secrets.xml"),
                       image_dir)
    end = data.rindex(b"</domain>") + len(b"</domain>")
    lengths = sorted(set(list(range(0, 64)) + list(range(64, end, 37)) + [end - 1]))
    for n in lengths:
        p = ctl("apply-xml", "-", input=data[:n])
        assert p.returncode == 1, n
        assert p.stdout == b"", n
        if n > 0:
            assert re.search(rb"line \d+, column \d+", p.stderr), (n, p.stderr)


def test_document_too_large():
    doc = b"<domain>" + b"<!-- padding -->" * (20 * MIB // 16) + b"</domain>"
    assert "limit" in refused(doc)


def test_deep_nesting():
    doc = b"<domain>" + b"<a>" * 10000 + b"</a>" * 10000 + b"</domain>"
    assert "deeper than 256" in refused(doc)


def test_huge_attribute_value():
    # 10 MiB fits the 16 MiB document limit; libxml2's own 10,000,000-byte limit on one
    # attribute value refuses it as malformed, in bounded time and memory.
    doc = (b'<domain><name>x</name><devices><disk type="file" x="' + b"x" * (10 * MIB) +
           b'"/></devices></domain>')
    refused(doc)


def test_not_utf8():
    err = refused(b"<domain><name>\xff\xfe caf\xe9</name></domain>")
    assert "UTF-8" in err


def test_latin1_declaration_still_utf8():
    # Documents are read as UTF-8, as libvirt writes them, whatever a declaration says.
    refused(b'<?xml version="1.0" encoding="ISO-8859-1"?><domain><name>caf\xe9</name></domain>')


def test_root_not_domain():
    assert "<network>" in refused(b"<network><name>default</name></network>")


def test_namespaced_domain_root_refused():
    refused(b'<x:domain xmlns:x="http://example.org/"><name>a</name></x:domain>')


def test_nothing_on_stderr_from_libxml2():
    p = ctl("apply-xml", "-", input=b"<domain><a></b></domain>")
    assert p.returncode == 1
    assert len(p.stderr.decode().splitlines()) == 1


def test_crlf_and_bom_kept(image_dir):
    data = load_corpus(os.path.join(HERE, "corpus", "02-chain-all-implicit.xml"), image_dir)
    lf = ctl("apply-xml", "-", input=data)
    assert lf.returncode == 0
    crlf = ctl("apply-xml", "-", input=data.replace(b"\n", b"\r\n"))
    assert crlf.returncode == 0
    assert crlf.stdout == lf.stdout.replace(b"\n", b"\r\n")
    bom = ctl("apply-xml", "-", input=b"\xef\xbb\xbf" + data)
    assert bom.returncode == 0
    assert bom.stdout == b"\xef\xbb\xbf" + lf.stdout


def test_large_document_byte_exact(image_dir):
    """Offsets stay exact past libxml2's input buffer refills (a 2 MB description)."""
    data = load_corpus(os.path.join(HERE, "corpus", "02-chain-all-implicit.xml"), image_dir)
    data = data.replace(b"<memory ", b"<!-- %s -->\n  <memory " % (b"x" * 2 * MIB), 1)
    p = ctl("apply-xml", "-", input=data)
    assert p.returncode == 0, p.stderr.decode()
    assert b"<max_size unit='bytes'>" in p.stdout  # the byte-preserving write, no fallback
    assert reduce_owned(p.stdout) == reduce_owned(data)
