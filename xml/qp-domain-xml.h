/* libvirt domain XML: safe parsing, the disks and their chains, and the rewrite of
 * what the policy owns. No libvirt calls here: the daemon and the CLI pass text in. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define QP_XML_ERROR (qp_xml_error_quark())
GQuark
qp_xml_error_quark(void);

typedef enum {
  QP_XML_ERROR_PARSE,          /* malformed document (message says line and column) */
  QP_XML_ERROR_UNSAFE,         /* DTD, entity declarations, XInclude: refused */
  QP_XML_ERROR_LIMIT,          /* document too large or too deeply nested */
  QP_XML_ERROR_NOT_DOMAIN,     /* root element is not <domain> */
  QP_XML_ERROR_POLICY,         /* invalid <qc:l2cache> element (names attribute and value) */
  QP_XML_ERROR_CHAIN_MISMATCH, /* explicit <backingStore> chain disagrees with the images */
} QpXmlError;

/* Bounds on untrusted documents. libvirt's own domain XML for a large guest is well below
 * 1 MiB; 16 MiB leaves room for thousands of devices. Depth: libvirt nests ~10 levels plus
 * one per backing layer (max 200). */
#define QP_XML_MAX_DOCUMENT_SIZE (16 * 1024 * 1024)
#define QP_XML_MAX_DEPTH         256

typedef struct _QpDomainXml QpDomainXml; /* a parsed domain document (opaque) */

QpDomainXml *
qp_domain_xml_parse(const char *text, gssize len, GError **error);
void
qp_domain_xml_free(QpDomainXml *doc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpDomainXml, qp_domain_xml_free)

const char *
qp_domain_xml_get_name(const QpDomainXml *doc);
const char *
qp_domain_xml_get_uuid(const QpDomainXml *doc);
/* Serialize; apart from what qp_plan_apply changed, the result is the input. */
char *
qp_domain_xml_to_string(const QpDomainXml *doc);

/* One layer of a disk as the XML describes it: the disk itself (depth 0) or one
 * <backingStore> below it. */
typedef struct {
  guint depth;
  char *source_type; /* file, block, volume, network, dir, nvme, vhostuser, NULL */
  char *path;        /* source file or dev; NULL for network and others */
  char *format;      /* <driver type> for depth 0, <format type> below; NULL if absent */
  gboolean has_metadata_cache;
  guint64 metadata_cache_max_size; /* bytes; 0 when has_metadata_cache is FALSE */
} QpDiskLayer;

typedef struct {
  char *dev;                 /* <target dev> */
  char *device;              /* disk, cdrom, floppy, lun */
  GPtrArray *layers;         /* QpDiskLayer: [0] the disk, then the explicit chain */
  gboolean chain_explicit;   /* a <backingStore> element is present */
  gboolean chain_terminated; /* the explicit chain ends with an empty <backingStore/> */
} QpDomainDisk;

void
qp_domain_disk_free(QpDomainDisk *disk);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpDomainDisk, qp_domain_disk_free)

/* The disks of the domain in document order (GPtrArray of QpDomainDisk). */
GPtrArray *
qp_domain_xml_get_disks(const QpDomainXml *doc, GError **error);

/* The <disk> element at @disk_index (document order, as QpPlanItem.disk_index counts),
 * serialized alone from the current tree: what virDomainUpdateDeviceFlags takes.
 * NULL when there is no such disk. */
char *
qp_domain_xml_disk_to_string(const QpDomainXml *doc, guint disk_index);

/* @text made fit for one line of a message: valid UTF-8, control characters escaped
 * ("\n", "\x01"), and cut after @max_chars characters with "…" (-1: no cut). A value
 * from the document can then never split one problem into two lines. */
char *
qp_xml_display(const char *text, gssize max_chars);

G_END_DECLS
