"""The spec's claims about libvirt and QEMU (sections 2 and 4), checked on the real thing:
<metadata_cache> reaches QEMU as the format node's "cache-size", and a backing layer gets
one only through an explicit, terminated <backingStore> chain."""

import os

import qpe2e


def _chain(image_dir):
    base = qpe2e.qemu_img_create(os.path.join(image_dir, "base.qcow2"), "2G")
    top = qpe2e.qemu_img_create(os.path.join(image_dir, "top.qcow2"), "4G",
                                backing="base.qcow2")
    return os.path.realpath(top), os.path.realpath(base)


def test_metadata_cache_becomes_cache_size_in_native_argv(domains, image_dir):
    img = qpe2e.qemu_img_create(os.path.join(image_dir, "a.qcow2"), "1G")
    n = 1234944
    name = domains.define(qpe2e.domain_xml(qpe2e.unique_name("native"),
                                           [qpe2e.disk_xml("vda", img, top_cache=n)]),
                          image_dir)
    argv = qpe2e.native_argv(name)
    assert '"cache-size":%d' % n in " ".join(argv)
    assert qpe2e.qcow2_format_nodes(argv) == {os.path.realpath(img): n}


def test_no_metadata_cache_no_cache_size(domains, image_dir):
    img = qpe2e.qemu_img_create(os.path.join(image_dir, "a.qcow2"), "1G")
    name = domains.define(qpe2e.domain_xml(qpe2e.unique_name("nocache"),
                                           [qpe2e.disk_xml("vda", img)]), image_dir)
    assert qpe2e.qcow2_format_nodes(qpe2e.native_argv(name)) == {os.path.realpath(img): None}


def test_explicit_chain_gives_backing_node_cache_size(domains, image_dir):
    top, base = _chain(image_dir)
    name = domains.define(qpe2e.domain_xml(
        qpe2e.unique_name("chain"),
        [qpe2e.disk_xml("vda", top, chain=[base], explicit_chain=True, top_cache=1234944,
                        layer_cache={base: 655360})]), image_dir)
    # The persistent definition keeps the chain and both values.
    xml_text = qpe2e.virsh("dumpxml", "--inactive", name).stdout
    assert qpe2e.persistent_cache_values(xml_text)["vda"] == [(top, 1234944),
                                                                (base, 655360)]
    qpe2e.virsh("start", name)
    nodes = qpe2e.qcow2_format_nodes(qpe2e.qemu_cmdline(name))
    assert nodes == {top: 1234944, base: 655360}


def test_without_explicit_chain_backing_node_has_no_cache_size(domains, image_dir):
    top, base = _chain(image_dir)
    name = domains.define(qpe2e.domain_xml(
        qpe2e.unique_name("nochain"),
        [qpe2e.disk_xml("vda", top, top_cache=1234944)]), image_dir)
    qpe2e.virsh("start", name)
    nodes = qpe2e.qcow2_format_nodes(qpe2e.qemu_cmdline(name))
    # libvirt found the backing layer itself at start, and gave it no cache setting.
    assert nodes == {top: 1234944, base: None}

