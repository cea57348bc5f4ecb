/* One domain's reconcile (daemon/qp-reconcile.c) against libvirt's test driver opened in
 * this process, on images made by qemu-img: what is written, what is kept, concurrent
 * edits, transient and vanished domains. */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "qp-error.h"
#include "qp-reconcile.h"

#define UUID_STOPPED "9a9a9a9a-0000-4000-8000-000000000001"
#define UUID_RUNNING "9a9a9a9a-0000-4000-8000-000000000002"
#define APP_NS       "http://example.org/app/1"

typedef struct {
  char *dir;
  char *image;
  virConnectPtr conn;
} Fixture;

static void
quiet(void *opaque, virErrorPtr err)
{
}

static char *
domain_xml(const char *name, const char *uuid, const char *image, gboolean running)
{
  return g_strdup_printf(
      "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
      "<name>%s</name><uuid>%s</uuid><memory>65536</memory>"
      "<metadata><app:tag xmlns:app='" APP_NS "'>keep</app:tag>"
      "<qc:l2cache xmlns:qc='http://qcow2policyd.org/schemas/l2cache/1.0' percent='100'>"
      "<qc:disk dev='vdb' percent='25'/></qc:l2cache></metadata>"
      "<os><type>hvm</type></os><devices>"
      "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
      "<source file='%s'/><target dev='vda' bus='virtio'/></disk>"
      "<graphics type='vnc' port='-1' passwd='s3cret-pw'/>"
      "</devices>%s</domain>",
      name, uuid, image, running ? "" : "<test:runstate>5</test:runstate>");
}

static void
fixture_setup(Fixture *fx, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *node = NULL;
  g_autofree char *uri = NULL;
  g_autofree char *stopped = NULL;
  g_autofree char *running = NULL;
  g_autofree char *text = NULL;
  const char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", NULL, "1T", NULL };
  int status = -1;

  fx->dir = g_dir_make_tmp("qp-reconcile-XXXXXX", &error);
  g_assert_no_error(error);
  fx->image = g_build_filename(fx->dir, "disk.qcow2", NULL);
  argv[5] = fx->image;
  g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL,
                             &status, &error));
  g_assert_no_error(error);
  g_assert_cmpint(status, ==, 0);
  stopped = domain_xml("stopped", UUID_STOPPED, fx->image, FALSE);
  running = domain_xml("running", UUID_RUNNING, fx->image, TRUE);
  text = g_strconcat("<node>", stopped, running, "</node>", NULL);
  node = g_build_filename(fx->dir, "node.xml", NULL);
  g_assert_true(g_file_set_contents(node, text, -1, &error));
  uri = g_strconcat("test://", node, NULL);
  fx->conn = virConnectOpen(uri);
  g_assert_nonnull(fx->conn);
}

static void
fixture_teardown(Fixture *fx, gconstpointer data)
{
  g_autofree char *node = g_build_filename(fx->dir, "node.xml", NULL);
  virConnectClose(fx->conn);
  g_unlink(fx->image);
  g_unlink(node);
  g_rmdir(fx->dir);
  g_free(fx->image);
  g_free(fx->dir);
}

static QpReconcileJob *
job_new(Fixture *fx, const char *uuid)
{
  QpReconcileJob *job = g_new0(QpReconcileJob, 1);
  job->uuid = g_strdup(uuid);
  job->conn = fx->conn;
  virConnectRef(fx->conn);
  return job;
}

static char *
inactive_xml(Fixture *fx, const char *uuid)
{
  virDomainPtr dom = virDomainLookupByUUIDString(fx->conn, uuid);
  char *xml;
  g_assert_nonnull(dom);
  xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
  virDomainFree(dom);
  g_assert_nonnull(xml);
  return xml;
}

/* 1 TiB, 64 KiB clusters: L2FULL 128 MiB, and 4 clusters of refcount cache */
#define EXPECTED_MAX_SIZE "134479872"

static void
test_applied_keeps_everything(Fixture *fx, gconstpointer data)
{
  g_autoptr(QpReconcileJob) job = job_new(fx, UUID_STOPPED);
  g_autoptr(QpReconcileResult) first = NULL;
  g_autoptr(QpReconcileResult) second = NULL;
  g_autofree char *xml = NULL;

  first = qp_reconcile_run(job);
  g_assert_no_error(first->error);
  g_assert_cmpstr(first->state, ==, "applied");
  g_assert_cmpuint(first->writes, ==, 1);
  g_assert_cmpuint(first->percent, ==, 100);
  g_assert_cmpstr(first->policy_source, ==, "domain");
  g_assert_nonnull(first->settled_digest);
  {
    /* Disks as D-Bus gives it, derived from the compact figures */
    g_autoptr(GVariant) disks = g_variant_ref_sink(qp_disk_figures_to_variant(first->disks));
    g_autoptr(GVariant) layer = NULL;
    guint64 max_size = 0, l2 = 0, refcount = 0, cluster = 0;
    const char *dev = NULL, *action = NULL;
    gboolean written = FALSE;

    g_assert_cmpuint(g_variant_n_children(disks), ==, 1);
    layer = g_variant_get_child_value(disks, 0);
    g_assert_true(g_variant_lookup(layer, "dev", "&s", &dev));
    g_assert_cmpstr(dev, ==, "vda");
    /* the figures of the definition as written: the value is in it now */
    g_assert_true(g_variant_lookup(layer, "action", "&s", &action));
    g_assert_cmpstr(action, ==, "unchanged");
    g_assert_true(g_variant_lookup(layer, "written", "b", &written));
    g_assert_true(written);
    g_assert_true(g_variant_lookup(layer, "max-size", "t", &max_size));
    g_assert_cmpuint(max_size, ==, g_ascii_strtoull(EXPECTED_MAX_SIZE, NULL, 10));
    /* QEMU's split of it: all of L2FULL (128 MiB) to L2, the 4 clusters to refcounts */
    g_assert_true(g_variant_lookup(layer, "l2-cache-size", "t", &l2));
    g_assert_true(g_variant_lookup(layer, "refcount-cache-size", "t", &refcount));
    g_assert_true(g_variant_lookup(layer, "cluster-size", "t", &cluster));
    g_assert_cmpuint(l2, ==, 128 * 1024 * 1024);
    g_assert_cmpuint(refcount, ==, 4 * cluster);
    g_assert_cmpuint(cluster, ==, 65536);
  }

  xml = inactive_xml(fx, UUID_STOPPED);
  g_assert_nonnull(strstr(xml, EXPECTED_MAX_SIZE));
  g_assert_nonnull(strstr(xml, "passwd='s3cret-pw'"));
  g_assert_nonnull(strstr(xml, ">keep</app:tag>"));
  g_assert_nonnull(strstr(xml, "vdb")); /* the per-disk override */

  /* idempotent: the second run writes nothing and settles on the same text */
  second = qp_reconcile_run(job);
  g_assert_cmpuint(second->writes, ==, 0);
  g_assert_cmpstr(second->state, ==, "applied");
  g_assert_cmpstr(second->settled_digest, ==, first->settled_digest);
}

static void
test_settled_fast_path(Fixture *fx, gconstpointer data)
{
  g_autoptr(QpReconcileJob) job = job_new(fx, UUID_STOPPED);
  g_autoptr(QpReconcileResult) first = qp_reconcile_run(job);
  g_autoptr(QpReconcileResult) second = NULL;

  job->settled_digest = g_strdup(first->settled_digest);
  second = qp_reconcile_run(job);
  g_assert_true(second->unchanged);
  g_assert_cmpuint(second->writes, ==, 0);
}

/* The test driver has no virDomainUpdateDeviceFlags: the first write finds that out and
 * defines; a job that knows it defines at once, with the same outcome. */
static void
test_no_device_update_defines_at_once(Fixture *fx, gconstpointer data)
{
  g_autoptr(QpReconcileJob) first_job = job_new(fx, UUID_STOPPED);
  g_autoptr(QpReconcileJob) second_job = job_new(fx, UUID_RUNNING);
  g_autoptr(QpReconcileResult) first = qp_reconcile_run(first_job);
  g_autoptr(QpReconcileResult) second = NULL;
  g_autofree char *xml = NULL;

  g_assert_no_error(first->error);
  g_assert_true(first->no_device_update);
  g_assert_cmpuint(first->defines, ==, 1);

  second_job->no_device_update = TRUE;
  second = qp_reconcile_run(second_job);
  g_assert_no_error(second->error);
  g_assert_false(second->no_device_update); /* not tried */
  g_assert_cmpuint(second->writes, ==, 1);
  g_assert_cmpuint(second->defines, ==, 1);
  xml = inactive_xml(fx, UUID_RUNNING);
  g_assert_nonnull(strstr(xml, "<metadata_cache>"));
}

static void
edit_once(virDomainPtr dom, gpointer data)
{
  guint *calls = data;
  g_autofree char *value = g_strdup_printf("<other n='%u'/>", *calls);
  (*calls)++;
  if (*calls > 1)
    return;
  g_assert_cmpint(virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, value, "other",
                                       "http://example.org/other/1", VIR_DOMAIN_AFFECT_CONFIG),
                  ==, 0);
}

static void
edit_always(virDomainPtr dom, gpointer data)
{
  guint *calls = data;
  g_autofree char *value = g_strdup_printf("<other n='%u'/>", *calls);
  (*calls)++;
  g_assert_cmpint(virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, value, "other",
                                       "http://example.org/other/1", VIR_DOMAIN_AFFECT_CONFIG),
                  ==, 0);
}

static void
test_concurrent_edit_kept(Fixture *fx, gconstpointer data)
{
  g_autoptr(QpReconcileJob) job = job_new(fx, UUID_STOPPED);
  g_autoptr(QpReconcileResult) result = NULL;
  g_autofree char *xml = NULL;
  guint calls = 0;

  job->before_reread = edit_once;
  job->before_reread_data = &calls;
  result = qp_reconcile_run(job);
  g_assert_no_error(result->error);
  /* the first plan was dropped for the edited text, the second one written */
  g_assert_cmpuint(calls, ==, 2);
  g_assert_cmpuint(result->writes, ==, 1);
  xml = inactive_xml(fx, UUID_STOPPED);
  g_assert_nonnull(strstr(xml, "http://example.org/other/1"));
  g_assert_nonnull(strstr(xml, EXPECTED_MAX_SIZE));
  g_assert_nonnull(strstr(xml, "passwd='s3cret-pw'"));
}

static void
test_endless_edits_give_up(Fixture *fx, gconstpointer data)
{
  g_autoptr(QpReconcileJob) job = job_new(fx, UUID_STOPPED);
  g_autoptr(QpReconcileResult) result = NULL;
  g_autofree char *xml = NULL;
  guint calls = 0;

  job->before_reread = edit_always;
  job->before_reread_data = &calls;
  result = qp_reconcile_run(job);
  g_assert_cmpuint(calls, ==, QP_RECONCILE_MAX_ATTEMPTS);
  g_assert_cmpuint(result->writes, ==, 0);
  g_assert_cmpstr(result->state, ==, "error");
  g_assert_error(result->error, QP_ERROR, QP_ERROR_FAILED);
  xml = inactive_xml(fx, UUID_STOPPED);
  g_assert_null(strstr(xml, "metadata_cache"));
}

static void
test_running_is_pending_restart(Fixture *fx, gconstpointer data)
{
  g_autoptr(QpReconcileJob) job = job_new(fx, UUID_RUNNING);
  g_autoptr(QpReconcileResult) result = qp_reconcile_run(job);
  virDomainPtr dom = virDomainLookupByUUIDString(fx->conn, UUID_RUNNING);
  g_autofree char *live = virDomainGetXMLDesc(dom, 0);

  virDomainFree(dom);
  g_assert_no_error(result->error);
  g_assert_true(result->active);
  g_assert_cmpstr(result->state, ==, "pending-restart");
  g_assert_cmpuint(result->writes, ==, 1);
  /* only the persistent definition was written */
  g_assert_null(strstr(live, "metadata_cache"));
}

static void
test_transient_skipped(Fixture *fx, gconstpointer data)
{
  g_autofree char *xml
      = domain_xml("transient", "9a9a9a9a-0000-4000-8000-0000000000ff", fx->image, TRUE);
  virDomainPtr dom = virDomainCreateXML(fx->conn, xml, 0);
  g_autoptr(QpReconcileJob) job = job_new(fx, "9a9a9a9a-0000-4000-8000-0000000000ff");
  g_autoptr(QpReconcileResult) result = NULL;
  g_autofree char *live = NULL;

  g_assert_nonnull(dom);
  result = qp_reconcile_run(job);
  g_assert_false(result->persistent);
  g_assert_cmpstr(result->state, ==, "unmanaged");
  g_assert_nonnull(result->error);
  g_assert_nonnull(strstr(result->error->message, "transient"));
  g_assert_cmpuint(result->writes, ==, 0);
  live = virDomainGetXMLDesc(dom, 0);
  g_assert_null(strstr(live, "metadata_cache"));

  /* a policy cannot be set on it either */
  job->op = QP_RECONCILE_OP_SET_POLICY;
  job->op_policy = qp_policy_new(50, 0, QP_CHAIN_TOP);
  g_clear_pointer(&result, qp_reconcile_result_free);
  result = qp_reconcile_run(job);
  g_assert_nonnull(result->op_error);
  virDomainDestroy(dom);
  virDomainFree(dom);
}

static void
test_vanished_domain(Fixture *fx, gconstpointer data)
{
  g_autoptr(QpReconcileJob) job = job_new(fx, "9a9a9a9a-0000-4000-8000-00000000dead");
  g_autoptr(QpReconcileResult) result = qp_reconcile_run(job);
  g_assert_true(result->gone);
}

static void
test_set_policy_keeps_overrides(Fixture *fx, gconstpointer data)
{
  g_autoptr(QpReconcileJob) job = job_new(fx, UUID_STOPPED);
  g_autoptr(QpReconcileResult) result = NULL;
  virDomainPtr dom;
  g_autofree char *meta = NULL;

  job->op = QP_RECONCILE_OP_SET_POLICY;
  job->op_policy = qp_policy_new(50, 1 << 30, QP_CHAIN_TOP);
  result = qp_reconcile_run(job);
  g_assert_no_error(result->op_error);
  g_assert_cmpuint(result->percent, ==, 50);
  g_assert_cmpuint(result->max, ==, 1 << 30);
  dom = virDomainLookupByUUIDString(fx->conn, UUID_STOPPED);
  meta = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
                              "http://qcow2policyd.org/schemas/l2cache/1.0",
                              VIR_DOMAIN_AFFECT_CONFIG);
  g_assert_nonnull(meta);
  g_assert_nonnull(strstr(meta, "vdb"));
  g_assert_nonnull(strstr(meta, "50"));

  /* clear removes the element; the values written stay */
  job->op = QP_RECONCILE_OP_CLEAR_POLICY;
  g_clear_pointer(&job->op_policy, qp_policy_free);
  g_clear_pointer(&result, qp_reconcile_result_free);
  result = qp_reconcile_run(job);
  g_assert_no_error(result->op_error);
  g_assert_cmpstr(result->state, ==, "unmanaged");
  g_free(meta);
  meta = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
                              "http://qcow2policyd.org/schemas/l2cache/1.0",
                              VIR_DOMAIN_AFFECT_CONFIG);
  g_assert_null(meta);
  virResetLastError();
  virDomainFree(dom);
}

static void
test_default_policy(Fixture *fx, gconstpointer data)
{
  g_autoptr(QpReconcileJob) job = job_new(fx, UUID_STOPPED);
  g_autoptr(QpReconcileResult) result = NULL;
  g_autoptr(QpPolicy) def = qp_policy_new(25, 0, QP_CHAIN_TOP);

  job->op = QP_RECONCILE_OP_CLEAR_POLICY;
  g_clear_pointer(&result, qp_reconcile_result_free);
  result = qp_reconcile_run(job);
  g_assert_cmpstr(result->state, ==, "unmanaged");
  job->op = QP_RECONCILE_OP_NONE;
  job->default_policy = def;
  g_clear_pointer(&result, qp_reconcile_result_free);
  result = qp_reconcile_run(job);
  g_assert_cmpstr(result->state, ==, "applied");
  g_assert_cmpstr(result->policy_source, ==, "default");
  g_assert_cmpuint(result->percent, ==, 25);
}

static void
qemu_img(const char *const *args)
{
  g_autoptr(GError) error = NULL;
  int status = -1;
  g_assert_true(g_spawn_sync(NULL, (char **)args, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL,
                             &status, &error));
  g_assert_no_error(error);
  g_assert_cmpint(status, ==, 0);
}

static void
test_chain_mismatch_is_an_error(Fixture *fx, gconstpointer data)
{
  g_autofree char *base = g_build_filename(fx->dir, "base.qcow2", NULL);
  g_autofree char *top = g_build_filename(fx->dir, "top.qcow2", NULL);
  g_autofree char *xml = NULL;
  g_autofree char *after = NULL;
  const char *create_base[] = { "qemu-img", "create", "-q", "-f", "qcow2", base, "10G", NULL };
  const char *create_top[] = { "qemu-img",   "create", "-q",    "-f", "qcow2", "-b",
                               "base.qcow2", "-F",     "qcow2", top,  "10G",   NULL };
  virDomainPtr dom;
  g_autoptr(QpReconcileJob) job = NULL;
  g_autoptr(QpReconcileResult) result = NULL;

  qemu_img(create_base);
  qemu_img(create_top);
  /* the explicit chain names the top image itself as its backing file: not what the
   * header says, so nothing may be written */
  xml = g_strdup_printf(
      "<domain type='test'><name>chained</name>"
      "<uuid>9a9a9a9a-0000-4000-8000-0000000000c1</uuid><memory>65536</memory>"
      "<metadata><qc:l2cache xmlns:qc='http://qcow2policyd.org/schemas/l2cache/1.0' "
      "percent='100' chain='all'/></metadata><os><type>hvm</type></os><devices>"
      "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
      "<source file='%s'/><backingStore type='file'><format type='qcow2'/>"
      "<source file='%s'/><backingStore/></backingStore>"
      "<target dev='vda' bus='virtio'/></disk></devices></domain>",
      top, fx->image);
  dom = virDomainDefineXML(fx->conn, xml);
  g_assert_nonnull(dom);
  job = job_new(fx, "9a9a9a9a-0000-4000-8000-0000000000c1");
  result = qp_reconcile_run(job);
  g_assert_cmpstr(result->state, ==, "error");
  g_assert_error(result->error, QP_ERROR, QP_ERROR_CHAIN_MISMATCH);
  g_assert_cmpuint(result->writes, ==, 0);
  after = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE);
  g_assert_null(strstr(after, "metadata_cache"));
  virDomainUndefine(dom);
  virDomainFree(dom);
  g_unlink(top);
  g_unlink(base);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  virSetErrorFunc(NULL, quiet);
#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  ADD("/reconcile/applied-keeps-everything", test_applied_keeps_everything);
  ADD("/reconcile/settled-fast-path", test_settled_fast_path);
  ADD("/reconcile/no-device-update-defines-at-once", test_no_device_update_defines_at_once);
  ADD("/reconcile/concurrent-edit-kept", test_concurrent_edit_kept);
  ADD("/reconcile/endless-edits-give-up", test_endless_edits_give_up);
  ADD("/reconcile/running-is-pending-restart", test_running_is_pending_restart);
  ADD("/reconcile/transient-skipped", test_transient_skipped);
  ADD("/reconcile/vanished-domain", test_vanished_domain);
  ADD("/reconcile/set-policy-keeps-overrides", test_set_policy_keeps_overrides);
  ADD("/reconcile/default-policy", test_default_policy);
  ADD("/reconcile/chain-mismatch-is-an-error", test_chain_mismatch_is_an_error);
  return g_test_run();
}
