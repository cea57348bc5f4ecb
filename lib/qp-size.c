/* Scaled integers as libvirt reads them (virScaleInteger with a byte default). */
#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <string.h>

#include "qp-size.h"

G_DEFINE_QUARK(qp_size_error, qp_size_error)

typedef struct {
  const char *suffix; /* lower case */
  guint64 scale;
} QpSizeUnit;

static const QpSizeUnit qp_size_units[] = {
  { "", 1 },
  { "b", 1 },
  { "k", 1ULL << 10 },
  { "kib", 1ULL << 10 },
  { "m", 1ULL << 20 },
  { "mib", 1ULL << 20 },
  { "g", 1ULL << 30 },
  { "gib", 1ULL << 30 },
  { "t", 1ULL << 40 },
  { "tib", 1ULL << 40 },
  { "p", 1ULL << 50 },
  { "pib", 1ULL << 50 },
  { "e", 1ULL << 60 },
  { "eib", 1ULL << 60 },
  { "kb", 1000ULL },
  { "mb", 1000000ULL },
  { "gb", 1000000000ULL },
  { "tb", 1000000000000ULL },
  { "pb", 1000000000000000ULL },
  { "eb", 1000000000000000000ULL },
};

/* @str for a message: UTF-8, control characters as \xNN so that the message stays one
 * line, and cut after QP_SIZE_QUOTE_MAX characters so that a huge value (an attribute
 * of a 16 MiB document) never makes a huge message. */
#define QP_SIZE_QUOTE_MAX 64 /* far longer than any size anyone writes */

static char *
qp_size_quote(const char *str)
{
  g_autofree char *valid = g_utf8_make_valid(str, -1);
  GString *out = g_string_new(NULL);
  const char *c = valid;

  for (guint n = 0; *c != '\0' && n < QP_SIZE_QUOTE_MAX; c = g_utf8_next_char(c), n++) {
    gunichar u = g_utf8_get_char(c);
    if (u < 0x20 || u == 0x7f)
      g_string_append_printf(out, "\\x%02x", u);
    else
      g_string_append_unichar(out, u);
  }
  if (*c != '\0')
    g_string_append(out, "…");
  return g_string_free(out, FALSE);
}

gboolean
qp_size_parse(const char *str, guint64 *out, GError **error)
{
  guint64 number = 0;
  const char *p = str;
  g_autofree char *unit = NULL;

  g_return_val_if_fail(str != NULL, FALSE);
  g_return_val_if_fail(out != NULL, FALSE);

  if (!g_ascii_isdigit(*p)) {
    g_autofree char *shown = qp_size_quote(str);
    g_set_error(error, QP_SIZE_ERROR, QP_SIZE_ERROR_INVALID,
                _("invalid size '%s': expected an unsigned integer with an optional unit"), shown);
    return FALSE;
  }
  for (; g_ascii_isdigit(*p); p++) {
    guint digit = (guint)(*p - '0');
    if (number > (G_MAXUINT64 - digit) / 10) {
      g_autofree char *shown = qp_size_quote(str);
      g_set_error(error, QP_SIZE_ERROR, QP_SIZE_ERROR_OVERFLOW,
                  _("size '%s' is too large (the limit is %" PRIu64 " bytes)"), shown, G_MAXUINT64);
      return FALSE;
    }
    number = number * 10 + digit;
  }

  unit = g_ascii_strdown(p, -1);
  for (guint i = 0; i < G_N_ELEMENTS(qp_size_units); i++) {
    if (strcmp(unit, qp_size_units[i].suffix) != 0)
      continue;
    if (number > G_MAXUINT64 / qp_size_units[i].scale) {
      g_autofree char *shown = qp_size_quote(str);
      g_set_error(error, QP_SIZE_ERROR, QP_SIZE_ERROR_OVERFLOW,
                  _("size '%s' is too large (the limit is %" PRIu64 " bytes)"), shown, G_MAXUINT64);
      return FALSE;
    }
    *out = number * qp_size_units[i].scale;
    return TRUE;
  }

  {
    g_autofree char *shown = qp_size_quote(str);
    g_autofree char *shown_unit = qp_size_quote(p);
    g_set_error(error, QP_SIZE_ERROR, QP_SIZE_ERROR_INVALID,
                _("invalid size '%s': unknown unit '%s' (use B, K, KiB, M, MiB, G, GiB, T, TiB, "
                  "P, PiB, E, EiB, KB, MB, GB, TB, PB or EB)"),
                shown, shown_unit);
  }
  return FALSE;
}

char *
qp_size_format(guint64 bytes)
{
  static const char *const names[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  guint idx = 0;
  guint64 scale = 1;

  while (idx + 1 < G_N_ELEMENTS(names) && bytes / scale >= 1024) {
    scale *= 1024;
    idx++;
  }
  if (bytes % scale == 0)
    return g_strdup_printf("%" G_GUINT64_FORMAT " %s", bytes / scale, names[idx]);
  /* g_ascii_formatd: a decimal point whatever LC_NUMERIC says. */
  {
    char number[G_ASCII_DTOSTR_BUF_SIZE];
    g_ascii_formatd(number, sizeof(number), "%.1f", (double)bytes / (double)scale);
    return g_strdup_printf("%s %s", number, names[idx]);
  }
}
