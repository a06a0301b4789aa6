/*-------------------------------------------------------------------------
 *
 * saved_plan.c
 *	  Statements prepared once per backend and kept for its life, for the
 *	  publish trigger, put_event and the worker's queue alike; and the
 *	  transactions the delivery worker runs them in.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/snapmgr.h"

#include "saved_plan.h"

/*
 * Returns the saved plan in *plan, preparing and keeping it on first use, so
 * that a statement run on every publish or every worker loop is planned
 * once per backend.  Must be called inside SPI_connect().
 */
SPIPlanPtr
eb_saved_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

		if (p == NULL)
			elog(ERROR, "pg_eventbus: could not prepare \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "pg_eventbus: could not keep the plan of \"%s\"", sql);
		*plan = p;
	}
	return *plan;
}

/*
 * Starts a transaction with a snapshot and SPI, worker_spi style, for a
 * background process's statements; the activity is what pg_stat_activity
 * shows meanwhile.
 */
void
eb_xact_begin(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

/* Commits what eb_xact_begin() started and reports statistics (for autovacuum). */
void
eb_xact_commit(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}
