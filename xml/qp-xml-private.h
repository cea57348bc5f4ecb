/* Internals shared by the files of xml/: the safe parser and tree helpers. Not for the
 * daemon or the CLI: they use qp-domain-xml.h, qp-policy.h and qp-plan.h. */
#pragma once

#include <glib.h>
#include <libxml/tree.h>

#include "qp-domain-xml.h"

G_BEGIN_DECLS

/* Parse untrusted @text (@len bytes, -1 for NUL-terminated) with the rules of
 * qp_domain_xml_parse, but accept any root element. *@had_decl (may be NULL) tells
 * whether the text starts with an XML declaration. With @spans, *@spans gets where the
 * elements the rewrite touches are in @text (private to qp-domain-xml.c), or NULL when
 * that could not be established. */
xmlDocPtr
qp_xml_safe_parse(const char *text, gssize len, gboolean *had_decl, GHashTable **spans,
                  GError **error);

/* Marks on nodes (xmlNode._private) that qp_plan_apply leaves for the byte-preserving
 * write: a node it created, or an original element whose content it rewrote. */
extern const char qp_xml_mark_created[];
extern const char qp_xml_mark_rewritten[];

G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlDoc, xmlFreeDoc)

xmlDocPtr
qp_domain_xml_get_doc(const QpDomainXml *doc);

/* The first child element of @parent with local name @name and no namespace (libvirt's
 * own elements have none), or NULL. */
xmlNodePtr
qp_xml_child(xmlNodePtr parent, const char *name);

/* The attribute @name (no namespace) of @node as a newly allocated string, or NULL. */
char *
qp_xml_prop(xmlNodePtr node, const char *name);

/* The <disk> elements under /domain/devices in document order (borrowed nodes). */
GPtrArray *
qp_domain_xml_disk_nodes(const QpDomainXml *doc);

/* The <backingStore> child of @node that describes a layer (not the empty terminator),
 * or NULL; *@terminated (may be NULL) is set when @node has an empty <backingStore/>. */
xmlNodePtr
qp_xml_backing_child(xmlNodePtr node, gboolean *terminated);

/* libvirt's scaled integer (virScaleInteger): digits, and a unit from the unit attribute:
 * b/byte/bytes, k/m/g/t/p/e alone or with "iB" (powers of 1024), or with "B" (powers
 * of 1000). @unit NULL means bytes. */
gboolean
qp_xml_parse_scaled(const char *digits, const char *unit, guint64 *out, GError **error);

G_END_DECLS
