/* The <qc:l2cache> metadata element (spec section 3). */
#pragma once

#include <glib.h>

#include "qp-domain-xml.h"

G_BEGIN_DECLS

#define QP_POLICY_NS_URI    "http://qcow2policyd.org/schemas/l2cache/1.0"
#define QP_POLICY_NS_PREFIX "qc"
#define QP_POLICY_ELEMENT   "l2cache"

typedef enum {
  QP_CHAIN_TOP = 0,
  QP_CHAIN_ALL = 1,
} QpChainMode;

typedef struct {
  char *dev;
  gboolean skip;
  guint percent;      /* 0: inherit from the domain */
  guint64 max;        /* 0: inherit */
  gboolean has_chain; /* FALSE: inherit */
  QpChainMode chain;
} QpPolicyDisk;

typedef struct {
  guint percent; /* 1..100 */
  guint64 max;   /* 0: no cap */
  QpChainMode chain;
  GPtrArray *disks; /* QpPolicyDisk */
} QpPolicy;

QpPolicy *
qp_policy_new(guint percent, guint64 max, QpChainMode chain);
void
qp_policy_free(QpPolicy *policy);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpPolicy, qp_policy_free)
void
qp_policy_disk_free(QpPolicyDisk *disk);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpPolicyDisk, qp_policy_disk_free)
/* A deep copy (NULL for NULL). */
QpPolicy *
qp_policy_copy(const QpPolicy *policy);

/* The attribute value checks the element parser uses, for callers that take the same
 * values elsewhere (CLI options, D-Bus arguments). Errors are QP_XML_ERROR_POLICY with a
 * message saying what is allowed (the caller names the attribute and the value).
 * percent: [1-9][0-9]{0,2} and <= 100. max: qp_size_parse, no leading zero, not 0.
 * chain: "top" or "all". */
gboolean
qp_policy_parse_percent(const char *value, guint *out, GError **error);
gboolean
qp_policy_parse_max(const char *value, guint64 *out, GError **error);
gboolean
qp_policy_parse_chain(const char *value, QpChainMode *out, GError **error);

/* Parse the element alone, as virDomainGetMetadata(VIR_DOMAIN_METADATA_ELEMENT) returns
 * it. Every invalid value is a QP_XML_ERROR_POLICY naming the attribute and the value;
 * when there are several problems, the message has one line per problem. The element
 * may carry the namespace or none (as qp_policy_to_element writes it). Thread-safe. */
QpPolicy *
qp_policy_parse(const char *element_xml, GError **error);

/* The policy in a domain document: NULL with no error when the domain has none. Two
 * elements of the namespace are an error. Each line of an error message starts with
 * "domain “NAME”: ". */
QpPolicy *
qp_policy_from_domain(const QpDomainXml *doc, GError **error);

/* The element text to pass to virDomainSetMetadata (without the xmlns: the key and URI
 * are given to libvirt separately), e.g. <l2cache percent="50" chain="all"/>. */
char *
qp_policy_to_element(const QpPolicy *policy);

/* Effective settings for one disk. Returns FALSE when the disk is skipped. */
gboolean
qp_policy_for_disk(const QpPolicy *policy, const char *dev, guint *percent, guint64 *max,
                   QpChainMode *chain);

const char *
qp_chain_mode_to_string(QpChainMode mode);

G_END_DECLS
