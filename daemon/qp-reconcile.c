/* Reconciling one domain. Blocking libvirt calls and image reads: worker threads only. */
#include "config.h"

#include "qp-reconcile.h"

#include <glib/gi18n.h>
#include <inttypes.h>

#include "qp-error.h"
#include "qp-figures.h"
#include "qp-libvirt.h"
#include "qp-log.h"
#include "qp-plan.h"

void
qp_reconcile_job_free(QpReconcileJob *job)
{
  if (job == NULL)
    return;
  g_free(job->uuid);
  if (job->conn != NULL)
    virConnectClose(job->conn);
  g_clear_pointer(&job->op_policy, qp_policy_free);
  g_free(job->recent_write);
  g_free(job->settled_digest);
  g_free(job);
}

void
qp_reconcile_result_free(QpReconcileResult *result)
{
  if (result == NULL)
    return;
  g_free(result->name);
  g_free(result->chain);
  g_free(result->policy_source);
  g_free(result->state);
  g_free(result->write_signature);
  g_free(result->settled_digest);
  g_clear_error(&result->error);
  g_clear_error(&result->op_error);
  g_clear_pointer(&result->disks, qp_disk_figures_free);
  g_free(result);
}

static void
qp_reconcile_set_state(QpReconcileResult *result, const char *state)
{
  g_free(result->state);
  result->state = g_strdup(state);
}

static char *
qp_reconcile_get_xml(virDomainPtr dom, unsigned int flags, GError **error)
{
  char *xml = virDomainGetXMLDesc(dom, flags);
  if (xml == NULL) {
    qp_error_set_libvirt(error, _("Cannot read the domain's XML"));
    return NULL;
  }
  return xml;
}

/* The policy element is stored with virDomainSetMetadata: libvirt's own API for one
 * namespace's metadata, which touches nothing else of the definition. */
static gboolean
qp_reconcile_do_op(const QpReconcileJob *job, virDomainPtr dom, gboolean active, GError **error)
{
  g_autofree char *element = NULL;
  unsigned int flags = VIR_DOMAIN_AFFECT_CONFIG;

  if (job->op == QP_RECONCILE_OP_SET_POLICY) {
    g_autoptr(QpPolicy) policy
        = qp_policy_new(job->op_policy->percent, job->op_policy->max, job->op_policy->chain);
    g_autofree char *current = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
                                                    QP_POLICY_NS_URI, VIR_DOMAIN_AFFECT_CONFIG);
    /* keep the per-disk overrides of a valid existing element; an invalid one is replaced */
    if (current != NULL) {
      g_autoptr(QpPolicy) old = qp_policy_parse(current, NULL);
      if (old != NULL) {
        g_ptr_array_unref(policy->disks);
        policy->disks = g_steal_pointer(&old->disks);
        old->disks = g_ptr_array_new();
      }
    } else {
      virResetLastError();
    }
    element = qp_policy_to_element(policy);
  }
  /* the live definition follows too, so that `virsh metadata` shows one policy */
  if (active)
    flags |= VIR_DOMAIN_AFFECT_LIVE;
  if (virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, element,
                           element != NULL ? QP_POLICY_NS_PREFIX : NULL, QP_POLICY_NS_URI, flags)
      < 0) {
    qp_error_set_libvirt(error, _("Cannot write the policy into the domain's metadata"));
    return FALSE;
  }
  return TRUE;
}

/* A covered qcow2 layer whose image could not be read puts the domain in "error". */
static gboolean
qp_reconcile_item_is_failure(const QpPlan *plan, const QpPlanItem *item)
{
  guint percent = 0;
  guint64 max = 0;
  QpChainMode chain = QP_CHAIN_TOP;

  if (item->action != QP_PLAN_SKIP || item->header != NULL || item->path == NULL)
    return FALSE;
  if (g_strcmp0(item->format, "qcow2") != 0)
    return FALSE;
  if (!qp_policy_for_disk(plan->policy, item->dev, &percent, &max, &chain))
    return FALSE;
  return item->depth == 0 || chain == QP_CHAIN_ALL;
}

/* TRUE when the running domain's values differ from what the persistent definition now
 * holds: they take effect at its next start. */
static gboolean
qp_reconcile_pending_restart(virDomainPtr dom, const QpPlan *plan, GError **error)
{
  g_autofree char *xml = NULL;
  g_autoptr(QpDomainXml) doc = NULL;
  g_autoptr(GPtrArray) disks = NULL;
  g_autoptr(GHashTable) live = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

  xml = qp_reconcile_get_xml(dom, 0, error);
  if (xml == NULL)
    return FALSE;
  doc = qp_domain_xml_parse(xml, -1, error);
  if (doc == NULL)
    return FALSE;
  disks = qp_domain_xml_get_disks(doc, error);
  if (disks == NULL)
    return FALSE;
  for (guint i = 0; i < disks->len; i++) {
    QpDomainDisk *disk = g_ptr_array_index(disks, i);
    for (guint j = 0; j < disk->layers->len; j++) {
      QpDiskLayer *layer = g_ptr_array_index(disk->layers, j);
      if (layer->has_metadata_cache)
        g_hash_table_insert(live, g_strdup_printf("%s/%u", disk->dev, layer->depth),
                            GSIZE_TO_POINTER(1));
      g_hash_table_insert(live,
                          g_strdup_printf("%s/%u/%" G_GUINT64_FORMAT, disk->dev, layer->depth,
                                          layer->metadata_cache_max_size),
                          GSIZE_TO_POINTER(1));
    }
  }
  for (guint i = 0; i < plan->items->len; i++) {
    QpPlanItem *item = g_ptr_array_index(plan->items, i);
    g_autofree char *key = NULL;
    if (item->action == QP_PLAN_SKIP)
      continue;
    key = g_strdup_printf("%s/%u/%" G_GUINT64_FORMAT, item->dev, item->depth, item->max_size);
    if (!g_hash_table_contains(live, key))
      return TRUE;
  }
  return FALSE;
}

static void
qp_reconcile_log_writes(const char *uuid, const char *name, const QpPlan *plan)
{
  for (guint i = 0; i < plan->items->len; i++) {
    QpPlanItem *item = g_ptr_array_index(plan->items, i);
    if (item->action != QP_PLAN_WRITE)
      continue;
    qp_log(G_LOG_LEVEL_INFO, uuid, item->path,
           "%s: %s layer %u: max_size %" G_GUINT64_FORMAT " (was %" G_GUINT64_FORMAT ")", name,
           item->dev, item->depth, item->max_size, item->current_max_size);
  }
}

static char *
qp_reconcile_signature(const QpPlan *plan)
{
  GString *sig = g_string_new(NULL);
  for (guint i = 0; i < plan->items->len; i++) {
    QpPlanItem *item = g_ptr_array_index(plan->items, i);
    if (item->action == QP_PLAN_SKIP)
      continue;
    g_string_append_printf(sig, "%s/%u=%" G_GUINT64_FORMAT ";", item->dev, item->depth,
                           item->max_size);
  }
  return g_string_free(sig, FALSE);
}

static char *
qp_reconcile_digest(const char *xml)
{
  return g_compute_checksum_for_string(G_CHECKSUM_SHA256, xml, -1);
}

/* After a define: read back what libvirt kept, check it holds every value written (a
 * driver could drop an element it does not know), and return its digest. @doc_out gets
 * the document read back, or NULL when it is byte for byte the text @defined that was
 * written: the applied document then is the definition (qp_domain_xml_to_string checks
 * that its text parses to that very tree), so it holds every value and needs no parse. */
static char *
qp_reconcile_verify(virDomainPtr dom, const QpPlan *plan, const char *defined,
                    QpDomainXml **doc_out, GError **error)
{
  g_autofree char *xml = NULL;
  g_autoptr(QpDomainXml) doc = NULL;
  g_autoptr(GPtrArray) disks = NULL;

  *doc_out = NULL;
  xml = qp_reconcile_get_xml(dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE, error);
  if (xml == NULL)
    return NULL;
  if (g_str_equal(xml, defined))
    return qp_reconcile_digest(xml);
  doc = qp_domain_xml_parse(xml, -1, error);
  if (doc == NULL)
    return NULL;
  disks = qp_domain_xml_get_disks(doc, error);
  if (disks == NULL)
    return NULL;
  for (guint i = 0; i < plan->items->len; i++) {
    QpPlanItem *item = g_ptr_array_index(plan->items, i);
    gboolean kept = FALSE;
    if (item->action == QP_PLAN_SKIP)
      continue;
    for (guint j = 0; j < disks->len && !kept; j++) {
      QpDomainDisk *disk = g_ptr_array_index(disks, j);
      if (g_strcmp0(disk->dev, item->dev) != 0)
        continue;
      for (guint k = 0; k < disk->layers->len && !kept; k++) {
        QpDiskLayer *layer = g_ptr_array_index(disk->layers, k);
        kept = layer->depth == item->depth && layer->has_metadata_cache
               && layer->metadata_cache_max_size == item->max_size;
      }
    }
    if (!kept) {
      g_set_error(error, QP_ERROR, QP_ERROR_LIBVIRT,
                  _("libvirt did not keep max_size %" PRIu64 " for %s layer %u"), item->max_size,
                  item->dev, item->depth);
      return NULL;
    }
  }
  *doc_out = g_steal_pointer(&doc);
  return qp_reconcile_digest(xml);
}

static char *
qp_reconcile_layer_key(const QpPlanItem *item)
{
  return g_strdup_printf("%s/%u", item->dev != NULL ? item->dev : "", item->depth);
}

static gboolean
qp_reconcile_layer_written(GHashTable *wrote, const QpPlanItem *item)
{
  g_autofree char *key = qp_reconcile_layer_key(item);
  return g_hash_table_contains(wrote, key);
}

/* The layers @plan writes, as qp_reconcile_layer_key() strings. */
static GHashTable *
qp_reconcile_written_layers(const QpPlan *plan)
{
  GHashTable *set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < plan->items->len; i++) {
    QpPlanItem *item = g_ptr_array_index(plan->items, i);
    if (item->action == QP_PLAN_WRITE)
      g_hash_table_add(set, qp_reconcile_layer_key(item));
  }
  return set;
}

/* Each changed <disk>, one virDomainUpdateDeviceFlags(VIR_DOMAIN_AFFECT_CONFIG) each: the
 * narrowest write libvirt has. It replaces one device of the persistent definition and
 * nothing else, so metadata or devices a user changes meanwhile are kept, and it fails
 * on a domain undefined since our read instead of defining it again. The disk text comes
 * from the definition read with secrets, so a disk's <auth>/<encryption> stay as they
 * were. Checked with libvirt 9.0's QEMU driver: it keeps <metadata_cache> on the disk and
 * on every layer of an explicit <backingStore> chain. */
static gboolean
qp_reconcile_update_disks(virDomainPtr dom, const QpDomainXml *doc, const QpPlan *plan,
                          gboolean *unsupported, GError **error)
{
  g_autoptr(GHashTable) done = g_hash_table_new(NULL, NULL);

  *unsupported = FALSE;
  for (guint i = 0; i < plan->items->len; i++) {
    QpPlanItem *item = g_ptr_array_index(plan->items, i);
    g_autofree char *disk_xml = NULL;

    if (item->action != QP_PLAN_WRITE && !item->chain_added)
      continue;
    if (g_hash_table_contains(done, GUINT_TO_POINTER(item->disk_index)))
      continue;
    g_hash_table_add(done, GUINT_TO_POINTER(item->disk_index));
    disk_xml = qp_domain_xml_disk_to_string(doc, item->disk_index);
    if (disk_xml == NULL) {
      g_set_error(error, QP_ERROR, QP_ERROR_FAILED, _("Cannot serialize disk %s"), item->dev);
      return FALSE;
    }
    if (virDomainUpdateDeviceFlags(dom, disk_xml, VIR_DOMAIN_AFFECT_CONFIG) < 0) {
      /* only before anything was written may the caller fall back to a define */
      if (g_hash_table_size(done) == 1 && virGetLastErrorCode() == VIR_ERR_NO_SUPPORT) {
        virResetLastError();
        *unsupported = TRUE;
        return FALSE;
      }
      qp_error_set_libvirt(error, _("Cannot update the disk in the domain's definition"));
      g_prefix_error(error, "%s: ", item->dev);
      return FALSE;
    }
  }
  return TRUE;
}

/* Write the plan: per disk where the driver can, else (libvirt's test driver has no
 * device update) the whole rewritten definition, which differs from the text just
 * re-read only in the elements the policy owns. */
static gboolean
qp_reconcile_write(const QpReconcileJob *job, virDomainPtr dom, const QpDomainXml *doc,
                   const QpPlan *plan, const char *new_xml, QpReconcileResult *result,
                   GError **error)
{
  g_autoptr(QpVirDomain) newdom = NULL;

  if (!job->no_device_update) {
    if (qp_reconcile_update_disks(dom, doc, plan, &result->no_device_update, error))
      return TRUE;
    if (!result->no_device_update)
      return FALSE;
  }
  /* No VIR_DOMAIN_DEFINE_VALIDATE: libvirt's RelaxNG validation costs tens of ms per
   * define (measured: 1,000 first writes took 63 s with it, 2 s without), and all we
   * change is <metadata_cache> and <backingStore>, whose output the xml/ tests validate
   * against libvirt's schema; libvirt's parser still rejects what it cannot read, and
   * the verification after the write catches values it would silently drop. */
  newdom = virDomainDefineXMLFlags(job->conn, new_xml, 0);
  if (newdom == NULL) {
    qp_error_set_libvirt(error, _("Cannot define the rewritten domain XML"));
    return FALSE;
  }
  result->defines++;
  return TRUE;
}

static gboolean
qp_reconcile_domain(const QpReconcileJob *job, virDomainPtr dom, QpReconcileResult *result,
                    GError **error)
{
  for (guint attempt = 0; attempt < QP_RECONCILE_MAX_ATTEMPTS; attempt++) {
    g_autofree char *xml = NULL;
    g_autofree char *xml_again = NULL;
    g_autofree char *new_xml = NULL;
    g_autoptr(QpDomainXml) doc = NULL;
    g_autoptr(QpPolicy) own = NULL;
    g_autoptr(QpPlan) plan = NULL;
    g_autoptr(GHashTable) wrote = NULL; /* the layers written, when it wrote */
    g_autoptr(QpDomainXml) kept = NULL; /* the definition read back after the write, when
                                         * it is not the text written */
    g_autoptr(GString) failures = NULL;
    g_auto(QpDiskFiguresBuilder) figures = { 0 };
    gboolean written = FALSE;

    /* SECURE: the text is defined back; without it graphics passwords would be lost */
    xml = qp_reconcile_get_xml(dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE, error);
    if (xml == NULL)
      return FALSE;
    doc = qp_domain_xml_parse(xml, -1, error);
    if (doc == NULL)
      return FALSE;
    own = qp_policy_from_domain(doc, error);
    if (own == NULL && error != NULL && *error != NULL)
      return FALSE;
    plan = qp_plan_build(doc, job->default_policy, error);
    if (plan == NULL)
      return FALSE;
    if (plan->policy == NULL) {
      qp_reconcile_set_state(result, "unmanaged");
      return TRUE;
    }

    if (plan->changes) {
      g_autofree char *sig = qp_reconcile_signature(plan);

      /* the same values again, after a write of ours (an earlier run's, or this run's when
       * the text read back made it plan again): libvirt is not keeping them */
      if ((job->recent_write != NULL && g_str_equal(sig, job->recent_write))
          || (result->write_signature != NULL && g_str_equal(sig, result->write_signature))) {
        g_set_error(error, QP_ERROR, QP_ERROR_LIBVIRT,
                    _("libvirt did not keep the <metadata_cache> values just written (%s); "
                      "not writing them again"),
                    sig);
        return FALSE;
      }
      if (!qp_plan_apply(doc, plan, error))
        return FALSE;
      new_xml = qp_domain_xml_to_string(doc);

      /* libvirt has no compare-and-swap for definitions: re-read the persistent XML right
       * before writing and rebuild the plan from it when it changed since the plan was
       * made, so that a user's edit that landed in between is kept. The write itself is
       * as narrow as the driver allows (qp_reconcile_write). */
      if (job->before_reread != NULL)
        job->before_reread(dom, job->before_reread_data);
      xml_again = qp_reconcile_get_xml(dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE, error);
      if (xml_again == NULL)
        return FALSE;
      if (!g_str_equal(xml, xml_again)) {
        g_debug("%s: definition changed while planning, rebuilding the plan", job->uuid);
        continue;
      }
      if (!qp_reconcile_write(job, dom, doc, plan, new_xml, result, error))
        return FALSE;
      written = TRUE;
      result->writes++;
      g_free(result->settled_digest);
      result->settled_digest = qp_reconcile_verify(dom, plan, new_xml, &kept, error);
      if (result->settled_digest == NULL)
        return FALSE;
      g_free(result->write_signature);
      result->write_signature = g_steal_pointer(&sig);
      qp_reconcile_log_writes(job->uuid, result->name, plan);

      /* The figures describe the definition as it now is: the plan of the text read back
       * (each written layer "unchanged", current-max-size the value written), as a new
       * reconcile would find it. When libvirt kept the very text written, that is this
       * plan carried out, and the images need not be read again. */
      wrote = qp_reconcile_written_layers(plan);
      if (kept == NULL) {
        qp_plan_settle(plan);
      } else {
        g_clear_pointer(&plan, qp_plan_free);
        plan = qp_plan_build(kept, job->default_policy, error);
        if (plan == NULL)
          return FALSE;
        /* qp_reconcile_verify found every value written, so a plan that still wants
         * changes (or no policy at all) means the definition was changed by someone
         * else between our re-read and our write: plan again from what it is now */
        if (plan->policy == NULL || plan->changes) {
          g_debug("%s: definition changed while being written, planning again", job->uuid);
          continue;
        }
      }
    }

    if (!written)
      result->settled_digest = qp_reconcile_digest(xml);
    result->percent = plan->policy->percent;
    result->max = plan->policy->max;
    g_free(result->chain);
    result->chain = g_strdup(qp_chain_mode_to_string(plan->policy->chain));
    g_free(result->policy_source);
    result->policy_source = g_strdup(own != NULL ? "domain" : "default");

    qp_disk_figures_builder_init(&figures);
    failures = g_string_new(NULL);
    for (guint i = 0; i < plan->items->len; i++) {
      QpPlanItem *item = g_ptr_array_index(plan->items, i);
      qp_disk_figures_builder_add(&figures, item,
                                  written && qp_reconcile_layer_written(wrote, item));
      if (qp_reconcile_item_is_failure(plan, item)) {
        if (failures->len > 0)
          g_string_append(failures, "; ");
        g_string_append_printf(failures, "%s: %s", item->dev,
                               item->reason != NULL ? item->reason : _("unreadable image"));
      }
    }
    result->disks = qp_disk_figures_builder_end(&figures);

    if (failures->len > 0) {
      g_set_error_literal(error, QP_ERROR, QP_ERROR_IMAGE, failures->str);
      return FALSE;
    }
    if (result->active) {
      g_autoptr(GError) error_live = NULL;
      gboolean pending = qp_reconcile_pending_restart(dom, plan, &error_live);
      if (error_live != NULL) {
        g_propagate_prefixed_error(error, g_steal_pointer(&error_live), "%s",
                                   _("live definition: "));
        return FALSE;
      }
      qp_reconcile_set_state(result, pending ? "pending-restart" : "applied");
    } else {
      qp_reconcile_set_state(result, "applied");
    }
    return TRUE;
  }
  g_set_error(error, QP_ERROR, QP_ERROR_FAILED,
              _("the definition changed during each of %u attempts to rewrite it; will retry "
                "at the next trigger"),
              (guint)QP_RECONCILE_MAX_ATTEMPTS);
  return FALSE;
}

QpReconcileResult *
qp_reconcile_run(const QpReconcileJob *job)
{
  g_autoptr(QpReconcileResult) result = g_new0(QpReconcileResult, 1);
  g_autoptr(QpVirDomain) dom = NULL;
  g_autoptr(GError) error = NULL;
  const char *name;

  result->chain = g_strdup("");
  result->policy_source = g_strdup("");
  result->state = g_strdup("unmanaged");

  dom = virDomainLookupByUUIDString(job->conn, job->uuid);
  if (dom == NULL) {
    if (qp_error_libvirt_no_domain()) {
      result->gone = TRUE;
    } else {
      qp_error_set_libvirt(&result->error, _("Cannot look up the domain"));
      qp_reconcile_set_state(result, "error");
      result->keep_disks = TRUE;
    }
    return g_steal_pointer(&result);
  }
  name = virDomainGetName(dom);
  result->name = g_strdup(name != NULL ? name : job->uuid);
  result->persistent = virDomainIsPersistent(dom) == 1;
  result->active = virDomainIsActive(dom) == 1;

  if (job->op != QP_RECONCILE_OP_NONE) {
    if (!result->persistent) {
      g_set_error(&result->op_error, QP_ERROR, QP_ERROR_FAILED,
                  _("Domain %s is transient: it has no persistent definition to hold a policy"),
                  result->name);
    } else if (!qp_reconcile_do_op(job, dom, result->active, &result->op_error)) {
      qp_error_convert(&result->op_error);
    }
  }

  if (!result->persistent) {
    g_set_error_literal(&result->error, QP_ERROR, QP_ERROR_FAILED,
                        _("transient domain: skipped, only persistent definitions are written"));
    return g_steal_pointer(&result);
  }
  if (job->settled_digest != NULL && job->op == QP_RECONCILE_OP_NONE) {
    g_autofree char *xml
        = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
    g_autofree char *digest = xml != NULL ? qp_reconcile_digest(xml) : NULL;
    if (g_strcmp0(digest, job->settled_digest) == 0) {
      result->unchanged = TRUE;
      result->settled_digest = g_steal_pointer(&digest);
      return g_steal_pointer(&result);
    }
    virResetLastError();
  }
  if (!qp_reconcile_domain(job, dom, result, &error)) {
    qp_error_convert(&error);
    qp_reconcile_set_state(result, "error");
    result->error = g_steal_pointer(&error);
  }
  return g_steal_pointer(&result);
}
