/*-------------------------------------------------------------------------
 *
 * queue.c
 *	  The delivery queue's statements: claiming due rows of
 *	  eventbus.deliveries, settling the results, handing leases back.
 *
 * This is the side of the delivery worker that talks to the database; the
 * loop that drives it (worker.c) decides when to claim, send, settle and
 * sleep, and request.c turns claimed rows into requests.  Every step is
 * one short transaction of set-based statements, prepared once for the
 * life of the worker:
 *
 *	  claim   take due rows (FOR UPDATE SKIP LOCKED) under a lease:
 *			  leased_until and next_attempt_at move to the lease's end, so
 *			  rows held by a worker that dies go back to the queue by
 *			  themselves; rows of a target at its limit of requests in
 *			  flight (slots.c) are skipped or handed straight back;
 *	  settle  record finished deliveries: 2xx removes the row, a retryable
 *			  failure schedules the next attempt (policy.c decides),
 *			  anything else moves it to eventbus.dead_letters through
 *			  eventbus.dead_letter(), the one definition of a dead-letter
 *			  row.  The lease is the token: a row leased again meanwhile is
 *			  left alone.
 *
 * The worker runs as the bootstrap superuser, so its statements resolve
 * nothing through the search path: the session's search_path is pinned to
 * pg_catalog (pg_temp last) and every function, operator, type and
 * relation is schema-qualified.  Where an equality must not become a join
 * clause (see below), it is written as its function (pg_catalog.int8eq),
 * not as IS NOT DISTINCT FROM, which would look its operator up by name.
 *
 * At start-up, the worker waits here for the extension at the version
 * this library is built for, and puts leases left by a crash back into
 * the queue before it claims anything.
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
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "attempts.h"
#include "batch.h"
#include "connection.h"
#include "limits.h"
#include "policy.h"
#include "queue.h"
#include "request.h"
#include "saved_plan.h"
#include "settings.h"
#include "slots.h"
#include "stats.h"
#include "wake.h"

/* A lease lasts the target's timeout plus this margin for settling. */
#define EB_LEASE_MARGIN "'30 seconds'::pg_catalog.interval"

/* What the worker waits for before it runs its statements. */
typedef enum EbReadiness
{
	EB_READY,
	EB_NO_EXTENSION,
	EB_OTHER_VERSION
} EbReadiness;

/* The queue's state in this worker, in long-lived memory. */
static MemoryContext batch_ctx = NULL;	/* reset after each transaction */
static bool targets_saturated = false;	/* last claim skipped some */
static Oid	ready_extension = InvalidOid;	/* pg_extension row found ready */
static TimestampTz last_sweep = 0;	/* last claim of deleted targets' rows */
static TimestampTz last_rescan = 0; /* low marks last forgotten */

/* Every this many poll intervals, the claim forgets the low marks. */
#define EB_LOW_RESCAN_POLLS 10

/* Prepared statements, kept across transactions. */
static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr release_plan = NULL;
static SPIPlanPtr next_due_plan = NULL;
static SPIPlanPtr horizon_plan = NULL;
static SPIPlanPtr done_plan = NULL;
static SPIPlanPtr retry_plan = NULL;
static SPIPlanPtr dead_plan = NULL;
static SPIPlanPtr hand_back_plan = NULL;
static SPIPlanPtr forget_plan = NULL;

/*
 * Claims due deliveries target by target.  $2, a jsonb object, gives the
 * targets the worker knows something about, by key: [room, low] -- room,
 * the requests the target may still start (0 at its limit or while
 * paused; $3 for a target not listed), and low, the next_attempt_at below
 * which it has no due row left (see "The low mark" below; none: from the
 * start).  Up to $1 rows in all, the targets taken in an order that $5
 * shuffles at every claim, so that busy targets early in the table cannot
 * take every claim from those after them.  Each target's due rows are one
 * probe of deliveries_target_due_idx, from low to now() in next_attempt_at
 * order (a lateral subquery: a nested loop whatever the statistics), so the
 * claim never walks the backlog of a target it skips nor what was
 * delivered before low, and its cost grows with the targets and the rows
 * it takes, not with the queue or its dead versions.  When $4 is true it
 * also takes due rows whose target no longer exists, for settle to
 * dead-letter (TargetDeleted); they keep their attempts.  Such targets are
 * those eventbus.deleted_targets remembers (see forget_sql), each one probe
 * of the same index: never a walk over the whole index, whose dead entries
 * a long transaction keeps.
 *
 * A row is leased by setting leased_until (and attempts): no indexed
 * column changes, so the update is HOT when its page has room (the table's
 * fillfactor keeps some) and leaves no index entry behind; the claim skips
 * rows under a lease that has not ended, and one that has ended (its
 * worker crashed) is due again by itself.  The event is fetched per leased
 * row by its primary key and published_at (one probe in one partition of
 * the archive), unless the row carries the envelope to send (a redriven
 * dead letter whose event has expired); a row written before
 * event_published_at was filled is looked up by id alone.  The later
 * statements find the locked rows again by ctid rather than through an
 * index.
 *
 * Batch targets (batch_size > 1, batch.c) have their own branch: a target
 * there gives rows only when batch_size of them are due or its oldest due
 * row has waited batch_window (one more probe of the same index, at most
 * batch_size entries), up to room x batch_size rows (room counts requests,
 * and a batch is one), and $6 rows in all for such targets; the caller
 * makes them into requests.
 */
static const char *const claim_sql =
"WITH queued AS ("
"  SELECT g.bus, g.rule, g.target_id FROM eventbus.deleted_targets g WHERE $4"
"), tk AS ("
"  SELECT t.*, t.bus OPERATOR(pg_catalog.||) E'\\x1f' OPERATOR(pg_catalog.||) t.rule"
"    OPERATOR(pg_catalog.||) E'\\x1f' OPERATOR(pg_catalog.||) t.target_id AS key,"
"    t AS target_row"
"  FROM eventbus.targets t"
"), tq AS ("
"  SELECT tk.bus, tk.rule, tk.target_id, tk.endpoint, tk.http_method, tk.headers,"
"    tk.max_retry_attempts, tk.max_event_age, tk.timeout,"
"    CASE WHEN tk.input IS NOT NULL OR tk.input_path IS NOT NULL"
"      OR tk.input_transformer IS NOT NULL THEN pg_catalog.jsonb_build_object("
"      'input', tk.input, 'input_path', tk.input_path,"
"      'input_transformer', tk.input_transformer) END AS transform,"
"    tk.\"function\" AS function,"
"    CASE WHEN eventbus.target_suspended(tk.target_row) THEN 0 ELSE LEAST("
"    coalesce(($2 OPERATOR(pg_catalog.->) tk.key OPERATOR(pg_catalog.->>) 0)::pg_catalog.int4,"
"      $3),"
"      eventbus.target_room(tk.bus, tk.rule, tk.target_id, tk.rate_limit)) END AS room,"
"    coalesce(($2 OPERATOR(pg_catalog.->) tk.key OPERATOR(pg_catalog.->>) 1)::pg_catalog.timestamptz,"
"      '-infinity'::pg_catalog.timestamptz) AS low,"
"    tk.batch_size, tk.batch_window"
"  FROM tk"
"  ORDER BY pg_catalog.hashtext(tk.key) OPERATOR(pg_catalog.#) $5"
"), due AS ("
"  (SELECT r.row_ctid, r.due_at, false AS gone, tq.room, tq.endpoint, tq.http_method,"
"    tq.headers, tq.max_retry_attempts, tq.max_event_age, tq.timeout, tq.transform,"
"    tq.function, tq.batch_size"
"  FROM tq CROSS JOIN LATERAL ("
"    SELECT d.ctid AS row_ctid, d.next_attempt_at AS due_at FROM eventbus.deliveries d"
"    WHERE d.bus OPERATOR(pg_catalog.=) tq.bus AND d.rule OPERATOR(pg_catalog.=) tq.rule"
"      AND d.target_id OPERATOR(pg_catalog.=) tq.target_id"
"      AND d.next_attempt_at OPERATOR(pg_catalog.>=) tq.low"
"      AND d.next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
"      AND (d.leased_until IS NULL OR d.leased_until OPERATOR(pg_catalog.<=) pg_catalog.now())"
"    ORDER BY d.next_attempt_at"
"    LIMIT tq.room"
"    FOR UPDATE OF d SKIP LOCKED) r"
"  WHERE tq.room OPERATOR(pg_catalog.>) 0"
"    AND tq.batch_size OPERATOR(pg_catalog.=) 1"
"  LIMIT $1)"
"  UNION ALL"
"  (SELECT r.row_ctid, r.due_at, false, tq.room, tq.endpoint, tq.http_method,"
"    tq.headers, tq.max_retry_attempts, tq.max_event_age, tq.timeout, tq.transform,"
"    tq.function, tq.batch_size"
"  FROM tq CROSS JOIN LATERAL ("
"    SELECT d.ctid AS row_ctid, d.next_attempt_at AS due_at FROM eventbus.deliveries d"
"    WHERE d.bus OPERATOR(pg_catalog.=) tq.bus AND d.rule OPERATOR(pg_catalog.=) tq.rule"
"      AND d.target_id OPERATOR(pg_catalog.=) tq.target_id"
"      AND d.next_attempt_at OPERATOR(pg_catalog.>=) tq.low"
"      AND d.next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
"      AND (d.leased_until IS NULL OR d.leased_until OPERATOR(pg_catalog.<=) pg_catalog.now())"
"      AND (SELECT pg_catalog.count(*) OPERATOR(pg_catalog.>=) tq.batch_size"
"        OR pg_catalog.min(w.due_at) OPERATOR(pg_catalog.<=)"
"          (pg_catalog.now() OPERATOR(pg_catalog.-) tq.batch_window)"
"        FROM (SELECT g.next_attempt_at AS due_at FROM eventbus.deliveries g"
"          WHERE g.bus OPERATOR(pg_catalog.=) tq.bus AND g.rule OPERATOR(pg_catalog.=) tq.rule"
"            AND g.target_id OPERATOR(pg_catalog.=) tq.target_id"
"            AND g.next_attempt_at OPERATOR(pg_catalog.>=) tq.low"
"            AND g.next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
"            AND (g.leased_until IS NULL OR g.leased_until OPERATOR(pg_catalog.<=) pg_catalog.now())"
"          ORDER BY g.next_attempt_at LIMIT tq.batch_size) w)"
"    ORDER BY d.next_attempt_at"
"    LIMIT tq.room OPERATOR(pg_catalog.*) tq.batch_size"
"    FOR UPDATE OF d SKIP LOCKED) r"
"  WHERE tq.room OPERATOR(pg_catalog.>) 0"
"    AND tq.batch_size OPERATOR(pg_catalog.>) 1"
"  LIMIT $6)"
"  UNION ALL"
"  (SELECT r.row_ctid, r.due_at, true, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
"    NULL, 1"
"  FROM queued q CROSS JOIN LATERAL ("
"    SELECT d.ctid AS row_ctid, d.next_attempt_at AS due_at FROM eventbus.deliveries d"
"    WHERE d.bus OPERATOR(pg_catalog.=) q.bus AND d.rule OPERATOR(pg_catalog.=) q.rule"
"      AND d.target_id OPERATOR(pg_catalog.=) q.target_id"
"      AND d.next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
"      AND (d.leased_until IS NULL OR d.leased_until OPERATOR(pg_catalog.<=) pg_catalog.now())"
"    ORDER BY d.next_attempt_at"
"    LIMIT $1"
"    FOR UPDATE OF d SKIP LOCKED) r"
"  WHERE NOT EXISTS (SELECT FROM eventbus.targets t"
"    WHERE t.bus OPERATOR(pg_catalog.=) q.bus AND t.rule OPERATOR(pg_catalog.=) q.rule"
"      AND t.target_id OPERATOR(pg_catalog.=) q.target_id)"
"  LIMIT $1)"
"), leased AS ("
"  UPDATE eventbus.deliveries d"
"  SET attempts = d.attempts OPERATOR(pg_catalog.+) CASE WHEN due.gone THEN 0 ELSE 1 END,"
"    first_attempt_at = CASE WHEN due.gone THEN d.first_attempt_at"
"      ELSE coalesce(d.first_attempt_at, pg_catalog.now()) END,"
"    leased_until = pg_catalog.now() OPERATOR(pg_catalog.+)"
"      coalesce(due.timeout, '0'::pg_catalog.interval) OPERATOR(pg_catalog.+) " EB_LEASE_MARGIN
"  FROM due"
"  WHERE d.ctid OPERATOR(pg_catalog.=) due.row_ctid"
"  RETURNING d.id, d.ctid AS row_tid, d.event_id, d.event_published_at, d.envelope,"
"    d.bus, d.rule, d.target_id,"
"    d.attempts, d.leased_until, d.last_http_status, due.gone, due.endpoint,"
"    due.http_method, due.headers, due.max_retry_attempts, due.max_event_age,"
"    due.timeout, due.room, due.due_at, due.transform,"
"    due.function, due.batch_size, d.batch_key"
")"
"SELECT l.id, l.row_tid, l.attempts, l.leased_until, l.gone, l.last_http_status,"
"  l.endpoint, l.http_method,"
"  CASE WHEN l.headers OPERATOR(pg_catalog.<>) '{}'::pg_catalog.jsonb THEN"
"    (SELECT pg_catalog.string_agg(CASE WHEN h.value OPERATOR(pg_catalog.=) ''"
"       THEN h.key OPERATOR(pg_catalog.||) ';'"
"       ELSE h.key OPERATOR(pg_catalog.||) ': ' OPERATOR(pg_catalog.||) h.value END,"
"       E'\\n')"
"     FROM pg_catalog.jsonb_each_text(l.headers) h) END,"
"  l.max_retry_attempts,"
"  (pg_catalog.extract('epoch', l.max_event_age) OPERATOR(pg_catalog.*) 1000)::pg_catalog.int8,"
"  (pg_catalog.extract('epoch', l.timeout) OPERATOR(pg_catalog.*) 1000)::pg_catalog.int8,"
"  l.bus, l.rule, l.target_id,"
"  l.bus OPERATOR(pg_catalog.||) E'\\x1f' OPERATOR(pg_catalog.||) l.rule"
"    OPERATOR(pg_catalog.||) E'\\x1f' OPERATOR(pg_catalog.||) l.target_id,"
"  l.room, l.due_at,"
"  coalesce(e.published_at, l.event_published_at), l.event_id,"
"  l.envelope::pg_catalog.text,"
"  e.id, e.detail_type, e.source, e.account, e.\"time\", e.region,"
"  e.resources, e.detail, e.replay_name,"
"  (SELECT pg_catalog.array_agg(k.key ORDER BY k.id DESC)"
"   FROM eventbus.signing_keys k"
"   WHERE k.bus OPERATOR(pg_catalog.=) l.bus"
"     AND k.rule OPERATOR(pg_catalog.=) l.rule"
"     AND k.target_id OPERATOR(pg_catalog.=) l.target_id"
"     AND (k.expires_at IS NULL"
"       OR k.expires_at OPERATOR(pg_catalog.>) pg_catalog.now())),"
"  l.transform,"
"  l.function,"
"  (SELECT pg_catalog.jsonb_build_object('name', c.name, 'auth_type', c.auth_type,"	/* connection.c */
"     'auth', c.auth, 'http_parameters', c.http_parameters,"
"     'token', c.access_token, 'token_serial', c.token_serial)"
"   FROM eventbus.targets t, eventbus.connection_secrets c"
"   WHERE t.bus OPERATOR(pg_catalog.=) l.bus AND t.rule OPERATOR(pg_catalog.=) l.rule"
"     AND t.target_id OPERATOR(pg_catalog.=) l.target_id"
"     AND c.name OPERATOR(pg_catalog.=) t.connection),"
"  l.batch_size, l.batch_key"
" FROM leased l LEFT JOIN LATERAL ("
"   SELECT ev.* FROM eventbus.events ev"
"   WHERE l.envelope IS NULL AND ev.id OPERATOR(pg_catalog.=) l.event_id"
"     AND ev.published_at OPERATOR(pg_catalog.=) l.event_published_at"
"   UNION ALL"
"   SELECT ev.* FROM eventbus.events ev"
"   WHERE l.envelope IS NULL AND l.event_published_at IS NULL"
"     AND ev.id OPERATOR(pg_catalog.=) l.event_id"
"   OFFSET 0) e ON true";

/*
 * The low mark.  Under a long transaction (a report, pg_dump) vacuum
 * cannot remove the index entries of delivered rows, and every claim
 * that starts at the beginning of a target's due rows walks all of them.
 * So a worker remembers, per target, a next_attempt_at below which no due
 * row of that target can still appear, and the claim starts there.  Rows
 * are queued with next_attempt_at = clock_timestamp() (the column's
 * default) by transactions that hold a transaction id from then on; every
 * other write of next_attempt_at sets a time after now() or keeps the
 * row's.  So no row that this claim cannot see will ever be due before the
 * horizon below: the start of this transaction, or of the oldest
 * transaction with an id (or prepared) if that began earlier.
 * Transactions without an id -- reports, pg_dump -- do not hold it back.
 * (LEAST is SQL syntax, not a function a user could shadow.)
 */
static const char *const horizon_sql =
"SELECT LEAST(pg_catalog.now(),"
"  (SELECT pg_catalog.min(coalesce(a.xact_start, '-infinity'::pg_catalog.timestamptz))"
"   FROM pg_catalog.pg_stat_get_activity(NULL::pg_catalog.int4) a"
"   WHERE a.backend_xid IS NOT NULL"
"     AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()),"
"  (SELECT pg_catalog.min(p.prepared) FROM pg_catalog.pg_prepared_xact() p))";

/*
 * A deleted target is remembered (eventbus.deleted_targets, written by the
 * trigger that dead-letters its rows) while rows of it may still come to
 * the queue: rows a worker held when it was deleted come back if their
 * request fails, and a transaction that matched the target before the
 * deletion committed may queue rows after it.  So it is forgotten once it
 * has no row left and no transaction is left that started (or took its
 * snapshot) before the deletion: no backend's xid or xmin, and no prepared
 * transaction, is older than the remembered row's xmin.  One probe of
 * deliveries_target_due_idx per remembered target, a scalar subquery so
 * that it stays a probe (never an anti join over the queue) whatever the
 * statistics; the remembered targets are read through their primary key
 * (bus >= '' holds for every text), not by a scan the worker's
 * enable_seqscan = off would price out of reach.
 */
static const char *const forget_sql =
"DELETE FROM eventbus.deleted_targets g"
" WHERE g.bus OPERATOR(pg_catalog.>=) ''"
"   AND (SELECT d.ctid FROM eventbus.deliveries d"
"     WHERE d.bus OPERATOR(pg_catalog.=) g.bus AND d.rule OPERATOR(pg_catalog.=) g.rule"
"       AND d.target_id OPERATOR(pg_catalog.=) g.target_id LIMIT 1) IS NULL"
"   AND NOT EXISTS (SELECT FROM pg_catalog.pg_stat_get_activity(NULL::pg_catalog.int4) a"
"     WHERE pg_catalog.age(a.backend_xid) OPERATOR(pg_catalog.>=) pg_catalog.age(g.xmin)"
"        OR pg_catalog.age(a.backend_xmin) OPERATOR(pg_catalog.>=) pg_catalog.age(g.xmin))"
"   AND NOT EXISTS (SELECT FROM pg_catalog.pg_prepared_xact() p"
"     WHERE pg_catalog.age(p.transaction) OPERATOR(pg_catalog.>=) pg_catalog.age(g.xmin))";

/* Columns of the claim's result. */
enum
{
	CLAIM_ID = 1,
	CLAIM_TID,
	CLAIM_ATTEMPTS,
	CLAIM_LEASE,
	CLAIM_GONE,
	CLAIM_LAST_STATUS,
	CLAIM_ENDPOINT,
	CLAIM_METHOD,
	CLAIM_HEADERS,
	CLAIM_MAX_RETRY_ATTEMPTS,
	CLAIM_MAX_EVENT_AGE_MS,
	CLAIM_TIMEOUT_MS,
	CLAIM_BUS,
	CLAIM_RULE,
	CLAIM_TARGET_ID,
	CLAIM_TARGET_KEY,
	CLAIM_ROOM,
	CLAIM_DUE_AT,
	CLAIM_PUBLISHED_AT,
	CLAIM_EVENT_ID,
	CLAIM_ENVELOPE,
	CLAIM_EVENT					/* the event's columns, in EbEventColumn order */
};

/*
 * After the event's columns: the target's signing keys that sign now,
 * newest first (bytea[], NULL when it has none; see signature.c).
 */
#define CLAIM_SIGNING_KEYS (CLAIM_EVENT + EB_EV_NCOLUMNS)
/* Then the target's transformation (jsonb, NULL: none; see transform.c). */
#define CLAIM_TRANSFORM (CLAIM_SIGNING_KEYS + 1)
/* Then a function target's function, as text (NULL: an HTTP target). */
#define CLAIM_FUNCTION (CLAIM_TRANSFORM + 1)
/* Then the target's connection (jsonb, NULL: none; see connection.c). */
#define CLAIM_CONNECTION (CLAIM_FUNCTION + 1)
/* Then its batch_size, and the row's batch_key (see batch.c). */
#define CLAIM_BATCH_SIZE (CLAIM_CONNECTION + 1)
#define CLAIM_BATCH_KEY (CLAIM_BATCH_SIZE + 1)

/*
 * The targets that may have rows in the queue: those that exist and the
 * deleted ones eventbus.deleted_targets remembers (see forget_sql).  The
 * statements below that must not read the queue as a whole probe it once
 * per target from this list.
 */
#define EB_QUEUE_TARGETS_SQL \
"(SELECT t.bus, t.rule, t.target_id FROM eventbus.targets t" \
"  UNION ALL" \
"  SELECT g.bus, g.rule, g.target_id FROM eventbus.deleted_targets g)"

/*
 * When the next row becomes due, after now: one probe of
 * deliveries_target_due_idx per target of EB_QUEUE_TARGETS_SQL, each
 * starting at now() -- what is due already, the claim has taken or left to
 * targets at their limit, and the index entries before now are mostly
 * those of delivered rows, which a long transaction keeps.  The queue has no index on next_attempt_at alone (see
 * the upgrade script), so no plan can walk one target's rows for another.
 */
static const char *const next_due_sql =
"SELECT pg_catalog.min(n.at) FROM " EB_QUEUE_TARGETS_SQL " k"
" CROSS JOIN LATERAL ("
"  SELECT d.next_attempt_at AS at FROM eventbus.deliveries d"
"  WHERE d.bus OPERATOR(pg_catalog.=) k.bus AND d.rule OPERATOR(pg_catalog.=) k.rule"
"    AND d.target_id OPERATOR(pg_catalog.=) k.target_id"
"    AND d.next_attempt_at OPERATOR(pg_catalog.>) pg_catalog.now()"
"  ORDER BY d.next_attempt_at LIMIT 1) n";

/*
 * The statements that follow a claim find their rows in ways that leave
 * the planner no choice, whatever the statistics said when the plan was
 * made (plans last for the life of the worker, and autovacuum often sees
 * the queue empty): otherwise a join of the batch with the queue may be
 * planned as a hash join over the whole primary key.  Each checks that the
 * row is still the one claimed, under the same lease: a row leased again
 * or handed back meanwhile is left alone, one deleted meanwhile is gone.
 *
 * Delivered rows, the hot path, are looked up by id in a lateral subquery
 * (a nested loop of index probes) and deleted by ctid in one TID scan.
 * The colder statements go to each row by the ctid the claim returned;
 * their check calls the equality functions rather than operators, so that
 * it is a filter and not a join clause: the ctid is the only way to the
 * row.
 */

/*
 * Claimed rows of a target that reached its limit in the same claim (only
 * a race brings them): back to the queue, as if never claimed, in their
 * place (next_attempt_at untouched: a HOT update).
 */
static const char *const release_sql =
"UPDATE eventbus.deliveries d"
" SET attempts = d.attempts OPERATOR(pg_catalog.-) 1, leased_until = NULL,"
"   first_attempt_at = CASE WHEN d.attempts OPERATOR(pg_catalog.=) 1 THEN NULL"
"                      ELSE d.first_attempt_at END"
" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]),"
"   pg_catalog.unnest($2::pg_catalog.tid[])) AS s(id, tid)"
" WHERE d.ctid OPERATOR(pg_catalog.=) s.tid AND pg_catalog.int8eq(d.id, s.id)";

/* Delivered: the row goes away, if it is still ours. */
static const char *const done_sql =
"DELETE FROM eventbus.deliveries"
" WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
"   SELECT r.ctid"
"   FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]),"
"     pg_catalog.unnest($2::pg_catalog.timestamptz[])) AS s(id, lease),"
"     LATERAL (SELECT d.ctid, d.leased_until FROM eventbus.deliveries d"
"              WHERE d.id OPERATOR(pg_catalog.=) s.id OFFSET 0) r"
"   WHERE r.leased_until OPERATOR(pg_catalog.=) s.lease))";

/*
 * Failed, to be retried: back in the queue at the given time; a batch that
 * failed as a whole stays bound together by its key (batch.c).
 */
static const char *const retry_sql =
"UPDATE eventbus.deliveries d"
" SET next_attempt_at = s.next, leased_until = NULL,"
"   last_error = s.err, last_http_status = s.status,"
"   batch_key = s.batch_key"
" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]),"
"   pg_catalog.unnest($2::pg_catalog.tid[]),"
"   pg_catalog.unnest($3::pg_catalog.timestamptz[]),"
"   pg_catalog.unnest($4::pg_catalog.timestamptz[]),"
"   pg_catalog.unnest($5::pg_catalog.text[]),"
"   pg_catalog.unnest($6::pg_catalog.int4[]),"
"   pg_catalog.unnest($7::pg_catalog.int8[]))"
"   AS s(id, tid, lease, next, err, status, batch_key)"
" WHERE d.ctid OPERATOR(pg_catalog.=) s.tid AND pg_catalog.int8eq(d.id, s.id)"
"   AND pg_catalog.timestamptz_eq(d.leased_until, s.lease)";

/*
 * Failed for good (or its target is gone): moved to the dead-letter table
 * by eventbus.dead_letter(), which owns the dead-letter row.
 */
static const char *const dead_sql =
"WITH s AS ("
"  SELECT * FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]),"
"    pg_catalog.unnest($2::pg_catalog.tid[]),"
"    pg_catalog.unnest($3::pg_catalog.timestamptz[]),"
"    pg_catalog.unnest($4::pg_catalog.text[]), pg_catalog.unnest($5::pg_catalog.text[]),"
"    pg_catalog.unnest($6::pg_catalog.int4[]), pg_catalog.unnest($7::pg_catalog.text[]),"
"    pg_catalog.unnest($8::pg_catalog.text[]), pg_catalog.unnest($9::pg_catalog.text[]))"
"    AS s(id, tid, lease, code, msg, status, excerpt, cond, endpoint)"
"), gone AS ("
"  DELETE FROM eventbus.deliveries d USING s"
"  WHERE d.ctid OPERATOR(pg_catalog.=) s.tid AND pg_catalog.int8eq(d.id, s.id)"
"    AND pg_catalog.timestamptz_eq(d.leased_until, s.lease)"
"  RETURNING d AS moved, s.code, s.msg, s.status, s.excerpt, s.cond, s.endpoint"
")"
"SELECT eventbus.dead_letter(g.moved, g.endpoint, g.code, g.msg, g.status,"
"  g.excerpt, g.cond)"
" FROM gone g";

/*
 * Deliveries of a stopping worker: back to the queue, due at once (a
 * leased row is due already; its lease is what holds it).
 */
static const char *const hand_back_sql =
"UPDATE eventbus.deliveries d"
" SET leased_until = NULL"
" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]),"
"   pg_catalog.unnest($2::pg_catalog.tid[]),"
"   pg_catalog.unnest($3::pg_catalog.timestamptz[])) AS s(id, tid, lease)"
" WHERE d.ctid OPERATOR(pg_catalog.=) s.tid AND pg_catalog.int8eq(d.id, s.id)"
"   AND pg_catalog.timestamptz_eq(d.leased_until, s.lease)";

/*
 * Leases left by a crash: back to the queue now.  A leased row is due (the
 * lease leaves next_attempt_at alone), so the rows are reached by one
 * probe of deliveries_target_due_idx per target of EB_QUEUE_TARGETS_SQL
 * (OFFSET 0 keeps the planner from flattening the probe into a join that
 * starts from the queue), up to now, and updated by ctid, never by reading
 * the whole queue.  (Rows leased by 0.1.0's worker, whose lease moved
 * next_attempt_at to its end, are claimed when that end comes.)
 */
static const char *const reconcile_sql =
"UPDATE eventbus.deliveries d"
" SET leased_until = NULL"
" FROM (SELECT l.row_ctid FROM " EB_QUEUE_TARGETS_SQL " k"
"  CROSS JOIN LATERAL ("
"    SELECT q.ctid AS row_ctid FROM eventbus.deliveries q"
"    WHERE q.bus OPERATOR(pg_catalog.=) k.bus AND q.rule OPERATOR(pg_catalog.=) k.rule"
"      AND q.target_id OPERATOR(pg_catalog.=) k.target_id"
"      AND q.next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
"      AND q.leased_until IS NOT NULL"
"    OFFSET 0) l) s"
" WHERE d.ctid OPERATOR(pg_catalog.=) s.row_ctid";

/* The installed extension and its version. */
static const char *const extension_sql =
"SELECT x.oid, x.extversion FROM pg_catalog.pg_extension x"
" WHERE x.extname OPERATOR(pg_catalog.=) 'pg_eventbus'";

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
	/*
	 * Nothing the worker runs may resolve to an object a user created: only
	 * pg_catalog, and pg_temp last (unlisted, it would be searched first).
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

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
	 * The statements' shapes (lateral probes per target and per claimed row,
	 * rows found again by ctid) leave the planner a nested loop of index or
	 * TID probes and, besides it, only plans that read a whole table or
	 * index: a hash or merge join, a bitmap scan.  On a table that is tiny
	 * when the plan is made, those can look cheaper; they are never what
	 * the statement means, so they are ruled out here, and the probes are
	 * the plan whatever the statistics say (TAP test 060_worker_plans.pl).
	 */
	SetConfigOption("enable_hashjoin", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("enable_mergejoin", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("enable_bitmapscan", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * A large backlog makes the claim's estimated cost large enough for JIT,
	 * which would then compile its expressions at every execution: more
	 * than half the worker's time, for statements that touch a few hundred
	 * rows.
	 */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/* the low marks go to the claim as ISO text (slots.c) */
	SetConfigOption("DateStyle", "ISO, YMD", PGC_SUSET, PGC_S_OVERRIDE);

	batch_ctx = AllocSetContextCreate(TopMemoryContext, "pg_eventbus batch",
									  ALLOCSET_DEFAULT_SIZES);
	eb_request_init();
	eb_slots_init();
}

/* ------------------------------------------------------------------------
 * Transactions and SPI helpers
 * ------------------------------------------------------------------------
 */

/* Commits, reports statistics (for autovacuum) and forgets the batch. */
static void
commit_xact(void)
{
	eb_xact_commit();
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

/* ------------------------------------------------------------------------
 * Start-up: wait for the schema, reconcile leases left by a crash
 * ------------------------------------------------------------------------
 */

/*
 * Is the extension installed at this library's version?  Sets *version to
 * the installed one (in batch_ctx) when it is another.  Needs a
 * transaction.
 */
static EbReadiness
readiness(char **version)
{
	bool		isnull;

	if (SPI_execute(extension_sql, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "pg_eventbus: could not read pg_extension");
	if (SPI_processed == 0)
		return EB_NO_EXTENSION;
	*version = MemoryContextStrdup(batch_ctx,
								   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	if (strcmp(*version, EB_VERSION) != 0)
		return EB_OTHER_VERSION;
	ready_extension = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 1, &isnull));
	return EB_READY;
}

/*
 * Sleeps until the extension is installed in our database at the version
 * this library is built for (CREATE EXTENSION and ALTER EXTENSION UPDATE
 * wake us; otherwise we look again at the poll interval), saying once in
 * the log what it waits for.  The worker never runs its statements
 * against an older schema.
 */
void
eb_queue_wait_until_ready(void)
{
	EbReadiness logged = EB_READY;

	for (;;)
	{
		EbReadiness state;
		char	   *version = NULL;

		eb_stats_worker_state(EB_WORKER_WAITING_FOR_EXTENSION, 0);
		eb_xact_begin("pg_eventbus: checking for the extension");
		state = readiness(&version);
		if (state != logged && state == EB_NO_EXTENSION)
			ereport(LOG,
					(errmsg("pg_eventbus delivery worker is waiting for CREATE EXTENSION pg_eventbus in database \"%s\"",
							eb_settings->database)));
		else if (state != logged && state == EB_OTHER_VERSION)
			ereport(LOG,
					(errmsg("pg_eventbus delivery worker is waiting for ALTER EXTENSION pg_eventbus UPDATE in database \"%s\"",
							eb_settings->database),
					 errdetail("The installed extension is version %s; the library is version %s.",
							   version, EB_VERSION),
					 errhint("Run ALTER EXTENSION pg_eventbus UPDATE in database \"%s\".",
							 eb_settings->database)));
		else if (state != logged && state == EB_READY)
			ereport(LOG,
					(errmsg("pg_eventbus delivery worker found the extension at version %s in database \"%s\"; starting deliveries",
							EB_VERSION, eb_settings->database)));
		commit_xact();
		if (state == EB_READY)
			return;
		logged = state;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 eb_settings->poll_interval, PG_WAIT_EXTENSION);
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

		eb_xact_begin("pg_eventbus: returning leases left by a restart");
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
 * claim
 * ------------------------------------------------------------------------
 */

/* A text value of the claim's row, or NULL. */
static const char *
claim_text(HeapTuple tuple, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		v = SPI_getbinval(tuple, desc, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(v);
}

/* Reads one row of the claim's result. */
static void
read_claimed_row(HeapTuple tuple, TupleDesc desc, EbClaimedRow *row)
{
	bool		isnull;
	Datum		v;

	memset(row, 0, sizeof(*row));
	row->id = DatumGetInt64(SPI_getbinval(tuple, desc, CLAIM_ID, &isnull));
	ItemPointerCopy((ItemPointer) DatumGetPointer(SPI_getbinval(tuple, desc, CLAIM_TID, &isnull)),
					&row->tid);
	row->attempts = DatumGetInt32(SPI_getbinval(tuple, desc, CLAIM_ATTEMPTS, &isnull));
	row->lease = DatumGetTimestampTz(SPI_getbinval(tuple, desc, CLAIM_LEASE, &isnull));
	row->target_gone = DatumGetBool(SPI_getbinval(tuple, desc, CLAIM_GONE, &isnull));
	v = SPI_getbinval(tuple, desc, CLAIM_LAST_STATUS, &row->last_status_null);
	row->last_status = row->last_status_null ? 0 : DatumGetInt32(v);
	row->endpoint = claim_text(tuple, desc, CLAIM_ENDPOINT);
	row->method = claim_text(tuple, desc, CLAIM_METHOD);
	row->headers = claim_text(tuple, desc, CLAIM_HEADERS);
	v = SPI_getbinval(tuple, desc, CLAIM_MAX_RETRY_ATTEMPTS, &isnull);
	row->max_retry_attempts = isnull ? 0 : DatumGetInt32(v);
	v = SPI_getbinval(tuple, desc, CLAIM_MAX_EVENT_AGE_MS, &isnull);
	row->max_event_age_ms = isnull ? 0 : DatumGetInt64(v);
	v = SPI_getbinval(tuple, desc, CLAIM_TIMEOUT_MS, &isnull);
	row->timeout_ms = isnull ? 0 : (long) DatumGetInt64(v);
	row->bus = claim_text(tuple, desc, CLAIM_BUS);
	row->rule = claim_text(tuple, desc, CLAIM_RULE);
	row->target_id = claim_text(tuple, desc, CLAIM_TARGET_ID);
	row->target_key = claim_text(tuple, desc, CLAIM_TARGET_KEY);
	v = SPI_getbinval(tuple, desc, CLAIM_PUBLISHED_AT, &isnull);
	row->published_at = isnull ? 0 : DatumGetTimestampTz(v);
	row->has_published_at = !isnull;
	row->event_id = SPI_getbinval(tuple, desc, CLAIM_EVENT_ID, &isnull);
	row->envelope = claim_text(tuple, desc, CLAIM_ENVELOPE);
	for (int i = 0; i < EB_EV_NCOLUMNS; i++)
		row->event[i] = SPI_getbinval(tuple, desc, CLAIM_EVENT + i, &row->event_null[i]);
	row->signing_keys = SPI_getbinval(tuple, desc, CLAIM_SIGNING_KEYS,
									  &row->signing_keys_null);
	row->transform = SPI_getbinval(tuple, desc, CLAIM_TRANSFORM, &row->transform_null);
	row->function = claim_text(tuple, desc, CLAIM_FUNCTION);
	row->connection = SPI_getbinval(tuple, desc, CLAIM_CONNECTION, &row->connection_null);
	row->batch_size = DatumGetInt32(SPI_getbinval(tuple, desc, CLAIM_BATCH_SIZE, &isnull));
	v = SPI_getbinval(tuple, desc, CLAIM_BATCH_KEY, &isnull);
	row->batch_key = isnull ? 0 : DatumGetInt64(v);
	row->due_at = DatumGetTimestampTz(SPI_getbinval(tuple, desc, CLAIM_DUE_AT, &isnull));
}

/* One target's share of a claim, for its low mark. */
typedef struct ClaimedTarget
{
	char		key[EB_TARGET_KEY_LEN];
	int			rows;			/* rows the claim took */
	int			room;			/* rows it could take */
	TimestampTz last_due;		/* the latest next_attempt_at among them */
	bool		released;		/* some went back to the queue */
} ClaimedTarget;

/* The horizon of the low marks (see horizon_sql). */
static TimestampTz
claim_horizon(void)
{
	bool		isnull;
	Datum		v;

	if (SPI_execute_plan(eb_saved_plan(&horizon_plan, horizon_sql, 0, NULL),
						 NULL, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "pg_eventbus: could not read the oldest writing transaction");
	v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? DT_NOBEGIN : DatumGetTimestampTz(v);
}

/*
 * Claims up to `room` due deliveries in one transaction and builds their
 * requests, within each target's slots (slots.c says how many each target
 * may start; a row over the limit, which only a race can bring, goes
 * straight back to the queue), and moves each target's low mark.  Returns
 * when the queue should be looked at again: now when the claim was full,
 * otherwise the earliest next_attempt_at after now (0 if none), or -- when
 * some targets are at their limit or paused -- no later than the end of
 * the earliest pause or the poll interval.
 */
TimestampTz
eb_queue_claim(int room, EbDelivery **claimed, bool *ready)
{
	Oid			types[6] = {INT4OID, JSONBOID, INT4OID, BOOLOID, INT4OID, INT4OID};
	Datum		args[6];
	uint64		n;
	int			nrelease = 0;
	StringInfoData state;
	TimestampTz unpause;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz horizon;
	bool		sweep;
	HASHCTL		ctl;
	HTAB	   *claimed_targets;
	HASH_SEQ_STATUS seq;
	ClaimedTarget *ct;
	Datum	   *release_ids;
	Datum	   *release_tids;
	TimestampTz next_due = 0;
	EbDelivery **tail = claimed;
	EbClaimedRow *pending;
	int			npending = 0;
	int			requests = 0;
	bool		full;

	*claimed = NULL;
	eb_xact_begin("pg_eventbus: claiming deliveries");

	/* the extension dropped, or dropped and created again: look again */
	*ready = (get_extension_oid("pg_eventbus", true) == ready_extension);
	if (!*ready)
	{
		commit_xact();
		return GetCurrentTimestamp();
	}

	MemoryContextSwitchTo(batch_ctx);

	/* rows of deleted targets: looked for once per poll interval */
	sweep = (last_sweep == 0 ||
			 TimestampDifferenceExceeds(last_sweep, now, eb_settings->poll_interval));
	if (sweep)
		last_sweep = now;

	/* rows of held targets past their max_event_age (every 10 s) */
	eb_limits_expire_held();

	/*
	 * Now and then every target is looked at from its start again: rows
	 * put back in their place by another worker (a hand-back, a lease of a
	 * worker that crashed) or by a prepared transaction are found then.
	 */
	if (last_rescan == 0 ||
		TimestampDifferenceExceeds(last_rescan, now,
								   EB_LOW_RESCAN_POLLS * eb_settings->poll_interval))
	{
		eb_slots_forget_low(NULL);
		last_rescan = now;
	}

	/* before the claim's snapshot: see horizon_sql */
	horizon = claim_horizon();

	initStringInfo(&state);
	targets_saturated = eb_slots_claim_state(&state, &unpause);
	args[0] = Int32GetDatum(room);
	args[1] = DirectFunctionCall1(jsonb_in, CStringGetDatum(state.data));
	args[2] = Int32GetDatum(eb_slots_default_room());
	args[3] = BoolGetDatum(sweep);
	args[4] = Int32GetDatum((int32) pg_prng_uint32(&pg_global_prng_state));
	args[5] = Int32GetDatum(EB_BATCH_CLAIM_ROWS);
	if (sweep &&
		SPI_execute_plan(eb_saved_plan(&forget_plan, forget_sql, 0, NULL),
						 NULL, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "pg_eventbus: could not forget deleted targets");
	if (SPI_execute_plan(eb_saved_plan(&claim_plan, claim_sql, 6, types),
						 args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "pg_eventbus: could not claim deliveries");
	n = SPI_processed;

	ctl.keysize = EB_TARGET_KEY_LEN;
	ctl.entrysize = sizeof(ClaimedTarget);
	ctl.hcxt = batch_ctx;
	claimed_targets = hash_create("pg_eventbus claimed targets", 16, &ctl,
								  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	release_ids = palloc(sizeof(Datum) * (n + 1));
	release_tids = palloc(sizeof(Datum) * (n + 1));
	pending = palloc(sizeof(EbClaimedRow) * (n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		EbClaimedRow row;
		EbDelivery *d;
		char		key[EB_TARGET_KEY_LEN];
		bool		found;
		bool		isnull;

		read_claimed_row(tuple, desc, &row);
		if (!row.target_gone)
		{
			strlcpy(key, row.target_key, sizeof(key));
			ct = hash_search(claimed_targets, key, HASH_ENTER, &found);
			if (!found)
			{
				ct->rows = 0;
				ct->room = DatumGetInt32(SPI_getbinval(tuple, desc, CLAIM_ROOM, &isnull)) *
					row.batch_size;
				ct->last_due = DT_NOBEGIN;
				ct->released = false;
			}
			ct->rows++;
			ct->last_due = Max(ct->last_due,
							   DatumGetTimestampTz(SPI_getbinval(tuple, desc, CLAIM_DUE_AT,
																 &isnull)));
			/* a batch target's rows: made into requests below (batch.c) */
			if (row.batch_size > 1)
			{
				pending[npending++] = row;
				continue;
			}
			if ((!row.event_null[EB_EV_ID] || row.envelope != NULL) &&
				!eb_slots_take(row.target_key))
			{
				release_ids[nrelease] = SPI_getbinval(tuple, desc, CLAIM_ID, &isnull);
				release_tids[nrelease++] = SPI_getbinval(tuple, desc, CLAIM_TID, &isnull);
				ct->released = true;
				continue;
			}
		}
		d = eb_request_build(&row);
		if (d->to_send)
			requests++;
		*tail = d;
		tail = &d->next;
	}
	/* the claim was full: more may be due at once */
	full = (n - npending >= (uint64) room || npending >= EB_BATCH_CLAIM_ROWS);

	/*
	 * Batches: one request (and one slot) each, within the room left; a
	 * batch over its target's limit or the room goes back to the queue
	 * whole.
	 */
	eb_batch_sort(pending, npending);
	for (int i = 0; i < npending;)
	{
		int			end = eb_batch_group_end(pending, npending, i);
		EbDelivery *leader = eb_batch_build(&pending[i], end - i, &tail);

		if (leader != NULL &&
			(requests >= room || !eb_slots_take(leader->target_key)))
		{
			for (EbDelivery *m = leader; m != NULL;
				 m = (m == leader ? leader->batch_rows : m->batch_next))
			{
				ItemPointer tid = palloc(sizeof(ItemPointerData));

				ItemPointerCopy(&m->tid, tid);
				release_ids[nrelease] = Int64GetDatum(m->id);
				release_tids[nrelease++] = PointerGetDatum(tid);
			}
			ct = hash_search(claimed_targets, pending[i].target_key, HASH_FIND, NULL);
			if (ct != NULL)
				ct->released = true;
			eb_batch_discard(leader);
		}
		else if (leader != NULL)
		{
			*tail = leader;
			tail = &leader->next;
			requests++;
		}
		i = end;
	}
	*tail = NULL;
	if (nrelease > 0)
	{
		Oid			rtypes[2] = {INT8ARRAYOID, TIDARRAYOID};
		Datum		rargs[2];

		rargs[0] = make_array(release_ids, NULL, nrelease, INT8OID);
		rargs[1] = make_array(release_tids, NULL, nrelease, TIDOID);
		if (SPI_execute_plan(eb_saved_plan(&release_plan, release_sql, 2, rtypes),
							 rargs, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "pg_eventbus: could not release deliveries");
		targets_saturated = true;
	}

	/*
	 * Low marks: a target that got all the rows it could take, or any
	 * target when the claim as a whole was full, may have more due from its
	 * last one on; one that got fewer has none left before the horizon.
	 * Released rows are back in their place, behind any mark.
	 */
	hash_seq_init(&seq, claimed_targets);
	while ((ct = hash_seq_search(&seq)) != NULL)
	{
		bool		more = (ct->rows >= ct->room || full);

		if (ct->released)
			eb_slots_forget_low(ct->key);
		else
			eb_slots_set_low(ct->key, more ? Min(ct->last_due, horizon) : horizon);

		/* it may have more due: claim again when a request of it settles */
		if (ct->rows >= ct->room)
		{
			targets_saturated = true;
			eb_limits_note_full(ct->key);
		}
	}

	/* targets with no room for their rate limit or breaker: until when */
	{
		TimestampTz limits_wake = eb_limits_claim_wake();

		if (limits_wake != 0)
		{
			targets_saturated = true;
			if (unpause == 0 || limits_wake < unpause)
				unpause = limits_wake;
		}
	}

	if (full)
		next_due = GetCurrentTimestamp();
	else
	{
		bool		isnull;
		Datum		v;

		if (SPI_execute_plan(eb_saved_plan(&next_due_plan, next_due_sql, 0, NULL),
							 NULL, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "pg_eventbus: could not read the next due time");
		if (SPI_processed > 0)
		{
			v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			if (!isnull)
				next_due = DatumGetTimestampTz(v);
		}

		/* a batch window that ends before then (batch.c) */
		{
			TimestampTz window_end = eb_batch_next_window();

			if (window_end != 0 && (next_due == 0 || window_end < next_due))
				next_due = window_end;
		}

		/*
		 * Due rows may be left behind for targets at their limit (claim
		 * again when one of their requests finishes) or paused (claim again
		 * when the first pause ends); look again by the poll interval.
		 */
		if (targets_saturated)
		{
			TimestampTz poll = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														   eb_settings->poll_interval);

			if (next_due == 0 || poll < next_due)
				next_due = poll;
			if (unpause != 0 && unpause < next_due)
				next_due = unpause;
		}
	}
	commit_xact();
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
TEXTOID, INT4OID, INT8OID};
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
	if (SPI_execute_plan(eb_saved_plan(plan, sql, rs->ncols, argtypes),
						 args, NULL, false, 0) != expected)
		elog(ERROR, "pg_eventbus: could not settle deliveries");
}

/*
 * Sorts one finished delivery into delivered, to retry (returning when) or
 * dead; the policy decides.  Returns the retry time, or 0.
 */
static TimestampTz
settle_one(RowSet *done, RowSet *retry, RowSet *dead, EbDelivery *d,
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

	/* a request that went out (not a row dead-lettered unsent) */
	if (d->to_send || d->batched)
		eb_stats_count_attempt(d->target_key, req->transport, req->status,
							   d->attempts,
							   verdict == EB_VERDICT_SUCCESS && !d->item_failed,
							   d->has_event ? d->published_at : 0);
	if (verdict == EB_VERDICT_SUCCESS && !d->target_gone && !d->item_failed)
	{
		Datum		v[] = {Int64GetDatum(d->id), TimestampTzGetDatum(d->lease)};

		rowset_add(done, v, NULL);
		return 0;
	}

	if (d->target_gone)
	{
		/* claimed after its target was deleted: keeps its last status */
		code = EB_ERR_TARGET_DELETED;
		cond = EB_EXHAUSTED_TARGET_DELETED;
		msg = pstrdup(req->error);
		no_status = (req->status == 0);
	}
	else
	{
		code = eb_error_code(req->transport, req->status);
		if (d->function != NULL)
			msg = pstrdup(d->function_error ? d->function_error : req->error);
		else if (d->item_failed)
		{
			/* a 2xx whose batchItemFailures list this event (batch.c) */
			code = EB_ERR_BATCH_ITEM_FAILURE;
			msg = psprintf("%s %s returned HTTP %ld listing the event in batchItemFailures",
						   req->method, d->endpoint, req->status);
		}
		else if (req->transport == EB_TRANSPORT_OK)
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

			/*
			 * The rows of a batch come back due together (one delay for the
			 * whole batch, one for its failed items), to be sent together.
			 */
			TimestampTz *shared = d->leader == NULL ? NULL :
			d->item_failed ? &d->leader->item_retry_at : &d->leader->batch_retry_at;

			if (shared != NULL && *shared != 0)
				next = *shared;
			else
			{
				delay_ms = eb_retry_delay_ms(d->attempts, eb_settings->retry_base_delay,
											 eb_settings->retry_max_delay,
											 pg_prng_double(&pg_global_prng_state),
											 req->retry_after, time(NULL));
				next = now + delay_ms * 1000;
				if (shared != NULL)
					*shared = next;
			}
			if (d->has_event && next > d->published_at + d->max_event_age_ms * 1000)
				cond = EB_EXHAUSTED_AGE;
		}
	}

	if (cond == NULL)
	{
		/* a batch failed whole stays one: keyed by its leader's id */
		bool		bound = (d->leader != NULL && !d->item_failed);
		Datum		v[] = {Int64GetDatum(d->id), PointerGetDatum(&d->tid),
			TimestampTzGetDatum(d->lease),
			TimestampTzGetDatum(next),
			CStringGetTextDatum(psprintf("%s: %s", code, msg)),
			Int32GetDatum((int32) req->status),
		Int64GetDatum(bound ? d->leader->id : 0)};
		bool		n[] = {false, false, false, false, false, no_status, !bound};

		rowset_add(retry, v, n);
		return next;
	}

	excerpt = eb_response_excerpt(req);
	eb_stats_count_dead_letter(d->target_key, req->transport);
	{
		Datum		v[] = {Int64GetDatum(d->id), PointerGetDatum(&d->tid),
			TimestampTzGetDatum(d->lease),
			CStringGetTextDatum(code), CStringGetTextDatum(msg),
			Int32GetDatum((int32) req->status),
			excerpt ? CStringGetTextDatum(excerpt) : (Datum) 0,
			CStringGetTextDatum(cond),
		d->endpoint ? CStringGetTextDatum(d->endpoint) : (Datum) 0};
		bool		n[] = {false, false, false, false, false, no_status, excerpt == NULL,
		false, d->endpoint == NULL};

		rowset_add(dead, v, n);
	}
	return 0;
}

/*
 * Records the results of the finished deliveries in one transaction, gives
 * their slots back and frees them.  Rows that have vanished meanwhile
 * (target deleted while not leased) or been leased again are left alone.
 * Returns the earliest retry time set, or 0.
 */
TimestampTz
eb_queue_settle(EbDelivery *finished)
{
	RowSet		done,
				retry,
				dead;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz earliest = 0;
	MemoryContext old;
	int			count = 0;

	if (finished == NULL)
		return 0;

	old = MemoryContextSwitchTo(batch_ctx);
	/* every row of a batch takes its request's outcome (batch.c) */
	finished = eb_batch_spread(finished);
	for (EbDelivery *d = finished; d != NULL; d = d->next)
		count++;
	rowset_init(&done, done_types, lengthof(done_types), count);
	rowset_init(&retry, retry_types, lengthof(retry_types), count);
	rowset_init(&dead, dead_types, lengthof(dead_types), count);
	for (EbDelivery *d = finished; d != NULL; d = d->next)
	{
		TimestampTz next = settle_one(&done, &retry, &dead, d, now);

		eb_attempts_add(d);

		if (next != 0 && (earliest == 0 || next < earliest))
			earliest = next;
	}
	MemoryContextSwitchTo(old);

	eb_xact_begin("pg_eventbus: settling deliveries");
	rowset_execute(&done, &done_plan, done_sql, SPI_OK_DELETE);
	rowset_execute(&retry, &retry_plan, retry_sql, SPI_OK_UPDATE);
	rowset_execute(&dead, &dead_plan, dead_sql, SPI_OK_SELECT);
	eb_attempts_flush();
	for (EbDelivery *d = finished; d != NULL; d = d->next)
	{
		/* a token refused: fetch another (connection.c) */
		if (d->to_send && d->connection != NULL && d->token_serial >= 0 &&
			d->http.transport == EB_TRANSPORT_OK &&
			(d->http.status == 401 || d->http.status == 407))
			eb_connection_token_refused(d->connection, d->token_serial);
	}
	while (finished != NULL)
	{
		EbDelivery *d = finished;

		finished = d->next;
		if (d->to_send)
		{
			eb_slots_return(d->target_key, eb_transport_answered(d->http.transport));
			eb_limits_report(d->target_key,
							 eb_limits_failed(d->http.transport, d->http.status));
		}
		eb_request_free(d);
	}
	commit_xact();				/* also resets batch_ctx */
	return earliest;
}

/* ------------------------------------------------------------------------
 * hand back
 * ------------------------------------------------------------------------
 */

/* Collects a live delivery's id, ctid and lease for the hand-back. */
typedef struct HandBack
{
	int			n;
	Datum	   *ids;
	Datum	   *tids;
	Datum	   *leases;
} HandBack;

static void
collect_live(EbDelivery *d, void *arg)
{
	HandBack   *hb = (HandBack *) arg;

	hb->ids = repalloc(hb->ids, sizeof(Datum) * (hb->n + 1));
	hb->tids = repalloc(hb->tids, sizeof(Datum) * (hb->n + 1));
	hb->leases = repalloc(hb->leases, sizeof(Datum) * (hb->n + 1));
	hb->ids[hb->n] = Int64GetDatum(d->id);
	hb->tids[hb->n] = PointerGetDatum(&d->tid);
	hb->leases[hb->n] = TimestampTzGetDatum(d->lease);
	hb->n++;
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
	Oid			types[3] = {INT8ARRAYOID, TIDARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		args[3];
	HandBack	hb;
	uint64		returned;
	MemoryContext old;

	old = MemoryContextSwitchTo(batch_ctx);
	hb.n = 0;
	hb.ids = palloc(sizeof(Datum));
	hb.tids = palloc(sizeof(Datum));
	hb.leases = palloc(sizeof(Datum));
	eb_request_foreach_live(collect_live, &hb);
	MemoryContextSwitchTo(old);
	if (hb.n == 0)
		return;

	eb_xact_begin("pg_eventbus: handing back leases");
	args[0] = make_array(hb.ids, NULL, hb.n, INT8OID);
	args[1] = make_array(hb.tids, NULL, hb.n, TIDOID);
	args[2] = make_array(hb.leases, NULL, hb.n, TIMESTAMPTZOID);
	if (SPI_execute_plan(eb_saved_plan(&hand_back_plan, hand_back_sql, 3, types),
						 args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "pg_eventbus: could not hand back leases");
	returned = SPI_processed;
	commit_xact();
	ereport(LOG,
			(errmsg("pg_eventbus delivery worker returned %llu leased deliveries to the queue",
					(unsigned long long) returned),
			 errdetail("The worker is stopping; they will be sent again.")));
}
