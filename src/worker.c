/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The delivery worker: a background worker that sends queued deliveries
 *	  to their targets over HTTP, with retries and a dead-letter table.
 *
 * This file registers the workers and runs their loop, which a reader can
 * follow from eb_worker_main():
 *
 *	  claim   take due rows of eventbus.deliveries under a lease (queue.c),
 *			  each built into its request (request.c) within its target's
 *			  share of the request slots (slots.c);
 *	  send    start their requests with libcurl multi (http.c); many run at
 *			  once.  Only this loop drives libcurl;
 *	  settle  as requests finish, record the results in one transaction
 *			  (queue.c): 2xx removes the row, a retryable failure schedules
 *			  the next attempt, anything else moves it to
 *			  eventbus.dead_letters;
 *	  sleep   on the latch, the HTTP sockets and the next due time.
 *
 * Claiming does not wait for a whole batch to finish: whenever requests
 * finish, their results are settled and free slots are refilled, so a slow
 * target never holds back a fast one.  Publishing backends wake the loop
 * through the shared slots of wake.c.
 *
 * Before its loop, a worker waits quietly for its database (when it does
 * not exist), then for the extension at this library's version.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "attempts.h"
#include "batch.h"
#include "connection.h"
#include "function_target.h"
#include "http.h"
#include "queue.h"
#include "request.h"
#include "settings.h"
#include "stats.h"
#include "wake.h"
#include "worker.h"

/* What the worker sleeps on: its latch, postmaster death, libcurl. */
static WaitEventSet *wait_set = NULL;

/* Finished without a request (event or target gone): settled next. */
static EbDelivery *local_done = NULL;

/* Has this process connected to eventbus.database? */
static bool connected = false;

static void deliver_forever(void) pg_attribute_noreturn();

/*
 * Requests the shared slots and registers eventbus.workers delivery
 * workers; from _PG_init(), while preloading.
 */
void
eb_worker_register(void)
{
	BackgroundWorker worker;

	eb_wake_request_shmem();

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "pg_eventbus", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "eb_worker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "pg_eventbus delivery worker", BGW_MAXLEN);
	for (int i = 0; i < eb_settings->workers; i++)
	{
		snprintf(worker.bgw_name, BGW_MAXLEN, "pg_eventbus delivery worker %d", i + 1);
		worker.bgw_main_arg = Int32GetDatum(i);
		RegisterBackgroundWorker(&worker);
	}
}

/* ------------------------------------------------------------------------
 * Start-up: the database
 * ------------------------------------------------------------------------
 */

/*
 * Exit callback set before connecting: a worker that could not connect
 * (its database does not exist) leaves word for the next start, which then
 * waits for the database without failing again.
 */
static void
note_connect_failure(int code, Datum arg)
{
	if (!connected)
		eb_wake_set_database_missing(true);
}

/*
 * Does the database exist?  Read with a plain scan of pg_database, as the
 * autovacuum launcher does: a process connected to no database can read
 * only the shared catalogs, and not through every index.
 */
static bool
database_exists(const char *name)
{
	Relation	rel = table_open(DatabaseRelationId, AccessShareLock);
	TableScanDesc scan = table_beginscan_catalog(rel, 0, NULL);
	HeapTuple	tuple;
	bool		found = false;

	while (!found && (tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
		found = (strcmp(NameStr(((Form_pg_database) GETSTRUCT(tuple))->datname), name) == 0);
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Waits, connected to no database, until eventbus.database exists; says so
 * once.  Then exits, to be started again (bgw_restart_time) and connect:
 * a process cannot connect to a database after connecting to none.
 */
static void
wait_for_database(void) pg_attribute_noreturn();

static void
wait_for_database(void)
{
	bool		said = false;

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	for (;;)
	{
		bool		exists;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		pgstat_report_activity(STATE_RUNNING, "pg_eventbus: waiting for the database");
		exists = database_exists(eb_settings->database);
		CommitTransactionCommand();
		pgstat_report_activity(STATE_IDLE, NULL);
		if (exists)
		{
			eb_wake_set_database_missing(false);
			ereport(LOG,
					(errmsg("pg_eventbus delivery worker found database \"%s\"; restarting to connect to it",
							eb_settings->database)));
			proc_exit(1);
		}
		if (!said && eb_wake_say_database_missing())
			ereport(LOG,
					(errmsg("pg_eventbus delivery worker is waiting for database \"%s\" to exist",
							eb_settings->database),
					 errhint("Create the database, or set eventbus.database to an existing one and restart the server.")));
		said = true;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(eb_settings->poll_interval, 1000), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
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
	eb_http_set_limits(eb_settings->max_concurrent_requests);
	ereport(LOG,
			(errmsg("pg_eventbus delivery worker reloaded its settings"),
			 errdetail("retry_base_delay=%dms retry_max_delay=%dms batch_size=%d max_concurrent_requests=%d max_concurrent_per_target=%d poll_interval=%dms",
					   eb_settings->retry_base_delay, eb_settings->retry_max_delay,
					   eb_settings->batch_size, eb_settings->max_concurrent_requests,
					   eb_settings->max_concurrent_per_target,
					   eb_settings->poll_interval)));
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

/* Claims up to `room` deliveries and starts their requests. */
static TimestampTz
claim_and_send(int room)
{
	EbDelivery *claimed;
	EbDelivery *next;
	EbDelivery *functions = NULL;
	bool		ready;
	int			nclaimed = 0;
	TimestampTz next_due;

	eb_stats_worker_state(EB_WORKER_CLAIMING, eb_http_in_flight());
	next_due = eb_queue_claim(room, &claimed, &ready);
	if (!ready)
	{
		/* the extension changed: finish what is under way, then wait */
		if (eb_http_in_flight() == 0 && local_done == NULL)
			eb_queue_wait_until_ready();
		return GetCurrentTimestamp();
	}
	for (EbDelivery *d = claimed; d != NULL; d = next)
	{
		next = d->next;
		nclaimed++;
		if (d->to_send && d->function != NULL)
		{
			/* called below, once the requests are on their way */
			d->next = functions;
			functions = d;
		}
		else if (d->to_send)
		{
			d->started_at = GetCurrentTimestamp();
			if (d->attempts == 1)
				eb_stats_count_first_attempt(d->target_key, d->published_at);
			eb_batch_started(d);	/* the other rows of a batch, if any */
			eb_http_submit(&d->http);
		}
		else
		{
			d->next = local_done;
			local_done = d;
		}
	}
	eb_stats_worker_claimed(nclaimed);
	/* let libcurl start the new requests right away */
	eb_http_drive();

	/* function targets: each called in a transaction of its own */
	for (EbDelivery *d = functions; d != NULL; d = next)
	{
		next = d->next;
		CHECK_FOR_INTERRUPTS();
		d->started_at = GetCurrentTimestamp();
		if (d->attempts == 1)
			eb_stats_count_first_attempt(d->target_key, d->published_at);
		eb_function_target_call(d);
		d->next = local_done;
		local_done = d;
		eb_http_drive();
	}
	return next_due;
}

/* Settles every finished delivery; returns the earliest retry time, or 0. */
static TimestampTz
settle_finished(int *settled)
{
	EbHttpRequest *req;
	EbDelivery *finished = local_done;

	local_done = NULL;
	*settled = 0;
	while ((req = eb_http_next_done()) != NULL)
	{
		EbDelivery *d = (EbDelivery *) req->owner;

		d->next = finished;
		finished = d;
	}
	for (EbDelivery *d = finished; d != NULL; d = d->next)
		(*settled)++;
	if (finished == NULL)
		return 0;
	eb_stats_worker_state(EB_WORKER_SETTLING, eb_http_in_flight());
	return eb_queue_settle(finished);
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
		eb_attempts_maintain_if_due();	/* until the maintenance process does */
		if (eb_connection_tick())	/* OAuth tokens (connection.c) */
			poked = true;

		/* claim and send, when there is room and a reason to look */
		threshold = Max(1, Min(eb_settings->batch_size,
							   eb_settings->max_concurrent_requests) / 4);
		room = Min(eb_settings->batch_size,
				   eb_settings->max_concurrent_requests - eb_http_in_flight());
		if (room >= threshold &&
			(poked || next_due == 0 || next_due <= GetCurrentTimestamp()))
		{
			poked = false;
			next_due = claim_and_send(room);
			if (next_due == 0)
				next_due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   eb_settings->poll_interval);
		}

		/* settle what has finished, while the new requests are on their way */
		eb_http_drive();
		retry_at = settle_finished(&settled);
		if (retry_at != 0 && (next_due == 0 || retry_at < next_due))
			next_due = retry_at;
		if (settled > 0 && eb_queue_targets_saturated())
			next_due = 0;		/* slots of a busy target are free again */
		room = Min(eb_settings->batch_size,
				   eb_settings->max_concurrent_requests - eb_http_in_flight());

		/* sleep until a response, a libcurl timer, the next due row or a wake-up */
		timeout = eb_settings->poll_interval;
		if (eb_http_in_flight() > 0 && eb_http_timeout_ms() >= 0)
			timeout = Min(timeout, eb_http_timeout_ms());
		if (room >= threshold)
			timeout = ms_until(next_due, timeout);
		eb_stats_worker_state(eb_http_in_flight() > 0 ? EB_WORKER_SENDING
							  : EB_WORKER_IDLE, eb_http_in_flight());
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
 * Entry point of a delivery worker: connect (or wait for the database),
 * wait for the extension at this library's version, put back leases left
 * by a crash, then loop.
 */
void
eb_worker_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	eb_wake_take_slot(DatumGetInt32(main_arg));
	eb_stats_worker_register(DatumGetInt32(main_arg));
	if (eb_wake_database_missing())
		wait_for_database();
	before_shmem_exit(note_connect_failure, (Datum) 0);
	BackgroundWorkerInitializeConnection(eb_settings->database, NULL, 0);
	connected = true;

	eb_queue_init();
	eb_http_init(eb_settings->max_concurrent_requests);
	wait_set = CreateWaitEventSet(TopMemoryContext, 3);
	AddWaitEventToSet(wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(wait_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(wait_set, WL_SOCKET_READABLE, eb_http_wait_fd(), NULL, NULL);

	eb_queue_wait_until_ready();
	eb_queue_reconcile_leases();
	ereport(LOG,
			(errmsg("pg_eventbus delivery worker %d started in database \"%s\"",
					DatumGetInt32(main_arg) + 1, eb_settings->database)));

	/* from now on, an ERROR or SIGTERM hands its deliveries back first */
	before_shmem_exit(worker_hand_back, (Datum) 0);
	deliver_forever();
}
