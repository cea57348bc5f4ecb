/* Fuzz target: the <qc:l2cache> element parser, as virDomainGetMetadata returns the
 * element. What it accepts must be in range, must survive qp_policy_to_element (the text
 * the daemon hands to virDomainSetMetadata) unchanged, and must copy exactly. */
#include "config.h"

#include <string.h>

#include "fuzz-targets.h"
#include "qp-policy.h"

/* QP_POLICY_MAX_PROBLEMS lines plus the "… and N more" line. */
#define QP_FUZZ_MAX_PROBLEM_LINES 21

static void
assert_policies_equal(const QpPolicy *a, const QpPolicy *b)
{
  g_assert_cmpuint(a->percent, ==, b->percent);
  g_assert_cmpuint(a->max, ==, b->max);
  g_assert_cmpint(a->chain, ==, b->chain);
  g_assert_cmpuint(a->disks->len, ==, b->disks->len);
  for (guint i = 0; i < a->disks->len; i++) {
    const QpPolicyDisk *x = g_ptr_array_index(a->disks, i);
    const QpPolicyDisk *y = g_ptr_array_index(b->disks, i);
    g_assert_cmpstr(x->dev, ==, y->dev);
    g_assert_cmpint(x->skip, ==, y->skip);
    g_assert_cmpuint(x->percent, ==, y->percent);
    g_assert_cmpuint(x->max, ==, y->max);
    g_assert_cmpint(x->has_chain, ==, y->has_chain);
    if (x->has_chain)
      g_assert_cmpint(x->chain, ==, y->chain);
  }
}

static void
check_policy(const QpPolicy *policy)
{
  g_autoptr(GHashTable) devs = g_hash_table_new(g_str_hash, g_str_equal);

  g_assert_cmpuint(policy->percent, >=, 1);
  g_assert_cmpuint(policy->percent, <=, 100);
  g_assert(policy->chain == QP_CHAIN_TOP || policy->chain == QP_CHAIN_ALL);
  for (guint i = 0; i < policy->disks->len; i++) {
    const QpPolicyDisk *d = g_ptr_array_index(policy->disks, i);
    guint percent = 0;
    guint64 max = 0;
    QpChainMode chain = QP_CHAIN_TOP;

    g_assert(d->dev != NULL && d->dev[0] != '\0');
    g_assert(g_hash_table_add(devs, d->dev)); /* no duplicate devs */
    g_assert(d->percent <= 100);
    g_assert_cmpint(qp_policy_for_disk(policy, d->dev, &percent, &max, &chain), ==, !d->skip);
    if (!d->skip) {
      g_assert_cmpuint(percent, ==, d->percent != 0 ? d->percent : policy->percent);
      g_assert_cmpuint(max, ==, d->max != 0 ? d->max : policy->max);
      g_assert_cmpint(chain, ==, d->has_chain ? d->chain : policy->chain);
    }
  }
}

int
qp_fuzz_policy(const uint8_t *data, size_t size)
{
  /* qp_policy_parse takes a NUL-terminated string, as libvirt hands it over. */
  g_autofree char *text = g_strndup((const char *)data, size);
  g_autoptr(GError) error = NULL;
  g_autoptr(QpPolicy) policy = qp_policy_parse(text, &error);
  g_autoptr(QpPolicy) again = NULL;
  g_autoptr(QpPolicy) copy = NULL;
  g_autofree char *element = NULL;
  g_autofree char *element2 = NULL;

  if (policy == NULL) {
    g_auto(GStrv) lines = NULL;
    g_assert(error != NULL);
    g_assert(error->domain == QP_XML_ERROR);
    g_assert(error->message != NULL && error->message[0] != '\0');
    g_assert(g_utf8_validate(error->message, -1, NULL));
    /* one problem per line, each naming its element (or the bound on their number) */
    lines = g_strsplit(error->message, "\n", -1);
    g_assert_cmpuint(g_strv_length(lines), <=, QP_FUZZ_MAX_PROBLEM_LINES);
    if (error->code == QP_XML_ERROR_POLICY) {
      for (guint i = 0; lines[i] != NULL; i++)
        g_assert(lines[i][0] == '<' || g_str_has_prefix(lines[i], "expected the element ")
                 || g_str_has_prefix(lines[i], "more than ")
                 || g_str_has_prefix(lines[i], "… and "));
    }
    return 0;
  }
  g_assert_no_error(error);
  check_policy(policy);

  copy = qp_policy_copy(policy);
  assert_policies_equal(policy, copy);

  element = qp_policy_to_element(policy);
  again = qp_policy_parse(element, &error);
  g_assert_no_error(error);
  assert_policies_equal(policy, again);
  element2 = qp_policy_to_element(again);
  g_assert_cmpstr(element, ==, element2);
  return 0;
}
