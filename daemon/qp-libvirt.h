/* Cleanup functions for libvirt types, in one place. */
#pragma once

#include <glib.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

static inline void
qp_virt_domain_free(virDomainPtr dom)
{
  if (dom != NULL)
    virDomainFree(dom);
}

static inline void
qp_virt_connect_close(virConnectPtr conn)
{
  if (conn != NULL)
    virConnectClose(conn);
}

typedef virDomain QpVirDomain;
typedef virConnect QpVirConnect;
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpVirDomain, qp_virt_domain_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpVirConnect, qp_virt_connect_close)

/* libvirt returns strings to be released with free(); g_free is the same on glibc since
 * GLib 2.46 uses the system allocator. */
