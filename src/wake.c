/*-------------------------------------------------------------------------
 *
 * wake.c
 *	  The delivery workers' shared slots, and waking the workers from any
 *	  backend: at once, or when the transaction that queued deliveries
 *	  commits (eventbus.wake_workers() from SQL).
 *
 * Shared memory holds only the workers' PGPROC numbers (so that any
 * backend can set their latches) and whether leases left by a crash have
 * been put back into the queue since shared memory was set up.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "settings.h"
#include "wake.h"

PG_FUNCTION_INFO_V1(eventbus_wake_workers);

/* State of the crash reconciliation, in shared memory. */
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
	bool		database_missing;	/* a worker could not connect */
	bool		database_missing_said;	/* and one said so in the log */
	int			procno[EB_MAX_WORKERS]; /* PGPROC number, or -1 */
} EbShared;

static EbShared *eb_shared = NULL;
static bool workers_preloaded = false;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Wake-at-commit bookkeeping of any backend. */
static bool wake_callback_registered = false;
static bool wake_at_commit = false;

/* The slot of this process, when it is a delivery worker. */
static int	my_slot = -1;

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
		eb_shared->database_missing = false;
		eb_shared->database_missing_said = false;
		for (int i = 0; i < EB_MAX_WORKERS; i++)
			eb_shared->procno[i] = -1;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Installs the shared memory hooks; only while preloading. */
void
eb_wake_request_shmem(void)
{
	workers_preloaded = true;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = eb_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = eb_shmem_startup;
}

/* True when the library was loaded through shared_preload_libraries. */
bool
eb_wake_workers_enabled(void)
{
	return workers_preloaded;
}

/*
 * Sets the latch of every running worker.  Only PGPROC numbers live in
 * shared memory; the latches are in the shared PGPROC array.
 */
void
eb_wake_now(void)
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
				eb_wake_now();
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
eb_wake_at_commit(void)
{
	if (!workers_preloaded)
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
	eb_wake_at_commit();
	PG_RETURN_VOID();
}

/* Leaves the worker's slot (and an unfinished reconciliation) on exit. */
static void
leave_slot(int code, Datum arg)
{
	SpinLockAcquire(&eb_shared->mutex);
	eb_shared->procno[my_slot] = -1;
	if (eb_shared->reconcile == RECONCILE_RUNNING &&
		eb_shared->reconciler == MyProcPid)
		eb_shared->reconcile = RECONCILE_NEEDED;
	SpinLockRelease(&eb_shared->mutex);
}

/*
 * Makes this delivery worker wakeable: its PGPROC number goes into slot
 * `index` (its bgw_main_arg) and leaves it when the process exits.
 */
void
eb_wake_take_slot(int index)
{
	Assert(index >= 0 && index < EB_MAX_WORKERS);
	my_slot = index;
	on_shmem_exit(leave_slot, (Datum) 0);
	SpinLockAcquire(&eb_shared->mutex);
	eb_shared->procno[my_slot] = MyProc->pgprocno;
	SpinLockRelease(&eb_shared->mutex);
}

/*
 * Takes the crash reconciliation when it is still needed; otherwise says
 * whether another worker is at it or it is done.
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

/*
 * Records whether eventbus.database is missing (a worker failed to connect
 * to it), so that the workers' next starts wait for it quietly.
 */
void
eb_wake_set_database_missing(bool missing)
{
	SpinLockAcquire(&eb_shared->mutex);
	eb_shared->database_missing = missing;
	if (!missing)
		eb_shared->database_missing_said = false;
	SpinLockRelease(&eb_shared->mutex);
}

/* Did a worker fail to connect to eventbus.database? */
bool
eb_wake_database_missing(void)
{
	bool		missing;

	SpinLockAcquire(&eb_shared->mutex);
	missing = eb_shared->database_missing;
	SpinLockRelease(&eb_shared->mutex);
	return missing;
}

/*
 * True for the first worker to ask while the database is missing: it says
 * so in the log, the others and later starts stay quiet.
 */
bool
eb_wake_say_database_missing(void)
{
	bool		say;

	SpinLockAcquire(&eb_shared->mutex);
	say = !eb_shared->database_missing_said;
	eb_shared->database_missing_said = true;
	SpinLockRelease(&eb_shared->mutex);
	return say;
}
