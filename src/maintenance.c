/*-------------------------------------------------------------------------
 *
 * maintenance.c
 *	  The maintenance process ("pg_eventbus maintenance"), one per server,
 *	  beside the delivery workers and never in their loop: it runs
 *	  eventbus.maintenance() every eventbus.maintenance_interval (create
 *	  the partitions of eventbus.events ahead, drop the expired ones) and,
 *	  about once a second, fires the scheduled rules that are due and
 *	  carries running replays on, one batch per transaction.  The work
 *	  itself is SQL (pg_eventbus--0.1.0--0.2.0.sql, "Archive, retention
 *	  and replay" and "Schedules"), so that an operator or a test
 *	  calling eventbus.maintenance(as_of) runs exactly what this process
 *	  runs.
 *
 *	  Also the SQL helpers of that SQL: eventbus.event_retention as an
 *	  interval, and new event ids for replayed events.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "event_id.h"
#include "maintenance.h"
#include "request.h"
#include "settings.h"

PG_FUNCTION_INFO_V1(eventbus_event_retention_setting);
PG_FUNCTION_INFO_V1(eventbus_new_event_id);

/* How often the process looks for replays to carry on, in ms. */
#define EB_REPLAY_POLL_MS 1000

/* Most replay batches in a row before the process looks at its latch. */
#define EB_REPLAY_BATCHES_PER_ROUND 100

static const char *const ready_sql =
"SELECT e.extversion OPERATOR(pg_catalog.=) '" EB_VERSION "'"
" FROM pg_catalog.pg_extension e"
" WHERE e.extname OPERATOR(pg_catalog.=) 'pg_eventbus'";
static const char *const maintenance_sql =
"SELECT pg_catalog.count(*) FROM eventbus.maintenance()";
static const char *const replay_sql =
"SELECT eventbus.replay_step()";
static const char *const schedule_sql =
"SELECT eventbus.schedule_step()";

/*
 * eventbus.event_retention_setting() RETURNS interval: the setting as the
 * SQL side uses it, NULL for 0 (keep forever).  The one reader of the
 * setting in SQL, so that its unit and its "forever" live here only.
 */
Datum
eventbus_event_retention_setting(PG_FUNCTION_ARGS)
{
	Interval   *result;

	if (eventbus_event_retention == 0)
		PG_RETURN_NULL();
	result = palloc0(sizeof(Interval));
	result->time = (int64) eventbus_event_retention * USECS_PER_SEC;
	PG_RETURN_INTERVAL_P(result);
}

/*
 * eventbus.new_event_id() RETURNS uuid: a new event id, made as put_event
 * makes them (event_id.c), for the events a replay publishes again.
 */
Datum
eventbus_new_event_id(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

	eb_new_event_id(id);
	PG_RETURN_UUID_P(id);
}

/*
 * Registers the maintenance process; from _PG_init(), while preloading.
 * It restarts a while after an exit (a missing database, say), like the
 * delivery workers.
 */
void
eb_maintenance_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	strlcpy(worker.bgw_library_name, "pg_eventbus", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "eb_maintenance_main", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "pg_eventbus maintenance", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "pg_eventbus maintenance", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/*
 * Runs `sql` (which returns one row of one column) in a transaction of its
 * own and returns that column as a bool (a count: true when not 0); false
 * when it returned no row or NULL.  An ERROR is logged and rolled back
 * here, so that one failed run (a lock not granted, a replay whose bus was
 * deleted) does not end the process: that is the cleanup PG_TRY is for.
 */
static bool
run_step(const char *sql, const char *activity)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	volatile bool result = false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, activity);
	PG_TRY();
	{
		int			ret;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		PushActiveSnapshot(GetTransactionSnapshot());
		ret = SPI_execute(sql, false, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "pg_eventbus maintenance: \"%s\" failed: %s", sql,
				 SPI_result_code_string(ret));
		if (SPI_processed == 1)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull)
				result = SPI_gettypeid(SPI_tuptable->tupdesc, 1) == BOOLOID
					? DatumGetBool(d) : DatumGetInt64(d) != 0;
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		result = false;
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	return result;
}

/* Is the extension installed at this library's version? */
static bool
extension_ready(void)
{
	return run_step(ready_sql, "pg_eventbus maintenance: checking for the extension");
}

/*
 * Entry point of the maintenance process: connect, then loop: maintenance
 * when it is due, due schedules, replays while they have work, sleep.
 */
void
eb_maintenance_main(Datum main_arg)
{
	TimestampTz next_maintenance = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(eb_settings->database, NULL, 0);
	ereport(LOG,
			(errmsg("pg_eventbus maintenance started in database \"%s\"",
					eb_settings->database)));

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		if (extension_ready())
		{
			TimestampTz now = GetCurrentTimestamp();

			if (now >= next_maintenance)
			{
				(void) run_step(maintenance_sql, "pg_eventbus maintenance: partitions");
				next_maintenance = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															   eventbus_maintenance_interval);
			}
			/* due schedules: an index probe; at most a batch of rules per step */
			for (int i = 0; i < EB_REPLAY_BATCHES_PER_ROUND; i++)
			{
				CHECK_FOR_INTERRUPTS();
				if (!run_step(schedule_sql, "pg_eventbus maintenance: schedules"))
					break;
			}
			for (int i = 0; i < EB_REPLAY_BATCHES_PER_ROUND; i++)
			{
				CHECK_FOR_INTERRUPTS();
				if (!run_step(replay_sql, "pg_eventbus maintenance: replay"))
					break;
			}
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 EB_REPLAY_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
