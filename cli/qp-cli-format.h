/* qcow2-policyctl: output helpers shared by the commands.
 *
 * Tables and key-value blocks for people, JSON (json-glib) for programs, sizes in
 * human units with the exact byte count, progress on a terminal, and the strict
 * parsers of the options every command shares.
 */
#pragma once

#include <json-glib/json-glib.h>
#include <stdio.h>

G_BEGIN_DECLS

/* A table of text cells, columns padded to their widest cell (counted in characters,
 * not bytes, so translated headings line up). */
typedef struct _QpCliTable QpCliTable;

QpCliTable *
qp_cli_table_new(guint n_columns);
void
qp_cli_table_free(QpCliTable *table);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpCliTable, qp_cli_table_free)

/* Spaces printed before every line (a key-value block under a heading). */
void
qp_cli_table_set_indent(QpCliTable *table, guint indent);
/* Right-align @column (numbers). */
void
qp_cli_table_set_align_right(QpCliTable *table, guint column, gboolean right);
/* Optional heading row, underlined; exactly n_columns strings. */
void
qp_cli_table_set_header(QpCliTable *table, ...) G_GNUC_NULL_TERMINATED;
/* Exactly n_columns strings, copied. */
void
qp_cli_table_add_row(QpCliTable *table, ...) G_GNUC_NULL_TERMINATED;
/* A two-column "Key:  value" row; @value is taken over (freed by the table). */
void
qp_cli_table_add_field(QpCliTable *table, const char *key, char *value);
void
qp_cli_table_print(QpCliTable *table, FILE *stream);

/* "128 MiB (134217728 bytes)"; "0 B" for 0. */
char *
qp_cli_format_size_bytes(guint64 bytes);
/* A share 0..1 as "25 %", "99.98 %": never rounds a share below 1 up to 100 %. */
char *
qp_cli_format_share(double share);

/* Print @node as indented JSON and a newline on stdout. */
void
qp_cli_json_print(JsonNode *node);
/* Add "@member": @value to the object being built, null when @value is NULL. */
void
qp_cli_json_add_string_or_null(JsonBuilder *builder, const char *member, const char *value);
void
qp_cli_json_add_boolean(JsonBuilder *builder, const char *member, gboolean value);
void
qp_cli_json_add_uint(JsonBuilder *builder, const char *member, guint64 value);

/* Strict option values: a percent is 1..100 written as plain decimal digits
 * ("50%", "1e2", "+5", "050x" are refused); a size goes through qp_size_parse.
 * Errors name @option and quote the value. */
gboolean
qp_cli_parse_percent(const char *option, const char *str, guint *out, GError **error);
gboolean
qp_cli_parse_size(const char *option, const char *str, guint64 *out, GError **error);

/* Parse @argv with @context. On an unknown option or a bad value prints the message and
 * a hint to use --help on stderr and returns FALSE: the caller exits with
 * QP_CLI_EXIT_USAGE. */
gboolean
qp_cli_parse_options(GOptionContext *context, int *argc, char ***argv);
/* Print "qcow2-policyctl COMMAND: MESSAGE" and the --help hint for a usage error. */
void
qp_cli_usage_error(const char *command, const char *format, ...) G_GNUC_PRINTF(2, 3);

/* Progress on stderr, only when stderr is a terminal; one line, rewritten in place. */
typedef struct _QpCliProgress QpCliProgress;

QpCliProgress *
qp_cli_progress_new(void);
void
qp_cli_progress_free(QpCliProgress *progress);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpCliProgress, qp_cli_progress_free)
gboolean
qp_cli_progress_active(QpCliProgress *progress);
void
qp_cli_progress_update(QpCliProgress *progress, const char *format, ...) G_GNUC_PRINTF(2, 3);
/* Erase the line, e.g. before printing a message or the result. */
void
qp_cli_progress_clear(QpCliProgress *progress);

G_END_DECLS
