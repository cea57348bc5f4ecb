/* One reconcile of one domain: read, plan, write, report. Runs in a worker thread and
 * touches no main-loop state: it gets everything in a QpReconcileJob and hands back a
 * QpReconcileResult. */
#pragma once

#include <glib.h>
#include <libvirt/libvirt.h>

#include "qp-figures.h"
#include "qp-policy.h"

G_BEGIN_DECLS

/* A user's edit racing our write makes us rebuild the plan; more than a few concurrent
 * edits in a row of one domain means something keeps rewriting it, and we give up for this
 * round (the next trigger retries). */
#define QP_RECONCILE_MAX_ATTEMPTS 5

/* A write whose DEFINED event leads to a plan that wants the very same values again means
 * libvirt did not keep them; within this many seconds of our write that is refused instead
 * of written again, so a driver that drops <metadata_cache> cannot make us loop. A user
 * removing the values later is answered with a new write as usual. */
#define QP_RECONCILE_LOOP_WINDOW 10

typedef enum {
  QP_RECONCILE_OP_NONE,
  QP_RECONCILE_OP_SET_POLICY,
  QP_RECONCILE_OP_CLEAR_POLICY,
} QpReconcileOp;

typedef struct {
  char *uuid;
  virConnectPtr conn;             /* a reference */
  const QpPolicy *default_policy; /* the daemon's, immutable while it runs; may be NULL */
  QpReconcileOp op;               /* done before the reconcile */
  QpPolicy *op_policy;            /* for QP_RECONCILE_OP_SET_POLICY */
  char *settled_digest; /* SHA-256 of the inactive XML a previous reconcile settled on, given
                         * only for triggers that cannot change images or the policy (a
                         * DEFINED event): the same text again needs no new plan */
  /* Tests only: called right before the re-read that guards against concurrent edits. */
  void (*before_reread)(virDomainPtr dom, gpointer data);
  gpointer before_reread_data;
  char *recent_write;        /* QpReconcileResult.write_signature of a write made within
                              * QP_RECONCILE_LOOP_WINDOW, or NULL */
  gboolean no_device_update; /* the connection's driver has no virDomainUpdateDeviceFlags
                              * (an earlier result said so): define at once */
} QpReconcileJob;

typedef struct {
  gboolean gone;        /* the domain no longer exists */
  gboolean unchanged;   /* the definition is the settled one: keep the last figures */
  char *settled_digest; /* SHA-256 of the inactive XML now settled on, NULL when not settled */
  char *name;
  gboolean persistent;
  gboolean active;
  guint percent; /* 0: no policy */
  guint64 max;
  char *chain;               /* "top", "all" or "" */
  char *policy_source;       /* "domain", "default" or "" */
  char *state;               /* "unmanaged", "applied", "pending-restart", "error" */
  GError *error;             /* QP_ERROR: the reason for "error" (or a transient skip) */
  GError *op_error;          /* QP_ERROR: the op failed (the reconcile may still have run) */
  QpDiskFigures *disks;      /* Domain.Disks; NULL: none */
  gboolean keep_disks;       /* the domain could not be looked up: the last Disks stand */
  guint writes;              /* definitions written */
  guint defines;             /* of them, whole definitions (virDomainDefineXMLFlags): each raises
                              * exactly one DEFINED event, which the daemon need not reconcile */
  char *write_signature;     /* the values written ("vda/0=N;…"), NULL when nothing was */
  gboolean no_device_update; /* virDomainUpdateDeviceFlags failed with VIR_ERR_NO_SUPPORT:
                              * the connection's driver has none (libvirt's test driver) */
} QpReconcileResult;

void
qp_reconcile_job_free(QpReconcileJob *job);
void
qp_reconcile_result_free(QpReconcileResult *result);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpReconcileJob, qp_reconcile_job_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpReconcileResult, qp_reconcile_result_free)

/* Blocking: call in a worker thread. Never returns NULL. */
QpReconcileResult *
qp_reconcile_run(const QpReconcileJob *job);

G_END_DECLS
