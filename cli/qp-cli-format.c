/* qcow2-policyctl: output helpers shared by the commands. */
#include "config.h"

#include "qp-cli-format.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "qp-size.h"

struct _QpCliTable {
  guint n_columns;
  guint indent;
  gboolean *align_right;
  GStrv header;    /* NULL when none */
  GPtrArray *rows; /* of GStrv */
};

QpCliTable *
qp_cli_table_new(guint n_columns)
{
  QpCliTable *table = NULL;

  g_return_val_if_fail(n_columns > 0, NULL);
  table = g_new0(QpCliTable, 1);
  table->n_columns = n_columns;
  table->align_right = g_new0(gboolean, n_columns);
  table->rows = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
  return table;
}

void
qp_cli_table_free(QpCliTable *table)
{
  if (table == NULL)
    return;
  g_free(table->align_right);
  g_strfreev(table->header);
  g_ptr_array_unref(table->rows);
  g_free(table);
}

void
qp_cli_table_set_indent(QpCliTable *table, guint indent)
{
  table->indent = indent;
}

void
qp_cli_table_set_align_right(QpCliTable *table, guint column, gboolean right)
{
  g_return_if_fail(column < table->n_columns);
  table->align_right[column] = right;
}

static GStrv
collect_row(QpCliTable *table, va_list args)
{
  GStrv row = g_new0(char *, table->n_columns + 1);

  for (guint i = 0; i < table->n_columns; i++) {
    const char *cell = va_arg(args, const char *);
    if (cell == NULL) {
      g_critical("table row has fewer than %u cells", table->n_columns);
      break;
    }
    row[i] = g_strdup(cell);
  }
  for (guint i = 0; i < table->n_columns; i++) {
    if (row[i] == NULL)
      row[i] = g_strdup("");
  }
  return row;
}

void
qp_cli_table_set_header(QpCliTable *table, ...)
{
  va_list args;

  va_start(args, table);
  g_strfreev(table->header);
  table->header = collect_row(table, args);
  va_end(args);
}

void
qp_cli_table_add_row(QpCliTable *table, ...)
{
  va_list args;

  va_start(args, table);
  g_ptr_array_add(table->rows, collect_row(table, args));
  va_end(args);
}

void
qp_cli_table_add_field(QpCliTable *table, const char *key, char *value)
{
  GStrv row = g_new0(char *, table->n_columns + 1);

  g_return_if_fail(table->n_columns == 2);
  row[0] = g_strdup_printf("%s:", key);
  row[1] = value != NULL ? value : g_strdup("");
  g_ptr_array_add(table->rows, row);
}

/* Terminal columns @str takes: East Asian wide characters take two, combining marks none
 * (so that Japanese tables line up). Bytes for text that is not UTF-8. */
static guint
display_width(const char *str)
{
  guint width = 0;

  if (!g_utf8_validate(str, -1, NULL))
    return (guint)strlen(str);
  for (const char *p = str; *p != '\0'; p = g_utf8_next_char(p)) {
    gunichar c = g_utf8_get_char(p);
    if (g_unichar_iszerowidth(c))
      continue;
    width += g_unichar_iswide(c) ? 2 : 1;
  }
  return width;
}

static void
print_row(QpCliTable *table, const guint *widths, GStrv row, FILE *stream)
{
  g_autoptr(GString) line = g_string_new(NULL);

  for (guint i = 0; i < table->indent; i++)
    g_string_append_c(line, ' ');
  for (guint i = 0; i < table->n_columns; i++) {
    guint len = display_width(row[i]);
    guint pad = widths[i] > len ? widths[i] - len : 0;
    gboolean last = i + 1 == table->n_columns;

    if (i > 0)
      g_string_append(line, "  ");
    if (table->align_right[i]) {
      for (guint j = 0; j < pad; j++)
        g_string_append_c(line, ' ');
      g_string_append(line, row[i]);
    } else {
      g_string_append(line, row[i]);
      for (guint j = 0; !last && j < pad; j++)
        g_string_append_c(line, ' ');
    }
  }
  /* Trailing blanks would only make the output awkward to compare. */
  while (line->len > 0 && line->str[line->len - 1] == ' ')
    g_string_truncate(line, line->len - 1);
  fprintf(stream, "%s\n", line->str);
}

void
qp_cli_table_print(QpCliTable *table, FILE *stream)
{
  g_autofree guint *widths = g_new0(guint, table->n_columns);

  for (guint r = 0; r <= table->rows->len; r++) {
    GStrv row = r == table->rows->len ? table->header : g_ptr_array_index(table->rows, r);
    if (row == NULL)
      continue;
    for (guint i = 0; i < table->n_columns; i++)
      widths[i] = MAX(widths[i], display_width(row[i]));
  }
  if (table->header != NULL) {
    GStrv rule = g_new0(char *, table->n_columns + 1);
    print_row(table, widths, table->header, stream);
    for (guint i = 0; i < table->n_columns; i++) {
      rule[i] = g_malloc(widths[i] + 1);
      memset(rule[i], '-', widths[i]);
      rule[i][widths[i]] = '\0';
    }
    print_row(table, widths, rule, stream);
    g_strfreev(rule);
  }
  for (guint r = 0; r < table->rows->len; r++)
    print_row(table, widths, g_ptr_array_index(table->rows, r), stream);
}

char *
qp_cli_format_size_bytes(guint64 bytes)
{
  g_autofree char *human = qp_size_format(bytes);

  if (bytes < 1024)
    return g_steal_pointer(&human);
  /* TRANSLATORS: a size for people, then the exact byte count */
  return g_strdup_printf(_("%s (%" PRIu64 " bytes)"), human, bytes);
}

char *
qp_cli_format_share(double share)
{
  double percent = share * 100.0;

  if (share >= 1.0)
    return g_strdup("100 %");
  if (share <= 0.0)
    return g_strdup("0 %");
  /* Enough digits that a share just below 1 never reads as 100 % and a tiny one never
   * as 0 %. */
  for (int digits = 0; digits <= 6; digits++) {
    char fmt[8];
    char text[G_ASCII_DTOSTR_BUF_SIZE];
    double shown;

    /* The C locale's decimal point, as the sizes next to it (and as g_ascii_strtod reads) */
    g_snprintf(fmt, sizeof(fmt), "%%.%df", digits);
    g_ascii_formatd(text, sizeof(text), fmt, percent);
    shown = g_ascii_strtod(text, NULL);
    if (shown > 0.0 && shown < 100.0 && (digits == 6 || ABS(shown - percent) / percent < 0.005))
      return g_strdup_printf("%s %%", text);
  }
  {
    char text[G_ASCII_DTOSTR_BUF_SIZE];
    return g_strdup_printf("%s %%", g_ascii_formatd(text, sizeof(text), "%g", percent));
  }
}

void
qp_cli_json_print(JsonNode *node)
{
  g_autoptr(JsonGenerator) generator = json_generator_new();
  g_autofree char *text = NULL;

  json_generator_set_pretty(generator, TRUE);
  json_generator_set_indent(generator, 2);
  json_generator_set_root(generator, node);
  text = json_generator_to_data(generator, NULL);
  printf("%s\n", text);
}

void
qp_cli_json_add_string_or_null(JsonBuilder *builder, const char *member, const char *value)
{
  json_builder_set_member_name(builder, member);
  if (value != NULL) {
    /* names from image headers are bytes, not UTF-8: keep the JSON valid */
    g_autofree char *valid = g_utf8_make_valid(value, -1);
    json_builder_add_string_value(builder, valid);
  } else {
    json_builder_add_null_value(builder);
  }
}

void
qp_cli_json_add_boolean(JsonBuilder *builder, const char *member, gboolean value)
{
  json_builder_set_member_name(builder, member);
  json_builder_add_boolean_value(builder, value);
}

void
qp_cli_json_add_uint(JsonBuilder *builder, const char *member, guint64 value)
{
  json_builder_set_member_name(builder, member);
  /* JSON numbers here are gint64; qcow2 sizes are bounded far below 2^63 by the header
   * checks, and a value that is not is clamped rather than printed negative. */
  json_builder_add_int_value(builder, value > G_MAXINT64 ? G_MAXINT64 : (gint64)value);
}

gboolean
qp_cli_parse_percent(const char *option, const char *str, guint *out, GError **error)
{
  guint64 value = 0;
  gsize len = strlen(str);

  /* Three digits at most: anything longer is out of range anyway, and the check keeps
   * the accumulation below from overflowing. */
  if (len == 0 || len > 3 || strspn(str, "0123456789") != len) {
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                _("%s: “%s” is not a whole number from 1 to 100"), option, str);
    return FALSE;
  }
  for (gsize i = 0; i < len; i++)
    value = value * 10 + (guint64)(str[i] - '0');
  if (value < 1 || value > 100) {
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                _("%s: %s is out of range (1 to 100)"), option, str);
    return FALSE;
  }
  *out = (guint)value;
  return TRUE;
}

gboolean
qp_cli_parse_size(const char *option, const char *str, guint64 *out, GError **error)
{
  g_autoptr(GError) error_local = NULL;

  if (!qp_size_parse(str, out, &error_local)) {
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "%s: %s", option,
                error_local->message);
    return FALSE;
  }
  return TRUE;
}

void
qp_cli_usage_error(const char *command, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start(args, format);
  message = g_strdup_vprintf(format, args);
  va_end(args);
  g_printerr("qcow2-policyctl %s: %s\n", command, message);
  g_printerr(_("Run “qcow2-policyctl %s --help” for its options.\n"), command);
}

gboolean
qp_cli_parse_options(GOptionContext *context, int *argc, char ***argv)
{
  g_autoptr(GError) error = NULL;

  if (!g_option_context_parse(context, argc, argv, &error)) {
    qp_cli_usage_error((*argv)[0], "%s", error->message);
    return FALSE;
  }
  return TRUE;
}

struct _QpCliProgress {
  gboolean active;
  gboolean shown;
};

QpCliProgress *
qp_cli_progress_new(void)
{
  QpCliProgress *progress = g_new0(QpCliProgress, 1);

  progress->active = isatty(STDERR_FILENO) == 1;
  return progress;
}

void
qp_cli_progress_free(QpCliProgress *progress)
{
  if (progress == NULL)
    return;
  qp_cli_progress_clear(progress);
  g_free(progress);
}

gboolean
qp_cli_progress_active(QpCliProgress *progress)
{
  return progress->active;
}

void
qp_cli_progress_update(QpCliProgress *progress, const char *format, ...)
{
  va_list args;
  g_autofree char *text = NULL;

  if (!progress->active)
    return;
  va_start(args, format);
  text = g_strdup_vprintf(format, args);
  va_end(args);
  /* \r and erase-to-end-of-line: one line that is rewritten, never scrolls. */
  fprintf(stderr, "\r\033[K%s", text);
  fflush(stderr);
  progress->shown = TRUE;
}

void
qp_cli_progress_clear(QpCliProgress *progress)
{
  if (!progress->active || !progress->shown)
    return;
  fprintf(stderr, "\r\033[K");
  fflush(stderr);
  progress->shown = FALSE;
}
