/*-------------------------------------------------------------------------
 *
 * queue.c
 *	  The delivery queue: claiming due rows of eventbus.deliveries, starting
 *	  their requests, and settling the results.
 *
 * This is the side of the delivery worker that talks to the database; the
 * loop that drives it (worker.c) only decides when to claim, settle and
 * sleep.  Every step is one short transaction of set-based statements,
 * prepared once for the life of the worker:
 *
 *	  claim   take due rows (FOR UPDATE SKIP LOCKED) under a lease:
 *			  leased_until and next_attempt_at move to the lease's end, so
 *			  rows held by a worker that dies go back to the queue by
 *			  themselves; rows of a target at its limit of requests in
 *			  flight are skipped or handed straight back;
 *	  send    build each row's request and hand it to http.c;
 *	  settle  record finished requests: 2xx removes the row, a retryable
 *			  failure schedules the next attempt (policy.c decides), anything
 *			  else moves it to eventbus.dead_letters.  The lease is the
 *			  token: a row leased again meanwhile is left alone.
 *
 * At start-up, the worker waits here for CREATE EXTENSION and puts leases
 * left by a crash back into the queue before it claims anything.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "lib/ilist.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "envelope.h"
#include "http.h"
#include "pg_eventbus.h"
#include "policy.h"
#include "queue.h"
#include "stats.h"
#include "worker_internal.h"

#define EB_USER_AGENT "User-Agent: pg_eventbus/0.2.0"

/* A lease lasts the target's timeout plus this margin for settling. */
#define EB_LEASE_MARGIN "30 seconds"

/*
 * One delivery in flight.  The HTTP request comes first, so that a finished
 * request leads back to its delivery.
 */
typedef struct Delivery
{
	EbHttpRequest http;
	int64		id;
	ItemPointerData tid;		/* where the claimed row version is */
	TimestampTz lease;			/* leased_until: the token settle checks */
	int			attempts;		/* including the one in flight */
	int			max_retry_attempts;
	int64		max_event_age_ms;
	bool		has_event;
	TimestampTz published_at;
	char	   *endpoint;
	char	   *target_key;		/* key of target_load, or NULL */
	struct Delivery *next;		/* in local_done */
	dlist_node	live_node;		/* in live_deliveries, until freed */
} Delivery;

/* Requests in flight per target (bus, rule, target_id). */
#define TARGET_KEY_LEN 400
typedef struct TargetLoad
{
	char		key[TARGET_KEY_LEN];
	int			in_flight;
} TargetLoad;

/* The queue's state in this worker, in long-lived memory. */
static MemoryContext batch_ctx = NULL;	/* reset after each transaction */
static MemoryContext request_ctx = NULL;	/* deliveries, freed one by one */
static Delivery *local_done = NULL;	/* finished without a request */
/* every delivery not yet settled, to hand back if the worker fails */
static dlist_head live_deliveries = DLIST_STATIC_INIT(live_deliveries);
static HTAB *target_load = NULL;
static bool targets_saturated = false;	/* last claim skipped some */
static bool extension_logged = false;

/* Prepared statements, kept across transactions. */
static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr release_plan = NULL;
static SPIPlanPtr next_due_plan = NULL;
static SPIPlanPtr done_plan = NULL;
static SPIPlanPtr retry_plan = NULL;
static SPIPlanPtr dead_plan = NULL;

/*
 * Claims up to $1 due deliveries, skipping targets that already have as
 * many requests in flight as allowed ($2: their keys, bus, rule and
 * target_id separated by \x1f).  A filter rather than a join, so that the
 * scan stays an ordered index scan that stops at the limit; the target
 * comes along with each row (one lookup), and the later statements find
 * the locked rows again by ctid rather than through an index.  Rows whose
 * target no longer exists go straight to the dead-letter table
 * (TargetDeleted); the others are leased and returned with everything
 * needed to send them.
 */
static const char *const claim_sql =
"WITH due AS ("
"  SELECT d.ctid AS row_ctid, t.target_id IS NULL AS gone, t.endpoint,"
"    t.http_method, t.headers, t.max_retry_attempts, t.max_event_age, t.timeout"
"  FROM eventbus.deliveries d"
"  LEFT JOIN eventbus.targets t"
"    ON t.bus = d.bus AND t.rule = d.rule AND t.target_id = d.target_id"
"  WHERE d.next_attempt_at <= now()"
"    AND (cardinality($2) = 0"
"      OR d.bus || E'\\x1f' || d.rule || E'\\x1f' || d.target_id <> ALL ($2::text[]))"
"  ORDER BY d.next_attempt_at"
"  LIMIT $1"
"  FOR UPDATE OF d SKIP LOCKED"
"), orphans AS ("
"  DELETE FROM eventbus.deliveries d USING due"
"  WHERE d.ctid = due.row_ctid AND due.gone"
"  RETURNING d.*"
"), orphans_dead AS ("
"  INSERT INTO eventbus.dead_letters (event_id, event, bus, rule, target_id,"
"    error_code, error_message, http_status, attempts, exhausted_condition,"
"    first_attempt_at)"
"  SELECT o.event_id,"
"    coalesce(eventbus.envelope(e), jsonb_build_object('id', o.event_id)),"
"    o.bus, o.rule, o.target_id, '" EB_ERR_TARGET_DELETED "',"
"    format('target %s of rule %s on bus %s no longer exists',"
"      o.target_id, o.rule, o.bus),"
"    o.last_http_status, o.attempts, '" EB_EXHAUSTED_TARGET_DELETED "',"
"    o.first_attempt_at"
"  FROM orphans o LEFT JOIN eventbus.events e ON e.id = o.event_id"
"), leased AS ("
"  UPDATE eventbus.deliveries d"
"  SET attempts = d.attempts + 1,"
"    first_attempt_at = coalesce(d.first_attempt_at, now()),"
"    leased_until = now() + due.timeout + interval '" EB_LEASE_MARGIN "',"
"    next_attempt_at = now() + due.timeout + interval '" EB_LEASE_MARGIN "'"
"  FROM due"
"  WHERE d.ctid = due.row_ctid AND NOT due.gone"
"  RETURNING d.id, d.ctid AS row_tid, d.event_id, d.bus, d.rule, d.target_id, d.attempts,"
"    d.leased_until, due.endpoint, due.http_method, due.headers,"
"    due.max_retry_attempts, due.max_event_age, due.timeout"
")"
"SELECT l.id, l.row_tid, l.attempts, l.leased_until, l.endpoint, l.http_method,"
"  CASE WHEN l.headers <> '{}' THEN"
"    (SELECT string_agg(CASE WHEN h.value = '' THEN h.key || ';'"
"                       ELSE h.key || ': ' || h.value END, E'\\n')"
"     FROM jsonb_each_text(l.headers) h) END,"
"  l.max_retry_attempts,"
"  (extract(epoch FROM l.max_event_age) * 1000)::bigint,"
"  (extract(epoch FROM l.timeout) * 1000)::bigint,"
"  e.published_at, l.bus, l.rule, l.target_id,"
"  e.id, e.detail_type, e.source, e.account, e.\"time\", e.region,"
"  e.resources, e.detail, e.replay_name"
" FROM leased l LEFT JOIN eventbus.events e ON e.id = l.event_id";

/* Columns of the claim's result. */
enum
{
	CLAIM_ID = 1,
	CLAIM_TID,
	CLAIM_ATTEMPTS,
	CLAIM_LEASE,
	CLAIM_ENDPOINT,
	CLAIM_METHOD,
	CLAIM_HEADERS,
	CLAIM_MAX_RETRY_ATTEMPTS,
	CLAIM_MAX_EVENT_AGE_MS,
	CLAIM_TIMEOUT_MS,
	CLAIM_PUBLISHED_AT,
	CLAIM_BUS,
	CLAIM_RULE,
	CLAIM_TARGET_ID,
	CLAIM_EVENT					/* the event's columns, in EbEventColumn order */
};

/* When the next row becomes due (rows leased by anyone included). */
static const char *const next_due_sql =
"SELECT min(next_attempt_at) FROM eventbus.deliveries";

/*
 * The statements that follow a claim find their rows in ways that leave
 * the planner no choice, whatever the statistics said when the plan was
 * made (plans last for the life of the worker, and autovacuum often sees
 * the queue empty): otherwise a join of the batch with the queue may be
 * planned as a hash join over the whole primary key.  Each checks that the
 * row is still the one claimed, under the same lease: a row leased again
 * or handed back meanwhile is left alone, one deleted meanwhile (its
 * target deleted) is gone.
 *
 * Delivered rows, the hot path, are looked up by id in a lateral subquery
 * (a nested loop of index probes) and deleted by ctid in one TID scan.
 * The colder statements go to each row by the ctid the claim returned;
 * their check is a filter (IS NOT DISTINCT FROM) rather than a join clause,
 * so that the ctid is the only way to the row.
 */

/*
 * Claimed rows of a target that reached its limit in the same claim: back
 * to the queue untouched, as if never claimed.
 */
static const char *const release_sql =
"UPDATE eventbus.deliveries d"
" SET attempts = d.attempts - 1, leased_until = NULL, next_attempt_at = now(),"
"   first_attempt_at = CASE WHEN d.attempts = 1 THEN NULL"
"                      ELSE d.first_attempt_at END"
" FROM unnest($1::bigint[], $2::tid[]) AS s(id, tid)"
" WHERE d.ctid = s.tid AND d.id IS NOT DISTINCT FROM s.id";

/* Delivered: the row goes away, if it is still ours. */
static const char *const done_sql =
"DELETE FROM eventbus.deliveries"
" WHERE ctid = ANY (ARRAY("
"   SELECT r.ctid"
"   FROM unnest($1::bigint[], $2::timestamptz[]) AS s(id, lease),"
"     LATERAL (SELECT d.ctid, d.leased_until FROM eventbus.deliveries d"
"              WHERE d.id = s.id OFFSET 0) r"
"   WHERE r.leased_until = s.lease))";

/* Failed, to be retried: back in the queue at the given time. */
static const char *const retry_sql =
"UPDATE eventbus.deliveries d"
" SET next_attempt_at = s.next, leased_until = NULL,"
"   last_error = s.err, last_http_status = s.status"
" FROM unnest($1::bigint[], $2::tid[], $3::timestamptz[], $4::timestamptz[],"
"   $5::text[], $6::int[]) AS s(id, tid, lease, next, err, status)"
" WHERE d.ctid = s.tid"
"   AND (d.id, d.leased_until) IS NOT DISTINCT FROM (s.id, s.lease)";

/* Failed for good: moved to the dead-letter table. */
static const char *const dead_sql =
"WITH s AS ("
"  SELECT * FROM unnest($1::bigint[], $2::tid[], $3::timestamptz[], $4::text[],"
"    $5::text[], $6::int[], $7::text[], $8::text[], $9::text[])"
"    AS s(id, tid, lease, code, msg, status, excerpt, cond, endpoint)"
"), gone AS ("
"  DELETE FROM eventbus.deliveries d USING s"
"  WHERE d.ctid = s.tid"
"    AND (d.id, d.leased_until) IS NOT DISTINCT FROM (s.id, s.lease)"
"  RETURNING d.event_id, d.bus, d.rule, d.target_id, d.attempts,"
"    d.first_attempt_at, s.code, s.msg, s.status, s.excerpt, s.cond, s.endpoint"
")"
"INSERT INTO eventbus.dead_letters (event_id, event, bus, rule, target_id,"
"  endpoint, error_code, error_message, http_status, response_excerpt,"
"  attempts, exhausted_condition, first_attempt_at)"
"SELECT g.event_id,"
"  coalesce(eventbus.envelope(e), jsonb_build_object('id', g.event_id)),"
"  g.bus, g.rule, g.target_id, g.endpoint, g.code, g.msg, g.status,"
"  g.excerpt, g.attempts, g.cond, g.first_attempt_at"
" FROM gone g LEFT JOIN eventbus.events e ON e.id = g.event_id";

/* Leases left by a crash: back to the queue now. */
static const char *const reconcile_sql =
"UPDATE eventbus.deliveries SET leased_until = NULL, next_attempt_at = now()"
" WHERE leased_until IS NOT NULL";

/* ------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------
 */

/*
 * Sets the session up for the queue's statements and creates the queue's
 * memory.  Runs once, right after the worker connects to its database.
 */
void
eb_queue_init(void)
{
	HASHCTL		ctl;

	/* a lost settle only means a resend: no need to wait for the WAL flush */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * The statements are written for index scans driven by the few rows of a
	 * batch, whatever the statistics said when they were planned (the queue
	 * is often empty then): plan them once, never as sequential scans, and
	 * take the queue in next_attempt_at order from its index, never sorted.
	 */
	SetConfigOption("plan_cache_mode", "force_generic_plan", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("enable_seqscan", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("enable_sort", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * A large backlog makes the claim's estimated cost large enough for JIT,
	 * which would then compile its expressions at every execution: more
	 * than half the worker's time, for statements that touch a few hundred
	 * rows.
	 */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	batch_ctx = AllocSetContextCreate(TopMemoryContext, "pg_eventbus batch",
									  ALLOCSET_DEFAULT_SIZES);
	request_ctx = AllocSetContextCreate(TopMemoryContext, "pg_eventbus requests",
										ALLOCSET_DEFAULT_SIZES);
	ctl.keysize = TARGET_KEY_LEN;
	ctl.entrysize = sizeof(TargetLoad);
	target_load = hash_create("pg_eventbus target load", 64, &ctl,
							  HASH_ELEM | HASH_STRINGS);
}

/* ------------------------------------------------------------------------
 * Transactions and SPI helpers
 * ------------------------------------------------------------------------
 */

/* Starts a transaction with a snapshot and SPI, worker_spi style. */
static void
begin_xact(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

/* Commits, reports statistics (for autovacuum) and forgets the batch. */
static void
commit_xact(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextReset(batch_ctx);
}

/* A one-dimensional array of the given element type, with NULLs. */
static Datum
make_array(Datum *elems, bool *nulls, int n, Oid elemtype)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
											  elemtype, typlen, typbyval,
											  typalign));
}

/* Is the extension installed in this database? Needs a transaction. */
static bool
extension_installed(void)
{
	return OidIsValid(get_extension_oid("pg_eventbus", true));
}

/* ------------------------------------------------------------------------
 * Start-up: wait for the extension, reconcile leases left by a crash
 * ------------------------------------------------------------------------
 */

/*
 * Sleeps until CREATE EXTENSION pg_eventbus has run in our database (whose
 * install script wakes us), saying so once in the log.
 */
void
eb_queue_wait_for_extension(void)
{
	for (;;)
	{
		bool		installed;

		begin_xact("pg_eventbus: checking for the extension");
		installed = extension_installed();
		commit_xact();
		if (installed)
		{
			if (extension_logged)
				ereport(LOG,
						(errmsg("pg_eventbus delivery worker found the extension in database \"%s\"; starting deliveries",
								eb_settings->database)));
			extension_logged = false;
			return;
		}
		eb_stats_worker_state(EB_WORKER_WAITING_FOR_EXTENSION, 0);
		if (!extension_logged)
			ereport(LOG,
					(errmsg("pg_eventbus delivery worker is waiting for CREATE EXTENSION pg_eventbus in database \"%s\"",
							eb_settings->database)));
		extension_logged = true;

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

/*
 * Puts rows leased before a crash back into the queue.  Done by the first
 * worker to start after shared memory was (re)initialized, before any
 * worker claims; when there is a single worker, every lease is its own, so
 * it does so at every start.
 */
void
eb_queue_reconcile_leases(void)
{
	bool		mine = false;

	for (;;)
	{
		EbReconcileTurn turn = eb_reconcile_take_turn();

		mine = (turn == EB_RECONCILE_MINE);
		if (turn != EB_RECONCILE_OTHER)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	if (mine || eb_settings->workers == 1)
	{
		uint64		n;

		begin_xact("pg_eventbus: returning leases left by a restart");
		if (SPI_execute(reconcile_sql, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "pg_eventbus: could not reconcile leases");
		n = SPI_processed;
		commit_xact();
		if (n > 0)
			ereport(LOG,
					(errmsg("pg_eventbus delivery worker returned %llu leased deliveries to the queue",
							(unsigned long long) n),
					 errdetail("They were in flight when a worker stopped; they will be sent again.")));
	}

	if (mine)
		eb_reconcile_done();
}

/* ------------------------------------------------------------------------
 * claim -> send
 * ------------------------------------------------------------------------
 */

/* Adds "Name: value" unless the target's own headers set that name. */
static void
add_default_header(Delivery *d, const char *line, const char *target_headers)
{
	const char *colon = strchr(line, ':');
	size_t		namelen = colon - line;
	const char *p = target_headers;

	while (p != NULL && *p != '\0')
	{
		if (pg_strncasecmp(p, line, namelen) == 0 &&
			(p[namelen] == ':' || p[namelen] == ';'))
			return;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	eb_http_add_header(&d->http, line);
}

/*
 * Builds the request of a claimed row and sends it; `bus`, `rule` and
 * `target_id` are the row's, `target_key` their target_load key.
 */
static void
start_delivery(HeapTuple tuple, TupleDesc desc, const char *target_key,
			   const char *bus, const char *rule, const char *target_id)
{
	MemoryContext old;
	Delivery   *d;
	bool		isnull;
	char	   *headers;
	Datum		event[EB_EV_NCOLUMNS];
	bool		event_null[EB_EV_NCOLUMNS];
	char	   *body = NULL;
	int			body_len = 0;
	char		webhook_id[EB_WEBHOOK_ID_LEN];
	char		line[128];

	/*
	 * The body and the webhook-id first, in the claim's memory: printing
	 * jsonb leaves litter behind, and the request keeps only the text.  No
	 * event (gone from the archive) means nothing to send.
	 */
	for (int i = 0; i < EB_EV_NCOLUMNS; i++)
		event[i] = SPI_getbinval(tuple, desc, CLAIM_EVENT + i, &event_null[i]);
	if (!event_null[EB_EV_ID])
	{
		body = eb_envelope_text(event, event_null, &body_len);
		eb_webhook_id(webhook_id, DatumGetUUIDP(event[EB_EV_ID]),
					  bus, rule, target_id);
	}

	old = MemoryContextSwitchTo(request_ctx);
	d = palloc0(sizeof(Delivery));
	d->http.owner = d;
	dlist_push_tail(&live_deliveries, &d->live_node);
	d->target_key = pstrdup(target_key);
	d->id = DatumGetInt64(SPI_getbinval(tuple, desc, CLAIM_ID, &isnull));
	ItemPointerCopy((ItemPointer) DatumGetPointer(SPI_getbinval(tuple, desc, CLAIM_TID, &isnull)),
					&d->tid);
	d->attempts = DatumGetInt32(SPI_getbinval(tuple, desc, CLAIM_ATTEMPTS, &isnull));
	d->lease = DatumGetTimestampTz(SPI_getbinval(tuple, desc, CLAIM_LEASE, &isnull));
	d->endpoint = SPI_getvalue(tuple, desc, CLAIM_ENDPOINT);
	d->http.url = d->endpoint;
	d->http.method = SPI_getvalue(tuple, desc, CLAIM_METHOD);
	d->max_retry_attempts = DatumGetInt32(SPI_getbinval(tuple, desc, CLAIM_MAX_RETRY_ATTEMPTS, &isnull));
	d->max_event_age_ms = DatumGetInt64(SPI_getbinval(tuple, desc, CLAIM_MAX_EVENT_AGE_MS, &isnull));
	d->http.timeout_ms = (long) DatumGetInt64(SPI_getbinval(tuple, desc, CLAIM_TIMEOUT_MS, &isnull));
	d->published_at = DatumGetTimestampTz(SPI_getbinval(tuple, desc, CLAIM_PUBLISHED_AT, &isnull));
	d->has_event = (body != NULL);

	if (!d->has_event)
	{
		d->http.transport = EB_TRANSPORT_INTERNAL;
		strlcpy(d->http.error, "the event no longer exists in eventbus.events",
				sizeof(d->http.error));
		d->next = local_done;
		local_done = d;
		MemoryContextSwitchTo(old);
		return;
	}
	d->http.body = pnstrdup(body, body_len);
	d->http.body_len = body_len;

	headers = SPI_getvalue(tuple, desc, CLAIM_HEADERS);
	add_default_header(d, "Content-Type: application/json", headers);
	add_default_header(d, EB_USER_AGENT, headers);
	eb_http_add_header(&d->http, "Expect:");	/* no 100-continue round trip */
	if (headers != NULL)
	{
		char	   *save;

		for (char *h = strtok_r(headers, "\n", &save); h; h = strtok_r(NULL, "\n", &save))
			eb_http_add_header(&d->http, h);
		pfree(headers);
	}
	snprintf(line, sizeof(line), "webhook-id: %s", webhook_id);
	eb_http_add_header(&d->http, line);
	snprintf(line, sizeof(line), "webhook-timestamp: %lld", (long long) time(NULL));
	eb_http_add_header(&d->http, line);
	MemoryContextSwitchTo(old);
	pfree(body);

	if (d->attempts == 1)
		eb_stats_count_first_attempt(d->target_key, d->published_at);
	eb_http_submit(&d->http);
}

/* One fewer request in flight to a target. */
static void
target_load_release(const char *target_key)
{
	char		key[TARGET_KEY_LEN];
	TargetLoad *tl;

	strlcpy(key, target_key, sizeof(key));
	tl = hash_search(target_load, key, HASH_FIND, NULL);
	if (tl != NULL && --tl->in_flight <= 0)
		hash_search(target_load, key, HASH_REMOVE, NULL);
}

/* The keys of the targets at their limit of requests in flight, and how many. */
static Datum
saturated_targets(int *count)
{
	HASH_SEQ_STATUS seq;
	TargetLoad *tl;
	int			n = 0;
	Datum	   *keys = palloc(sizeof(Datum) * (hash_get_num_entries(target_load) + 1));

	hash_seq_init(&seq, target_load);
	while ((tl = hash_seq_search(&seq)) != NULL)
		if (tl->in_flight >= eb_settings->max_concurrent_per_target)
			keys[n++] = CStringGetTextDatum(tl->key);
	*count = n;
	return make_array(keys, NULL, n, TEXTOID);
}

/*
 * Claims up to `room` due deliveries in one transaction and starts their
 * requests, at most eventbus.max_concurrent_per_target per target (rows
 * over that limit go straight back to the queue).  Returns when the queue
 * should be looked at again: now when the claim was full, otherwise the
 * earliest next_attempt_at (0 if none).
 */
TimestampTz
eb_queue_claim_and_send(int room)
{
	Oid			types[2] = {INT4OID, TEXTARRAYOID};
	Datum		args[2];
	uint64		n;
	int			nrelease = 0;
	int			nsaturated;
	Datum	   *release_ids;
	Datum	   *release_tids;
	TimestampTz next_due = 0;

	begin_xact("pg_eventbus: claiming deliveries");
	if (!extension_installed())
	{
		commit_xact();
		if (eb_http_in_flight() == 0 && local_done == NULL)
			eb_queue_wait_for_extension();
		return GetCurrentTimestamp();
	}

	args[0] = Int32GetDatum(room);
	args[1] = saturated_targets(&nsaturated);
	if (SPI_execute_plan(eventbus_saved_plan(&claim_plan, claim_sql, 2, types),
						 args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "pg_eventbus: could not claim deliveries");
	n = SPI_processed;
	eb_stats_worker_claimed((int) n);
	release_ids = palloc(sizeof(Datum) * (n + 1));
	release_tids = palloc(sizeof(Datum) * (n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char		key[TARGET_KEY_LEN];
		TargetLoad *tl;
		bool		found;
		bool		isnull;
		char	   *bus = TextDatumGetCString(SPI_getbinval(tuple, desc, CLAIM_BUS, &isnull));
		char	   *rule = TextDatumGetCString(SPI_getbinval(tuple, desc, CLAIM_RULE, &isnull));
		char	   *target_id = TextDatumGetCString(SPI_getbinval(tuple, desc, CLAIM_TARGET_ID, &isnull));

		snprintf(key, TARGET_KEY_LEN, "%s\x1f%s\x1f%s", bus, rule, target_id);
		tl = hash_search(target_load, key, HASH_ENTER, &found);
		if (!found)
			tl->in_flight = 0;
		if (tl->in_flight >= eb_settings->max_concurrent_per_target)
		{
			release_ids[nrelease] = SPI_getbinval(tuple, desc, CLAIM_ID, &isnull);
			release_tids[nrelease++] = SPI_getbinval(tuple, desc, CLAIM_TID, &isnull);
			continue;
		}
		tl->in_flight++;
		start_delivery(tuple, desc, key, bus, rule, target_id);
	}
	if (nrelease > 0)
	{
		Oid			rtypes[2] = {INT8ARRAYOID, TIDARRAYOID};
		Datum		rargs[2];

		rargs[0] = make_array(release_ids, NULL, nrelease, INT8OID);
		rargs[1] = make_array(release_tids, NULL, nrelease, TIDOID);
		if (SPI_execute_plan(eventbus_saved_plan(&release_plan, release_sql, 2, rtypes),
							 rargs, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "pg_eventbus: could not release deliveries");
	}
	targets_saturated = (nsaturated > 0 || nrelease > 0);

	if (n >= (uint64) room)
		next_due = GetCurrentTimestamp();
	else
	{
		bool		isnull;
		Datum		v;

		if (SPI_execute_plan(eventbus_saved_plan(&next_due_plan, next_due_sql, 0, NULL),
							 NULL, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "pg_eventbus: could not read the next due time");
		v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			next_due = DatumGetTimestampTz(v);

		/*
		 * Due rows left behind belong to targets at their limit (claim again
		 * when one of their requests finishes) or to another worker for a
		 * moment (look again soon).
		 */
		if (next_due != 0 && next_due <= GetCurrentTimestamp())
			next_due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												   targets_saturated ?
												   eb_settings->poll_interval : 20);
	}
	commit_xact();

	/* let libcurl start the new requests right away */
	eb_http_drive();
	return next_due;
}

/*
 * Whether the last claim left due rows behind because their targets were
 * at their limit; the loop then claims again as soon as a request settles.
 */
bool
eb_queue_targets_saturated(void)
{
	return targets_saturated;
}

/* ------------------------------------------------------------------------
 * settle
 * ------------------------------------------------------------------------
 */

/*
 * Rows for one set-based statement: column i of every row goes into array
 * parameter $i+1, so a whole batch is one statement.
 */
#define ROWSET_MAX_COLUMNS 9
typedef struct RowSet
{
	int			ncols;
	const Oid  *types;			/* element type of each column */
	int			nrows;
	Datum	   *values[ROWSET_MAX_COLUMNS];
	bool	   *nulls[ROWSET_MAX_COLUMNS];
} RowSet;

/* Column types of the settle statements, in parameter order. */
static const Oid done_types[] = {INT8OID, TIMESTAMPTZOID};
static const Oid retry_types[] = {INT8OID, TIDOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
TEXTOID, INT4OID};
static const Oid dead_types[] = {INT8OID, TIDOID, TIMESTAMPTZOID, TEXTOID, TEXTOID,
INT4OID, TEXTOID, TEXTOID, TEXTOID};

/* Makes room for up to `capacity` rows, in the current memory context. */
static void
rowset_init(RowSet *rs, const Oid *types, int ncols, int capacity)
{
	rs->ncols = ncols;
	rs->types = types;
	rs->nrows = 0;
	for (int i = 0; i < ncols; i++)
	{
		rs->values[i] = palloc(sizeof(Datum) * capacity);
		rs->nulls[i] = palloc0(sizeof(bool) * capacity);
	}
}

/* Appends a row; `nulls` may be NULL when no value is null. */
static void
rowset_add(RowSet *rs, const Datum *values, const bool *nulls)
{
	for (int i = 0; i < rs->ncols; i++)
	{
		rs->values[i][rs->nrows] = values[i];
		rs->nulls[i][rs->nrows] = nulls ? nulls[i] : false;
	}
	rs->nrows++;
}

/* Runs the statement over the rows, if there are any. */
static void
rowset_execute(RowSet *rs, SPIPlanPtr *plan, const char *sql, int expected)
{
	Oid			argtypes[ROWSET_MAX_COLUMNS];
	Datum		args[ROWSET_MAX_COLUMNS];

	if (rs->nrows == 0)
		return;
	for (int i = 0; i < rs->ncols; i++)
	{
		argtypes[i] = get_array_type(rs->types[i]);
		args[i] = make_array(rs->values[i], rs->nulls[i], rs->nrows, rs->types[i]);
	}
	if (SPI_execute_plan(eventbus_saved_plan(plan, sql, rs->ncols, argtypes),
						 args, NULL, false, 0) != expected)
		elog(ERROR, "pg_eventbus: could not settle deliveries");
}

/* The response excerpt as valid text of the database encoding, or NULL. */
static char *
excerpt_text(EbHttpRequest *req)
{
	int			len;

	if (req->transport != EB_TRANSPORT_OK || req->excerpt_len == 0)
		return NULL;
	len = strnlen(req->excerpt, req->excerpt_len);
	len = pg_encoding_verifymbstr(GetDatabaseEncoding(), req->excerpt, len);
	return pnstrdup(req->excerpt, len);
}

/*
 * Sorts one finished delivery into delivered, to retry (returning when) or
 * dead; the policy decides.  Returns the retry time, or 0.
 */
static TimestampTz
settle_one(RowSet *done, RowSet *retry, RowSet *dead, Delivery *d,
		   TimestampTz now)
{
	EbHttpRequest *req = &d->http;
	EbVerdict	verdict = eb_classify(req->transport, req->status);
	const char *code;
	const char *cond = NULL;
	char	   *msg;
	char	   *excerpt;
	TimestampTz next = 0;
	bool		no_status = (req->transport != EB_TRANSPORT_OK);

	eb_stats_count_attempt(d->target_key, req->transport, req->status, d->attempts,
						   verdict == EB_VERDICT_SUCCESS, d->has_event ? d->published_at : 0);
	if (verdict == EB_VERDICT_SUCCESS)
	{
		Datum		v[] = {Int64GetDatum(d->id), TimestampTzGetDatum(d->lease)};

		rowset_add(done, v, NULL);
		return 0;
	}

	code = eb_error_code(req->transport, req->status);
	if (req->transport == EB_TRANSPORT_OK)
		msg = psprintf("%s %s returned HTTP %ld", req->method, d->endpoint, req->status);
	else
		msg = psprintf("%s %s failed: %s", req->method, d->endpoint, req->error);

	if (verdict == EB_VERDICT_NON_RETRYABLE)
		cond = EB_EXHAUSTED_NON_RETRYABLE;
	else if (d->attempts > d->max_retry_attempts)
		cond = EB_EXHAUSTED_RETRIES;
	else
	{
		int64		delay_ms;

		delay_ms = eb_retry_delay_ms(d->attempts, eb_settings->retry_base_delay,
									 eb_settings->retry_max_delay,
									 pg_prng_double(&pg_global_prng_state),
									 req->retry_after, time(NULL));
		next = now + delay_ms * 1000;
		if (d->has_event && next > d->published_at + d->max_event_age_ms * 1000)
			cond = EB_EXHAUSTED_AGE;
	}

	if (cond == NULL)
	{
		Datum		v[] = {Int64GetDatum(d->id), PointerGetDatum(&d->tid),
			TimestampTzGetDatum(d->lease),
			TimestampTzGetDatum(next),
			CStringGetTextDatum(psprintf("%s: %s", code, msg)),
		Int32GetDatum((int32) req->status)};
		bool		n[] = {false, false, false, false, false, no_status};

		rowset_add(retry, v, n);
		return next;
	}

	excerpt = excerpt_text(req);
	eb_stats_count_dead_letter(d->target_key, req->transport);
	{
		Datum		v[] = {Int64GetDatum(d->id), PointerGetDatum(&d->tid),
			TimestampTzGetDatum(d->lease),
			CStringGetTextDatum(code), CStringGetTextDatum(msg),
			Int32GetDatum((int32) req->status),
			excerpt ? CStringGetTextDatum(excerpt) : (Datum) 0,
		CStringGetTextDatum(cond), CStringGetTextDatum(d->endpoint)};
		bool		n[] = {false, false, false, false, false, no_status, excerpt == NULL,
		false, false};

		rowset_add(dead, v, n);
	}
	return 0;
}

/* Frees a delivery and what its request holds. */
static void
free_delivery(Delivery *d)
{
	dlist_delete(&d->live_node);
	eb_http_release(&d->http);
	if (d->endpoint)
		pfree(d->endpoint);
	if (d->target_key)
		pfree(d->target_key);
	if (d->http.method)
		pfree((char *) d->http.method);
	if (d->http.body)
		pfree((char *) d->http.body);
	pfree(d);
}

/*
 * Records the results of every finished request in one transaction.  Rows
 * that have vanished meanwhile (target deleted) or been leased again are
 * left alone.  Returns the earliest retry time set, or 0, and how many
 * were settled in *settled.
 */
TimestampTz
eb_queue_settle_finished(int *settled)
{
	List	   *finished = NIL;
	EbHttpRequest *req;
	RowSet		done,
				retry,
				dead;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz earliest = 0;
	MemoryContext old;
	ListCell   *lc;

	old = MemoryContextSwitchTo(batch_ctx);
	while ((req = eb_http_next_done()) != NULL)
		finished = lappend(finished, req->owner);
	while (local_done != NULL)
	{
		finished = lappend(finished, local_done);
		local_done = local_done->next;
	}
	*settled = list_length(finished);
	if (finished == NIL)
	{
		MemoryContextSwitchTo(old);
		return 0;
	}

	rowset_init(&done, done_types, lengthof(done_types), *settled);
	rowset_init(&retry, retry_types, lengthof(retry_types), *settled);
	rowset_init(&dead, dead_types, lengthof(dead_types), *settled);
	foreach(lc, finished)
	{
		TimestampTz next = settle_one(&done, &retry, &dead,
									  (Delivery *) lfirst(lc), now);

		if (next != 0 && (earliest == 0 || next < earliest))
			earliest = next;
	}
	MemoryContextSwitchTo(old);

	begin_xact("pg_eventbus: settling deliveries");
	rowset_execute(&done, &done_plan, done_sql, SPI_OK_DELETE);
	rowset_execute(&retry, &retry_plan, retry_sql, SPI_OK_UPDATE);
	rowset_execute(&dead, &dead_plan, dead_sql, SPI_OK_INSERT);
	foreach(lc, finished)
	{
		Delivery   *d = (Delivery *) lfirst(lc);

		if (d->target_key)
			target_load_release(d->target_key);
		free_delivery(d);
	}
	commit_xact();				/* also resets batch_ctx */
	return earliest;
}

/*
 * Puts every delivery this worker holds (in flight, or finished and not yet
 * settled) back into the queue, due now, if its lease is still ours; for a
 * worker about to exit.  The attempt that was under way counts, as after a
 * crash.  Must be called outside any transaction.
 */
void
eb_queue_hand_back_leases(void)
{
	static const char *const hand_back_sql =
	"UPDATE eventbus.deliveries d SET leased_until = NULL, next_attempt_at = now()"
	" FROM unnest($1::bigint[], $2::timestamptz[]) AS s(id, lease)"
	" WHERE d.id = s.id AND d.leased_until = s.lease";
	Oid			types[2] = {INT8ARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		args[2];
	Datum	   *ids;
	Datum	   *leases;
	int			n = 0;
	dlist_iter	iter;
	uint64		returned;

	if (dlist_is_empty(&live_deliveries))
		return;

	begin_xact("pg_eventbus: handing back leases");
	dlist_foreach(iter, &live_deliveries)
		n++;
	ids = palloc(sizeof(Datum) * n);
	leases = palloc(sizeof(Datum) * n);
	n = 0;
	dlist_foreach(iter, &live_deliveries)
	{
		Delivery   *d = dlist_container(Delivery, live_node, iter.cur);

		ids[n] = Int64GetDatum(d->id);
		leases[n++] = TimestampTzGetDatum(d->lease);
	}
	args[0] = make_array(ids, NULL, n, INT8OID);
	args[1] = make_array(leases, NULL, n, TIMESTAMPTZOID);
	if (SPI_execute_with_args(hand_back_sql, 2, types, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "pg_eventbus: could not hand back leases");
	returned = SPI_processed;
	commit_xact();
	ereport(LOG,
			(errmsg("pg_eventbus delivery worker returned %llu leased deliveries to the queue",
					(unsigned long long) returned),
			 errdetail("The worker is stopping; they will be sent again.")));
}
