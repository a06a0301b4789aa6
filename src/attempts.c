/*-------------------------------------------------------------------------
 *
 * attempts.c
 *	  The attempt log: one row of eventbus.delivery_attempts per HTTP
 *	  attempt of a delivery, and the upkeep of its partitions.
 *
 * The settle of a batch of finished deliveries adds each attempt here
 * (eb_attempts_add), and the settle transaction inserts them all in one
 * set-based statement, prepared once (eb_attempts_flush): the log is
 * written exactly when the attempt's outcome is, or not at all.
 * eventbus.attempt_log chooses which attempts: those that did not deliver
 * (the default: what one looks for when a target misbehaves, at no cost
 * while targets answer 2xx), all of them, or none.
 *
 * A row holds what the request was (delivery and event id, bus, rule,
 * target, attempt number, when it started, how long it took) and what came
 * back (HTTP status, error code, the first kilobyte of the body as valid
 * text).  Nothing of the request itself is logged: its headers may carry
 * a target's secrets.
 *
 * The table is partitioned by day; eventbus.maintain_attempt_log() (SQL,
 * in the upgrade script) creates and drops the partitions.  Until the
 * extension's maintenance process calls it, the delivery worker does, when
 * it starts and then hourly (eb_attempts_maintain_if_due).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "attempts.h"
#include "policy.h"
#include "request.h"
#include "saved_plan.h"
#include "settings.h"

/* How often the worker keeps the log's partitions: hourly. */
#define EB_ATTEMPTS_MAINTAIN_INTERVAL_MS (3600 * 1000)

/* The replacement for a byte that is not part of a valid character. */
#define EB_UTF8_REPLACEMENT "\xEF\xBF\xBD"

/* The columns of a log row, in the insert's parameter order. */
enum
{
	A_DELIVERY_ID,
	A_EVENT_ID,
	A_BUS,
	A_RULE,
	A_TARGET_ID,
	A_ATTEMPT,
	A_STARTED_AT,
	A_DURATION,
	A_HTTP_STATUS,
	A_ERROR_CODE,
	A_EXCERPT,
	A_NCOLUMNS
};

static const Oid column_types[A_NCOLUMNS] = {
	INT8OID, UUIDOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, TIMESTAMPTZOID,
	INTERVALOID, INT4OID, TEXTOID, TEXTOID
};

static const char *const insert_sql =
"INSERT INTO eventbus.delivery_attempts (delivery_id, event_id, bus, rule,"
"  target_id, attempt, started_at, duration, http_status, error_code,"
"  response_excerpt)"
" SELECT * FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]),"
"   pg_catalog.unnest($2::pg_catalog.uuid[]),"
"   pg_catalog.unnest($3::pg_catalog.text[]),"
"   pg_catalog.unnest($4::pg_catalog.text[]),"
"   pg_catalog.unnest($5::pg_catalog.text[]),"
"   pg_catalog.unnest($6::pg_catalog.int4[]),"
"   pg_catalog.unnest($7::pg_catalog.timestamptz[]),"
"   pg_catalog.unnest($8::pg_catalog.interval[]),"
"   pg_catalog.unnest($9::pg_catalog.int4[]),"
"   pg_catalog.unnest($10::pg_catalog.text[]),"
"   pg_catalog.unnest($11::pg_catalog.text[]))";

static const char *const maintain_sql =
"SELECT pg_catalog.string_agg(m.action OPERATOR(pg_catalog.||) ' '"
"   OPERATOR(pg_catalog.||) m.partition_name OPERATOR(pg_catalog.||)"
"   coalesce(' (' OPERATOR(pg_catalog.||) m.moved_rows::pg_catalog.text"
"     OPERATOR(pg_catalog.||) ' rows)', ''), ', ')"
" FROM eventbus.maintain_attempt_log() m";

/* The rows of the current settle, in their own memory. */
static MemoryContext rows_ctx = NULL;
static int	nrows = 0;
static int	capacity = 0;
static Datum *values[A_NCOLUMNS];
static bool *nulls[A_NCOLUMNS];

static SPIPlanPtr insert_plan = NULL;
static TimestampTz last_maintained = 0;

PG_FUNCTION_INFO_V1(eventbus_attempt_retention_interval);

/*
 * The start of a response's body as text of the database encoding, or
 * NULL when no answer or no body came: at most EB_HTTP_EXCERPT_MAX bytes
 * of it, every byte that does not begin a valid character replaced
 * (U+FFFD in UTF-8, '?' in other encodings), NUL included, and a character
 * cut by the end of a full excerpt left out.  The one definition of a
 * response excerpt, for the attempt log and the dead letters alike.
 */
char *
eb_response_excerpt(const EbHttpRequest *req)
{
	int			encoding = GetDatabaseEncoding();
	const char *replacement = (encoding == PG_UTF8) ? EB_UTF8_REPLACEMENT : "?";
	const char *buf = req->excerpt;
	int			len = (int) req->excerpt_len;
	bool		full = (req->excerpt_len >= EB_HTTP_EXCERPT_MAX);
	StringInfoData out;
	int			i = 0;

	if (req->transport != EB_TRANSPORT_OK || len <= 0)
		return NULL;
	initStringInfo(&out);
	while (i < len)
	{
		int			n = pg_encoding_verifymbchar(encoding, buf + i, len - i);

		if (n > 0)
		{
			appendBinaryStringInfo(&out, buf + i, n);
			i += n;
			continue;
		}
		if (full && i + pg_encoding_mblen(encoding, buf + i) > len)
			break;				/* the excerpt's end cut this character */
		appendStringInfoString(&out, replacement);
		i++;
	}
	return out.data;
}

/* A fresh batch of rows: room for `n` more. */
static void
reserve_rows(int n)
{
	if (rows_ctx == NULL)
		rows_ctx = AllocSetContextCreate(TopMemoryContext, "pg_eventbus attempt log",
										 ALLOCSET_DEFAULT_SIZES);
	if (nrows + n <= capacity)
		return;
	capacity = Max(64, (nrows + n) * 2);
	for (int c = 0; c < A_NCOLUMNS; c++)
	{
		if (values[c] == NULL)
		{
			values[c] = MemoryContextAlloc(rows_ctx, sizeof(Datum) * capacity);
			nulls[c] = MemoryContextAlloc(rows_ctx, sizeof(bool) * capacity);
		}
		else
		{
			values[c] = repalloc(values[c], sizeof(Datum) * capacity);
			nulls[c] = repalloc(nulls[c], sizeof(bool) * capacity);
		}
	}
}

/* Text of the i-th field of a target key (bus \x1f rule \x1f target_id). */
static Datum
target_key_field(const char *key, int field)
{
	const char *start = key;
	const char *end;

	for (int i = 0; i < field && start != NULL; i++)
	{
		start = strchr(start, '\x1f');
		if (start != NULL)
			start++;
	}
	if (start == NULL)
		start = "";
	end = strchr(start, '\x1f');
	return PointerGetDatum(cstring_to_text_with_len(start,
													end ? end - start : (int) strlen(start)));
}

/*
 * Adds the attempt of a finished delivery, if one was made (a delivery
 * whose target or event is gone is settled without a request) and
 * eventbus.attempt_log records it.  The policy's classification decides
 * what a failure is, as it does for the settle.
 */
void
eb_attempts_add(const struct EbDelivery *d)
{
	const EbHttpRequest *req = &d->http;
	EbVerdict	verdict;
	MemoryContext old;
	Interval   *duration;
	pg_uuid_t  *event_id;
	char	   *excerpt;
	int			r;

	if ((!d->to_send && !d->batched) || eventbus_attempt_log == EB_ATTEMPT_LOG_OFF)
		return;
	verdict = eb_classify(req->transport, req->status);
	if (d->item_failed)
		verdict = EB_VERDICT_RETRY; /* listed in batchItemFailures */
	if (verdict == EB_VERDICT_SUCCESS && eventbus_attempt_log != EB_ATTEMPT_LOG_ALL)
		return;

	reserve_rows(1);
	old = MemoryContextSwitchTo(rows_ctx);
	r = nrows++;
	for (int c = 0; c < A_NCOLUMNS; c++)
		nulls[c][r] = false;
	values[A_DELIVERY_ID][r] = Int64GetDatum(d->id);
	event_id = palloc(sizeof(pg_uuid_t));
	memcpy(event_id, &d->event_id, sizeof(pg_uuid_t));
	values[A_EVENT_ID][r] = UUIDPGetDatum(event_id);
	values[A_BUS][r] = target_key_field(d->target_key, 0);
	values[A_RULE][r] = target_key_field(d->target_key, 1);
	values[A_TARGET_ID][r] = target_key_field(d->target_key, 2);
	values[A_ATTEMPT][r] = Int32GetDatum(d->attempts);
	values[A_STARTED_AT][r] = TimestampTzGetDatum(d->started_at);
	duration = palloc0(sizeof(Interval));
	duration->time = (TimeOffset) (req->seconds * USECS_PER_SEC + 0.5);
	values[A_DURATION][r] = IntervalPGetDatum(duration);
	if (req->transport == EB_TRANSPORT_OK)
		values[A_HTTP_STATUS][r] = Int32GetDatum((int32) req->status);
	else
		nulls[A_HTTP_STATUS][r] = true;
	if (verdict == EB_VERDICT_SUCCESS)
		nulls[A_ERROR_CODE][r] = true;
	else
		values[A_ERROR_CODE][r] =
			CStringGetTextDatum(d->item_failed ? EB_ERR_BATCH_ITEM_FAILURE :
								eb_error_code(req->transport, req->status));
	excerpt = eb_response_excerpt(req);
	if (excerpt != NULL)
		values[A_EXCERPT][r] = CStringGetTextDatum(excerpt);
	else
		nulls[A_EXCERPT][r] = true;
	MemoryContextSwitchTo(old);
}

/*
 * Inserts the rows added since the last call in one statement, planned
 * once; then forgets them.  Runs inside the settle transaction, so the log
 * says an attempt was made exactly when the queue says so.
 */
void
eb_attempts_flush(void)
{
	Oid			argtypes[A_NCOLUMNS];
	Datum		args[A_NCOLUMNS];

	if (nrows == 0)
		return;
	for (int c = 0; c < A_NCOLUMNS; c++)
	{
		int16		typlen;
		bool		typbyval;
		char		typalign;
		int			dims[1] = {nrows};
		int			lbs[1] = {1};

		argtypes[c] = get_array_type(column_types[c]);
		get_typlenbyvalalign(column_types[c], &typlen, &typbyval, &typalign);
		args[c] = PointerGetDatum(construct_md_array(values[c], nulls[c], 1, dims, lbs,
													 column_types[c], typlen,
													 typbyval, typalign));
	}
	if (SPI_execute_plan(eb_saved_plan(&insert_plan, insert_sql,
											 A_NCOLUMNS, argtypes),
						 args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "pg_eventbus: could not write the attempt log");

	/* the rows and their arrays go; the next batch starts afresh */
	nrows = 0;
	capacity = 0;
	MemoryContextReset(rows_ctx);
	for (int c = 0; c < A_NCOLUMNS; c++)
	{
		values[c] = NULL;
		nulls[c] = NULL;
	}
}

/*
 * Keeps the attempt log's partitions, in a transaction of its own, when
 * the worker starts and then once an hour: a day's partition exists two
 * days ahead, so an hour late is never late.  Says in the log what it did,
 * when it did something.  A failure is a WARNING, not the worker's end:
 * deliveries matter more than the log's upkeep, and a row that finds no
 * partition waits in the default one.
 */
void
eb_attempts_maintain_if_due(void)
{
	TimestampTz now = GetCurrentTimestamp();
	MemoryContext caller = CurrentMemoryContext;
	char	   *done = NULL;

	if (last_maintained != 0 &&
		!TimestampDifferenceExceeds(last_maintained, now,
									EB_ATTEMPTS_MAINTAIN_INTERVAL_MS))
		return;
	last_maintained = now;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		bool		isnull;
		Datum		v;

		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "pg_eventbus: keeping the attempt log");
		if (SPI_execute(maintain_sql, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "pg_eventbus: could not keep the attempt log");
		v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			done = MemoryContextStrdup(TopMemoryContext, TextDatumGetCString(v));
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		/* say why, forget the error, roll back, and go on delivering */
		MemoryContextSwitchTo(caller);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(WARNING,
				(errmsg("pg_eventbus delivery worker could not keep the attempt log"),
				 errdetail("The error above stopped eventbus.maintain_attempt_log(); the worker tries again in an hour."),
				 errhint("Call eventbus.maintain_attempt_log() to see the error and retry.")));
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);

	if (done != NULL)
	{
		ereport(LOG,
				(errmsg("pg_eventbus delivery worker kept the attempt log"),
				 errdetail("%s.", done)));
		pfree(done);
	}
}

/*
 * eventbus.attempt_retention() RETURNS interval: the setting as an
 * interval, for eventbus.maintain_attempt_log(); the setting's one
 * definition is in settings.c, whatever loaded the library.
 */
Datum
eventbus_attempt_retention_interval(PG_FUNCTION_ARGS)
{
	Interval   *result = palloc0(sizeof(Interval));

	result->day = eventbus_attempt_retention / (24 * 60);
	result->time = (TimeOffset) (eventbus_attempt_retention % (24 * 60)) * 60 * USECS_PER_SEC;
	PG_RETURN_INTERVAL_P(result);
}
