/* The plan: for each disk and each layer, what the policy writes and why, or why the
 * layer is skipped; and the rewrite of the document that carries it out. */
#pragma once

#include <glib.h>

#include "qp-cache.h"
#include "qp-domain-xml.h"
#include "qp-policy.h"
#include "qp-qcow2.h"

G_BEGIN_DECLS

typedef enum {
  QP_PLAN_WRITE,     /* a new or different max_size is written */
  QP_PLAN_UNCHANGED, /* the document already holds the value */
  QP_PLAN_SKIP,      /* not covered: reason says why */
} QpPlanAction;

typedef struct {
  char *dev;
  guint disk_index; /* position of the disk among /domain/devices/disk (0-based) */
  guint depth;      /* 0 for the disk's top image */
  char *path;       /* NULL for network sources */
  char *format;
  char *source_type; /* file, block, network, volume, ... (NULL if unknown) */
  QpPlanAction action;
  char *reason;         /* for QP_PLAN_SKIP: "not qcow2 (raw)", "network source", ... */
  gboolean failed;      /* QP_PLAN_SKIP because an image could not be read or is invalid
                         * (reason holds the engine's message): a failure to report, not
                         * a disk the policy leaves alone by design */
  gboolean chain_added; /* depth >= 1: qp_plan_apply adds this layer's <backingStore>
                         * (chain="all" and the XML had no explicit chain this deep) */
  /* Figures, valid when header != NULL. */
  QpQcow2Header *header;
  guint64 l2_full;
  QpCacheSplit qemu_default;
  guint percent;
  guint64 current_max_size; /* 0 when none is set */
  guint64 max_size;         /* what the policy writes */
  gboolean raised_to_minimum;
  QpCacheSplit policy; /* QEMU's split of max_size */
} QpPlanItem;

typedef struct {
  char *name;
  char *uuid;
  QpPolicy *policy; /* NULL: no policy (unmanaged) */
  GPtrArray *items; /* QpPlanItem, disk order then depth */
  gboolean changes; /* any item is QP_PLAN_WRITE, or a chain is to be added */
} QpPlan;

void
qp_plan_free(QpPlan *plan);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpPlan, qp_plan_free)

/* Thread-safe: no shared state; each call reads its own images.
 *
 * Build the plan for @doc with its own policy, or @default_policy when the document has
 * none (may be NULL: then a document without a policy gets a plan with policy NULL and no
 * items). Reads image headers from disk through lib/. An invalid policy or, with
 * chain="all", an explicit chain that disagrees with the images' headers is an error
 * and no plan is returned. Unreadable images are items with QP_PLAN_SKIP and a reason. */
QpPlan *
qp_plan_build(const QpDomainXml *doc, const QpPolicy *default_policy, GError **error);

/* Rewrite @doc to carry out @plan: only the <metadata_cache> elements the policy owns
 * change, and with chain="all" the explicit terminated <backingStore> chain is added where
 * the document has none. Checks that @plan was built from this document (disks and
 * target devs) before changing anything; on an error the document may still be partly
 * rewritten and must be discarded. A plan with no changes leaves it untouched. */
gboolean
qp_plan_apply(QpDomainXml *doc, const QpPlan *plan, GError **error);

/* After qp_plan_apply() of @plan and a write of the result: make @plan the plan of the
 * rewritten document, as qp_plan_build() gives it from that text, without reading the
 * images again. Every written layer becomes QP_PLAN_UNCHANGED with current_max_size the
 * value written; added chain layers are in the document now. */
void
qp_plan_settle(QpPlan *plan);

G_END_DECLS
