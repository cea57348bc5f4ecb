/* Reading /etc/qcow2-policyd/qcow2-policyd.conf. */
#include "config.h"

#include "qp-config.h"

#include <glib/gi18n.h>

#include "qp-size.h"

QpConfig *
qp_config_new(void)
{
  QpConfig *config = g_new0(QpConfig, 1);
  config->uri = g_strdup(QP_CONFIG_DEFAULT_URI);
  config->reconcile_interval = QP_CONFIG_DEFAULT_INTERVAL;
  config->log_level = g_strdup("message");
  return config;
}

void
qp_config_free(QpConfig *config)
{
  if (config == NULL)
    return;
  g_free(config->uri);
  g_free(config->log_level);
  g_clear_pointer(&config->default_policy, qp_policy_free);
  g_free(config);
}

static gboolean
qp_config_load_default_policy(QpConfig *config, GKeyFile *kf, GError **error)
{
  g_autofree char *percent_str = NULL;
  g_autofree char *max_str = NULL;
  g_autofree char *chain_str = NULL;
  guint64 percent = 0;
  guint64 max = 0;
  QpChainMode chain = QP_CHAIN_TOP;

  percent_str = g_key_file_get_string(kf, "default-policy", "percent", NULL);
  if (percent_str == NULL)
    return TRUE; /* off unless percent is set */
  g_strstrip(percent_str);
  if (!g_ascii_string_to_unsigned(percent_str, 10, 1, 100, &percent, NULL)) {
    g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                _("[default-policy] percent: “%s” is not an integer from 1 to 100"), percent_str);
    return FALSE;
  }
  max_str = g_key_file_get_string(kf, "default-policy", "max", NULL);
  if (max_str != NULL) {
    g_strstrip(max_str);
    if (!qp_size_parse(max_str, &max, error)) {
      g_prefix_error(error, "[default-policy] max: ");
      return FALSE;
    }
  }
  chain_str = g_key_file_get_string(kf, "default-policy", "chain", NULL);
  if (chain_str != NULL) {
    g_strstrip(chain_str);
    if (g_str_equal(chain_str, "all")) {
      chain = QP_CHAIN_ALL;
    } else if (!g_str_equal(chain_str, "top")) {
      g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                  _("[default-policy] chain: “%s” is neither “top” nor “all”"), chain_str);
      return FALSE;
    }
  }
  config->default_policy = qp_policy_new((guint)percent, max, chain);
  return TRUE;
}

QpConfig *
qp_config_load(const char *path, gboolean must_exist, GError **error)
{
  g_autoptr(QpConfig) config = qp_config_new();
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(GError) error_local = NULL;
  g_autofree char *uri = NULL;
  g_autofree char *level = NULL;

  if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &error_local)) {
    if (!must_exist && g_error_matches(error_local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
      return g_steal_pointer(&config);
    g_propagate_prefixed_error(error, g_steal_pointer(&error_local), "%s: ", path);
    return NULL;
  }
  uri = g_key_file_get_string(kf, "daemon", "uri", NULL);
  if (uri != NULL && uri[0] != '\0') {
    g_free(config->uri);
    config->uri = g_strdup(g_strstrip(uri));
  }
  if (g_key_file_has_key(kf, "daemon", "reconcile-interval", NULL)) {
    g_autofree char *str = g_key_file_get_string(kf, "daemon", "reconcile-interval", NULL);
    guint64 val = 0;
    if (str == NULL
        || !g_ascii_string_to_unsigned(g_strstrip(str), 10, 0, QP_CONFIG_MAX_INTERVAL, &val,
                                       NULL)) {
      g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                  _("%s: [daemon] reconcile-interval: “%s” is not a number of seconds from 0 "
                    "to %u"),
                  path, str != NULL ? str : "", (guint)QP_CONFIG_MAX_INTERVAL);
      return NULL;
    }
    config->reconcile_interval = (guint)val;
  }
  level = g_key_file_get_string(kf, "daemon", "log-level", NULL);
  if (level != NULL) {
    g_strstrip(level);
    if (!g_strv_contains((const char *const[]){ "debug", "info", "message", "warning", NULL },
                         level)) {
      g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                  _("%s: [daemon] log-level: “%s” is not one of debug, info, message, warning"),
                  path, level);
      return NULL;
    }
    g_free(config->log_level);
    config->log_level = g_strdup(level);
  }
  if (!qp_config_load_default_policy(config, kf, error)) {
    g_prefix_error(error, "%s: ", path);
    return NULL;
  }
  return g_steal_pointer(&config);
}
