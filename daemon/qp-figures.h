/* The layer dictionaries (a{sv}) of Domain.Disks and Manager.AnalyzeImage; the keys are
 * documented in schemas/org.qcow2policyd.Policy1.xml. Thread-safe: pure functions. */
#pragma once

#include <glib.h>

#include "qp-plan.h"
#include "qp-qcow2-file.h"

G_BEGIN_DECLS

/* A domain's Disks between reads. Serialised, its dictionaries cost about 650 bytes per
 * layer for the daemon's lifetime (over a megabyte on a host of 1,000 two-disk domains);
 * this holds the facts they are derived from in one block of 80 bytes per layer
 * plus the strings, and qp_disk_figures_to_variant() derives them again on each read.
 * Immutable once built; NULL is the empty list. */
typedef struct _QpDiskFigures QpDiskFigures;

typedef struct {
  GArray *layers;
  GString *pool;
} QpDiskFiguresBuilder;

void
qp_disk_figures_builder_init(QpDiskFiguresBuilder *builder);
/* One plan item (a disk layer of a domain); @written: this reconcile wrote its value. */
void
qp_disk_figures_builder_add(QpDiskFiguresBuilder *builder, const QpPlanItem *item,
                            gboolean written);
/* Frees what the builder holds and returns the figures. */
QpDiskFigures *
qp_disk_figures_builder_end(QpDiskFiguresBuilder *builder);
/* For a builder not ended. */
void
qp_disk_figures_builder_clear(QpDiskFiguresBuilder *builder);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(QpDiskFiguresBuilder, qp_disk_figures_builder_clear)

QpDiskFigures *
qp_disk_figures_copy(const QpDiskFigures *figures);
void
qp_disk_figures_free(QpDiskFigures *figures);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpDiskFigures, qp_disk_figures_free)
gboolean
qp_disk_figures_equal(const QpDiskFigures *a, const QpDiskFigures *b);
/* aa{sv}, one dictionary per layer; floating. */
GVariant *
qp_disk_figures_to_variant(const QpDiskFigures *figures);

/* One image of a resolved chain; @percent 0 for no policy figures. */
GVariant *
qp_figures_from_layer(const QpQcow2Layer *layer, guint depth, guint percent, guint64 max);

G_END_DECLS
