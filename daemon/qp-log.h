/* Structured logging with the journal fields operators filter on. */
#pragma once

#include <glib.h>

/* QP_DOMAIN_UUID and QP_IMAGE_PATH are journal fields (journalctl QP_DOMAIN_UUID=…);
 * either may be NULL. */
#define qp_log(level, uuid, path, ...)                                                             \
  g_log_structured(G_LOG_DOMAIN, (level), "QP_DOMAIN_UUID", "%s", (uuid) ? (uuid) : "",            \
                   "QP_IMAGE_PATH", "%s", (path) ? (path) : "", "MESSAGE", __VA_ARGS__)
