/* Internals shared by the buffer and file scanners. Not for use outside lib/. */
#pragma once

#include "qp-qcow2.h"

/* Validate active L1 entry @l1_index and return its L2 table offset in *@l2_offset
 * (0 when unallocated). @limit is the size of the buffer or file holding the image. */
gboolean
qp_qcow2_check_l1_entry(const QpQcow2Header *header, guint64 entry, guint32 l1_index, guint64 limit,
                        guint64 *l2_offset, GError **error);

/* Count one L2 table of one cluster at @l2 (read from @l2_offset) into @out. Every host
 * offset is checked: aligned to the cluster and starting before @limit (not checked
 * against @limit with an external data file, whose size we do not know). */
gboolean
qp_qcow2_count_l2_table(const QpQcow2Header *header, const guint8 *l2, guint64 l2_offset,
                        guint64 limit, QpQcow2Allocation *out, GError **error);
