/* The layer dictionaries (a{sv}) of Domain.Disks and Manager.AnalyzeImage; the keys are
 * documented in schemas/org.qcow2policyd.Policy1.xml. Thread-safe: pure functions. */
#pragma once

#include <glib.h>

#include "qp-plan.h"
#include "qp-qcow2-file.h"

G_BEGIN_DECLS

/* One plan item (a disk layer of a domain). */
GVariant *
qp_figures_from_plan_item(const QpPlanItem *item, gboolean written);

/* One image of a resolved chain; @percent 0 for no policy figures. */
GVariant *
qp_figures_from_layer(const QpQcow2Layer *layer, guint depth, guint percent, guint64 max);

const char *
qp_figures_action_name(QpPlanAction action);

G_END_DECLS
