/* qcow2-policyd's main-loop side. Every blocking call (libvirt, image reads) runs in a
 * worker thread; the main loop only schedules, exports and replies. */
#include "config.h"

#include "qp-daemon.h"

#include <glib-unix.h>
#include <glib/gi18n.h>
#include <libvirt-glib/libvirt-glib.h>
#include <malloc.h>

#include "qp-analyze.h"
#include "qp-auth.h"
#include "qp-daemon-domain.h"
#include "qp-dbus-generated.h"
#include "qp-error.h"
#include "qp-libvirt.h"
#include "qp-log.h"
#include "qp-options.h"
#include "qp-reconcile.h"

/* Worker threads for reconciles. Two keep both cores busy at start with thousands of
 * domains (image header reads and libvirt round trips overlap); per-domain work stays
 * serialized by the scheduler, so more threads would only add lock contention. */
#define QP_DAEMON_WORKER_THREADS 2

/* A method call's reply (GetManagedObjects of thousands of domains: megabytes of small
 * GVariants and a large message) is freed once the GDBus thread has written it; trimming
 * the heap this long after the last call of a burst gives those pages back. */
#define QP_DAEMON_TRIM_DELAY_MS 200

/* Reconnect backoff: first retry after 1 s, doubling up to 5 s, so a restarted libvirtd is
 * picked up within seconds without hammering one that is down. */
/* A define of ours is followed by its DEFINED event within milliseconds; one that has not
 * come after this long is taken as never coming, so that it cannot hide a user's. */
#define QP_DAEMON_OWN_EVENT_WINDOW_US (5 * G_USEC_PER_SEC)

#define QP_DAEMON_RECONNECT_MIN 1
#define QP_DAEMON_RECONNECT_MAX 5

typedef struct _QpDomainEntry QpDomainEntry;
typedef void (*QpWaiterFunc)(QpDaemon *self, const QpReconcileResult *result, gpointer data);

typedef struct {
  QpWaiterFunc func;
  gpointer data;
} QpWaiter;

struct _QpDomainEntry {
  char *uuid;
  GDBusObjectSkeleton *object; /* NULL until the first reconcile found the domain */
  QpDaemonDomain *iface;
  gboolean in_flight;
  gboolean rerun;             /* a trigger arrived while in flight: run once more */
  GPtrArray *waiters_next;    /* QpWaiter: answered by the next run to start */
  GPtrArray *waiters_current; /* QpWaiter: answered by the run in flight */
  QpReconcileOp op_next;
  QpPolicy *op_policy_next;
  char *last_error; /* logged when it changes, not at every periodic reconcile */
  char *last_write_signature;
  char *settled_digest;   /* of the inactive XML the last full reconcile settled on */
  gboolean full_needed;   /* a trigger that may change images or policy arrived */
  gint64 last_write_time; /* monotonic µs */
  /* Our own defines' DEFINED events need no reconcile: the run that wrote already read
   * the definition back. libvirt raises exactly one per define, so each define of ours
   * accounts for one event, whichever define it came from: the definition read back
   * after our write covers every define before that read. */
  guint defined_in_flight; /* DEFINED events that arrived while a run was in flight */
  guint own_events;        /* our defines whose event has not arrived yet */
  gint64 own_events_time;  /* monotonic µs of the last such define */
};

struct _QpDaemon {
  GObject parent_instance;
  QpConfig *config;
  gboolean session;
  GMainLoop *loop;
  GError *fatal; /* why the loop was quit, if by failure */
  guint owner_id;
  GDBusConnection *bus;
  guint filter_id;
  GDBusObjectManagerServer *object_manager;
  QpManager *manager;
  QpAuth *auth;

  virConnectPtr conn;
  gboolean conn_no_device_update; /* its driver has no virDomainUpdateDeviceFlags */
  int cb_lifecycle;
  int cb_metadata;
  guint reconnect_id;
  guint reconnect_delay;
  gboolean connecting;
  gboolean warned_disconnected;

  GHashTable *domains; /* uuid → QpDomainEntry */
  guint exported;      /* entries with an exported object */
  GThreadPool *pool;
  guint busy;
  guint64 writes;
  guint64 reconciles;
  guint interval_id;
};

G_DEFINE_TYPE(QpDaemon, qp_daemon, G_TYPE_OBJECT)

static void
qp_daemon_connect(QpDaemon *self);
static void
qp_daemon_reconcile_all(QpDaemon *self, GDBusMethodInvocation *invocation);

/* ---------- domain entries ---------- */

static QpWaiter *
qp_waiter_new(QpWaiterFunc func, gpointer data)
{
  QpWaiter *waiter = g_new0(QpWaiter, 1);
  waiter->func = func;
  waiter->data = data;
  return waiter;
}

static void
qp_domain_entry_free(QpDomainEntry *entry)
{
  g_free(entry->uuid);
  g_clear_object(&entry->object);
  g_clear_object(&entry->iface);
  g_ptr_array_unref(entry->waiters_next);
  g_ptr_array_unref(entry->waiters_current);
  g_clear_pointer(&entry->op_policy_next, qp_policy_free);
  g_free(entry->last_error);
  g_free(entry->last_write_signature);
  g_free(entry->settled_digest);
  g_free(entry);
}

static char *
qp_daemon_object_path(const char *uuid)
{
  g_autofree char *elem = g_strdup(uuid);
  g_strdelimit(elem, "-", '_');
  return g_strconcat(QP_DBUS_DOMAIN_PREFIX, elem, NULL);
}

static void
qp_daemon_update_counts(QpDaemon *self)
{
  qp_manager_set_domain_count(self->manager, self->exported);
  qp_manager_set_busy(self->manager, self->busy);
  qp_manager_set_write_count(self->manager, self->writes);
  qp_manager_set_reconcile_count(self->manager, self->reconciles);
}

static QpDomainEntry *
qp_daemon_entry_get(QpDaemon *self, const char *uuid)
{
  QpDomainEntry *entry = g_hash_table_lookup(self->domains, uuid);
  if (entry != NULL)
    return entry;
  entry = g_new0(QpDomainEntry, 1);
  entry->uuid = g_strdup(uuid);
  entry->waiters_next = g_ptr_array_new_with_free_func(g_free);
  entry->waiters_current = g_ptr_array_new_with_free_func(g_free);
  g_hash_table_insert(self->domains, entry->uuid, entry);
  return entry;
}

static void
qp_daemon_entry_unexport(QpDaemon *self, QpDomainEntry *entry)
{
  g_autofree char *path = NULL;
  if (entry->object == NULL)
    return;
  path = qp_daemon_object_path(entry->uuid);
  g_dbus_object_manager_server_unexport(self->object_manager, path);
  self->exported--;
  g_clear_object(&entry->object);
  g_clear_object(&entry->iface);
}

static void
qp_daemon_answer_waiters(QpDaemon *self, GPtrArray *waiters, const QpReconcileResult *result)
{
  g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(g_free);

  /* move first: a waiter may schedule again */
  g_ptr_array_extend_and_steal(list, g_ptr_array_ref(waiters));
  g_ptr_array_set_size(waiters, 0);
  for (guint i = 0; i < list->len; i++) {
    QpWaiter *waiter = g_ptr_array_index(list, i);
    waiter->func(self, result, waiter->data);
  }
}

/* ---------- worker threads ---------- */

typedef struct {
  QpDaemon *self;
  QpReconcileJob *job;
  QpReconcileResult *result;
} QpJobDone;

static void
qp_daemon_entry_start(QpDaemon *self, QpDomainEntry *entry);

static gboolean
qp_daemon_create_entry_object(QpDaemon *self, QpDomainEntry *entry);

static void
qp_daemon_apply_result(QpDaemon *self, QpDomainEntry *entry, const QpReconcileResult *result)
{
  const char *error_msg = result->error != NULL ? result->error->message : "";
  /* a new object is exported once it holds its properties: InterfacesAdded then carries
   * them, with no PropertiesChanged right after */
  gboolean created = qp_daemon_create_entry_object(self, entry);

  qp_daemon_domain_set_name(entry->iface, result->name);
  qp_daemon_domain_set_persistent(entry->iface, result->persistent);
  qp_daemon_domain_set_active(entry->iface, result->active);
  qp_daemon_domain_set_policy(entry->iface, result->percent, result->max, result->chain,
                              result->policy_source);
  qp_daemon_domain_set_state(entry->iface, result->state, error_msg);
  if (!result->keep_disks)
    qp_daemon_domain_set_disks(entry->iface, qp_disk_figures_copy(result->disks));
  qp_daemon_domain_add_writes(entry->iface, result->writes);
  /* a new object has no connection yet: the changes are dropped, InterfacesAdded has it all */
  qp_daemon_domain_emit_changed(entry->iface);
  if (created) {
    self->exported++;
    g_dbus_object_manager_server_export(self->object_manager, entry->object);
  }

  if (g_strcmp0(entry->last_error, error_msg) != 0) {
    if (g_str_equal(result->state, "error"))
      qp_log(G_LOG_LEVEL_WARNING, entry->uuid, NULL, "%s: %s", result->name, error_msg);
    else if (entry->last_error != NULL && entry->last_error[0] != '\0')
      qp_log(G_LOG_LEVEL_MESSAGE, entry->uuid, NULL, "%s: %s", result->name,
             error_msg[0] != '\0' ? error_msg : _("error cleared"));
    g_free(entry->last_error);
    entry->last_error = g_strdup(error_msg);
  }
}

/* Results handed to the main loop and not yet taken, shared with the workers (file scope,
 * not the daemon's: a worker still waits here after the daemon let go of its result). A
 * worker that would leave more waits until the main loop has taken them. Without that, a
 * main loop behind the workers (one core busy) let results pile up between the test
 * driver's long-lived definitions, which the workers make in the daemon's heap with the
 * in-process test driver: 1,000 domains then left 31.6-38.2 MiB resident instead of
 * 31.5-32.2 (docs/benchmarks.md, "Daemon scale", 2026-12-03). The main loop never waits
 * for a worker, so this cannot deadlock. */
#define QP_DAEMON_MAX_QUEUED_RESULTS 2
static GMutex qp_daemon_results_lock;
static GCond qp_daemon_results_cond;
static guint qp_daemon_results_queued;

static gboolean
qp_daemon_job_done_cb(gpointer data)
{
  QpJobDone *done = data;
  QpDaemon *self = done->self;
  QpDomainEntry *entry = g_hash_table_lookup(self->domains, done->job->uuid);
  gboolean stale = done->job->conn != self->conn;

  g_mutex_lock(&qp_daemon_results_lock);
  qp_daemon_results_queued--;
  g_cond_broadcast(&qp_daemon_results_cond);
  g_mutex_unlock(&qp_daemon_results_lock);
  g_assert(entry != NULL && entry->in_flight);
  entry->in_flight = FALSE;
  self->busy--;
  self->reconciles++;
  self->writes += done->result->writes;
  if (!stale) {
    guint own = done->result->defines;
    /* one call less per write from now on (the test driver's path) */
    if (done->result->no_device_update)
      self->conn_no_device_update = TRUE;
    guint consumed = MIN(own, entry->defined_in_flight);
    entry->defined_in_flight -= consumed;
    if (own > consumed) {
      entry->own_events += own - consumed;
      entry->own_events_time = g_get_monotonic_time();
    }
  }
  /* someone else's define: it may hold anything */
  if (entry->defined_in_flight > 0)
    entry->rerun = TRUE;
  entry->defined_in_flight = 0;
  if (done->result->write_signature != NULL) {
    g_free(entry->last_write_signature);
    entry->last_write_signature = g_strdup(done->result->write_signature);
    entry->last_write_time = g_get_monotonic_time();
  }

  /* a result from a connection that has since closed says nothing about the domain */
  if (!stale) {
    g_free(entry->settled_digest);
    entry->settled_digest = g_strdup(done->result->settled_digest);
    if (done->result->gone)
      qp_daemon_entry_unexport(self, entry);
    else if (done->result->unchanged && entry->object != NULL) {
      qp_daemon_domain_set_active(entry->iface, done->result->active);
      qp_daemon_domain_emit_changed(entry->iface);
    } else
      qp_daemon_apply_result(self, entry, done->result);
  }
  qp_daemon_answer_waiters(self, entry->waiters_current, done->result);

  if (entry->rerun && self->conn != NULL) {
    entry->rerun = FALSE;
    qp_daemon_entry_start(self, entry);
  } else if (entry->object == NULL && entry->waiters_next->len == 0) {
    g_hash_table_remove(self->domains, done->job->uuid);
  }
  qp_daemon_update_counts(self);
  /* a burst of reconciles (start, reconnect, periodic) leaves the heap fragmented by
   * freed XML documents; give the pages back once the burst is over */
  if (self->busy == 0)
    malloc_trim(0);

  qp_reconcile_job_free(done->job);
  qp_reconcile_result_free(done->result);
  g_object_unref(done->self);
  g_free(done);
  return G_SOURCE_REMOVE;
}

static void
qp_daemon_worker(gpointer data, gpointer user_data)
{
  QpJobDone *done = g_new0(QpJobDone, 1);

  done->self = QP_DAEMON(user_data); /* the reference qp_daemon_entry_start took */
  done->job = data;
  done->result = qp_reconcile_run(done->job);
  g_mutex_lock(&qp_daemon_results_lock);
  qp_daemon_results_queued++;
  g_mutex_unlock(&qp_daemon_results_lock);
  g_main_context_invoke(NULL, qp_daemon_job_done_cb, done);
  /* done is the main loop's now */
  g_mutex_lock(&qp_daemon_results_lock);
  while (qp_daemon_results_queued > QP_DAEMON_MAX_QUEUED_RESULTS)
    g_cond_wait(&qp_daemon_results_cond, &qp_daemon_results_lock);
  g_mutex_unlock(&qp_daemon_results_lock);
}

static void
qp_daemon_entry_start(QpDaemon *self, QpDomainEntry *entry)
{
  QpReconcileJob *job = g_new0(QpReconcileJob, 1);
  g_autoptr(GError) error = NULL;

  job->uuid = g_strdup(entry->uuid);
  job->conn = self->conn;
  virConnectRef(job->conn);
  job->no_device_update = self->conn_no_device_update;
  job->default_policy = self->config->default_policy;
  job->op = entry->op_next;
  job->op_policy = g_steal_pointer(&entry->op_policy_next);
  /* only DEFINED events since the last reconcile: the text alone tells whether anything
   * changed (our own write's event reads one text and stops) */
  if (!entry->full_needed && entry->settled_digest != NULL)
    job->settled_digest = g_strdup(entry->settled_digest);
  entry->full_needed = FALSE;
  if (entry->last_write_signature != NULL
      && g_get_monotonic_time() - entry->last_write_time
             < QP_RECONCILE_LOOP_WINDOW * G_USEC_PER_SEC)
    job->recent_write = g_strdup(entry->last_write_signature);
  entry->op_next = QP_RECONCILE_OP_NONE;
  g_ptr_array_extend_and_steal(entry->waiters_current, g_ptr_array_ref(entry->waiters_next));
  g_ptr_array_set_size(entry->waiters_next, 0);
  entry->in_flight = TRUE;
  self->busy++;
  /* taken here, not in the worker: the daemon cannot go away while a job is queued */
  g_object_ref(self);
  if (!g_thread_pool_push(self->pool, job, &error))
    g_critical("cannot queue a reconcile: %s", error->message);
}

static void
qp_daemon_schedule_full(QpDaemon *self, const char *uuid, gboolean full, QpWaiter *waiter,
                        QpReconcileOp op, QpPolicy *op_policy)
{
  QpDomainEntry *entry = qp_daemon_entry_get(self, uuid);

  if (full)
    entry->full_needed = TRUE;
  if (waiter != NULL)
    g_ptr_array_add(entry->waiters_next, waiter);
  if (op != QP_RECONCILE_OP_NONE) {
    /* a later policy change supersedes one not yet carried out */
    entry->op_next = op;
    g_clear_pointer(&entry->op_policy_next, qp_policy_free);
    entry->op_policy_next = op_policy;
  }
  if (self->conn == NULL) {
    g_autoptr(QpReconcileResult) result = g_new0(QpReconcileResult, 1);
    result->state = g_strdup("error");
    result->error
        = g_error_new(QP_ERROR, QP_ERROR_LIBVIRT, _("Not connected to %s"), self->config->uri);
    result->op_error = g_error_copy(result->error);
    entry->op_next = QP_RECONCILE_OP_NONE;
    g_clear_pointer(&entry->op_policy_next, qp_policy_free);
    qp_daemon_answer_waiters(self, entry->waiters_next, result);
    if (entry->object == NULL && !entry->in_flight)
      g_hash_table_remove(self->domains, uuid);
    return;
  }
  if (entry->in_flight) {
    entry->rerun = TRUE;
    return;
  }
  qp_daemon_entry_start(self, entry);
  qp_daemon_update_counts(self);
}

/* Every trigger but a DEFINED event: images or the policy may have changed. */
static void
qp_daemon_schedule(QpDaemon *self, const char *uuid, QpWaiter *waiter, QpReconcileOp op,
                   QpPolicy *op_policy)
{
  qp_daemon_schedule_full(self, uuid, TRUE, waiter, op, op_policy);
}

/* ---------- D-Bus: Domain ---------- */

typedef struct {
  QpDaemon *self;
  GDBusMethodInvocation *invocation;
  char *uuid;
  QpReconcileOp op;
  QpPolicy *policy;
} QpCall;

static void
qp_call_free(QpCall *call)
{
  g_object_unref(call->self);
  g_clear_object(&call->invocation);
  g_free(call->uuid);
  g_clear_pointer(&call->policy, qp_policy_free);
  g_free(call);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpCall, qp_call_free)

static QpCall *
qp_call_new(QpDaemon *self, GDBusMethodInvocation *invocation, const char *uuid)
{
  QpCall *call = g_new0(QpCall, 1);
  call->self = g_object_ref(self);
  call->invocation = g_object_ref(invocation);
  call->uuid = g_strdup(uuid);
  return call;
}

static void
qp_daemon_return_error(GDBusMethodInvocation *invocation, GError *error)
{
  qp_error_convert(&error);
  g_dbus_method_invocation_return_gerror(invocation, error);
  g_error_free(error);
}

static gboolean
qp_daemon_interactive(GVariant *options)
{
  gboolean interactive = FALSE;
  g_variant_lookup(options, "interactive", "b", &interactive);
  return interactive;
}

/* SetPolicy and ClearPolicy answer when the op is done: the domain's own state (which can
 * be "error" for reasons of its images) is in its properties. */
static void
qp_daemon_op_waiter(QpDaemon *self, const QpReconcileResult *result, gpointer data)
{
  g_autoptr(GDBusMethodInvocation) invocation = data;

  if (result->gone) {
    g_dbus_method_invocation_return_error_literal(invocation, QP_ERROR, QP_ERROR_NOT_FOUND,
                                                  _("The domain no longer exists"));
    return;
  }
  if (result->op_error != NULL) {
    qp_daemon_return_error(invocation, g_error_copy(result->op_error));
    return;
  }
  g_dbus_method_invocation_return_value(invocation, NULL);
}

/* Apply fails with the domain's error. */
static void
qp_daemon_apply_waiter(QpDaemon *self, const QpReconcileResult *result, gpointer data)
{
  g_autoptr(GDBusMethodInvocation) invocation = data;

  if (result->gone) {
    g_dbus_method_invocation_return_error_literal(invocation, QP_ERROR, QP_ERROR_NOT_FOUND,
                                                  _("The domain no longer exists"));
    return;
  }
  if (g_strcmp0(result->state, "error") == 0 && result->error != NULL) {
    qp_daemon_return_error(invocation, g_error_copy(result->error));
    return;
  }
  g_dbus_method_invocation_return_value(invocation, NULL);
}

static void
qp_daemon_domain_auth_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
  g_autoptr(QpCall) call = user_data;
  GError *error = NULL;
  QpWaiter *waiter;

  if (!qp_auth_check_finish(call->self->auth, res, &error)) {
    qp_daemon_return_error(call->invocation, error);
    return;
  }
  if (g_hash_table_lookup(call->self->domains, call->uuid) == NULL) {
    g_dbus_method_invocation_return_error_literal(call->invocation, QP_ERROR, QP_ERROR_NOT_FOUND,
                                                  _("The domain no longer exists"));
    return;
  }
  if (call->op == QP_RECONCILE_OP_NONE)
    waiter = qp_waiter_new(qp_daemon_apply_waiter, g_steal_pointer(&call->invocation));
  else
    waiter = qp_waiter_new(qp_daemon_op_waiter, g_steal_pointer(&call->invocation));
  qp_daemon_schedule(call->self, call->uuid, waiter, call->op, g_steal_pointer(&call->policy));
}

static const QpOptionSpec qp_options_interactive[] = {
  { "interactive", "b" },
  { NULL, NULL },
};

static const QpOptionSpec qp_options_set_policy[] = {
  { "max", "t" },
  { "chain", "s" },
  { "interactive", "b" },
  { NULL, NULL },
};

static void
qp_daemon_handle_set_policy(QpDaemonDomain *domain, GDBusMethodInvocation *invocation,
                            guint percent, GVariant *options, gpointer user_data)
{
  QpDaemon *self = QP_DAEMON(user_data);
  QpCall *call;
  GError *error = NULL;
  guint64 max = 0;
  const char *chain_str = "top";
  QpChainMode chain = QP_CHAIN_TOP;

  if (!qp_options_check(options, qp_options_set_policy, &error)) {
    qp_daemon_return_error(invocation, error);
    return;
  }
  if (percent < 1 || percent > 100) {
    g_dbus_method_invocation_return_error(invocation, QP_ERROR, QP_ERROR_INVALID_POLICY,
                                          _("percent: %u is not an integer from 1 to 100"),
                                          percent);
    return;
  }
  g_variant_lookup(options, "max", "t", &max);
  g_variant_lookup(options, "chain", "&s", &chain_str);
  if (g_str_equal(chain_str, "all")) {
    chain = QP_CHAIN_ALL;
  } else if (!g_str_equal(chain_str, "top")) {
    g_dbus_method_invocation_return_error(invocation, QP_ERROR, QP_ERROR_INVALID_POLICY,
                                          _("chain: “%s” is neither “top” nor “all”"), chain_str);
    return;
  }
  call = qp_call_new(self, invocation, qp_daemon_domain_get_uuid(domain));
  call->op = QP_RECONCILE_OP_SET_POLICY;
  call->policy = qp_policy_new(percent, max, chain);
  qp_auth_check_async(self->auth, invocation, QP_AUTH_ACTION_SET_POLICY,
                      qp_daemon_interactive(options), NULL, qp_daemon_domain_auth_cb, call);
}

/* ClearPolicy and Apply: check the options, then authorize @action and run @op. */
static void
qp_daemon_domain_simple_call(QpDaemonDomain *domain, GDBusMethodInvocation *invocation,
                             GVariant *options, QpDaemon *self, QpReconcileOp op,
                             const char *action)
{
  QpCall *call;
  GError *error = NULL;

  if (!qp_options_check(options, qp_options_interactive, &error)) {
    qp_daemon_return_error(invocation, error);
    return;
  }
  call = qp_call_new(self, invocation, qp_daemon_domain_get_uuid(domain));
  call->op = op;
  qp_auth_check_async(self->auth, invocation, action, qp_daemon_interactive(options), NULL,
                      qp_daemon_domain_auth_cb, call);
}

static void
qp_daemon_handle_clear_policy(QpDaemonDomain *domain, GDBusMethodInvocation *invocation,
                              GVariant *options, gpointer user_data)
{
  qp_daemon_domain_simple_call(domain, invocation, options, QP_DAEMON(user_data),
                               QP_RECONCILE_OP_CLEAR_POLICY, QP_AUTH_ACTION_SET_POLICY);
}

static void
qp_daemon_handle_apply(QpDaemonDomain *domain, GDBusMethodInvocation *invocation, GVariant *options,
                       gpointer user_data)
{
  qp_daemon_domain_simple_call(domain, invocation, options, QP_DAEMON(user_data),
                               QP_RECONCILE_OP_NONE, QP_AUTH_ACTION_APPLY);
}

/* The daemon outlives every domain object it exports. */
static const QpDaemonDomainHandlers qp_daemon_domain_handlers = {
  .set_policy = qp_daemon_handle_set_policy,
  .clear_policy = qp_daemon_handle_clear_policy,
  .apply = qp_daemon_handle_apply,
};

static gboolean
qp_daemon_create_entry_object(QpDaemon *self, QpDomainEntry *entry)
{
  g_autofree char *path = NULL;

  if (entry->object != NULL)
    return FALSE;
  path = qp_daemon_object_path(entry->uuid);
  entry->object = g_dbus_object_skeleton_new(path);
  entry->iface = qp_daemon_domain_new(entry->uuid, &qp_daemon_domain_handlers, self);
  g_dbus_object_skeleton_add_interface(entry->object, G_DBUS_INTERFACE_SKELETON(entry->iface));
  return TRUE;
}

/* ---------- D-Bus: Manager ---------- */

typedef struct {
  GDBusMethodInvocation *invocation;
  guint remaining;
} QpBatch;

static void
qp_daemon_batch_waiter(QpDaemon *self, const QpReconcileResult *result, gpointer data)
{
  QpBatch *batch = data;
  if (--batch->remaining > 0)
    return;
  g_dbus_method_invocation_return_value(batch->invocation, NULL);
  g_object_unref(batch->invocation);
  g_free(batch);
}

typedef struct {
  QpDaemon *self;
  virConnectPtr conn;
  GDBusMethodInvocation *invocation; /* may be NULL */
} QpListCall;

static void
qp_daemon_list_thread(GTask *task, gpointer source, gpointer task_data, GCancellable *cancel)
{
  QpListCall *call = task_data;
  virDomainPtr *doms = NULL;
  g_autoptr(GPtrArray) uuids = g_ptr_array_new_with_free_func(g_free);
  int n = virConnectListAllDomains(call->conn, &doms, 0);

  if (n < 0) {
    GError *error = NULL;
    qp_error_set_libvirt(&error, _("Cannot list the domains"));
    g_task_return_error(task, error);
    return;
  }
  for (int i = 0; i < n; i++) {
    char uuid[VIR_UUID_STRING_BUFLEN];
    if (virDomainGetUUIDString(doms[i], uuid) == 0)
      g_ptr_array_add(uuids, g_strdup(uuid));
    virDomainFree(doms[i]);
  }
  free(doms);
  g_task_return_pointer(task, g_steal_pointer(&uuids), (GDestroyNotify)g_ptr_array_unref);
}

static void
qp_list_call_free(QpListCall *call)
{
  g_object_unref(call->self);
  virConnectClose(call->conn);
  g_clear_object(&call->invocation);
  g_free(call);
}

static void
qp_daemon_list_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
  QpListCall *call = g_task_get_task_data(G_TASK(res));
  QpDaemon *self = call->self;
  g_autoptr(GPtrArray) uuids = NULL;
  g_autoptr(GHashTable) all = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GError) error = NULL;
  QpBatch *batch = NULL;
  GHashTableIter iter;
  gpointer key;

  uuids = g_task_propagate_pointer(G_TASK(res), &error);
  if (uuids == NULL) {
    qp_log(G_LOG_LEVEL_WARNING, NULL, NULL, "%s", error->message);
    if (call->invocation != NULL)
      qp_daemon_return_error(call->invocation, g_steal_pointer(&error));
    return;
  }
  if (call->conn != self->conn) {
    /* reconnected meanwhile: that reconnect reconciles everything itself */
    if (call->invocation != NULL)
      g_dbus_method_invocation_return_value(call->invocation, NULL);
    return;
  }
  for (guint i = 0; i < uuids->len; i++)
    g_hash_table_add(all, g_strdup(g_ptr_array_index(uuids, i)));
  /* known domains missing from the list are found gone by their reconcile */
  g_hash_table_iter_init(&iter, self->domains);
  while (g_hash_table_iter_next(&iter, &key, NULL))
    g_hash_table_add(all, g_strdup(key));

  if (call->invocation != NULL) {
    if (g_hash_table_size(all) == 0) {
      g_dbus_method_invocation_return_value(call->invocation, NULL);
      return;
    }
    batch = g_new0(QpBatch, 1);
    batch->invocation = g_steal_pointer(&call->invocation);
    batch->remaining = g_hash_table_size(all);
  }
  g_hash_table_iter_init(&iter, all);
  while (g_hash_table_iter_next(&iter, &key, NULL))
    qp_daemon_schedule(self, key,
                       batch != NULL ? qp_waiter_new(qp_daemon_batch_waiter, batch) : NULL,
                       QP_RECONCILE_OP_NONE, NULL);
}

static void
qp_daemon_reconcile_all(QpDaemon *self, GDBusMethodInvocation *invocation)
{
  g_autoptr(GTask) task = NULL;
  QpListCall *call;

  if (self->conn == NULL) {
    if (invocation != NULL)
      g_dbus_method_invocation_return_error(invocation, QP_ERROR, QP_ERROR_LIBVIRT,
                                            _("Not connected to %s"), self->config->uri);
    return;
  }
  call = g_new0(QpListCall, 1);
  call->self = g_object_ref(self);
  call->conn = self->conn;
  virConnectRef(call->conn);
  call->invocation = invocation != NULL ? g_object_ref(invocation) : NULL;
  task = g_task_new(NULL, NULL, qp_daemon_list_cb, NULL);
  g_task_set_task_data(task, call, (GDestroyNotify)qp_list_call_free);
  g_task_run_in_thread(task, qp_daemon_list_thread);
}

static void
qp_daemon_reconcile_auth_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
  g_autoptr(QpCall) call = user_data;
  GError *error = NULL;

  if (!qp_auth_check_finish(call->self->auth, res, &error)) {
    qp_daemon_return_error(call->invocation, error);
    return;
  }
  qp_daemon_reconcile_all(call->self, call->invocation);
}

static gboolean
qp_daemon_handle_reconcile(QpManager *iface, GDBusMethodInvocation *invocation, GVariant *options,
                           gpointer user_data)
{
  QpDaemon *self = QP_DAEMON(user_data);
  GError *error = NULL;

  if (!qp_options_check(options, qp_options_interactive, &error)) {
    qp_daemon_return_error(invocation, error);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
  }
  qp_auth_check_async(self->auth, invocation, QP_AUTH_ACTION_APPLY, qp_daemon_interactive(options),
                      NULL, qp_daemon_reconcile_auth_cb, qp_call_new(self, invocation, ""));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
qp_daemon_handle_get_domain_by_name(QpManager *iface, GDBusMethodInvocation *invocation,
                                    const char *name, GVariant *options, gpointer user_data)
{
  QpDaemon *self = QP_DAEMON(user_data);
  GError *error = NULL;
  GHashTableIter iter;
  gpointer value;

  if (!qp_options_check(options, (const QpOptionSpec[]){ { NULL, NULL } }, &error)) {
    qp_daemon_return_error(invocation, error);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
  }
  g_hash_table_iter_init(&iter, self->domains);
  while (g_hash_table_iter_next(&iter, NULL, &value)) {
    QpDomainEntry *entry = value;
    if (entry->iface != NULL && g_str_equal(qp_daemon_domain_get_name(entry->iface), name)) {
      g_autofree char *path = qp_daemon_object_path(entry->uuid);
      qp_manager_complete_get_domain_by_name(iface, invocation, path);
      return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
  }
  g_dbus_method_invocation_return_error(invocation, QP_ERROR, QP_ERROR_NOT_FOUND,
                                        _("No domain named “%s”"), name);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

typedef struct {
  QpDaemon *self;
  GDBusMethodInvocation *invocation;
  QpAnalyzeRequest *req;
} QpAnalyzeCall;

static void
qp_analyze_call_free(QpAnalyzeCall *call)
{
  g_object_unref(call->self);
  g_object_unref(call->invocation);
  g_clear_pointer(&call->req, qp_analyze_request_free);
  g_free(call);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpAnalyzeCall, qp_analyze_call_free)

static void
qp_daemon_analyze_done_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
  g_autoptr(QpAnalyzeCall) call = user_data;
  g_autoptr(GVariant) layers = NULL;
  GError *error = NULL;

  layers = qp_analyze_finish(res, &error);
  if (layers == NULL) {
    qp_daemon_return_error(call->invocation, error);
    return;
  }
  qp_manager_complete_analyze_image(call->self->manager, call->invocation, layers);
}

static void
qp_daemon_analyze_uid_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
  QpAnalyzeCall *call = user_data;
  GError *error = NULL;
  guint32 uid = 0;

  if (!qp_auth_get_caller_uid_finish(res, &uid, &error)) {
    qp_daemon_return_error(call->invocation, error);
    qp_analyze_call_free(call);
    return;
  }
  call->req->as_caller = TRUE;
  call->req->uid = uid;
  qp_analyze_async(g_steal_pointer(&call->req), NULL, qp_daemon_analyze_done_cb, call);
}

static void
qp_daemon_analyze_auth_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
  QpAnalyzeCall *call = user_data;
  GError *error = NULL;

  if (!qp_auth_check_finish(call->self->auth, res, &error)) {
    qp_daemon_return_error(call->invocation, error);
    qp_analyze_call_free(call);
    return;
  }
  /* --session: the daemon runs as the developer, with their own permissions */
  if (call->self->session) {
    qp_analyze_async(g_steal_pointer(&call->req), NULL, qp_daemon_analyze_done_cb, call);
    return;
  }
  qp_auth_get_caller_uid_async(call->invocation, NULL, qp_daemon_analyze_uid_cb, call);
}

static const QpOptionSpec qp_options_analyze[] = {
  { "format", "s" }, { "percent", "u" },     { "max", "t" },
  { "chain", "b" },  { "interactive", "b" }, { NULL, NULL },
};

static gboolean
qp_daemon_handle_analyze_image(QpManager *iface, GDBusMethodInvocation *invocation,
                               const char *path, GVariant *options, gpointer user_data)
{
  QpDaemon *self = QP_DAEMON(user_data);
  QpAnalyzeCall *call;
  GError *error = NULL;
  const char *format = "qcow2";

  if (!qp_options_check(options, qp_options_analyze, &error)) {
    qp_daemon_return_error(invocation, error);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
  }
  if (!g_path_is_absolute(path)) {
    g_dbus_method_invocation_return_error(invocation, QP_ERROR, QP_ERROR_INVALID_ARGS,
                                          _("“%s” is not an absolute path"), path);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
  }
  call = g_new0(QpAnalyzeCall, 1);
  call->self = g_object_ref(self);
  call->invocation = g_object_ref(invocation);
  call->req = g_new0(QpAnalyzeRequest, 1);
  call->req->path = g_strdup(path);
  g_variant_lookup(options, "format", "&s", &format);
  call->req->format = g_strdup(format);
  g_variant_lookup(options, "percent", "u", &call->req->percent);
  g_variant_lookup(options, "max", "t", &call->req->max);
  g_variant_lookup(options, "chain", "b", &call->req->chain);
  if (call->req->percent > 100) {
    g_dbus_method_invocation_return_error(invocation, QP_ERROR, QP_ERROR_INVALID_POLICY,
                                          _("percent: %u is not an integer from 1 to 100"),
                                          call->req->percent);
    qp_analyze_call_free(call);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
  }
  qp_auth_check_async(self->auth, invocation, QP_AUTH_ACTION_ANALYZE,
                      qp_daemon_interactive(options), NULL, qp_daemon_analyze_auth_cb, call);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ---------- libvirt ---------- */

static void
qp_daemon_set_connected(QpDaemon *self, gboolean connected)
{
  qp_manager_set_connected(self->manager, connected);
}

static void
qp_daemon_schedule_dom(QpDaemon *self, virDomainPtr dom, gboolean full)
{
  char uuid[VIR_UUID_STRING_BUFLEN];
  if (virDomainGetUUIDString(dom, uuid) < 0)
    return;
  qp_daemon_schedule_full(self, uuid, full, NULL, QP_RECONCILE_OP_NONE, NULL);
}

/* A DEFINED event: TRUE when it is (or stands for) one of our own defines, which needs
 * no reconcile; one arriving while a run is in flight is counted and settled when the
 * run is done (qp_daemon_job_done_cb). */
static gboolean
qp_daemon_own_defined_event(QpDaemon *self, virDomainPtr dom)
{
  char uuid[VIR_UUID_STRING_BUFLEN];
  QpDomainEntry *entry;

  if (virDomainGetUUIDString(dom, uuid) < 0)
    return FALSE;
  entry = g_hash_table_lookup(self->domains, uuid);
  if (entry == NULL)
    return FALSE;
  if (entry->in_flight) {
    entry->defined_in_flight++;
    return TRUE;
  }
  if (entry->own_events > 0
      && g_get_monotonic_time() - entry->own_events_time < QP_DAEMON_OWN_EVENT_WINDOW_US) {
    entry->own_events--;
    return TRUE;
  }
  entry->own_events = 0;
  return FALSE;
}

static int
qp_daemon_lifecycle_cb(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
  QpDaemon *self = QP_DAEMON(opaque);

  if (event == VIR_DOMAIN_EVENT_DEFINED && qp_daemon_own_defined_event(self, dom)) {
    g_debug("lifecycle event %d/%d for %s: our own define's", event, detail, virDomainGetName(dom));
    return 0;
  }
  switch (event) {
  case VIR_DOMAIN_EVENT_DEFINED:   /* also our own writes: their reconcile writes nothing */
  case VIR_DOMAIN_EVENT_UNDEFINED: /* the object goes */
  case VIR_DOMAIN_EVENT_STOPPED:   /* images may have been resized or snapshotted */
  case VIR_DOMAIN_EVENT_STARTED:   /* pending-restart becomes applied */
    g_debug("lifecycle event %d/%d for %s", event, detail, virDomainGetName(dom));
    /* a definition change alone cannot change images: when the text is the one we
     * settled on (our own write's event), the reconcile stops after one read */
    qp_daemon_schedule_dom(self, dom, event != VIR_DOMAIN_EVENT_DEFINED);
    break;
  default:
    break;
  }
  return 0;
}

static void
qp_daemon_metadata_cb(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri,
                      void *opaque)
{
  QpDaemon *self = QP_DAEMON(opaque);

  if (type != VIR_DOMAIN_METADATA_ELEMENT || g_strcmp0(nsuri, QP_POLICY_NS_URI) != 0)
    return;
  g_debug("policy metadata changed for %s", virDomainGetName(dom));
  qp_daemon_schedule_dom(self, dom, TRUE);
}

static gboolean
qp_daemon_reconnect_cb(gpointer user_data)
{
  QpDaemon *self = QP_DAEMON(user_data);
  self->reconnect_id = 0;
  qp_daemon_connect(self);
  return G_SOURCE_REMOVE;
}

static void
qp_daemon_schedule_reconnect(QpDaemon *self)
{
  if (self->reconnect_id != 0)
    return;
  self->reconnect_id = g_timeout_add_seconds(self->reconnect_delay, qp_daemon_reconnect_cb, self);
  self->reconnect_delay = MIN(self->reconnect_delay * 2, QP_DAEMON_RECONNECT_MAX);
}

static void
qp_daemon_close_cb(virConnectPtr conn, int reason, void *opaque);

static void
qp_daemon_drop_connection(QpDaemon *self)
{
  GHashTableIter iter;
  gpointer value;

  if (self->conn == NULL)
    return;
  if (self->cb_lifecycle >= 0)
    virConnectDomainEventDeregisterAny(self->conn, self->cb_lifecycle);
  if (self->cb_metadata >= 0)
    virConnectDomainEventDeregisterAny(self->conn, self->cb_metadata);
  self->cb_lifecycle = self->cb_metadata = -1;
  /* the registration holds a reference on the connection */
  virConnectUnregisterCloseCallback(self->conn, qp_daemon_close_cb);
  virResetLastError();
  virConnectClose(self->conn);
  self->conn = NULL;
  qp_daemon_set_connected(self, FALSE);
  /* events of the old connection will not come */
  g_hash_table_iter_init(&iter, self->domains);
  while (g_hash_table_iter_next(&iter, NULL, &value)) {
    QpDomainEntry *entry = value;
    entry->own_events = 0;
    entry->defined_in_flight = 0;
  }
}

static gboolean
qp_daemon_disconnected_idle(gpointer user_data)
{
  g_autoptr(QpDaemon) self = QP_DAEMON(user_data);
  qp_log(G_LOG_LEVEL_WARNING, NULL, NULL, _("Lost the connection to %s, reconnecting"),
         self->config->uri);
  qp_daemon_drop_connection(self);
  self->reconnect_delay = QP_DAEMON_RECONNECT_MIN;
  qp_daemon_schedule_reconnect(self);
  return G_SOURCE_REMOVE;
}

static void
qp_daemon_close_cb(virConnectPtr conn, int reason, void *opaque)
{
  QpDaemon *self = QP_DAEMON(opaque);
  /* not from inside libvirt's own callback: it holds the connection */
  if (conn == self->conn)
    g_idle_add(qp_daemon_disconnected_idle, g_object_ref(self));
}

static void
qp_daemon_conn_unref(gpointer conn)
{
  virConnectClose(conn);
}

static void
qp_daemon_open_thread(GTask *task, gpointer source, gpointer task_data, GCancellable *cancel)
{
  const char *uri = task_data;
  virConnectPtr conn = virConnectOpen(uri);
  if (conn == NULL) {
    GError *error = NULL;
    qp_error_set_libvirt(&error, uri);
    g_task_return_error(task, error);
    return;
  }
  g_task_return_pointer(task, conn, qp_daemon_conn_unref);
}

static void
qp_daemon_open_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
  g_autoptr(QpDaemon) self = QP_DAEMON(user_data);
  g_autoptr(GError) error = NULL;
  virConnectPtr conn;

  self->connecting = FALSE;
  conn = g_task_propagate_pointer(G_TASK(res), &error);
  if (conn == NULL) {
    if (!self->warned_disconnected)
      qp_log(G_LOG_LEVEL_WARNING, NULL, NULL, _("Cannot connect to libvirt, retrying: %s"),
             error->message);
    self->warned_disconnected = TRUE;
    qp_daemon_schedule_reconnect(self);
    return;
  }
  self->conn = conn;
  self->conn_no_device_update = FALSE;
  self->warned_disconnected = FALSE;
  self->reconnect_delay = QP_DAEMON_RECONNECT_MIN;
  /* remote connections: notice a dead libvirtd even when it does not close the socket;
   * drivers without keepalive (test:///) refuse, which is fine */
  if (virConnectSetKeepAlive(conn, 5, 3) < 0)
    virResetLastError();
  if (virConnectRegisterCloseCallback(conn, qp_daemon_close_cb, self, NULL) < 0)
    virResetLastError();
  self->cb_lifecycle = virConnectDomainEventRegisterAny(
      conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(qp_daemon_lifecycle_cb),
      self, NULL);
  self->cb_metadata = virConnectDomainEventRegisterAny(
      conn, NULL, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
      VIR_DOMAIN_EVENT_CALLBACK(qp_daemon_metadata_cb), self, NULL);
  if (self->cb_lifecycle < 0 || self->cb_metadata < 0) {
    g_autoptr(GError) error_cb = NULL;
    qp_error_set_libvirt(&error_cb, _("Cannot register for domain events"));
    qp_log(G_LOG_LEVEL_WARNING, NULL, NULL, "%s", error_cb->message);
  }
  qp_log(G_LOG_LEVEL_MESSAGE, NULL, NULL, _("Connected to %s"), self->config->uri);
  qp_daemon_set_connected(self, TRUE);
  qp_daemon_reconcile_all(self, NULL);
}

static void
qp_daemon_connect(QpDaemon *self)
{
  g_autoptr(GTask) task = NULL;

  if (self->conn != NULL || self->connecting)
    return;
  self->connecting = TRUE;
  task = g_task_new(NULL, NULL, qp_daemon_open_cb, g_object_ref(self));
  g_task_set_task_data(task, g_strdup(self->config->uri), g_free);
  g_task_run_in_thread(task, qp_daemon_open_thread);
}

static gboolean
qp_daemon_interval_cb(gpointer user_data)
{
  QpDaemon *self = QP_DAEMON(user_data);
  qp_daemon_reconcile_all(self, NULL);
  return G_SOURCE_CONTINUE;
}

/* ---------- bus ---------- */

/* shared with the GDBus worker thread */
G_LOCK_DEFINE_STATIC(qp_daemon_trim);
static gboolean qp_daemon_trim_pending; /* a trim is scheduled */
static gint64 qp_daemon_last_call_us;   /* monotonic time of the last call or reply */

static gboolean
qp_daemon_trim_cb(gpointer user_data)
{
  gint64 idle_us;

  G_LOCK(qp_daemon_trim);
  idle_us = g_get_monotonic_time() - qp_daemon_last_call_us;
  /* calls kept coming: wait until the burst is over */
  if (idle_us < QP_DAEMON_TRIM_DELAY_MS * 1000) {
    G_UNLOCK(qp_daemon_trim);
    g_timeout_add(QP_DAEMON_TRIM_DELAY_MS - idle_us / 1000, qp_daemon_trim_cb, NULL);
    return G_SOURCE_REMOVE;
  }
  qp_daemon_trim_pending = FALSE;
  G_UNLOCK(qp_daemon_trim);
  malloc_trim(0);
  return G_SOURCE_REMOVE;
}

/* GDBus worker thread: after a burst of method calls and replies, trim the heap once. */
static GDBusMessage *
qp_daemon_bus_filter(GDBusConnection *bus, GDBusMessage *message, gboolean incoming,
                     gpointer user_data)
{
  GDBusMessageType type = g_dbus_message_get_message_type(message);

  if ((incoming && type == G_DBUS_MESSAGE_TYPE_METHOD_CALL)
      || (!incoming && type == G_DBUS_MESSAGE_TYPE_METHOD_RETURN)) {
    gboolean schedule;
    G_LOCK(qp_daemon_trim);
    qp_daemon_last_call_us = g_get_monotonic_time();
    schedule = !qp_daemon_trim_pending;
    qp_daemon_trim_pending = TRUE;
    G_UNLOCK(qp_daemon_trim);
    if (schedule) {
      g_autoptr(GSource) source = g_timeout_source_new(QP_DAEMON_TRIM_DELAY_MS);
      g_source_set_callback(source, qp_daemon_trim_cb, NULL, NULL);
      g_source_attach(source, NULL);
    }
  }
  return message;
}

static void
qp_daemon_bus_acquired_cb(GDBusConnection *bus, const char *name, gpointer user_data)
{
  QpDaemon *self = QP_DAEMON(user_data);
  g_autoptr(QpObjectSkeleton) object = qp_object_skeleton_new(QP_DBUS_MANAGER_PATH);

  self->bus = g_object_ref(bus);
  self->filter_id = g_dbus_connection_add_filter(bus, qp_daemon_bus_filter, NULL, NULL);
  qp_object_skeleton_set_manager(object, self->manager);
  g_dbus_object_manager_server_export(self->object_manager, G_DBUS_OBJECT_SKELETON(object));
  g_dbus_object_manager_server_set_connection(self->object_manager, bus);
}

static void
qp_daemon_name_acquired_cb(GDBusConnection *bus, const char *name, gpointer user_data)
{
  QpDaemon *self = QP_DAEMON(user_data);
  g_debug("acquired %s", name);
  qp_daemon_connect(self);
}

static void
qp_daemon_name_lost_cb(GDBusConnection *bus, const char *name, gpointer user_data)
{
  QpDaemon *self = QP_DAEMON(user_data);
  if (self->fatal == NULL)
    self->fatal = g_error_new(QP_ERROR, QP_ERROR_FAILED,
                              bus == NULL ? _("Cannot connect to the D-Bus bus")
                                          : _("Cannot own the name %s on the bus (another "
                                              "instance, or the bus policy forbids it)"),
                              name);
  g_main_loop_quit(self->loop);
}

static gboolean
qp_daemon_signal_cb(gpointer user_data)
{
  QpDaemon *self = QP_DAEMON(user_data);
  g_main_loop_quit(self->loop);
  return G_SOURCE_CONTINUE;
}

gboolean
qp_daemon_run(QpDaemon *self, GError **error)
{
  GError *error_pool = NULL;
  guint sig_term = g_unix_signal_add(SIGTERM, qp_daemon_signal_cb, self);
  guint sig_int = g_unix_signal_add(SIGINT, qp_daemon_signal_cb, self);

  self->pool
      = g_thread_pool_new(qp_daemon_worker, self, QP_DAEMON_WORKER_THREADS, FALSE, &error_pool);
  if (self->pool == NULL) {
    g_propagate_error(error, error_pool);
    return FALSE;
  }
  self->auth = qp_auth_new(self->session);
  if (self->config->reconcile_interval > 0)
    self->interval_id
        = g_timeout_add_seconds(self->config->reconcile_interval, qp_daemon_interval_cb, self);
  self->owner_id
      = g_bus_own_name(self->session ? G_BUS_TYPE_SESSION : G_BUS_TYPE_SYSTEM, QP_DBUS_NAME,
                       G_BUS_NAME_OWNER_FLAGS_NONE, qp_daemon_bus_acquired_cb,
                       qp_daemon_name_acquired_cb, qp_daemon_name_lost_cb, self, NULL);
  g_main_loop_run(self->loop);
  g_source_remove(sig_term);
  g_source_remove(sig_int);
  if (self->fatal != NULL) {
    g_propagate_error(error, g_steal_pointer(&self->fatal));
    return FALSE;
  }
  return TRUE;
}

static void
qp_daemon_finalize(GObject *object)
{
  QpDaemon *self = QP_DAEMON(object);

  if (self->owner_id != 0)
    g_bus_unown_name(self->owner_id);
  if (self->interval_id != 0)
    g_source_remove(self->interval_id);
  if (self->reconnect_id != 0)
    g_source_remove(self->reconnect_id);
  /* jobs still running hold references of their own; their completions are dropped */
  if (self->pool != NULL)
    g_thread_pool_free(self->pool, TRUE, FALSE);
  qp_daemon_drop_connection(self);
  g_hash_table_unref(self->domains);
  g_clear_object(&self->object_manager);
  g_clear_object(&self->manager);
  if (self->filter_id != 0)
    g_dbus_connection_remove_filter(self->bus, self->filter_id);
  g_clear_object(&self->bus);
  g_clear_pointer(&self->auth, qp_auth_free);
  g_clear_pointer(&self->loop, g_main_loop_unref);
  g_clear_error(&self->fatal);
  qp_config_free(self->config);
  G_OBJECT_CLASS(qp_daemon_parent_class)->finalize(object);
}

static void
qp_daemon_class_init(QpDaemonClass *klass)
{
  G_OBJECT_CLASS(klass)->finalize = qp_daemon_finalize;
}

static void
qp_daemon_init(QpDaemon *self)
{
  self->loop = g_main_loop_new(NULL, FALSE);
  self->domains
      = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)qp_domain_entry_free);
  self->cb_lifecycle = self->cb_metadata = -1;
  self->reconnect_delay = QP_DAEMON_RECONNECT_MIN;
  self->object_manager = g_dbus_object_manager_server_new(QP_DBUS_PATH);
  self->manager = qp_manager_skeleton_new();
}

QpDaemon *
qp_daemon_new(QpConfig *config, gboolean session)
{
  QpDaemon *self = g_object_new(QP_TYPE_DAEMON, NULL);

  self->config = config;
  self->session = session;
  qp_manager_set_version(self->manager, PACKAGE_VERSION);
  qp_manager_set_uri(self->manager, config->uri);
  qp_manager_set_connected(self->manager, FALSE);
  qp_manager_set_reconcile_interval(self->manager, config->reconcile_interval);
  qp_manager_set_default_percent(
      self->manager, config->default_policy != NULL ? config->default_policy->percent : 0);
  g_signal_connect(self->manager, "handle-reconcile", G_CALLBACK(qp_daemon_handle_reconcile), self);
  g_signal_connect(self->manager, "handle-analyze-image",
                   G_CALLBACK(qp_daemon_handle_analyze_image), self);
  g_signal_connect(self->manager, "handle-get-domain-by-name",
                   G_CALLBACK(qp_daemon_handle_get_domain_by_name), self);
  return self;
}
