/* Fuzz target: the rewrite of a domain document (qp_plan_apply). qp_plan_build reads
 * images from disk, so the harness makes the plan itself from the document's own disks,
 * the way qp_plan_build shapes one: a write on every layer that has a <driver>/<format>
 * element, a skip elsewhere, and with the chain unterminated one or two backing layers
 * added below the deepest. The sizes and the added names come from the input.
 *
 * The rewritten text must parse, and every reader must see exactly what the plan
 * wrote and nothing else changed: same disks, same paths and formats, the written
 * max_size on every written layer, the old value on every other, the added layers with
 * their names and a terminated chain. */
#include "config.h"

#include <string.h>

#include "fuzz-targets.h"
#include "qp-domain-xml.h"
#include "qp-plan.h"
#include "qp-policy.h"

/* Backing names the rewrite may have to write: XML's special characters, spaces,
 * non-ASCII; all text an image header may legitimately carry. */
static const char *const qp_fuzz_names[] = {
  "/var/lib/libvirt/images/base.qcow2",
  "relative/base.qcow2",
  "/images/a&b <c> \"d\" 'e'.qcow2",
  "/images/ünïcödé ☃.qcow2",
  "/dev/mapper/vg-base",
};

static void
item_free(QpPlanItem *item)
{
  g_free(item->dev);
  g_free(item->path);
  g_free(item->format);
  g_free(item->source_type);
  g_free(item->reason);
  g_free(item);
}

typedef struct {
  const uint8_t *data;
  size_t size;
  size_t pos;
} Bits;

/* Deterministic choices drawn from the input itself. */
static guint64
draw(Bits *b)
{
  guint64 v = 0x9e3779b97f4a7c15ULL ^ b->size;
  for (guint i = 0; i < 8 && b->size > 0; i++)
    v = v * 131 + b->data[(b->pos++) % b->size];
  return v;
}

static QpPlanItem *
item_new(const QpDomainDisk *disk, guint index, guint depth)
{
  QpPlanItem *item = g_new0(QpPlanItem, 1);
  item->dev = g_strdup(disk->dev);
  item->disk_index = index;
  item->depth = depth;
  return item;
}

static QpPlan *
make_plan(const QpDomainXml *doc, GPtrArray *disks, Bits *bits)
{
  QpPlan *plan = g_new0(QpPlan, 1);

  plan->name = g_strdup(qp_domain_xml_get_name(doc));
  plan->uuid = g_strdup(qp_domain_xml_get_uuid(doc));
  plan->policy = qp_policy_new(1 + (guint)(draw(bits) % 100), 0, QP_CHAIN_ALL);
  plan->items = g_ptr_array_new_with_free_func((GDestroyNotify)item_free);
  for (guint i = 0; i < disks->len; i++) {
    const QpDomainDisk *disk = g_ptr_array_index(disks, i);
    guint64 choice = draw(bits);

    for (guint d = 0; d < disk->layers->len; d++) {
      const QpDiskLayer *layer = g_ptr_array_index(disk->layers, d);
      QpPlanItem *item = item_new(disk, i, d);

      item->path = g_strdup(layer->path);
      item->format = g_strdup(layer->format);
      item->source_type = g_strdup(layer->source_type);
      /* a layer with a format element can carry the size; a third of them are left */
      if (layer->format != NULL && (choice >> d) % 3 != 0) {
        item->action = QP_PLAN_WRITE;
        item->max_size = draw(bits) >> (draw(bits) % 64);
      } else {
        item->action = QP_PLAN_SKIP;
        item->reason = g_strdup("fuzz");
      }
      g_ptr_array_add(plan->items, item);
    }
    /* qp_plan_build adds layers only below an unterminated chain */
    if (!disk->chain_terminated && choice % 4 != 0) {
      guint added = 1 + (guint)(choice % 2);
      for (guint a = 0; a < added; a++) {
        QpPlanItem *item = item_new(disk, i, disk->layers->len + a);
        const char *name = qp_fuzz_names[draw(bits) % G_N_ELEMENTS(qp_fuzz_names)];
        item->path = g_strdup(name);
        item->format = g_strdup(draw(bits) % 5 == 0 ? "raw" : "qcow2");
        item->source_type = g_strdup(g_str_has_prefix(name, "/dev/") ? "block" : "file");
        item->chain_added = TRUE;
        if (g_str_equal(item->format, "qcow2")) {
          item->action = QP_PLAN_WRITE;
          item->max_size = draw(bits);
        } else {
          item->action = QP_PLAN_SKIP;
          item->reason = g_strdup("not qcow2 (raw)");
        }
        g_ptr_array_add(plan->items, item);
      }
    }
  }
  for (guint i = 0; i < plan->items->len; i++) {
    const QpPlanItem *item = g_ptr_array_index(plan->items, i);
    if (item->action == QP_PLAN_WRITE || item->chain_added)
      plan->changes = TRUE;
  }
  return plan;
}

/* The plan's item for a layer, or NULL. */
static const QpPlanItem *
find_item(const QpPlan *plan, guint index, guint depth)
{
  for (guint i = 0; i < plan->items->len; i++) {
    const QpPlanItem *item = g_ptr_array_index(plan->items, i);
    if (item->disk_index == index && item->depth == depth)
      return item;
  }
  return NULL;
}

static void
check_rewrite(const QpPlan *plan, GPtrArray *before, GPtrArray *after)
{
  g_assert_cmpuint(before->len, ==, after->len);
  for (guint i = 0; i < before->len; i++) {
    const QpDomainDisk *x = g_ptr_array_index(before, i);
    const QpDomainDisk *y = g_ptr_array_index(after, i);
    guint expected_layers = x->layers->len;
    gboolean added = FALSE;

    g_assert_cmpstr(x->dev, ==, y->dev);
    g_assert_cmpstr(x->device, ==, y->device);
    while (find_item(plan, i, expected_layers) != NULL) {
      expected_layers++;
      added = TRUE;
    }
    g_assert_cmpuint(y->layers->len, ==, expected_layers);
    if (added) {
      g_assert(y->chain_explicit);
      g_assert(y->chain_terminated);
    } else {
      g_assert_cmpint(x->chain_explicit, ==, y->chain_explicit);
      g_assert_cmpint(x->chain_terminated, ==, y->chain_terminated);
    }
    for (guint d = 0; d < y->layers->len; d++) {
      const QpDiskLayer *q = g_ptr_array_index(y->layers, d);
      const QpDiskLayer *p = d < x->layers->len ? g_ptr_array_index(x->layers, d) : NULL;
      const QpPlanItem *item = find_item(plan, i, d);

      g_assert(item != NULL);
      if (p != NULL) {
        g_assert_cmpstr(p->source_type, ==, q->source_type);
        g_assert_cmpstr(p->path, ==, q->path);
        g_assert_cmpstr(p->format, ==, q->format);
      } else {
        g_assert(item->chain_added);
        g_assert_cmpstr(item->source_type, ==, q->source_type);
        g_assert_cmpstr(item->path, ==, q->path);
        g_assert_cmpstr(item->format, ==, q->format);
      }
      if (item->action == QP_PLAN_WRITE) {
        g_assert(q->has_metadata_cache);
        g_assert_cmpuint(q->metadata_cache_max_size, ==, item->max_size);
      } else if (p != NULL) {
        g_assert_cmpint(p->has_metadata_cache, ==, q->has_metadata_cache);
        g_assert_cmpuint(p->metadata_cache_max_size, ==, q->metadata_cache_max_size);
      } else {
        g_assert(!q->has_metadata_cache);
      }
    }
  }
}

int
qp_fuzz_xml_rewrite(const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QpDomainXml) doc = NULL;
  g_autoptr(QpDomainXml) doc2 = NULL;
  g_autoptr(GPtrArray) disks = NULL;
  g_autoptr(GPtrArray) disks2 = NULL;
  g_autoptr(QpPlan) plan = NULL;
  g_autofree char *text = NULL;
  g_autofree char *text2 = NULL;
  g_autofree char *text_again = NULL;
  Bits bits = { data, size, 0 };

  doc = qp_domain_xml_parse(size > 0 ? (const char *)data : "", (gssize)size, &error);
  if (doc == NULL)
    return 0;
  disks = qp_domain_xml_get_disks(doc, &error);
  if (disks == NULL)
    return 0;

  plan = make_plan(doc, disks, &bits);
  if (!qp_plan_apply(doc, plan, &error))
    g_error("qp_plan_apply refused a plan made from the document itself: %s", error->message);
  g_assert_no_error(error);

  text = qp_domain_xml_to_string(doc);
  doc2 = qp_domain_xml_parse(text, -1, &error);
  g_assert_no_error(error);
  disks2 = qp_domain_xml_get_disks(doc2, &error);
  g_assert_no_error(error);
  check_rewrite(plan, disks, disks2);

  /* The same plan again on the document as it was written: every value is already
   * there, so nothing may change (the daemon's own write must not cause another). */
  text2 = qp_domain_xml_to_string(doc2);
  for (guint i = 0; i < plan->items->len; i++) {
    QpPlanItem *item = g_ptr_array_index(plan->items, i);
    item->chain_added = FALSE;
  }
  if (!qp_plan_apply(doc2, plan, &error))
    g_error("the plan does not apply twice: %s", error->message);
  text_again = qp_domain_xml_to_string(doc2);
  g_assert_cmpstr(text2, ==, text_again);
  return 0;
}
