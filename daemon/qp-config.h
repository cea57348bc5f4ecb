/* The daemon's configuration file (GKeyFile, spec section 5). */
#pragma once

#include <glib.h>

#include "qp-policy.h"

G_BEGIN_DECLS

#define QP_CONFIG_DEFAULT_URI      "qemu:///system"
#define QP_CONFIG_DEFAULT_INTERVAL 300 /* seconds: catches image resizes within minutes */
/* A day: a longer period would not catch a resized image in any useful time. */
#define QP_CONFIG_MAX_INTERVAL (24 * 3600)

typedef struct {
  char *uri;
  guint reconcile_interval; /* seconds, 0: off */
  char *log_level;          /* "debug", "info", "message", "warning" */
  QpPolicy *default_policy; /* NULL: domains without a policy are never touched */
} QpConfig;

QpConfig *
qp_config_new(void);
/* Load @path; a missing file gives the defaults unless @must_exist. */
QpConfig *
qp_config_load(const char *path, gboolean must_exist, GError **error);
void
qp_config_free(QpConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpConfig, qp_config_free)

G_END_DECLS
