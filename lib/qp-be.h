/* Bounds-checked big-endian reads: the one way lib/ reads fields from untrusted buffers.
 *
 * The _safe readers check that [offset, offset + width) lies inside the buffer without
 * overflowing; the plain readers are for ranges the caller already checked in one step
 * (a whole table), where a per-entry check would dominate the scan's cost. */
#pragma once

#include <glib.h>

static inline gboolean
qp_be_in_bounds(gsize bufsz, guint64 offset, guint64 width)
{
  return offset <= bufsz && width <= bufsz - offset;
}

static inline guint16
qp_be_u16(const guint8 *p)
{
  return (guint16)(((guint16)p[0] << 8) | p[1]);
}

static inline guint32
qp_be_u32(const guint8 *p)
{
  return ((guint32)p[0] << 24) | ((guint32)p[1] << 16) | ((guint32)p[2] << 8) | p[3];
}

static inline guint64
qp_be_u64(const guint8 *p)
{
  return ((guint64)qp_be_u32(p) << 32) | qp_be_u32(p + 4);
}

static inline gboolean
qp_be_read_u8_safe(const guint8 *buf, gsize bufsz, guint64 offset, guint8 *value)
{
  if (!qp_be_in_bounds(bufsz, offset, 1))
    return FALSE;
  *value = buf[offset];
  return TRUE;
}

static inline gboolean
qp_be_read_u32_safe(const guint8 *buf, gsize bufsz, guint64 offset, guint32 *value)
{
  if (!qp_be_in_bounds(bufsz, offset, 4))
    return FALSE;
  *value = qp_be_u32(buf + offset);
  return TRUE;
}

static inline gboolean
qp_be_read_u64_safe(const guint8 *buf, gsize bufsz, guint64 offset, guint64 *value)
{
  if (!qp_be_in_bounds(bufsz, offset, 8))
    return FALSE;
  *value = qp_be_u64(buf + offset);
  return TRUE;
}
