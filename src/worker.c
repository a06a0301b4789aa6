/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The delivery worker: a background worker that sends queued deliveries
 *	  to their targets over HTTP, with retries and a dead-letter table.
 *
 * This file registers the workers, defines their settings, sets up their
 * shared memory, wakes them, and runs their loop; the queue itself (its
 * statements and transactions) is in queue.c.  The loop, which a reader
 * can follow from eventbus_worker_main():
 *
 *	  claim   take due rows of eventbus.deliveries under a lease, so rows
 *			  held by a worker that dies go back to the queue by themselves;
 *	  send    start their requests with libcurl multi; many run at once;
 *	  settle  as requests finish, record the results in one transaction:
 *			  2xx removes the row, a retryable failure schedules the next
 *			  attempt, anything else moves it to eventbus.dead_letters;
 *	  sleep   on the latch, the HTTP sockets and the next due time.
 *
 * Claiming does not wait for a whole batch to finish: whenever requests
 * finish, their results are settled and free slots are refilled, so a slow
 * target never holds back a fast one.
 *
 * Shared memory holds only the workers' PGPROC numbers (so that any
 * backend can set their latches) and whether leases left by a crash have
 * been reconciled since shared memory was set up.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/pmsignal.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "http.h"
#include "queue.h"
#include "stats.h"
#include "worker.h"
#include "worker_internal.h"

PG_FUNCTION_INFO_V1(eventbus_wake_workers);

#define EB_MAX_WORKERS 32

/*
 * Settings (documented in the README).  queue.c reads them through
 * eb_settings; only the GUC machinery writes them.
 */
static EbWorkerSettings settings = {
	.database = NULL,
	.workers = 1,
	.retry_base_delay = 1000,
	.retry_max_delay = 300000,
	.batch_size = 100,
	.max_concurrent_requests = 256,
	.max_concurrent_per_target = 64,
	.poll_interval = 1000,
};

const EbWorkerSettings *const eb_settings = &settings;

/* Shared state: who to wake, and the crash reconciliation. */
typedef enum ReconcileState
{
	RECONCILE_NEEDED = 0,
	RECONCILE_RUNNING,
	RECONCILE_DONE
} ReconcileState;

typedef struct EbShared
{
	slock_t		mutex;
	ReconcileState reconcile;
	pid_t		reconciler;
	int			procno[EB_MAX_WORKERS]; /* PGPROC number, or -1 */
} EbShared;

static EbShared *eb_shared = NULL;
static bool worker_preloaded = false;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Wake-at-commit bookkeeping of any backend. */
static bool wake_callback_registered = false;
static bool wake_at_commit = false;

/* The worker's own state: its slot in EbShared and what it sleeps on. */
static int	my_index = -1;
static WaitEventSet *wait_set = NULL;

static void deliver_forever(void) pg_attribute_noreturn();

/* ------------------------------------------------------------------------
 * Registration, shared memory, wake-ups
 * ------------------------------------------------------------------------
 */

/* Asks for the shared memory of EbShared (PostgreSQL 15's request hook). */
static void
eb_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(EbShared)));
}

/*
 * Sets up EbShared; runs in the postmaster at start-up and again after a
 * crash, so the reconciliation flag starts over after every crash.
 */
static void
eb_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	eb_shared = ShmemInitStruct("pg_eventbus delivery workers",
								sizeof(EbShared), &found);
	if (!found)
	{
		SpinLockInit(&eb_shared->mutex);
		eb_shared->reconcile = RECONCILE_NEEDED;
		eb_shared->reconciler = 0;
		for (int i = 0; i < EB_MAX_WORKERS; i++)
			eb_shared->procno[i] = -1;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Defines the settings; when preloaded, also sets up shared memory and
 * registers eventbus.workers delivery workers.
 */
void
eventbus_worker_init(void)
{
	BackgroundWorker worker;

	/*
	 * PostgreSQL allows start-up-only settings to be defined only while
	 * preloading (and ends the session otherwise); when this library is
	 * loaded later there are no workers, so they merely show their values.
	 */
	GucContext	postmaster_context = process_shared_preload_libraries_in_progress
		? PGC_POSTMASTER : PGC_SUSET;

	DefineCustomStringVariable("eventbus.database",
							   "Database in which the delivery workers run.",
							   "The extension must be created in that database.",
							   &settings.database,
							   "postgres",
							   postmaster_context, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("eventbus.workers",
							"Number of delivery workers.",
							"They share the queue; each holds its own connections.",
							&settings.workers,
							1, 1, EB_MAX_WORKERS,
							postmaster_context, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("eventbus.retry_base_delay",
							"Delay before the first retry of a failed delivery.",
							"Later retries back off exponentially, with jitter.",
							&settings.retry_base_delay,
							1000, 1, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("eventbus.retry_max_delay",
							"Longest delay between two attempts of a delivery.",
							"Also bounds what a target asks for in Retry-After.",
							&settings.retry_max_delay,
							300 * 1000, 1, 24 * 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("eventbus.batch_size",
							"Most deliveries a worker claims in one transaction.",
							NULL,
							&settings.batch_size,
							100, 1, 10000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("eventbus.max_concurrent_requests",
							"Most HTTP requests a worker has in flight at once.",
							"Also bounds the connections it keeps open.",
							&settings.max_concurrent_requests,
							256, 1, 10000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("eventbus.max_concurrent_per_target",
							"Most HTTP requests a worker has in flight to one target.",
							"Keeps a slow or dead target from taking every slot.",
							&settings.max_concurrent_per_target,
							64, 1, 10000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("eventbus.poll_interval",
							"Longest sleep of an idle worker between looks at the queue.",
							"Commits that queue deliveries wake the workers at once.",
							&settings.poll_interval,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;
	worker_preloaded = true;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = eb_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = eb_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "pg_eventbus", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "eventbus_worker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "pg_eventbus delivery worker", BGW_MAXLEN);
	for (int i = 0; i < settings.workers; i++)
	{
		snprintf(worker.bgw_name, BGW_MAXLEN, "pg_eventbus delivery worker %d", i + 1);
		worker.bgw_main_arg = Int32GetDatum(i);
		RegisterBackgroundWorker(&worker);
	}
}

/* True when the library was loaded through shared_preload_libraries. */
bool
eventbus_workers_enabled(void)
{
	return worker_preloaded;
}

/*
 * Sets the latch of every running worker.  Only PGPROC numbers live in
 * shared memory; the latches are in the shared PGPROC array.
 */
void
eventbus_wake_workers_now(void)
{
	if (eb_shared == NULL)
		return;
	for (int i = 0; i < EB_MAX_WORKERS; i++)
	{
		int			procno = eb_shared->procno[i];

		if (procno >= 0 && procno < (int) ProcGlobal->allProcCount)
			SetLatch(&ProcGlobal->allProcs[procno].procLatch);
	}
}

/* Wakes the workers when a transaction that asked for it commits. */
static void
wake_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_at_commit)
			{
				wake_at_commit = false;
				eventbus_wake_workers_now();
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			wake_at_commit = false;
			break;
		default:
			break;
	}
}

/*
 * Arranges a wake-up at the commit of the current transaction.  The
 * callback is registered once per process and armed once per transaction.
 */
void
eventbus_wake_workers_at_commit(void)
{
	if (!worker_preloaded)
		return;
	if (!wake_callback_registered)
	{
		RegisterXactCallback(wake_xact_callback, NULL);
		wake_callback_registered = true;
	}
	wake_at_commit = true;
}

/* SQL: eventbus.wake_workers(), a wake-up when this transaction commits. */
Datum
eventbus_wake_workers(PG_FUNCTION_ARGS)
{
	eventbus_wake_workers_at_commit();
	PG_RETURN_VOID();
}

/* Leaves the shared slot (and an unfinished reconciliation) on exit. */
static void
worker_shmem_exit(int code, Datum arg)
{
	SpinLockAcquire(&eb_shared->mutex);
	eb_shared->procno[my_index] = -1;
	if (eb_shared->reconcile == RECONCILE_RUNNING &&
		eb_shared->reconciler == MyProcPid)
		eb_shared->reconcile = RECONCILE_NEEDED;
	SpinLockRelease(&eb_shared->mutex);
}

/* ------------------------------------------------------------------------
 * Crash reconciliation handshake (queue.c does the reconciling)
 * ------------------------------------------------------------------------
 */

/*
 * Takes the crash reconciliation when it is still needed (see
 * eb_queue_reconcile_leases); otherwise says whether another worker is at
 * it or it is done.
 */
EbReconcileTurn
eb_reconcile_take_turn(void)
{
	EbReconcileTurn turn;

	SpinLockAcquire(&eb_shared->mutex);
	if (eb_shared->reconcile == RECONCILE_NEEDED)
	{
		eb_shared->reconcile = RECONCILE_RUNNING;
		eb_shared->reconciler = MyProcPid;
		turn = EB_RECONCILE_MINE;
	}
	else if (eb_shared->reconcile == RECONCILE_DONE)
		turn = EB_RECONCILE_DONE;
	else
		turn = EB_RECONCILE_OTHER;
	SpinLockRelease(&eb_shared->mutex);
	return turn;
}

/* Records that the leases left by a crash are back in the queue. */
void
eb_reconcile_done(void)
{
	SpinLockAcquire(&eb_shared->mutex);
	eb_shared->reconcile = RECONCILE_DONE;
	SpinLockRelease(&eb_shared->mutex);
}

/* ------------------------------------------------------------------------
 * The loop
 * ------------------------------------------------------------------------
 */

/* Applies a changed configuration file. */
static void
reload_settings(void)
{
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	eb_http_set_limits(settings.max_concurrent_requests);
	ereport(LOG,
			(errmsg("pg_eventbus delivery worker reloaded its settings"),
			 errdetail("retry_base_delay=%dms retry_max_delay=%dms batch_size=%d max_concurrent_requests=%d max_concurrent_per_target=%d poll_interval=%dms",
					   settings.retry_base_delay, settings.retry_max_delay,
					   settings.batch_size, settings.max_concurrent_requests,
					   settings.max_concurrent_per_target,
					   settings.poll_interval)));
}

/* Milliseconds from now until `t`, at least 0, at most `cap`. */
static long
ms_until(TimestampTz t, long cap)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		ms;

	if (t <= now)
		return 0;
	ms = (t - now + 999) / 1000;
	return ms < cap ? (long) ms : cap;
}

/*
 * Exit callback of a worker: an ERROR (which ends a background worker),
 * SIGTERM, or anything else but a crash or postmaster death.  Returns the
 * deliveries the worker holds to the queue, due at once, rather than leave
 * them leased until their leases expire -- with several workers, only the
 * first to start after a crash returns everyone's leases.
 */
static void
worker_hand_back(int code, Datum arg)
{
	if (!PostmasterIsAlive())
		return;
	MemoryContextSwitchTo(TopMemoryContext);
	AbortOutOfAnyTransaction();
	eb_queue_hand_back_leases();
}

/*
 * The loop: claim -> send -> settle -> sleep, until SIGTERM or postmaster
 * death.
 */
static void
deliver_forever(void)
{
	TimestampTz next_due = 0;	/* 0: look at the queue now */
	bool		poked = true;

	for (;;)
	{
		WaitEvent	events[3];
		int			nevents;
		int			room;
		int			threshold;
		long		timeout;
		TimestampTz retry_at;
		int			settled;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
			reload_settings();

		/* claim and send, when there is room and a reason to look */
		threshold = Max(1, Min(settings.batch_size, settings.max_concurrent_requests) / 4);
		room = Min(settings.batch_size,
				   settings.max_concurrent_requests - eb_http_in_flight());
		if (room >= threshold &&
			(poked || next_due == 0 || next_due <= GetCurrentTimestamp()))
		{
			poked = false;
			eb_stats_worker_state(EB_WORKER_CLAIMING, eb_http_in_flight());
			next_due = eb_queue_claim_and_send(room);
			if (next_due == 0)
				next_due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   settings.poll_interval);
		}

		/* settle what has finished, while the new requests are on their way */
		eb_http_drive();
		eb_stats_worker_state(EB_WORKER_SETTLING, eb_http_in_flight());
		retry_at = eb_queue_settle_finished(&settled);
		if (retry_at != 0 && (next_due == 0 || retry_at < next_due))
			next_due = retry_at;
		if (settled > 0 && eb_queue_targets_saturated())
			next_due = 0;		/* slots of a busy target are free again */
		room = Min(settings.batch_size,
				   settings.max_concurrent_requests - eb_http_in_flight());

		/* sleep until a response, a libcurl timer, the next due row or a wake-up */
		timeout = settings.poll_interval;
		if (eb_http_in_flight() > 0 && eb_http_timeout_ms() >= 0)
			timeout = Min(timeout, eb_http_timeout_ms());
		if (room >= threshold)
			timeout = ms_until(next_due, timeout);
		eb_stats_worker_state(eb_http_in_flight() > 0 ? EB_WORKER_SENDING : EB_WORKER_IDLE,
							  eb_http_in_flight());
		eb_stats_save_periodically();
		nevents = WaitEventSetWait(wait_set, timeout, events, lengthof(events),
								   PG_WAIT_EXTENSION);
		for (int i = 0; i < nevents; i++)
		{
			if (events[i].events & WL_LATCH_SET)
			{
				ResetLatch(MyLatch);
				poked = true;
			}
		}
	}
}

/*
 * Entry point of a delivery worker.
 */
void
eventbus_worker_main(Datum main_arg)
{
	my_index = DatumGetInt32(main_arg);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(settings.database, NULL, 0);

	eb_queue_init();
	eb_http_init(settings.max_concurrent_requests);
	wait_set = CreateWaitEventSet(TopMemoryContext, 3);
	AddWaitEventToSet(wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(wait_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(wait_set, WL_SOCKET_READABLE, eb_http_wait_fd(), NULL, NULL);

	on_shmem_exit(worker_shmem_exit, (Datum) 0);
	SpinLockAcquire(&eb_shared->mutex);
	eb_shared->procno[my_index] = MyProc->pgprocno;
	SpinLockRelease(&eb_shared->mutex);
	eb_stats_worker_register(my_index);

	eb_queue_wait_for_extension();
	eb_queue_reconcile_leases();
	ereport(LOG,
			(errmsg("pg_eventbus delivery worker %d started in database \"%s\"",
					my_index + 1, settings.database)));

	/* from now on, an ERROR or SIGTERM hands its deliveries back first */
	before_shmem_exit(worker_hand_back, (Datum) 0);
	deliver_forever();
}
