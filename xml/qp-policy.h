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
  guint percent;      /* 1..100 */
  guint64 max;        /* 0: no cap */
  QpChainMode chain;
  GPtrArray *disks;   /* QpPolicyDisk */
} QpPolicy;

QpPolicy *qp_policy_new(guint percent, guint64 max, QpChainMode chain);
void qp_policy_free(QpPolicy *policy);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpPolicy, qp_policy_free)

/* Parse the element alone, as virDomainGetMetadata(VIR_DOMAIN_METADATA_ELEMENT) returns
 * it. Every invalid value is a QP_XML_ERROR_POLICY naming the attribute and the value. */
QpPolicy *qp_policy_parse(const char *element_xml, GError **error);

/* The policy in a domain document: NULL with no error when the domain has none. */
QpPolicy *qp_policy_from_domain(const QpDomainXml *doc, GError **error);

/* The element text to pass to virDomainSetMetadata (without the xmlns: the key and URI
 * are given to libvirt separately), e.g. <l2cache percent="50" chain="all"/>. */
char *qp_policy_to_element(const QpPolicy *policy);

/* Effective settings for one disk. Returns FALSE when the disk is skipped. */
gboolean qp_policy_for_disk(const QpPolicy *policy, const char *dev, guint *percent,
                            guint64 *max, QpChainMode *chain);

const char *qp_chain_mode_to_string(QpChainMode mode);

G_END_DECLS
