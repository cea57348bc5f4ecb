/* Manager.AnalyzeImage: read an image's figures with the caller's file permissions. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct {
  char *path;
  char *format;   /* declared format, "qcow2" by default: never probed */
  gboolean chain; /* also the backing layers */
  guint percent;  /* 0: no policy figures */
  guint64 max;
  gboolean as_caller; /* switch the thread's filesystem uid/gid to the caller's */
  guint32 uid;
} QpAnalyzeRequest;

void
qp_analyze_request_free(QpAnalyzeRequest *req);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpAnalyzeRequest, qp_analyze_request_free)

/* Runs in a thread (takes @req); the result is an aa{sv} GVariant. */
void
qp_analyze_async(QpAnalyzeRequest *req, GCancellable *cancellable, GAsyncReadyCallback callback,
                 gpointer user_data);
GVariant *
qp_analyze_finish(GAsyncResult *res, GError **error);

G_END_DECLS
