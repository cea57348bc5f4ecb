/* Checking the a{sv} options argument every method takes. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  const char *key;
  const char *type; /* GVariant type string */
} QpOptionSpec;

/* Every key of @options must be in @specs (terminated by a {NULL, NULL} entry) with the
 * given type; otherwise QP_ERROR_INVALID_ARGS naming the key. */
gboolean
qp_options_check(GVariant *options, const QpOptionSpec *specs, GError **error);

G_END_DECLS
