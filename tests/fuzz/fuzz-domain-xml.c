/* Fuzz target: a domain document as libvirt (or a user's hand edit) gives it — the safe
 * parse, name and uuid, the disk and chain listing and the policy in <metadata>.
 * Serialization must lose nothing the daemon reads: the document written back parses
 * to the same disks, the same policy and the same text again. */
#include "config.h"

#include <string.h>

#include "fuzz-targets.h"
#include "qp-domain-xml.h"
#include "qp-policy.h"

static void
check_error(const GError *error)
{
  g_assert(error != NULL);
  g_assert(error->domain == QP_XML_ERROR);
  g_assert(error->message != NULL && error->message[0] != '\0');
  g_assert(g_utf8_validate(error->message, -1, NULL));
}

static void
assert_disks_equal(GPtrArray *a, GPtrArray *b)
{
  g_assert_cmpuint(a->len, ==, b->len);
  for (guint i = 0; i < a->len; i++) {
    const QpDomainDisk *x = g_ptr_array_index(a, i);
    const QpDomainDisk *y = g_ptr_array_index(b, i);
    g_assert_cmpstr(x->dev, ==, y->dev);
    g_assert_cmpstr(x->device, ==, y->device);
    g_assert_cmpint(x->chain_explicit, ==, y->chain_explicit);
    g_assert_cmpint(x->chain_terminated, ==, y->chain_terminated);
    g_assert_cmpuint(x->layers->len, ==, y->layers->len);
    for (guint d = 0; d < x->layers->len; d++) {
      const QpDiskLayer *p = g_ptr_array_index(x->layers, d);
      const QpDiskLayer *q = g_ptr_array_index(y->layers, d);
      g_assert_cmpuint(p->depth, ==, q->depth);
      g_assert_cmpstr(p->source_type, ==, q->source_type);
      g_assert_cmpstr(p->path, ==, q->path);
      g_assert_cmpstr(p->format, ==, q->format);
      g_assert_cmpint(p->has_metadata_cache, ==, q->has_metadata_cache);
      g_assert_cmpuint(p->metadata_cache_max_size, ==, q->metadata_cache_max_size);
    }
  }
}

static void
check_disks(GPtrArray *disks)
{
  for (guint i = 0; i < disks->len; i++) {
    const QpDomainDisk *disk = g_ptr_array_index(disks, i);
    g_assert(disk->device != NULL);
    g_assert_cmpuint(disk->layers->len, >=, 1);
    /* the parse-time depth bound also bounds the chain */
    g_assert_cmpuint(disk->layers->len, <=, QP_XML_MAX_DEPTH);
    g_assert(!disk->chain_terminated || disk->chain_explicit);
    g_assert(disk->chain_explicit || disk->layers->len == 1);
    for (guint d = 0; d < disk->layers->len; d++) {
      const QpDiskLayer *layer = g_ptr_array_index(disk->layers, d);
      g_assert_cmpuint(layer->depth, ==, d);
      if (d == 0)
        g_assert(layer->source_type != NULL);
      if (!layer->has_metadata_cache)
        g_assert_cmpuint(layer->metadata_cache_max_size, ==, 0);
    }
  }
}

/* The policy's error lines each name the domain. */
static void
check_policy_error(const GError *error)
{
  g_auto(GStrv) lines = NULL;

  check_error(error);
  g_assert(error->code == QP_XML_ERROR_POLICY);
  lines = g_strsplit(error->message, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    g_assert(g_str_has_prefix(lines[i], "domain “"));
}

int
qp_fuzz_domain_xml(const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QpDomainXml) doc = NULL;
  g_autoptr(QpDomainXml) doc2 = NULL;
  g_autoptr(GPtrArray) disks = NULL;
  g_autoptr(GPtrArray) disks2 = NULL;
  g_autoptr(QpPolicy) policy = NULL;
  g_autoptr(QpPolicy) policy2 = NULL;
  g_autoptr(GError) policy_error = NULL;
  g_autoptr(GError) policy_error2 = NULL;
  g_autofree char *text = NULL;
  g_autofree char *text2 = NULL;

  /* The exact-size buffer is passed with its length: no terminator is assumed. */
  doc = qp_domain_xml_parse(size > 0 ? (const char *)data : "", (gssize)size, &error);
  if (doc == NULL) {
    check_error(error);
    return 0;
  }
  g_assert_no_error(error);
  if (qp_domain_xml_get_name(doc) != NULL)
    g_assert(g_utf8_validate(qp_domain_xml_get_name(doc), -1, NULL));
  if (qp_domain_xml_get_uuid(doc) != NULL)
    g_assert(g_utf8_validate(qp_domain_xml_get_uuid(doc), -1, NULL));

  disks = qp_domain_xml_get_disks(doc, &error);
  if (disks == NULL)
    check_error(error);
  else
    check_disks(disks);
  g_clear_error(&error);

  policy = qp_policy_from_domain(doc, &policy_error);
  if (policy == NULL && policy_error != NULL)
    check_policy_error(policy_error);
  if (policy != NULL) {
    g_assert_no_error(policy_error);
    g_assert_cmpuint(policy->percent, >=, 1);
    g_assert_cmpuint(policy->percent, <=, 100);
  }

  /* Written back, the document is the same to every reader. */
  text = qp_domain_xml_to_string(doc);
  g_assert(text != NULL);
  doc2 = qp_domain_xml_parse(text, -1, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(qp_domain_xml_get_name(doc), ==, qp_domain_xml_get_name(doc2));
  g_assert_cmpstr(qp_domain_xml_get_uuid(doc), ==, qp_domain_xml_get_uuid(doc2));
  text2 = qp_domain_xml_to_string(doc2);
  g_assert_cmpstr(text, ==, text2);
  disks2 = qp_domain_xml_get_disks(doc2, &error);
  g_assert_cmpint(disks == NULL, ==, disks2 == NULL);
  if (disks != NULL)
    assert_disks_equal(disks, disks2);
  g_clear_error(&error);
  policy2 = qp_policy_from_domain(doc2, &policy_error2);
  g_assert_cmpint(policy == NULL, ==, policy2 == NULL);
  g_assert_cmpint(policy_error == NULL, ==, policy_error2 == NULL);
  if (policy_error != NULL)
    g_assert_cmpstr(policy_error->message, ==, policy_error2->message);
  if (policy != NULL) {
    g_autofree char *e1 = qp_policy_to_element(policy);
    g_autofree char *e2 = qp_policy_to_element(policy2);
    g_assert_cmpstr(e1, ==, e2);
  }
  return 0;
}
