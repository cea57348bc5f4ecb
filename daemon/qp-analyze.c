/* AnalyzeImage. The daemon runs as root with CAP_DAC_READ_SEARCH; a caller must not be
 * able to use it to read what they could not read themselves, nor to block it. So the
 * worker thread switches its filesystem uid and gid to the caller's for the opens
 * (setfsuid/setfsgid act on the calling thread only, and a non-zero fsuid drops the
 * thread's file capabilities), and lib/ opens with O_NONBLOCK and refuses anything
 * but regular files and block devices before reading a byte. Supplementary groups are
 * not switched (that is process-wide in glibc), so access that needs one of the
 * caller's supplementary groups is refused: the safe side. */
#include "config.h"

#include "qp-analyze.h"

#include <glib/gi18n.h>
#include <pwd.h>
#include <sys/fsuid.h>
#include <unistd.h>

#include "qp-error.h"
#include "qp-figures.h"
#include "qp-qcow2-file.h"

void
qp_analyze_request_free(QpAnalyzeRequest *req)
{
  if (req == NULL)
    return;
  g_free(req->path);
  g_free(req->format);
  g_free(req);
}

static gboolean
qp_analyze_caller_gid(guint32 uid, gid_t *gid, GError **error)
{
  struct passwd pwd;
  struct passwd *found = NULL;
  char buf[4096]; /* getpwuid_r's entry; sysconf(_SC_GETPW_R_SIZE_MAX) is 1024 on glibc */

  if (getpwuid_r(uid, &pwd, buf, sizeof(buf), &found) != 0 || found == NULL) {
    g_set_error(error, QP_ERROR, QP_ERROR_NOT_AUTHORIZED, _("Caller uid %u has no user entry"),
                uid);
    return FALSE;
  }
  *gid = pwd.pw_gid;
  return TRUE;
}

static GVariant *
qp_analyze_run(const QpAnalyzeRequest *req, GError **error)
{
  g_autoptr(GPtrArray) layers = NULL;
  GVariantBuilder builder;

  if (req->chain) {
    layers = qp_qcow2_chain_resolve(req->path, req->format, error);
    if (layers == NULL)
      return NULL;
  } else {
    g_autoptr(QpQcow2Layer) layer = g_new0(QpQcow2Layer, 1);
    layer->path = g_strdup(req->path);
    layer->format = g_strdup(req->format);
    if (g_str_equal(req->format, "qcow2")) {
      layer->header = qp_qcow2_file_read_header(req->path, error);
      if (layer->header == NULL)
        return NULL;
    } else {
      /* still refuse FIFOs and devices, and report a missing file */
      guint64 size = 0;
      int fd = qp_qcow2_file_open(req->path, &size, error);
      if (fd < 0)
        return NULL;
      close(fd);
    }
    layers = g_ptr_array_new_with_free_func((GDestroyNotify)qp_qcow2_layer_free);
    g_ptr_array_add(layers, g_steal_pointer(&layer));
  }
  g_variant_builder_init(&builder, G_VARIANT_TYPE("aa{sv}"));
  for (guint i = 0; i < layers->len; i++)
    g_variant_builder_add_value(
        &builder, qp_figures_from_layer(g_ptr_array_index(layers, i), i, req->percent, req->max));
  return g_variant_builder_end(&builder);
}

static void
qp_analyze_thread(GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  const QpAnalyzeRequest *req = task_data;
  GVariant *result = NULL;
  GError *error = NULL;
  gid_t gid = 0;
  uid_t old_uid = 0;
  gid_t old_gid = 0;
  gboolean switched = req->as_caller && req->uid != 0 && geteuid() == 0;

  if (switched) {
    if (!qp_analyze_caller_gid(req->uid, &gid, &error)) {
      g_task_return_error(task, error);
      return;
    }
    /* gid first: once the fsuid is not 0 the thread could not change its fsgid back */
    old_gid = (gid_t)setfsgid(gid);
    old_uid = (uid_t)setfsuid(req->uid);
    if ((uid_t)setfsuid((uid_t)-1) != req->uid || (gid_t)setfsgid((gid_t)-1) != gid) {
      setfsuid(old_uid);
      setfsgid(old_gid);
      g_task_return_new_error(task, QP_ERROR, QP_ERROR_FAILED, "%s",
                              _("Cannot take on the caller's file permissions"));
      return;
    }
  }
  result = qp_analyze_run(req, &error);
  if (switched) {
    setfsuid(old_uid);
    setfsgid(old_gid);
  }
  if (result == NULL) {
    qp_error_convert(&error);
    g_task_return_error(task, error);
    return;
  }
  g_task_return_pointer(task, g_variant_ref_sink(result), (GDestroyNotify)g_variant_unref);
}

void
qp_analyze_async(QpAnalyzeRequest *req, GCancellable *cancellable, GAsyncReadyCallback callback,
                 gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new(NULL, cancellable, callback, user_data);
  g_task_set_task_data(task, req, (GDestroyNotify)qp_analyze_request_free);
  g_task_run_in_thread(task, qp_analyze_thread);
}

GVariant *
qp_analyze_finish(GAsyncResult *res, GError **error)
{
  return g_task_propagate_pointer(G_TASK(res), error);
}
