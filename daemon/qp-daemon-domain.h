/* A domain's exported interface, org.qcow2policyd.Policy1.Domain: a GDBusInterfaceSkeleton
 * with the interface description gdbus-codegen generates from schemas/, holding the
 * properties as the daemon knows them. Not the generated skeleton: that keeps each property
 * in a GValue with a copy of each string and Disks as a serialised dictionary list, about
 * 1.4 KB per domain more (massif, 1,000 domains), and batches its PropertiesChanged in an
 * idle callback per object; this one emits one PropertiesChanged per
 * qp_daemon_domain_emit_changed(). Main thread only. */
#pragma once

#include <gio/gio.h>

#include "qp-figures.h"

G_BEGIN_DECLS

#define QP_TYPE_DAEMON_DOMAIN (qp_daemon_domain_get_type())
G_DECLARE_FINAL_TYPE(QpDaemonDomain, qp_daemon_domain, QP, DAEMON_DOMAIN, GDBusInterfaceSkeleton)

/* The methods; each must answer @invocation (now or later). */
typedef struct {
  void (*set_policy)(QpDaemonDomain *domain, GDBusMethodInvocation *invocation, guint percent,
                     GVariant *options, gpointer data);
  void (*clear_policy)(QpDaemonDomain *domain, GDBusMethodInvocation *invocation, GVariant *options,
                       gpointer data);
  void (*apply)(QpDaemonDomain *domain, GDBusMethodInvocation *invocation, GVariant *options,
                gpointer data);
} QpDaemonDomainHandlers;

/* @handlers must outlive the object; @data (not referenced) is passed to them. State
 * "unmanaged", every string empty, every number 0. */
QpDaemonDomain *
qp_daemon_domain_new(const char *uuid, const QpDaemonDomainHandlers *handlers, gpointer data);

const char *
qp_daemon_domain_get_uuid(QpDaemonDomain *self);
const char *
qp_daemon_domain_get_name(QpDaemonDomain *self);

/* Setters record what changed; qp_daemon_domain_emit_changed() tells the bus. @chain,
 * @policy_source and @state are names from a small fixed set (interned). */
void
qp_daemon_domain_set_name(QpDaemonDomain *self, const char *name);
void
qp_daemon_domain_set_persistent(QpDaemonDomain *self, gboolean persistent);
void
qp_daemon_domain_set_active(QpDaemonDomain *self, gboolean active);
void
qp_daemon_domain_set_policy(QpDaemonDomain *self, guint percent, guint64 max, const char *chain,
                            const char *policy_source);
void
qp_daemon_domain_set_state(QpDaemonDomain *self, const char *state, const char *error);
/* Takes @disks (NULL: none). */
void
qp_daemon_domain_set_disks(QpDaemonDomain *self, QpDiskFigures *disks);
void
qp_daemon_domain_add_writes(QpDaemonDomain *self, guint writes);

/* One PropertiesChanged with every property set to a new value since the last call (none
 * when nothing changed or the object is not exported: InterfacesAdded carries them). */
void
qp_daemon_domain_emit_changed(QpDaemonDomain *self);

G_END_DECLS
