/* qcow2-policyctl plan / apply-xml: the policy of a domain XML file, with no daemon.
 *
 * --percent/--max/--chain give a default policy for a document that has none; a
 * document's own <qc:l2cache> always wins. The default policy is not written into the
 * document: apply-xml then only sets the cache sizes. A document with no policy and no
 * default is printed unchanged (apply-xml) or reported as unmanaged (plan).
 *
 * Exit status: 0; 1 when the document cannot be read or parsed, its policy is invalid or
 * a chain="all" chain disagrees with the images (then nothing on stdout), or an image
 * could not be read (then the output is still printed, that disk left as it was); 2 for
 * usage errors. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <glib/gi18n.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "qp-cli.h"
#include "qp-plan.h"
#include "qp-size.h"

typedef struct {
  gboolean json;
  char *percent;
  char *max;
  char *chain;
  char **files;
} QpXmlOptions;

static void
options_clear(QpXmlOptions *o)
{
  g_free(o->percent);
  g_free(o->max);
  g_free(o->chain);
  g_strfreev(o->files);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(QpXmlOptions, options_clear)

/* Print every line of @error's message as its own failure. */
static void
print_problems(const char *context, const GError *error)
{
  g_auto(GStrv) lines = g_strsplit(error->message, "\n", -1);

  for (guint i = 0; lines[i] != NULL; i++)
    g_printerr("qcow2-policyctl: %s: %s\n", context, lines[i]);
}

/* Parse the command line; returns -1 to go on, else the exit status. */
static int
parse_options(int argc, char **argv, gboolean with_json, const char *summary, QpXmlOptions *o,
              QpPolicy **default_policy)
{
  GOptionEntry entries[] = {
    { "percent", 0, 0, G_OPTION_ARG_STRING, &o->percent,
      N_("Default policy for a document without one: percent of L2FULL (1-100)"), "N" },
    { "max", 0, 0, G_OPTION_ARG_STRING, &o->max, N_("Cap of the default policy"), "SIZE" },
    { "chain", 0, 0, G_OPTION_ARG_STRING, &o->chain,
      N_("Chain mode of the default policy: top or all"), "MODE" },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &o->files, NULL, NULL },
    { "json", 0, 0, G_OPTION_ARG_NONE, &o->json, N_("Print JSON"), NULL },
    { NULL },
  };
  g_autoptr(GOptionContext) context = g_option_context_new(N_("FILE|-"));
  g_autoptr(GError) error = NULL;
  guint percent = 0;
  guint64 max = 0;
  QpChainMode chain = QP_CHAIN_TOP;

  if (!with_json)
    entries[4] = (GOptionEntry){ NULL };
  g_option_context_set_translation_domain(context, GETTEXT_PACKAGE);
  g_option_context_set_summary(context, _(summary));
  g_option_context_add_main_entries(context, entries, GETTEXT_PACKAGE);
  if (!g_option_context_parse(context, &argc, &argv, &error)) {
    g_printerr("qcow2-policyctl %s: %s\n", argv[0], error->message);
    return QP_CLI_EXIT_USAGE;
  }
  if (o->files == NULL || o->files[0] == NULL || o->files[1] != NULL) {
    g_printerr(_("qcow2-policyctl %s: expected exactly one FILE (or - for stdin)\n"), argv[0]);
    return QP_CLI_EXIT_USAGE;
  }
  if (o->percent == NULL && (o->max != NULL || o->chain != NULL)) {
    g_printerr(_("qcow2-policyctl %s: --max and --chain need --percent\n"), argv[0]);
    return QP_CLI_EXIT_USAGE;
  }
  if (o->percent == NULL)
    return -1;
  if (!qp_policy_parse_percent(o->percent, &percent, &error)
      || (o->max != NULL && !qp_policy_parse_max(o->max, &max, &error))
      || (o->chain != NULL && !qp_policy_parse_chain(o->chain, &chain, &error))) {
    g_printerr(_("qcow2-policyctl %s: invalid default policy: %s\n"), argv[0], error->message);
    return QP_CLI_EXIT_USAGE;
  }
  *default_policy = qp_policy_new(percent, max, chain);
  return -1;
}

/* Read all of @fd, refusing more than the XML layer accepts. */
static GBytes *
read_fd_bounded(int fd, GError **error)
{
  g_autoptr(GByteArray) buf = g_byte_array_new();
  guint8 chunk[65536];

  for (;;) {
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0) {
      int saved = errno;
      if (saved == EINTR)
        continue;
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved), "%s", g_strerror(saved));
      return NULL;
    }
    if (n == 0)
      break;
    if (buf->len + (gsize)n > QP_XML_MAX_DOCUMENT_SIZE) {
      g_set_error(error, QP_XML_ERROR, QP_XML_ERROR_LIMIT,
                  _("document exceeds the limit of %d bytes"), QP_XML_MAX_DOCUMENT_SIZE);
      return NULL;
    }
    g_byte_array_append(buf, chunk, (guint)n);
  }
  return g_byte_array_free_to_bytes(g_steal_pointer(&buf));
}

static GBytes *
read_input(const char *file, GError **error)
{
  GBytes *bytes;
  int fd;

  if (g_str_equal(file, "-"))
    return read_fd_bounded(STDIN_FILENO, error);
  fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int saved = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved), "%s", g_strerror(saved));
    return NULL;
  }
  bytes = read_fd_bounded(fd, error);
  close(fd);
  return bytes;
}

/* Read, parse and plan; on failure prints the problems and returns NULL. */
static QpPlan *
load_plan(const char *file, const QpPolicy *default_policy, GBytes **text_out,
          QpDomainXml **doc_out)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) text = read_input(file, &error);
  g_autoptr(QpDomainXml) doc = NULL;
  QpPlan *plan;
  gsize len = 0;
  const char *data;

  if (text == NULL) {
    print_problems(file, error);
    return NULL;
  }
  data = g_bytes_get_data(text, &len);
  doc = qp_domain_xml_parse(data != NULL ? data : "", (gssize)len, &error);
  if (doc == NULL) {
    print_problems(file, error);
    return NULL;
  }
  plan = qp_plan_build(doc, default_policy, &error);
  if (plan == NULL) {
    print_problems(file, error);
    return NULL;
  }
  if (text_out != NULL)
    *text_out = g_steal_pointer(&text);
  if (doc_out != NULL)
    *doc_out = g_steal_pointer(&doc);
  return plan;
}

/* One message per image that could not be read (returns how many), and a warning per
 * cap raised to QEMU's minimum. */
static guint
report_failures(const char *file, const QpPlan *plan)
{
  guint failures = 0;

  for (guint i = 0; i < plan->items->len; i++) {
    const QpPlanItem *item = g_ptr_array_index(plan->items, i);
    if (item->raised_to_minimum) {
      g_autofree char *dev = qp_xml_display(item->dev, 64);
      g_printerr(_("qcow2-policyctl: warning: %s: disk “%s”, layer %u: the cap is below "
                   "QEMU's minimum cache size; raised to %" PRIu64 " bytes\n"),
                 file, dev, item->depth, (uint64_t)item->max_size);
    }
    if (!item->failed)
      continue;
    g_printerr(_("qcow2-policyctl: %s: disk “%s”, layer %u: %s\n"), file, item->dev, item->depth,
               item->reason);
    failures++;
  }
  return failures;
}

static const char *
action_name(QpPlanAction action)
{
  switch (action) {
  case QP_PLAN_WRITE:
    return "write";
  case QP_PLAN_UNCHANGED:
    return "unchanged";
  default:
    return "skip";
  }
}

static void
add_split(JsonBuilder *b, const char *name, const QpCacheSplit *split, gboolean with_total)
{
  json_builder_set_member_name(b, name);
  json_builder_begin_object(b);
  if (with_total) {
    json_builder_set_member_name(b, "cache-size");
    json_builder_add_int_value(b, (gint64)split->cache_size);
  }
  json_builder_set_member_name(b, "l2-cache-size");
  json_builder_add_int_value(b, (gint64)split->l2_cache_size);
  json_builder_set_member_name(b, "refcount-cache-size");
  json_builder_add_int_value(b, (gint64)split->refcount_cache_size);
  json_builder_set_member_name(b, "l2-coverage");
  json_builder_add_double_value(b, split->l2_coverage);
  json_builder_end_object(b);
}

static void
add_string(JsonBuilder *b, const char *name, const char *value)
{
  json_builder_set_member_name(b, name);
  if (value != NULL)
    json_builder_add_string_value(b, value);
  else
    json_builder_add_null_value(b);
}

static void
add_int(JsonBuilder *b, const char *name, guint64 value)
{
  json_builder_set_member_name(b, name);
  json_builder_add_int_value(b, (gint64)value);
}

static void
add_bool(JsonBuilder *b, const char *name, gboolean value)
{
  json_builder_set_member_name(b, name);
  json_builder_add_boolean_value(b, value);
}

static char *
plan_to_json(const QpPlan *plan)
{
  g_autoptr(JsonBuilder) b = json_builder_new();
  g_autoptr(JsonGenerator) gen = json_generator_new();
  g_autoptr(JsonNode) root = NULL;

  json_builder_begin_object(b);
  add_string(b, "name", plan->name);
  add_string(b, "uuid", plan->uuid);
  json_builder_set_member_name(b, "policy");
  if (plan->policy == NULL) {
    json_builder_add_null_value(b);
  } else {
    json_builder_begin_object(b);
    add_int(b, "percent", plan->policy->percent);
    add_int(b, "max", plan->policy->max);
    add_string(b, "chain", qp_chain_mode_to_string(plan->policy->chain));
    json_builder_set_member_name(b, "disks");
    json_builder_begin_array(b);
    for (guint i = 0; i < plan->policy->disks->len; i++) {
      const QpPolicyDisk *d = g_ptr_array_index(plan->policy->disks, i);
      json_builder_begin_object(b);
      add_string(b, "dev", d->dev);
      add_bool(b, "skip", d->skip);
      if (d->percent != 0)
        add_int(b, "percent", d->percent);
      if (d->max != 0)
        add_int(b, "max", d->max);
      if (d->has_chain)
        add_string(b, "chain", qp_chain_mode_to_string(d->chain));
      json_builder_end_object(b);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
  }
  add_bool(b, "changes", plan->changes);
  json_builder_set_member_name(b, "items");
  json_builder_begin_array(b);
  for (guint i = 0; i < plan->items->len; i++) {
    const QpPlanItem *item = g_ptr_array_index(plan->items, i);

    json_builder_begin_object(b);
    add_string(b, "dev", item->dev);
    add_int(b, "depth", item->depth);
    add_string(b, "path", item->path);
    add_string(b, "format", item->format);
    add_string(b, "source-type", item->source_type);
    add_string(b, "action", action_name(item->action));
    add_string(b, "reason", item->reason);
    add_bool(b, "failed", item->failed);
    add_bool(b, "chain-added", item->chain_added);
    if (item->header != NULL) {
      add_int(b, "virtual-size", item->header->virtual_size);
      add_int(b, "cluster-size", item->header->cluster_size);
      add_bool(b, "extended-l2", item->header->extended_l2);
      add_int(b, "l2-full-size", item->l2_full);
      add_split(b, "qemu-default", &item->qemu_default, FALSE);
      add_int(b, "percent", item->percent);
      add_int(b, "current-max-size", item->current_max_size);
      add_int(b, "max-size", item->max_size);
      add_bool(b, "raised-to-minimum", item->raised_to_minimum);
      add_split(b, "policy", &item->policy, TRUE);
    }
    json_builder_end_object(b);
  }
  json_builder_end_array(b);
  json_builder_end_object(b);

  root = json_builder_get_root(b);
  json_generator_set_root(gen, root);
  json_generator_set_pretty(gen, TRUE);
  return json_generator_to_data(gen, NULL);
}

static char *
coverage_text(double c)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  g_ascii_formatd(buf, sizeof(buf), "%.1f", c * 100.0);
  return g_strdup_printf("%s%%", buf);
}

static void
print_table(const QpPlan *plan)
{
  enum { NCOLS = 10 };
  const char *head[NCOLS] = {
    _("DEV"),          _("LAYER"),   _("PATH"), _("FORMAT"),   _("L2FULL"),
    _("QEMU-DEFAULT"), _("CURRENT"), _("NEW"),  _("COVERAGE"), _("ACTION"),
  };
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
  gsize width[NCOLS] = { 0 };

  printf(_("Domain: %s (%s)\n"), plan->name != NULL ? plan->name : "?",
         plan->uuid != NULL ? plan->uuid : "?");
  if (plan->policy == NULL) {
    printf(_("Policy: none (the domain is not managed)\n"));
    return;
  }
  {
    g_autofree char *max
        = plan->policy->max != 0 ? qp_size_format(plan->policy->max) : g_strdup(_("none"));
    printf(_("Policy: percent=%u max=%s chain=%s\n\n"), plan->policy->percent, max,
           qp_chain_mode_to_string(plan->policy->chain));
  }
  g_ptr_array_add(rows, g_strdupv((char **)head));
  for (guint i = 0; i < plan->items->len; i++) {
    const QpPlanItem *item = g_ptr_array_index(plan->items, i);
    char **row = g_new0(char *, NCOLS + 1);

    row[0] = g_strdup(item->dev != NULL ? item->dev : "-");
    row[1] = g_strdup_printf("%u", item->depth);
    row[2] = g_strdup(item->path != NULL ? item->path : "-");
    row[3] = g_strdup(item->format != NULL ? item->format : "-");
    if (item->header != NULL) {
      g_autofree char *def = qp_size_format(item->qemu_default.l2_cache_size);
      g_autofree char *cov_def = coverage_text(item->qemu_default.l2_coverage);
      g_autofree char *cov_new = coverage_text(item->policy.l2_coverage);
      row[4] = qp_size_format(item->l2_full);
      row[5] = g_strdup_printf("%s (%s)", def, cov_def);
      row[6] = item->current_max_size != 0
                   ? g_strdup_printf("%" G_GUINT64_FORMAT, item->current_max_size)
                   : g_strdup("-");
      row[7] = g_strdup_printf("%" G_GUINT64_FORMAT, item->max_size);
      row[8] = g_strdup(cov_new);
    } else {
      for (guint c = 4; c <= 8; c++)
        row[c] = g_strdup("-");
    }
    if (item->action == QP_PLAN_SKIP)
      row[9] = g_strdup_printf(_("skip: %s"), item->reason != NULL ? item->reason : "");
    else if (item->raised_to_minimum)
      row[9] = g_strdup_printf(_("%s (max raised to QEMU's minimum)"), action_name(item->action));
    else if (item->chain_added)
      row[9] = g_strdup_printf(_("%s (adds <backingStore>)"), action_name(item->action));
    else
      row[9] = g_strdup(action_name(item->action));
    g_ptr_array_add(rows, row);
  }
  for (guint r = 0; r < rows->len; r++) {
    char **row = g_ptr_array_index(rows, r);
    for (guint c = 0; c < NCOLS; c++)
      width[c] = MAX(width[c], (gsize)g_utf8_strlen(row[c], -1));
  }
  for (guint r = 0; r < rows->len; r++) {
    char **row = g_ptr_array_index(rows, r);
    for (guint c = 0; c < NCOLS; c++) {
      gsize pad = width[c] - (gsize)g_utf8_strlen(row[c], -1);
      if (c + 1 == NCOLS)
        printf("%s\n", row[c]);
      else
        printf("%s%*s  ", row[c], (int)pad, "");
    }
  }
}

int
qp_cli_plan(int argc, char **argv)
{
  g_auto(QpXmlOptions) o = { 0 };
  g_autoptr(QpPolicy) default_policy = NULL;
  g_autoptr(QpPlan) plan = NULL;
  int rc = parse_options(argc, argv, TRUE,
                         N_("Show what the policy in a domain XML file would write."), &o,
                         &default_policy);

  if (rc >= 0)
    return rc;
  plan = load_plan(o.files[0], default_policy, NULL, NULL);
  if (plan == NULL)
    return QP_CLI_EXIT_FAILURE;
  if (o.json) {
    g_autofree char *json = plan_to_json(plan);
    printf("%s\n", json);
  } else {
    print_table(plan);
  }
  return report_failures(o.files[0], plan) > 0 ? QP_CLI_EXIT_FAILURE : QP_CLI_EXIT_OK;
}

int
qp_cli_apply_xml(int argc, char **argv)
{
  g_auto(QpXmlOptions) o = { 0 };
  g_autoptr(QpPolicy) default_policy = NULL;
  g_autoptr(QpPlan) plan = NULL;
  g_autoptr(GBytes) text = NULL;
  g_autoptr(QpDomainXml) doc = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  int rc = parse_options(argc, argv, FALSE,
                         N_("Print a domain XML file with the policy applied: only the "
                            "<metadata_cache> sizes the policy owns (and, with chain=\"all\", "
                            "the explicit backing chain) change."),
                         &o, &default_policy);

  if (rc >= 0)
    return rc;
  plan = load_plan(o.files[0], default_policy, &text, &doc);
  if (plan == NULL)
    return QP_CLI_EXIT_FAILURE;
  if (!plan->changes) {
    /* nothing to change: the input exactly as it came */
    gsize len = 0;
    const char *data = g_bytes_get_data(text, &len);
    if (len > 0 && fwrite(data, 1, len, stdout) != len)
      return QP_CLI_EXIT_FAILURE;
  } else {
    if (!qp_plan_apply(doc, plan, &error)) {
      print_problems(o.files[0], error);
      return QP_CLI_EXIT_FAILURE;
    }
    out = qp_domain_xml_to_string(doc);
    if (out == NULL) {
      g_printerr(_("qcow2-policyctl: %s: cannot serialize the document\n"), o.files[0]);
      return QP_CLI_EXIT_FAILURE;
    }
    fputs(out, stdout);
  }
  if (fflush(stdout) != 0) {
    g_printerr(_("qcow2-policyctl: cannot write the output: %s\n"), g_strerror(errno));
    return QP_CLI_EXIT_FAILURE;
  }
  return report_failures(o.files[0], plan) > 0 ? QP_CLI_EXIT_FAILURE : QP_CLI_EXIT_OK;
}
