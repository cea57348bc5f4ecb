/* Unit tests of xml/: safe parsing, disks, the policy element, plan and rewrite.
 * Images are made with qemu-img in a temporary directory. */
#include "config.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

#include "qp-domain-xml.h"
#include "qp-plan.h"
#include "qp-policy.h"
#include "qp-xml-private.h"

#define MIB (1024ULL * 1024)
#define QC  "xmlns:qc=\"" QP_POLICY_NS_URI "\""

static char *image_dir;

static void
qemu_img(const char *args)
{
  g_autofree char *cmd = g_strdup_printf("qemu-img %s", args);
  g_autofree char *err = NULL;
  g_autoptr(GError) error = NULL;
  int status = 0;

  g_assert_true(g_spawn_command_line_sync(cmd, NULL, &err, &status, &error));
  g_assert_no_error(error);
  if (!g_spawn_check_wait_status(status, NULL))
    g_error("%s failed: %s", cmd, err);
}

static void
make_images(void)
{
  g_autofree char *cmd = NULL;

  image_dir = g_dir_make_tmp("qp-test-xml-XXXXXX", NULL);
  g_assert_nonnull(image_dir);
  cmd = g_strdup_printf("create -q -f qcow2 %s/base.qcow2 20G", image_dir);
  qemu_img(cmd);
  g_free(cmd);
  cmd = g_strdup_printf("create -q -f qcow2 -b base.qcow2 -F qcow2 %s/top.qcow2 1T", image_dir);
  qemu_img(cmd);
  g_free(cmd);
  cmd = g_strdup_printf("create -q -f qcow2 -o extended_l2=on %s/ext.qcow2 512G", image_dir);
  qemu_img(cmd);
  g_free(cmd);
  cmd = g_strdup_printf("create -q -f raw %s/raw.img 1M", image_dir);
  qemu_img(cmd);
}

static void
remove_images(void)
{
  const char *names[] = { "base.qcow2", "top.qcow2", "ext.qcow2", "raw.img" };
  for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
    g_autofree char *p = g_build_filename(image_dir, names[i], NULL);
    g_unlink(p);
  }
  g_rmdir(image_dir);
  g_free(image_dir);
}

/* A domain with @metadata and @disks, @DIR@ replaced by the image directory. */
static char *
domain_xml(const char *metadata, const char *disks)
{
  g_autofree char *text = g_strdup_printf("<domain type='qemu'>\n"
                                          "  <name>unit</name>\n"
                                          "  <uuid>8f0e2c3a-0000-4000-8000-000000000001</uuid>\n"
                                          "  <metadata>\n"
                                          "    %s\n"
                                          "  </metadata>\n"
                                          "  <memory unit='KiB'>65536</memory>\n"
                                          "  <os>\n"
                                          "    <type arch='x86_64' machine='pc'>hvm</type>\n"
                                          "  </os>\n"
                                          "  <devices>\n"
                                          "%s"
                                          "  </devices>\n"
                                          "</domain>\n",
                                          metadata, disks);
  g_auto(GStrv) parts = g_strsplit(text, "@DIR@", -1);
  return g_strjoinv(image_dir, parts);
}

#define DISK(type, fmt, src, dev, extra)                                                           \
  "    <disk type='" type "' device='disk'>\n"                                                     \
  "      <driver name='qemu' type='" fmt "'/>\n"                                                   \
  "      " src "\n" extra "      <target dev='" dev "' bus='virtio'/>\n"                           \
  "    </disk>\n"

/* ---- parsing ---- */

static void
test_parse_basic(void)
{
  g_autofree char *text = domain_xml(
      "<qc:l2cache " QC " percent='50'/>",
      DISK("file", "qcow2", "<source file='/a.qcow2'/>", "vda",
           "      <backingStore type='block'><format type='qcow2'><metadata_cache><max_size "
           "unit='KiB'>512</max_size></metadata_cache></format><source dev='/dev/b'/>"
           "<backingStore/></backingStore>\n") "    <disk type='network' device='disk'><driver "
                                               "name='qemu' type='raw'/>"
                                               "<source protocol='rbd' name='p/i'/><target "
                                               "dev='vdb'/></disk>\n"
                                               "    <disk device='cdrom'><driver name='qemu' "
                                               "type='raw'><metadata_cache><max_size "
                                               "unit='M'>3</max_size></metadata_cache></"
                                               "driver><target dev='sda'/></disk>\n");
  g_autoptr(GError) error = NULL;
  g_autoptr(QpDomainXml) doc = qp_domain_xml_parse(text, -1, &error);
  g_autoptr(GPtrArray) disks = NULL;
  const QpDomainDisk *d;
  const QpDiskLayer *l;

  g_assert_no_error(error);
  g_assert_cmpstr(qp_domain_xml_get_name(doc), ==, "unit");
  g_assert_cmpstr(qp_domain_xml_get_uuid(doc), ==, "8f0e2c3a-0000-4000-8000-000000000001");
  disks = qp_domain_xml_get_disks(doc, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(disks->len, ==, 3);

  d = g_ptr_array_index(disks, 0);
  g_assert_cmpstr(d->dev, ==, "vda");
  g_assert_cmpstr(d->device, ==, "disk");
  g_assert_true(d->chain_explicit);
  g_assert_true(d->chain_terminated);
  g_assert_cmpuint(d->layers->len, ==, 2);
  l = g_ptr_array_index(d->layers, 0);
  g_assert_cmpstr(l->source_type, ==, "file");
  g_assert_cmpstr(l->path, ==, "/a.qcow2");
  g_assert_cmpstr(l->format, ==, "qcow2");
  g_assert_false(l->has_metadata_cache);
  l = g_ptr_array_index(d->layers, 1);
  g_assert_cmpuint(l->depth, ==, 1);
  g_assert_cmpstr(l->source_type, ==, "block");
  g_assert_cmpstr(l->path, ==, "/dev/b");
  g_assert_true(l->has_metadata_cache);
  g_assert_cmpuint(l->metadata_cache_max_size, ==, 512 * 1024);

  d = g_ptr_array_index(disks, 1);
  l = g_ptr_array_index(d->layers, 0);
  g_assert_cmpstr(l->source_type, ==, "network");
  g_assert_null(l->path);
  g_assert_false(d->chain_explicit);

  d = g_ptr_array_index(disks, 2);
  g_assert_cmpstr(d->device, ==, "cdrom");
  l = g_ptr_array_index(d->layers, 0);
  g_assert_cmpstr(l->source_type, ==, "file"); /* libvirt's default */
  g_assert_null(l->path);
  g_assert_cmpuint(l->metadata_cache_max_size, ==, 3 * MIB);
}

static void
test_parse_scaled(void)
{
  const struct {
    const char *digits, *unit;
    guint64 want;
  } good[] = {
    { "5", NULL, 5 },          { "5", "b", 5 },         { "5", "bytes", 5 },
    { "5", "Byte", 5 },        { "2", "k", 2048 },      { "2", "KiB", 2048 },
    { "2", "KB", 2000 },       { "1", "M", MIB },       { "1", "mib", MIB },
    { "1", "GB", 1000000000 }, { "1", "T", MIB * MIB }, { "15", "EiB", 15ULL << 60 },
  };
  const struct {
    const char *digits, *unit;
  } bad[] = {
    { "", NULL },
    { "-1", NULL },
    { "1.5", "M" },
    { "1", "X" },
    { "1", "Mi" },
    { "1", "MiBs" },
    { "18446744073709551616", NULL },
    { "16", "EiB" },
    { "1 ", "M" },
  };

  for (guint i = 0; i < G_N_ELEMENTS(good); i++) {
    g_autoptr(GError) error = NULL;
    guint64 v = 0;
    g_assert_true(qp_xml_parse_scaled(good[i].digits, good[i].unit, &v, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(v, ==, good[i].want);
  }
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GError) error = NULL;
    guint64 v = 0;
    g_assert_false(qp_xml_parse_scaled(bad[i].digits, bad[i].unit, &v, &error));
    g_assert_error(error, QP_XML_ERROR, QP_XML_ERROR_PARSE);
  }
}

static void
expect_refused(const char *text, gssize len, int code, const char *needle)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QpDomainXml) doc = qp_domain_xml_parse(text, len, &error);

  g_assert_null(doc);
  g_assert_error(error, QP_XML_ERROR, code);
  if (needle != NULL && strstr(error->message, needle) == NULL)
    g_error("“%s” not in “%s”", needle, error->message);
}

static void
test_parse_hostile(void)
{
  g_autoptr(GString) deep = g_string_new("<domain>");
  g_autofree char *big = NULL;

  expect_refused("<!DOCTYPE domain [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
                 "<domain><name>&x;</name></domain>",
                 -1, QP_XML_ERROR_UNSAFE, "DTD");
  expect_refused("<!DOCTYPE domain SYSTEM 'http://127.0.0.1:9/d.dtd'><domain/>", -1,
                 QP_XML_ERROR_UNSAFE, NULL);
  expect_refused("<!DOCTYPE domain><domain/>", -1, QP_XML_ERROR_UNSAFE, NULL);
  expect_refused("<domain><name>&lol;</name></domain>", -1, QP_XML_ERROR_PARSE, "line 1");
  expect_refused("<domain>\n<name>x</nam></domain>", -1, QP_XML_ERROR_PARSE, "line 2");
  expect_refused("<network/>", -1, QP_XML_ERROR_NOT_DOMAIN, "<network>");
  expect_refused("<x:domain xmlns:x='urn:x'/>", -1, QP_XML_ERROR_NOT_DOMAIN, NULL);
  expect_refused("", -1, QP_XML_ERROR_PARSE, NULL);
  expect_refused("<domain>\xff</domain>", -1, QP_XML_ERROR_PARSE, "UTF-8");
  /* an embedded NUL is not hidden by the explicit length */
  expect_refused("<domain>\0</domain>", 18, QP_XML_ERROR_PARSE, NULL);

  for (guint i = 0; i < QP_XML_MAX_DEPTH; i++)
    g_string_append(deep, "<a>");
  for (guint i = 0; i < QP_XML_MAX_DEPTH; i++)
    g_string_append(deep, "</a>");
  g_string_append(deep, "</domain>");
  expect_refused(deep->str, -1, QP_XML_ERROR_LIMIT, "deeper");

  big = g_malloc(QP_XML_MAX_DOCUMENT_SIZE + 2);
  memset(big, ' ', QP_XML_MAX_DOCUMENT_SIZE + 1);
  big[QP_XML_MAX_DOCUMENT_SIZE + 1] = '\0';
  memcpy(big, "<domain>", 8);
  expect_refused(big, -1, QP_XML_ERROR_LIMIT, "limit");
}

/* libxml2 quotes the input in some messages, cut anywhere: ours stay valid UTF-8 on one
 * line (found by fuzz-policy). */
static void
test_parse_error_text(void)
{
  for (guint k = 0; k < 100; k++) {
    g_autoptr(GString) s = g_string_new("<domain><!-- ");
    g_autoptr(GError) error = NULL;
    g_autoptr(QpDomainXml) doc = NULL;

    for (guint i = 0; i < k; i++)
      g_string_append_c(s, 'x');
    for (guint i = 0; i < 40; i++)
      g_string_append(s, "\xe2\x80\xa6\n");
    doc = qp_domain_xml_parse(s->str, -1, &error);
    g_assert_null(doc);
    g_assert_error(error, QP_XML_ERROR, QP_XML_ERROR_PARSE);
    g_assert_true(g_utf8_validate(error->message, -1, NULL));
    g_assert_null(strchr(error->message, '\n'));
  }
}

static void
test_parse_depth_limit_exact(void)
{
  g_autoptr(GString) s = g_string_new("<domain>");
  g_autoptr(GError) error = NULL;
  g_autoptr(QpDomainXml) doc = NULL;

  /* QP_XML_MAX_DEPTH levels in all, the root included: accepted */
  for (guint i = 1; i < QP_XML_MAX_DEPTH; i++)
    g_string_append(s, "<a>");
  for (guint i = 1; i < QP_XML_MAX_DEPTH; i++)
    g_string_append(s, "</a>");
  g_string_append(s, "</domain>");
  doc = qp_domain_xml_parse(s->str, -1, &error);
  g_assert_no_error(error);
  g_assert_nonnull(doc);
}

static void
test_parse_truncated(void)
{
  g_autofree char *text = domain_xml("<qc:l2cache " QC " percent='50'/>",
                                     DISK("file", "qcow2", "<source file='/x'/>", "vda", ""));
  gsize end = (gsize)(strstr(text, "</domain>") - text) + strlen("</domain>");

  for (gsize n = 0; n < end; n++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpDomainXml) doc = qp_domain_xml_parse(text, (gssize)n, &error);
    g_assert_null(doc);
    g_assert_nonnull(error);
  }
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpDomainXml) doc = qp_domain_xml_parse(text, (gssize)end, &error);
    g_assert_no_error(error);
  }
}

static void
test_to_string_roundtrip(void)
{
  /* Quote styles, attribute order after namespace declarations, character references
   * and the declaration: libxml2's writer would change each; the text must not change. */
  const char *text = "<?xml version='1.0'?>\n<!-- c -->\n<domain type='qemu' "
                     "xmlns:qemu=\"http://libvirt.org/schemas/domain/qemu/1.0\">\n"
                     "  <title>caf&#xe9; &apos;x&apos;</title>\n"
                     "  <name>a</name>\n  <description><![CDATA[x < y]]></description>\n"
                     "  <qemu:commandline>\n    <qemu:arg value=\"-x\"/>\n"
                     "  </qemu:commandline>\n</domain>\n";
  g_autoptr(GError) error = NULL;
  g_autoptr(QpDomainXml) doc = qp_domain_xml_parse(text, -1, &error);
  g_autofree char *out = NULL;

  g_assert_no_error(error);
  out = qp_domain_xml_to_string(doc);
  g_assert_cmpstr(out, ==, text);
}

/* ---- policy ---- */

static void
test_policy_good(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QpPolicy) p
      = qp_policy_parse("<qc:l2cache " QC " percent='100' max='256MiB' chain='all'>"
                        "<qc:disk dev='vdb' percent='25'/><!-- c --><qc:disk dev='vdc' skip='yes'/>"
                        "<qc:disk dev='vdd' chain='top' max='1G'/></qc:l2cache>",
                        &error);
  g_autoptr(QpPolicy) p2 = NULL;
  g_autofree char *elem = NULL;
  g_autofree char *elem2 = NULL;
  guint percent = 0;
  guint64 max = 0;
  QpChainMode chain = QP_CHAIN_TOP;

  g_assert_no_error(error);
  g_assert_cmpuint(p->percent, ==, 100);
  g_assert_cmpuint(p->max, ==, 256 * MIB);
  g_assert_cmpint(p->chain, ==, QP_CHAIN_ALL);
  g_assert_cmpuint(p->disks->len, ==, 3);

  g_assert_true(qp_policy_for_disk(p, "vda", &percent, &max, &chain));
  g_assert_cmpuint(percent, ==, 100);
  g_assert_true(qp_policy_for_disk(p, "vdb", &percent, &max, &chain));
  g_assert_cmpuint(percent, ==, 25);
  g_assert_cmpuint(max, ==, 256 * MIB);
  g_assert_cmpint(chain, ==, QP_CHAIN_ALL);
  g_assert_false(qp_policy_for_disk(p, "vdc", &percent, &max, &chain));
  g_assert_true(qp_policy_for_disk(p, "vdd", &percent, &max, &chain));
  g_assert_cmpuint(max, ==, 1024 * MIB);
  g_assert_cmpint(chain, ==, QP_CHAIN_TOP);

  elem = qp_policy_to_element(p);
  g_assert_cmpstr(elem, ==,
                  "<l2cache percent=\"100\" max=\"256MiB\" chain=\"all\"><disk dev=\"vdb\" "
                  "percent=\"25\"/><disk dev=\"vdc\" skip=\"yes\"/><disk dev=\"vdd\" "
                  "max=\"1GiB\" chain=\"top\"/></l2cache>");
  p2 = qp_policy_parse(elem, &error);
  g_assert_no_error(error);
  elem2 = qp_policy_to_element(p2);
  g_assert_cmpstr(elem, ==, elem2);

  {
    /* a dev with whitespace and markup survives the round trip (found by fuzz-policy) */
    g_autoptr(QpPolicy) odd = qp_policy_parse(
        "<l2cache percent='5'><disk dev='v&#9;d&#10;b&amp;&lt;\"' percent='7'/></l2cache>", &error);
    g_autoptr(QpPolicy) back = NULL;
    g_autofree char *odd_elem = NULL;
    g_assert_no_error(error);
    odd_elem = qp_policy_to_element(odd);
    back = qp_policy_parse(odd_elem, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(((QpPolicyDisk *)g_ptr_array_index(back->disks, 0))->dev, ==, "v\td\nb&<\"");
  }
}

static void
expect_policy_error(const char *attrs, const char *children, const char *needle1,
                    const char *needle2)
{
  g_autofree char *text = g_strdup_printf("<qc:l2cache " QC " %s>%s</qc:l2cache>", attrs, children);
  g_autoptr(GError) error = NULL;
  g_autoptr(QpPolicy) p = qp_policy_parse(text, &error);

  g_assert_null(p);
  g_assert_error(error, QP_XML_ERROR, QP_XML_ERROR_POLICY);
  if (strstr(error->message, needle1) == NULL
      || (needle2 != NULL && strstr(error->message, needle2) == NULL))
    g_error("%s: “%s” / “%s” not in “%s”", text, needle1, needle2, error->message);
}

static void
test_policy_bad(void)
{
  const char *bad_percent[] = { "0",   "101", "50%",  "1e2", " 50",  "50 ",  "+50",
                                "050", "-1",  "12.5", "",    "0x10", "1000", "٣" };

  for (guint i = 0; i < G_N_ELEMENTS(bad_percent); i++) {
    g_autofree char *attrs = g_strdup_printf("percent='%s'", bad_percent[i]);
    g_autofree char *quoted = g_strdup_printf("“%s”", bad_percent[i]);
    expect_policy_error(attrs, "", "“percent”", quoted);
  }
  expect_policy_error("max='1M'", "", "“percent”", "required");
  expect_policy_error("percent='5' max='0'", "", "“max”", "“0”");
  expect_policy_error("percent='5' max='01M'", "", "“max”", "“01M”");
  expect_policy_error("percent='5' max='1XiB'", "", "“max”", "“1XiB”");
  expect_policy_error("percent='5' max='99999999999999999999'", "", "“max”", NULL);
  expect_policy_error("percent='5' chain='All'", "", "“chain”", "“All”");
  expect_policy_error("percent='5' foo='1'", "", "unknown attribute", "“foo”");
  expect_policy_error("percent='5'", "<qc:disk dev='a'/><qc:disk dev='a'/>", "duplicate",
                      "dev=\"a\"");
  expect_policy_error("percent='5'", "<qc:disk/>", "“dev”", "required");
  expect_policy_error("percent='5'", "<qc:disk dev=''/>", "“dev”", "empty");
  expect_policy_error("percent='5'", "<qc:disk dev='a' skip='1'/>", "“skip”", "“1”");
  expect_policy_error("percent='5'", "<qc:disk dev='a' bar='1'/>", "unknown attribute", "bar");
  expect_policy_error("percent='5'", "<qc:disk dev='a'><qc:x/></qc:disk>", "child", NULL);
  expect_policy_error("percent='5'", "<qc:other/>", "unknown child", "<other>");
  expect_policy_error("percent='5'", "<disk dev='a'/>", "unknown child", NULL);
  expect_policy_error("percent='5'", "text", "unexpected text", NULL);
  {
    /* the message names the value, bounded */
    g_autoptr(GString) huge = g_string_new("percent='");
    g_autoptr(GError) error = NULL;
    g_autofree char *text = NULL;
    g_autoptr(QpPolicy) p = NULL;
    for (guint i = 0; i < 100000; i++)
      g_string_append_c(huge, '7');
    g_string_append(huge, "'");
    text = g_strdup_printf("<qc:l2cache " QC " %s/>", huge->str);
    p = qp_policy_parse(text, &error);
    g_assert_null(p);
    g_assert_cmpuint(strlen(error->message), <, 400);
  }
  {
    /* every problem, one line each */
    g_autoptr(GError) error = NULL;
    g_autoptr(QpPolicy) p = qp_policy_parse("<qc:l2cache " QC " percent='0' chain='x'/>", &error);
    g_auto(GStrv) lines = NULL;
    g_assert_null(p);
    lines = g_strsplit(error->message, "\n", -1);
    g_assert_cmpuint(g_strv_length(lines), ==, 2);
  }
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpPolicy) p = qp_policy_parse("<l2cache xmlns='urn:other' percent='5'/>", &error);
    g_assert_null(p);
    g_assert_error(error, QP_XML_ERROR, QP_XML_ERROR_POLICY);
  }
}

static void
test_policy_from_domain(void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *none = domain_xml("<x:y xmlns:x='urn:x'/>", "");
  g_autofree char *two
      = domain_xml("<qc:l2cache " QC " percent='5'/><qc:l2cache " QC " percent='6'/>", "");
  g_autofree char *bad = domain_xml("<qc:l2cache " QC " percent='0' max='x'/>", "");
  g_autoptr(QpDomainXml) d1 = qp_domain_xml_parse(none, -1, &error);
  g_autoptr(QpDomainXml) d2 = qp_domain_xml_parse(two, -1, &error);
  g_autoptr(QpDomainXml) d3 = qp_domain_xml_parse(bad, -1, &error);
  g_autoptr(QpPolicy) p = NULL;
  g_auto(GStrv) lines = NULL;

  g_assert_no_error(error);
  p = qp_policy_from_domain(d1, &error);
  g_assert_null(p);
  g_assert_no_error(error);
  p = qp_policy_from_domain(d2, &error);
  g_assert_null(p);
  g_assert_error(error, QP_XML_ERROR, QP_XML_ERROR_POLICY);
  g_assert_nonnull(strstr(error->message, "“unit”"));
  g_clear_error(&error);
  p = qp_policy_from_domain(d3, &error);
  g_assert_null(p);
  g_assert_error(error, QP_XML_ERROR, QP_XML_ERROR_POLICY);
  lines = g_strsplit(error->message, "\n", -1);
  g_assert_cmpuint(g_strv_length(lines), ==, 2);
  for (guint i = 0; lines[i] != NULL; i++)
    g_assert_true(g_str_has_prefix(lines[i], "domain “unit”: "));
}

/* Names and values with newlines never split one problem over two lines. */
static void
test_policy_one_line_per_problem(void)
{
  const char *text = "<domain><name>two\nlines</name><metadata><qc:l2cache " QC
                     " percent='5&#10;0' chain='a&#13;b'/></metadata></domain>";
  g_autoptr(GError) error = NULL;
  g_autoptr(QpDomainXml) doc = qp_domain_xml_parse(text, -1, &error);
  g_autoptr(QpPolicy) p = NULL;
  g_auto(GStrv) lines = NULL;

  g_assert_no_error(error);
  p = qp_policy_from_domain(doc, &error);
  g_assert_null(p);
  lines = g_strsplit(error->message, "\n", -1);
  g_assert_cmpuint(g_strv_length(lines), ==, 2);
  g_assert_true(g_str_has_prefix(lines[0], "domain “two\\nlines”: "));
  g_assert_nonnull(strstr(lines[0], "“5\\n0”"));
  g_assert_nonnull(strstr(lines[1], "“a\\x0db”"));
}

/* ---- plan and apply ---- */

/* @text as libxml2 writes it (double quotes): what an unchanged document becomes. */
static char *
reserialized(const char *text)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QpDomainXml) doc = qp_domain_xml_parse(text, -1, &error);

  g_assert_no_error(error);
  return qp_domain_xml_to_string(doc);
}

static QpPlan *
plan_for(const char *text, QpDomainXml **doc_out, GError **error)
{
  g_autoptr(QpDomainXml) doc = qp_domain_xml_parse(text, -1, error);
  QpPlan *plan;

  if (doc == NULL)
    return NULL;
  plan = qp_plan_build(doc, NULL, error);
  if (doc_out != NULL)
    *doc_out = g_steal_pointer(&doc);
  return plan;
}

static char *
apply(const char *text, QpPlan **plan_out)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QpDomainXml) doc = NULL;
  g_autoptr(QpPlan) plan = plan_for(text, &doc, &error);

  g_assert_no_error(error);
  g_assert_true(qp_plan_apply(doc, plan, &error));
  g_assert_no_error(error);
  if (plan_out != NULL)
    *plan_out = g_steal_pointer(&plan);
  return qp_domain_xml_to_string(doc);
}

static const QpPlanItem *
item(const QpPlan *plan, const char *dev, guint depth)
{
  for (guint i = 0; i < plan->items->len; i++) {
    const QpPlanItem *it = g_ptr_array_index(plan->items, i);
    if (g_strcmp0(it->dev, dev) == 0 && it->depth == depth)
      return it;
  }
  g_error("no item %s/%u", dev, depth);
  return NULL;
}

static void
test_plan_chain_all(void)
{
  g_autofree char *text
      = domain_xml("<qc:l2cache " QC " percent='100' chain='all'><qc:disk dev='vdb' percent='25'/>"
                   "</qc:l2cache>",
                   DISK("file", "qcow2", "<source file='@DIR@/top.qcow2'/>", "vda", "")
                       DISK("file", "qcow2", "<source file='@DIR@/ext.qcow2'/>", "vdb", "")
                           DISK("file", "raw", "<source file='@DIR@/raw.img'/>", "vdc", ""));
  g_autoptr(QpPlan) plan = NULL;
  g_autoptr(QpPlan) again = NULL;
  g_autofree char *out = apply(text, &plan);
  g_autofree char *out2 = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(QpDomainXml) doc = NULL;
  g_autoptr(GPtrArray) disks = NULL;
  const QpPlanItem *it;
  const QpDomainDisk *d;

  g_assert_true(plan->changes);
  g_assert_cmpuint(plan->items->len, ==, 4);
  it = item(plan, "vda", 0);
  g_assert_cmpint(it->action, ==, QP_PLAN_WRITE);
  g_assert_cmpuint(it->l2_full, ==, 128 * MIB);
  g_assert_cmpuint(it->max_size, ==, 128 * MIB + 4 * 65536);
  g_assert_cmpuint(it->qemu_default.l2_cache_size, ==, 32 * MIB);
  it = item(plan, "vda", 1);
  g_assert_true(it->chain_added);
  g_assert_cmpuint(it->max_size, ==, 2621440 + 4 * 65536); /* 20 GiB: 2.5 MiB of L2 */
  it = item(plan, "vdb", 0);
  g_assert_true(it->header->extended_l2);
  g_assert_cmpuint(it->l2_full, ==, 128 * MIB);
  g_assert_cmpuint(it->max_size, ==, 32 * MIB + 4 * 65536);
  it = item(plan, "vdc", 0);
  g_assert_cmpint(it->action, ==, QP_PLAN_SKIP);
  g_assert_cmpstr(it->reason, ==, "not qcow2 (raw)");
  g_assert_false(it->failed);

  doc = qp_domain_xml_parse(out, -1, &error);
  g_assert_no_error(error);
  disks = qp_domain_xml_get_disks(doc, &error);
  d = g_ptr_array_index(disks, 0);
  g_assert_true(d->chain_terminated);
  g_assert_cmpuint(d->layers->len, ==, 2);
  g_assert_cmpuint(((QpDiskLayer *)g_ptr_array_index(d->layers, 1))->metadata_cache_max_size, ==,
                   2621440 + 4 * 65536);
  d = g_ptr_array_index(disks, 1);
  g_assert_false(d->chain_explicit); /* no backing file: nothing added */

  /* idempotent */
  out2 = apply(out, &again);
  g_assert_false(again->changes);
  g_assert_cmpstr(out, ==, out2);
  g_assert_cmpint(item(again, "vda", 1)->action, ==, QP_PLAN_UNCHANGED);
}

static void
test_plan_chain_top_keeps_backing(void)
{
  g_autofree char *text = domain_xml(
      "<qc:l2cache " QC " percent='50' max='1M'/>",
      DISK("file", "qcow2", "<source file='@DIR@/top.qcow2'/>", "vda",
           "      <backingStore type='file'>\n        <format type='qcow2'>\n"
           "          <metadata_cache><max_size unit='bytes'>777</max_size></metadata_cache>\n"
           "        </format>\n        <source file='@DIR@/base.qcow2'/>\n"
           "      </backingStore>\n"));
  g_autoptr(QpPlan) plan = NULL;
  g_autofree char *out = apply(text, &plan);

  g_assert_cmpuint(plan->items->len, ==, 1);
  g_assert_cmpuint(item(plan, "vda", 0)->max_size, ==, MIB);
  g_assert_false(item(plan, "vda", 0)->raised_to_minimum);
  g_assert_nonnull(strstr(out, "<max_size unit='bytes'>777</max_size>"));
  g_assert_nonnull(strstr(out, "<max_size unit='bytes'>1048576</max_size>"));
}

/* The rewrite changes the owned bytes and nothing else: the rest of the text comes out
 * exactly as it went in (quotes, comments, layout). */
static void
test_apply_byte_exact(void)
{
  const char *disk = "    <disk type='file' device='disk'>\n"
                     "      <driver name='qemu' type='qcow2'><!-- keep --></driver>\n"
                     "      <source file='@DIR@/top.qcow2'/>\n"
                     "      <backingStore type='file'>\n"
                     "        <format type='qcow2'>\n"
                     "          <metadata_cache>\n"
                     "            <max_size unit='KiB'>512</max_size>\n"
                     "          </metadata_cache>\n"
                     "        </format>\n"
                     "        <source file=\"@DIR@/base.qcow2\"/>\n"
                     "      </backingStore>\n"
                     "\t<target dev='vda' bus='virtio'/>\n"
                     "    </disk>\n";
  g_autofree char *text = domain_xml("<qc:l2cache " QC " percent='100' chain='all'/>", disk);
  g_autofree char *out = apply(text, NULL);
  g_autofree char *want = NULL;
  g_autoptr(GString) w = g_string_new(text);

  g_string_replace(w, "<!-- keep --></driver>",
                   "<!-- keep --><metadata_cache><max_size unit='bytes'>134479872</max_size>"
                   "</metadata_cache></driver>",
                   1);
  g_string_replace(w, "<max_size unit='KiB'>512</max_size>",
                   "<max_size unit='bytes'>2883584</max_size>", 1);
  want = g_string_free(g_steal_pointer(&w), FALSE);
  g_assert_cmpstr(out, ==, want);
}

/* A backing file name with XML's special characters: written escaped once, read back
 * the same, through the byte-preserving write (found by fuzz-xml-rewrite). */
static void
test_apply_special_names(void)
{
  const char *name = "a&b <c> \"d\" 'e' caf\xc3\xa9.qcow2";
  g_autofree char *base = g_build_filename(image_dir, name, NULL);
  g_autofree char *top = g_build_filename(image_dir, "special-top.qcow2", NULL);
  g_autofree char *disk = g_strdup_printf("    <disk type='file' device='disk'>\n"
                                          "      <driver name='qemu' type='qcow2'/>\n"
                                          "      <source file='%s'/>\n"
                                          "      <target dev='vda' bus='virtio'/>\n"
                                          "    </disk>\n",
                                          top);
  g_autofree char *text = NULL;
  g_autofree char *out = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(QpDomainXml) doc = NULL;
  g_autoptr(GPtrArray) disks = NULL;
  const QpDomainDisk *d;
  const char *argv_base[] = { "qemu-img", "create", "-q", "-f", "qcow2", base, "1G", NULL };
  const char *argv_top[]
      = { "qemu-img", "create", "-q", "-f", "qcow2", "-b", name, "-F", "qcow2", top, "2G", NULL };
  int status = 0;

  g_assert_true(g_spawn_sync(NULL, (char **)argv_base, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL,
                             NULL, &status, &error));
  g_assert_true(g_spawn_check_wait_status(status, NULL));
  g_assert_true(g_spawn_sync(NULL, (char **)argv_top, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL,
                             NULL, &status, &error));
  g_assert_true(g_spawn_check_wait_status(status, NULL));

  text = domain_xml("<qc:l2cache " QC " percent='100' chain='all'/>", disk);
  out = apply(text, NULL);
  /* the user's bytes kept: this went through the splice, not libxml2's writer */
  g_assert_true(g_str_has_prefix(out, "<domain type='qemu'>"));
  g_assert_nonnull(strstr(out, "a&amp;b &lt;c&gt; \"d\" &apos;e&apos; caf\xc3\xa9.qcow2'/>"));
  doc = qp_domain_xml_parse(out, -1, &error);
  g_assert_no_error(error);
  disks = qp_domain_xml_get_disks(doc, &error);
  d = g_ptr_array_index(disks, 0);
  g_assert_cmpuint(d->layers->len, ==, 2);
  g_assert_cmpstr(((QpDiskLayer *)g_ptr_array_index(d->layers, 1))->path, ==, base);
  g_unlink(top);
  g_unlink(base);
}

static void
test_plan_raised(void)
{
  g_autofree char *text
      = domain_xml("<qc:l2cache " QC " percent='50' max='4K'/>",
                   DISK("file", "qcow2", "<source file='@DIR@/top.qcow2'/>", "vda", ""));
  g_autoptr(GError) error = NULL;
  g_autoptr(QpPlan) plan = plan_for(text, NULL, &error);

  g_assert_no_error(error);
  g_assert_true(item(plan, "vda", 0)->raised_to_minimum);
  g_assert_cmpuint(item(plan, "vda", 0)->max_size, ==, 4 * 65536 + 2 * 4096);
}

static void
test_plan_mismatch(void)
{
  g_autofree char *text
      = domain_xml("<qc:l2cache " QC " percent='100' chain='all'/>",
                   DISK("file", "qcow2", "<source file='@DIR@/top.qcow2'/>", "vda",
                        "      <backingStore type='file'><format type='qcow2'/><source "
                        "file='@DIR@/ext.qcow2'/><backingStore/></backingStore>\n"));
  g_autoptr(GError) error = NULL;
  g_autoptr(QpPlan) plan = plan_for(text, NULL, &error);
  g_autofree char *base = g_build_filename(image_dir, "base.qcow2", NULL);

  g_assert_null(plan);
  g_assert_error(error, QP_XML_ERROR, QP_XML_ERROR_CHAIN_MISMATCH);
  g_assert_nonnull(strstr(error->message, "“vda”"));
  g_assert_nonnull(strstr(error->message, "depth 1"));
  g_assert_nonnull(strstr(error->message, "ext.qcow2"));
  g_assert_nonnull(strstr(error->message, base));
}

static void
assert_same_split(const QpCacheSplit *a, const QpCacheSplit *b)
{
  g_assert_cmpuint(a->l2_cache_size, ==, b->l2_cache_size);
  g_assert_cmpuint(a->refcount_cache_size, ==, b->refcount_cache_size);
  g_assert_cmpfloat(a->l2_coverage, ==, b->l2_coverage);
  g_assert_cmpuint(a->cache_size, ==, b->cache_size);
  g_assert_cmpuint(a->l2_entry_size, ==, b->l2_entry_size);
  g_assert_cmpuint(a->l2_entries, ==, b->l2_entries);
}

/* qp_plan_settle gives what qp_plan_build of the rewritten text gives, image reads aside */
static void
test_plan_settle(void)
{
  const char *policies[] = {
    "<qc:l2cache " QC " percent='100' chain='all'><qc:disk dev='vdb' percent='25'/>"
    "</qc:l2cache>",
    "<qc:l2cache " QC " percent='40'/>",
    "<qc:l2cache " QC " percent='100' chain='all'><qc:disk dev='vdd' skip='yes'/></qc:l2cache>",
  };
  g_autofree char *disks
      = g_strconcat(DISK("file", "qcow2", "<source file='@DIR@/top.qcow2'/>", "vda", ""),
                    DISK("file", "qcow2", "<source file='@DIR@/ext.qcow2'/>", "vdb", ""),
                    DISK("file", "raw", "<source file='@DIR@/raw.img'/>", "vdc", ""),
                    DISK("file", "qcow2", "<source file='@DIR@/base.qcow2'/>", "vdd", ""),
                    DISK("file", "qcow2", "<source file='@DIR@/missing.qcow2'/>", "vde", ""), NULL);

  for (guint p = 0; p < G_N_ELEMENTS(policies); p++) {
    g_autofree char *text = domain_xml(policies[p], disks);
    g_autoptr(QpPlan) plan = NULL;
    g_autofree char *out = apply(text, &plan);
    g_autoptr(GError) error = NULL;
    g_autoptr(QpPlan) rebuilt = plan_for(out, NULL, &error);
    guint writes = 0;

    g_assert_no_error(error);
    g_assert_true(plan->changes);
    for (guint i = 0; i < plan->items->len; i++)
      writes += ((QpPlanItem *)g_ptr_array_index(plan->items, i))->action == QP_PLAN_WRITE;
    g_assert_cmpuint(writes, >, 0);
    qp_plan_settle(plan);
    g_assert_false(plan->changes);
    g_assert_cmpint(plan->changes, ==, rebuilt->changes);
    g_assert_cmpuint(plan->items->len, ==, rebuilt->items->len);
    for (guint i = 0; i < plan->items->len; i++) {
      const QpPlanItem *a = g_ptr_array_index(plan->items, i);
      const QpPlanItem *b = g_ptr_array_index(rebuilt->items, i);
      g_assert_cmpstr(a->dev, ==, b->dev);
      g_assert_cmpuint(a->disk_index, ==, b->disk_index);
      g_assert_cmpuint(a->depth, ==, b->depth);
      g_assert_cmpstr(a->path, ==, b->path);
      g_assert_cmpstr(a->format, ==, b->format);
      g_assert_cmpstr(a->source_type, ==, b->source_type);
      g_assert_cmpint(a->action, ==, b->action);
      g_assert_cmpstr(a->reason, ==, b->reason);
      g_assert_cmpint(a->failed, ==, b->failed);
      g_assert_cmpint(a->chain_added, ==, b->chain_added);
      g_assert_cmpint(a->header != NULL, ==, b->header != NULL);
      g_assert_cmpuint(a->l2_full, ==, b->l2_full);
      g_assert_cmpuint(a->percent, ==, b->percent);
      g_assert_cmpuint(a->current_max_size, ==, b->current_max_size);
      g_assert_cmpuint(a->max_size, ==, b->max_size);
      g_assert_cmpint(a->raised_to_minimum, ==, b->raised_to_minimum);
      assert_same_split(&a->qemu_default, &b->qemu_default);
      assert_same_split(&a->policy, &b->policy);
    }
  }
}

static void
test_plan_skips(void)
{
  g_autofree char *text
      = domain_xml("<qc:l2cache " QC " percent='100' chain='all'><qc:disk dev='vdd' skip='yes'/>"
                   "</qc:l2cache>",
                   DISK("file", "qcow2", "<source file='@DIR@/missing.qcow2'/>", "vda", "")
                       DISK("volume", "qcow2", "<source pool='p' volume='v'/>", "vdb", "")
                           DISK("file", "qcow2", "<source file='@DIR@/raw.img'/>", "vdc", "")
                               DISK("file", "qcow2", "<source file='@DIR@/ext.qcow2'/>", "vdd", "")
                                   DISK("dir", "fat", "<source dir='/tmp'/>", "vde", ""));
  g_autoptr(GError) error = NULL;
  g_autoptr(QpDomainXml) doc = NULL;
  g_autoptr(QpPlan) plan = plan_for(text, &doc, &error);
  g_autofree char *out = NULL;
  g_autofree char *same = NULL;

  g_assert_no_error(error);
  g_assert_true(item(plan, "vda", 0)->failed);
  g_assert_nonnull(strstr(item(plan, "vda", 0)->reason, "missing.qcow2"));
  g_assert_false(item(plan, "vdb", 0)->failed);
  g_assert_nonnull(strstr(item(plan, "vdb", 0)->reason, "volume source"));
  /* a raw file declared qcow2: the engine refuses it, a failure */
  g_assert_true(item(plan, "vdc", 0)->failed);
  g_assert_cmpstr(item(plan, "vdd", 0)->reason, ==, "skip=\"yes\" in the policy");
  g_assert_nonnull(strstr(item(plan, "vde", 0)->reason, "dir source"));
  g_assert_false(plan->changes);
  g_assert_true(qp_plan_apply(doc, plan, &error));
  out = qp_domain_xml_to_string(doc);
  same = reserialized(text);
  g_assert_cmpstr(out, ==, same);
}

static void
test_plan_default_policy(void)
{
  g_autofree char *text
      = domain_xml("", DISK("file", "qcow2", "<source file='@DIR@/top.qcow2'/>", "vda", ""));
  g_autoptr(GError) error = NULL;
  g_autoptr(QpDomainXml) doc = qp_domain_xml_parse(text, -1, &error);
  g_autoptr(QpPlan) none = qp_plan_build(doc, NULL, &error);
  g_autoptr(QpPolicy) def = qp_policy_new(100, 0, QP_CHAIN_TOP);
  g_autoptr(QpPlan) plan = qp_plan_build(doc, def, &error);

  g_assert_no_error(error);
  g_assert_null(none->policy);
  g_assert_cmpuint(none->items->len, ==, 0);
  g_assert_nonnull(plan->policy);
  g_assert_cmpuint(item(plan, "vda", 0)->max_size, ==, 128 * MIB + 4 * 65536);
}

static void
test_apply_wrong_document(void)
{
  g_autofree char *a
      = domain_xml("<qc:l2cache " QC " percent='100'/>",
                   DISK("file", "qcow2", "<source file='@DIR@/top.qcow2'/>", "vda", ""));
  g_autofree char *b
      = domain_xml("<qc:l2cache " QC " percent='100'/>",
                   DISK("file", "qcow2", "<source file='@DIR@/top.qcow2'/>", "vdz", ""));
  g_autoptr(GError) error = NULL;
  g_autoptr(QpPlan) plan = plan_for(a, NULL, &error);
  g_autoptr(QpDomainXml) other = qp_domain_xml_parse(b, -1, &error);
  g_autofree char *out = NULL;
  g_autofree char *same = NULL;

  g_assert_no_error(error);
  g_assert_false(qp_plan_apply(other, plan, &error));
  g_assert_error(error, QP_XML_ERROR, QP_XML_ERROR_PARSE);
  out = qp_domain_xml_to_string(other);
  same = reserialized(b);
  g_assert_cmpstr(out, ==, same); /* checked before anything changed */
}

/* ---- threads ---- */

#define THREADS    4
#define ITERATIONS 25

static gpointer
thread_main(gpointer data)
{
  const char *text = ((const char **)data)[0];
  const char *want = ((const char **)data)[1];

  for (guint i = 0; i < ITERATIONS; i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpDomainXml) doc = qp_domain_xml_parse(text, -1, &error);
    g_autoptr(QpPlan) plan = NULL;
    g_autofree char *out = NULL;
    g_autoptr(QpPolicy) p = qp_policy_parse("<l2cache percent='0'/>", &error);

    g_assert_null(p);
    g_clear_error(&error);
    plan = qp_plan_build(doc, NULL, &error);
    g_assert_no_error(error);
    g_assert_true(qp_plan_apply(doc, plan, &error));
    out = qp_domain_xml_to_string(doc);
    if (g_strcmp0(out, want) != 0)
      return GINT_TO_POINTER(1);
  }
  return NULL;
}

static void
test_threads(void)
{
  g_autofree char *text
      = domain_xml("<qc:l2cache " QC " percent='60' chain='all'/>",
                   DISK("file", "qcow2", "<source file='@DIR@/top.qcow2'/>", "vda", "")
                       DISK("file", "qcow2", "<source file='@DIR@/ext.qcow2'/>", "vdb", ""));
  g_autofree char *want = apply(text, NULL);
  const char *args[2] = { text, want };
  GThread *threads[THREADS];

  for (guint i = 0; i < THREADS; i++)
    threads[i] = g_thread_new("xml", thread_main, args);
  for (guint i = 0; i < THREADS; i++)
    g_assert_null(g_thread_join(threads[i]));
}

/* qp_xml_display as first written: the whole text made valid, then cut. The real one
 * makes only the prefix it can show valid; the result must be the same. */
static char *
display_reference(const char *text, gssize max_chars)
{
  g_autofree char *valid = g_utf8_make_valid(text, -1);
  GString *out = g_string_new(NULL);
  gssize n = 0;

  for (const char *c = valid; *c != '\0'; c = g_utf8_next_char(c), n++) {
    gunichar u = g_utf8_get_char(c);
    if (max_chars >= 0 && n >= max_chars) {
      g_string_append(out, "…");
      break;
    }
    if (u == '\n')
      g_string_append(out, "\\n");
    else if (u == '\t')
      g_string_append(out, "\\t");
    else if (u < 0x20 || u == 0x7f)
      g_string_append_printf(out, "\\x%02x", (guint)u);
    else
      g_string_append_unichar(out, u);
  }
  return g_string_free(out, FALSE);
}

static void
test_display(void)
{
  /* pieces that put 1-4 byte characters, controls, C1 characters and invalid or cut
   * sequences on every side of every cut */
  static const char *const pieces[] = {
    "a",        "\n",   "\t",       "\x01",         "\x7f", "é",    "☃",    "😀",
    "\xc2\x85", "\xff", "\xe2\x98", "\xf0\x9f\x98", "\xc3", "\x80", "&lt;", " ",
  };
  GRand *rand = g_rand_new_with_seed(7);
  g_autofree char *null_text = qp_xml_display(NULL, -1);

  g_assert_cmpstr(null_text, ==, "?");
  for (guint round = 0; round < 3000; round++) {
    g_autoptr(GString) text = g_string_new(NULL);
    guint n = (guint)g_rand_int_range(rand, 0, round % 10 == 0 ? 400 : 90);
    for (guint i = 0; i < n; i++)
      g_string_append(text, pieces[g_rand_int_range(rand, 0, G_N_ELEMENTS(pieces))]);
    for (gssize cap = -1; cap <= 80; cap++) {
      g_autofree char *got = qp_xml_display(text->str, cap);
      g_autofree char *want = display_reference(text->str, cap);
      g_assert_cmpstr(got, ==, want);
      g_assert_true(g_utf8_validate(got, -1, NULL));
    }
  }
  {
    /* a long value is cut after the characters asked for, whatever its length */
    g_autofree char *big = g_strnfill(1 << 20, 'x');
    g_autofree char *got = qp_xml_display(big, 64);
    g_assert_cmpuint(g_utf8_strlen(got, -1), ==, 65);
    g_assert_true(g_str_has_suffix(got, "x…"));
  }
  g_rand_free(rand);
}

int
main(int argc, char **argv)
{
  int rc;

  g_test_init(&argc, &argv, NULL);
  make_images();
  g_test_add_func("/xml/parse/basic", test_parse_basic);
  g_test_add_func("/xml/parse/scaled", test_parse_scaled);
  g_test_add_func("/xml/parse/hostile", test_parse_hostile);
  g_test_add_func("/xml/parse/depth-limit", test_parse_depth_limit_exact);
  g_test_add_func("/xml/parse/error-text", test_parse_error_text);
  g_test_add_func("/xml/parse/truncated", test_parse_truncated);
  g_test_add_func("/xml/parse/to-string", test_to_string_roundtrip);
  g_test_add_func("/xml/display", test_display);
  g_test_add_func("/xml/policy/good", test_policy_good);
  g_test_add_func("/xml/policy/bad", test_policy_bad);
  g_test_add_func("/xml/policy/from-domain", test_policy_from_domain);
  g_test_add_func("/xml/policy/one-line", test_policy_one_line_per_problem);
  g_test_add_func("/xml/plan/chain-all", test_plan_chain_all);
  g_test_add_func("/xml/plan/chain-top", test_plan_chain_top_keeps_backing);
  g_test_add_func("/xml/plan/raised", test_plan_raised);
  g_test_add_func("/xml/plan/byte-exact", test_apply_byte_exact);
  g_test_add_func("/xml/plan/special-names", test_apply_special_names);
  g_test_add_func("/xml/plan/mismatch", test_plan_mismatch);
  g_test_add_func("/xml/plan/skips", test_plan_skips);
  g_test_add_func("/xml/plan/settle", test_plan_settle);
  g_test_add_func("/xml/plan/default-policy", test_plan_default_policy);
  g_test_add_func("/xml/plan/wrong-document", test_apply_wrong_document);
  g_test_add_func("/xml/threads", test_threads);
  rc = g_test_run();
  remove_images();
  return rc;
}
