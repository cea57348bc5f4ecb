/* Options checking. */
#include "config.h"

#include "qp-options.h"

#include <glib/gi18n.h>

#include "qp-error.h"

gboolean
qp_options_check(GVariant *options, const QpOptionSpec *specs, GError **error)
{
  GVariantIter iter;
  const char *key;
  GVariant *value;

  g_variant_iter_init(&iter, options);
  while (g_variant_iter_next(&iter, "{&sv}", &key, &value)) {
    g_autoptr(GVariant) val = value;
    const QpOptionSpec *spec = NULL;
    for (guint i = 0; specs[i].key != NULL; i++) {
      if (g_str_equal(specs[i].key, key)) {
        spec = &specs[i];
        break;
      }
    }
    if (spec == NULL) {
      g_set_error(error, QP_ERROR, QP_ERROR_INVALID_ARGS, _("Unknown option “%s”"), key);
      return FALSE;
    }
    if (!g_variant_is_of_type(val, G_VARIANT_TYPE(spec->type))) {
      g_set_error(error, QP_ERROR, QP_ERROR_INVALID_ARGS,
                  _("Option “%s” must be of type “%s”, not “%s”"), key, spec->type,
                  g_variant_get_type_string(val));
      return FALSE;
    }
  }
  return TRUE;
}
