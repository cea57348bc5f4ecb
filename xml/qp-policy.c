/* The <qc:l2cache> metadata element (spec section 3).
 *
 * Strict by design: a value the daemon does not understand is never guessed at. Every
 * problem found is reported, one per line of the error message, each naming the
 * attribute and the value. Decisions on grey areas: percent is plain decimal with no
 * sign, spaces, leading zeros, fraction, exponent or "%"; max must not be 0 and must not
 * start with a zero; an element without a namespace is accepted by qp_policy_parse only
 * (virDomainSetMetadata stores the namespace separately); whitespace text and comments
 * between the children are fine, any other text is an error. */
#include "config.h"

#include <glib/gi18n.h>
#include <libxml/tree.h>
#include <string.h>

#include "qp-policy.h"
#include "qp-size.h"
#include "qp-xml-private.h"

/* More than this many problems in one element are summarized: the list stays readable
 * and a hostile element cannot make the message grow with the document. */
#define QP_POLICY_MAX_PROBLEMS 20

/* libvirt allows at most a few hundred disks per domain; overrides for many more are
 * not meaningful, and the bound keeps the duplicate check cheap. */
#define QP_POLICY_MAX_DISKS 4096

QpPolicy *
qp_policy_new(guint percent, guint64 max, QpChainMode chain)
{
  QpPolicy *policy = g_new0(QpPolicy, 1);

  policy->percent = percent;
  policy->max = max;
  policy->chain = chain;
  policy->disks = g_ptr_array_new_with_free_func((GDestroyNotify)qp_policy_disk_free);
  return policy;
}

void
qp_policy_disk_free(QpPolicyDisk *disk)
{
  if (disk == NULL)
    return;
  g_free(disk->dev);
  g_free(disk);
}

void
qp_policy_free(QpPolicy *policy)
{
  if (policy == NULL)
    return;
  if (policy->disks != NULL)
    g_ptr_array_unref(policy->disks);
  g_free(policy);
}

QpPolicy *
qp_policy_copy(const QpPolicy *policy)
{
  QpPolicy *copy;

  if (policy == NULL)
    return NULL;
  copy = qp_policy_new(policy->percent, policy->max, policy->chain);
  for (guint i = 0; i < policy->disks->len; i++) {
    const QpPolicyDisk *d = g_ptr_array_index(policy->disks, i);
    QpPolicyDisk *c = g_new0(QpPolicyDisk, 1);

    *c = *d;
    c->dev = g_strdup(d->dev);
    g_ptr_array_add(copy->disks, c);
  }
  return copy;
}

const char *
qp_chain_mode_to_string(QpChainMode mode)
{
  return mode == QP_CHAIN_ALL ? "all" : "top";
}

/* Collects the problems of one element. */
typedef struct {
  GPtrArray *problems; /* char* */
  guint dropped;
} QpProblems;

static void G_GNUC_PRINTF(2, 3) problem(QpProblems *p, const char *fmt, ...)
{
  va_list args;
  g_autofree char *line = NULL;

  if (p->problems->len >= QP_POLICY_MAX_PROBLEMS) {
    p->dropped++;
    return;
  }
  va_start(args, fmt);
  line = g_strdup_vprintf(fmt, args);
  va_end(args);
  /* values quoted by other layers (qp_size_parse) may hold line breaks too */
  g_ptr_array_add(p->problems, qp_xml_display(line, -1));
}

/* Quote a value for a message: shown whole when short, cut when long, so a 10 MB
 * attribute never lands in a log line. */
static char *
quote_value(const char *value)
{
  /* long enough for any legitimate value */
  return qp_xml_display(value, 64);
}

gboolean
qp_policy_parse_percent(const char *value, guint *out, GError **error)
{
  guint64 v;

  /* [1-9][0-9]{0,2}: no sign, space, leading zero, fraction, exponent or "%" */
  if (value == NULL || value[0] < '1' || value[0] > '9' || strlen(value) > 3) {
    g_set_error_literal(error, QP_XML_ERROR, QP_XML_ERROR_POLICY,
                        _("must be an integer from 1 to 100 (plain decimal digits)"));
    return FALSE;
  }
  for (const char *c = value; *c != '\0'; c++) {
    if (!g_ascii_isdigit(*c)) {
      g_set_error_literal(error, QP_XML_ERROR, QP_XML_ERROR_POLICY,
                          _("must be an integer from 1 to 100 (plain decimal digits)"));
      return FALSE;
    }
  }
  v = g_ascii_strtoull(value, NULL, 10);
  if (v < 1 || v > 100) {
    g_set_error_literal(error, QP_XML_ERROR, QP_XML_ERROR_POLICY,
                        _("must be an integer from 1 to 100"));
    return FALSE;
  }
  *out = (guint)v;
  return TRUE;
}

gboolean
qp_policy_parse_max(const char *value, guint64 *out, GError **error)
{
  g_autoptr(GError) size_error = NULL;
  guint64 v = 0;

  /* the RelaxNG pattern: [1-9][0-9]* and a unit */
  if (value == NULL || value[0] < '1' || value[0] > '9') {
    g_set_error_literal(error, QP_XML_ERROR, QP_XML_ERROR_POLICY,
                        _("must be a size greater than 0 with no leading zero, such as "
                          "“256MiB” or “1G”"));
    return FALSE;
  }
  if (!qp_size_parse(value, &v, &size_error)) {
    g_set_error_literal(error, QP_XML_ERROR, QP_XML_ERROR_POLICY, size_error->message);
    return FALSE;
  }
  if (v == 0) {
    g_set_error_literal(error, QP_XML_ERROR, QP_XML_ERROR_POLICY, _("must be greater than 0"));
    return FALSE;
  }
  *out = v;
  return TRUE;
}

gboolean
qp_policy_parse_chain(const char *value, QpChainMode *out, GError **error)
{
  if (g_strcmp0(value, "top") == 0) {
    *out = QP_CHAIN_TOP;
    return TRUE;
  }
  if (g_strcmp0(value, "all") == 0) {
    *out = QP_CHAIN_ALL;
    return TRUE;
  }
  g_set_error_literal(error, QP_XML_ERROR, QP_XML_ERROR_POLICY, _("must be “top” or “all”"));
  return FALSE;
}

/* Record a problem with one attribute that names element, attribute and value. */
static void
bad_attr(QpProblems *p, const char *where, const char *attr, const char *value, const GError *error)
{
  g_autofree char *shown = quote_value(value);

  problem(p, _("%s: attribute “%s”: invalid value “%s”: %s"), where, attr, shown, error->message);
}

#define CHECK_ATTR(p, where, attr, value, parse, out)                                              \
  G_STMT_START                                                                                     \
  {                                                                                                \
    g_autoptr(GError) attr_error_ = NULL;                                                          \
    if (!parse((value), (out), &attr_error_))                                                      \
      bad_attr((p), (where), (attr), (value), attr_error_);                                        \
  }                                                                                                \
  G_STMT_END

static gboolean
same_namespace(xmlNodePtr a, xmlNodePtr b)
{
  if (a->ns == NULL || b->ns == NULL)
    return a->ns == b->ns;
  return xmlStrEqual(a->ns->href, b->ns->href);
}

/* Text children must be whitespace; comments are fine; elements are checked by caller. */
static void
check_text(QpProblems *p, const char *where, xmlNodePtr node)
{
  for (xmlNodePtr n = node->children; n != NULL; n = n->next) {
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
      for (const xmlChar *c = n->content; c != NULL && *c != '\0'; c++) {
        if (!g_ascii_isspace(*c)) {
          problem(p, _("%s: unexpected text"), where);
          return;
        }
      }
    } else if (n->type == XML_ENTITY_REF_NODE) {
      problem(p, _("%s: unexpected entity reference"), where);
      return;
    }
  }
}

/* The value of @node's attribute @a, "" when it has none. */
static char *
attr_value(xmlNodePtr node, xmlAttrPtr a)
{
  char *value = (char *)xmlNodeListGetString(node->doc, a->children, 1);
  return value != NULL ? value : g_strdup("");
}

/* TRUE, the problem noted, when @a is in a namespace: no such attribute is known. */
static gboolean
foreign_attr(QpProblems *p, const char *where, xmlAttrPtr a)
{
  if (a->ns == NULL)
    return FALSE;
  problem(p, _("%s: unknown attribute “%s:%s”"), where,
          a->ns->prefix != NULL ? (const char *)a->ns->prefix : "", (const char *)a->name);
  return TRUE;
}

static void
parse_disk(QpProblems *p, xmlNodePtr node, QpPolicy *policy, GHashTable *seen)
{
  g_autoptr(QpPolicyDisk) disk = g_new0(QpPolicyDisk, 1);
  g_autofree char *where = NULL;
  gboolean have_dev = FALSE;

  for (xmlAttrPtr a = node->properties; a != NULL; a = a->next) {
    g_autofree char *value = attr_value(node, a);
    if (a->ns == NULL && xmlStrEqual(a->name, BAD_CAST "dev")) {
      if (value[0] == '\0') {
        problem(p, _("<disk>: attribute “dev” is empty"));
        continue;
      }
      disk->dev = g_steal_pointer(&value);
      have_dev = TRUE;
    }
  }
  if (!have_dev) {
    problem(p, _("<disk>: the attribute “dev” is required"));
    return;
  }
  {
    g_autofree char *shown = quote_value(disk->dev);
    where = g_strdup_printf("<disk dev=\"%s\">", shown);
  }

  for (xmlAttrPtr a = node->properties; a != NULL; a = a->next) {
    g_autofree char *value = attr_value(node, a);
    const char *name = (const char *)a->name;

    if (foreign_attr(p, where, a)) {
      continue;
    } else if (g_str_equal(name, "dev")) {
      continue;
    } else if (g_str_equal(name, "percent")) {
      CHECK_ATTR(p, where, name, value, qp_policy_parse_percent, &disk->percent);
    } else if (g_str_equal(name, "max")) {
      CHECK_ATTR(p, where, name, value, qp_policy_parse_max, &disk->max);
    } else if (g_str_equal(name, "chain")) {
      g_autoptr(GError) chain_error = NULL;
      if (qp_policy_parse_chain(value, &disk->chain, &chain_error))
        disk->has_chain = TRUE;
      else
        bad_attr(p, where, name, value, chain_error);
    } else if (g_str_equal(name, "skip")) {
      if (g_str_equal(value, "yes")) {
        disk->skip = TRUE;
      } else if (!g_str_equal(value, "no")) {
        g_autofree char *shown = quote_value(value);
        problem(p, _("%s: attribute “%s”: invalid value “%s”: must be “yes” or “no”"), where, name,
                shown);
      }
    } else {
      problem(p, _("%s: unknown attribute “%s”"), where, name);
    }
  }
  for (xmlNodePtr n = node->children; n != NULL; n = n->next) {
    if (n->type == XML_ELEMENT_NODE) {
      problem(p, _("%s: unexpected child element <%s>"), where, (const char *)n->name);
      break;
    }
  }
  check_text(p, where, node);

  if (g_hash_table_contains(seen, disk->dev)) {
    problem(p, _("%s: duplicate element for the same disk"), where);
    return;
  }
  if (policy->disks->len >= QP_POLICY_MAX_DISKS) {
    problem(p, _("more than %d <disk> elements"), QP_POLICY_MAX_DISKS);
    return;
  }
  g_hash_table_add(seen, g_strdup(disk->dev));
  g_ptr_array_add(policy->disks, g_steal_pointer(&disk));
}

static gboolean
problems_to_error(QpProblems *p, GError **error)
{
  g_autoptr(GString) msg = NULL;

  if (p->problems->len == 0)
    return TRUE;
  msg = g_string_new(NULL);
  for (guint i = 0; i < p->problems->len; i++) {
    if (i > 0)
      g_string_append_c(msg, '\n');
    g_string_append(msg, g_ptr_array_index(p->problems, i));
  }
  if (p->dropped > 0) {
    g_string_append_c(msg, '\n');
    g_string_append_printf(msg, _("… and %u more problems"), p->dropped);
  }
  g_set_error_literal(error, QP_XML_ERROR, QP_XML_ERROR_POLICY, msg->str);
  return FALSE;
}

/* The element @node (already known to be an l2cache element). */
static QpPolicy *
policy_from_node(xmlNodePtr node, GError **error)
{
  g_autoptr(QpPolicy) policy = qp_policy_new(0, 0, QP_CHAIN_TOP);
  g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  QpProblems p = { list, 0 };
  const char *where = "<l2cache>";
  gboolean have_percent = FALSE;

  for (xmlAttrPtr a = node->properties; a != NULL; a = a->next) {
    g_autofree char *value = attr_value(node, a);
    const char *name = (const char *)a->name;

    if (foreign_attr(&p, where, a)) {
      continue;
    } else if (g_str_equal(name, "percent")) {
      have_percent = TRUE;
      CHECK_ATTR(&p, where, name, value, qp_policy_parse_percent, &policy->percent);
    } else if (g_str_equal(name, "max")) {
      CHECK_ATTR(&p, where, name, value, qp_policy_parse_max, &policy->max);
    } else if (g_str_equal(name, "chain")) {
      CHECK_ATTR(&p, where, name, value, qp_policy_parse_chain, &policy->chain);
    } else {
      problem(&p, _("%s: unknown attribute “%s”"), where, name);
    }
  }
  if (!have_percent)
    problem(&p, _("%s: the attribute “percent” is required"), where);

  for (xmlNodePtr n = node->children; n != NULL; n = n->next) {
    if (n->type != XML_ELEMENT_NODE)
      continue;
    if (!same_namespace(n, node) || !xmlStrEqual(n->name, BAD_CAST "disk")) {
      problem(&p, _("%s: unknown child element <%s>"), where, (const char *)n->name);
      continue;
    }
    parse_disk(&p, n, policy, seen);
  }
  check_text(&p, where, node);

  if (!problems_to_error(&p, error))
    return NULL;
  return g_steal_pointer(&policy);
}

QpPolicy *
qp_policy_parse(const char *element_xml, GError **error)
{
  g_autoptr(xmlDoc) doc = NULL;
  xmlNodePtr root;

  g_return_val_if_fail(element_xml != NULL, NULL);
  doc = qp_xml_safe_parse(element_xml, -1, NULL, NULL, error);
  if (doc == NULL)
    return NULL;
  root = xmlDocGetRootElement(doc);
  if (!xmlStrEqual(root->name, BAD_CAST QP_POLICY_ELEMENT)
      || (root->ns != NULL && !xmlStrEqual(root->ns->href, BAD_CAST QP_POLICY_NS_URI))) {
    g_set_error(error, QP_XML_ERROR, QP_XML_ERROR_POLICY,
                _("expected the element <l2cache> of namespace %s, found <%s>"), QP_POLICY_NS_URI,
                (const char *)root->name);
    return NULL;
  }
  return policy_from_node(root, error);
}

QpPolicy *
qp_policy_from_domain(const QpDomainXml *doc, GError **error)
{
  xmlNodePtr root = xmlDocGetRootElement(qp_domain_xml_get_doc(doc));
  xmlNodePtr metadata = qp_xml_child(root, "metadata");
  xmlNodePtr found = NULL;
  g_autofree char *name = qp_xml_display(qp_domain_xml_get_name(doc), 256);
  guint count = 0;

  for (xmlNodePtr n = metadata != NULL ? metadata->children : NULL; n != NULL; n = n->next) {
    if (n->type != XML_ELEMENT_NODE || n->ns == NULL
        || !xmlStrEqual(n->ns->href, BAD_CAST QP_POLICY_NS_URI))
      continue;
    if (!xmlStrEqual(n->name, BAD_CAST QP_POLICY_ELEMENT)) {
      g_set_error(error, QP_XML_ERROR, QP_XML_ERROR_POLICY,
                  _("domain “%s”: unknown element <%s> in the namespace %s"), name,
                  (const char *)n->name, QP_POLICY_NS_URI);
      return NULL;
    }
    count++;
    if (found == NULL)
      found = n;
  }
  if (count > 1) {
    g_set_error(error, QP_XML_ERROR, QP_XML_ERROR_POLICY,
                _("domain “%s”: %u <l2cache> elements; exactly one is allowed"), name, count);
    return NULL;
  }
  if (found == NULL)
    return NULL;
  {
    QpPolicy *policy = policy_from_node(found, error);
    if (policy == NULL) {
      /* one "domain …:" prefix per line, so each problem stands alone */
      g_auto(GStrv) lines = g_strsplit((*error)->message, "\n", -1);
      g_autoptr(GString) msg = g_string_new(NULL);
      for (guint i = 0; lines[i] != NULL; i++) {
        if (i > 0)
          g_string_append_c(msg, '\n');
        g_string_append_printf(msg, _("domain “%s”: %s"), name, lines[i]);
      }
      g_free((*error)->message);
      (*error)->message = g_string_free(g_steal_pointer(&msg), FALSE);
    }
    return policy;
  }
}

/* A size the way people write it: the largest binary unit that divides it exactly. */
static char *
format_max(guint64 max)
{
  static const char *const units[] = { "", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  guint i = 0;

  while (i + 1 < G_N_ELEMENTS(units) && max != 0 && max % 1024 == 0) {
    max /= 1024;
    i++;
  }
  return g_strdup_printf("%" G_GUINT64_FORMAT "%s", max, units[i]);
}

/* An attribute as XML reads it back unchanged: besides & < > ", the whitespace that
 * attribute-value normalization would turn into spaces is written as references. */
static void
append_attr(GString *s, const char *name, const char *value)
{
  g_string_append_printf(s, " %s=\"", name);
  for (const char *c = value; *c != '\0'; c++) {
    switch (*c) {
    case '&':
      g_string_append(s, "&amp;");
      break;
    case '<':
      g_string_append(s, "&lt;");
      break;
    case '>':
      g_string_append(s, "&gt;");
      break;
    case '"':
      g_string_append(s, "&quot;");
      break;
    case '\t':
    case '\n':
    case '\r':
      g_string_append_printf(s, "&#%d;", *c);
      break;
    default:
      g_string_append_c(s, *c);
    }
  }
  g_string_append_c(s, '"');
}

char *
qp_policy_to_element(const QpPolicy *policy)
{
  GString *s = g_string_new("<" QP_POLICY_ELEMENT);
  g_autofree char *percent = g_strdup_printf("%u", policy->percent);

  append_attr(s, "percent", percent);
  if (policy->max != 0) {
    g_autofree char *max = format_max(policy->max);
    append_attr(s, "max", max);
  }
  append_attr(s, "chain", qp_chain_mode_to_string(policy->chain));
  if (policy->disks->len == 0) {
    g_string_append(s, "/>");
    return g_string_free(s, FALSE);
  }
  g_string_append(s, ">");
  for (guint i = 0; i < policy->disks->len; i++) {
    const QpPolicyDisk *d = g_ptr_array_index(policy->disks, i);

    g_string_append(s, "<disk");
    append_attr(s, "dev", d->dev);
    if (d->percent != 0) {
      g_autofree char *v = g_strdup_printf("%u", d->percent);
      append_attr(s, "percent", v);
    }
    if (d->max != 0) {
      g_autofree char *v = format_max(d->max);
      append_attr(s, "max", v);
    }
    if (d->has_chain)
      append_attr(s, "chain", qp_chain_mode_to_string(d->chain));
    if (d->skip)
      append_attr(s, "skip", "yes");
    g_string_append(s, "/>");
  }
  g_string_append(s, "</" QP_POLICY_ELEMENT ">");
  return g_string_free(s, FALSE);
}

gboolean
qp_policy_for_disk(const QpPolicy *policy, const char *dev, guint *percent, guint64 *max,
                   QpChainMode *chain)
{
  guint p = policy->percent;
  guint64 m = policy->max;
  QpChainMode c = policy->chain;

  for (guint i = 0; dev != NULL && i < policy->disks->len; i++) {
    const QpPolicyDisk *d = g_ptr_array_index(policy->disks, i);

    if (g_strcmp0(d->dev, dev) != 0)
      continue;
    if (d->skip)
      return FALSE;
    if (d->percent != 0)
      p = d->percent;
    if (d->max != 0)
      m = d->max;
    if (d->has_chain)
      c = d->chain;
    break;
  }
  if (percent != NULL)
    *percent = p;
  if (max != NULL)
    *max = m;
  if (chain != NULL)
    *chain = c;
  return TRUE;
}
