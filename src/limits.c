/*-------------------------------------------------------------------------
 *
 * limits.c
 *	  Rate limits and circuit breakers of targets, shared by every delivery
 *	  worker.
 *
 * A target with put_target(..., rate_limit => N) gets a token bucket in
 * shared memory: N tokens a second, holding at most a tenth of a second's
 * worth (at least one).  A request takes a token when it starts; the claim
 * gives the target no more room than the tokens it has now, and none until
 * half a bucket has come back, so claims of a busy limited target come in
 * batches and the worker sleeps until the tokens it waits for are there.
 * A row over the rate is therefore never claimed: it waits in the queue
 * and no attempt is counted.
 *
 * The circuit breaker of a target counts consecutive failed requests --
 * no answer (refused, reset, timed out, malformed) or an answer 5xx or 408
 * -- within eventbus.breaker_window; eventbus.breaker_failures of them
 * open it.  While OPEN the target gets no room (its due rows wait without
 * consuming attempts; requests already in flight finish and count); after
 * the cool-down (eventbus.breaker_cooldown, doubling each time the target
 * fails again, up to eventbus.breaker_max_cooldown) one request goes out
 * as a probe (HALF_OPEN).  Any other answer closes the breaker: the target
 * is up, and its backlog drains at full speed; a failed probe opens it
 * again for twice as long.
 *
 * Workers find the state through the claim: eventbus.target_room() (the
 * claim calls it for every target) says how many requests the target may
 * start now, and notes when the worker should look again.  Only targets
 * with a rate limit or a failure have an entry; without
 * shared_preload_libraries there is no table (and no worker to limit).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <math.h>

#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "limits.h"
#include "policy.h"
#include "request.h"
#include "saved_plan.h"
#include "settings.h"

/* Targets with a rate limit or a breaker that saw failures, at most. */
#define EB_LIMITS_MAX_TARGETS 4096

/*
 * A probe that never reported (its worker stopped while it was in flight)
 * is replaced by another after the longest timeout plus the lease margin.
 */
#define EB_PROBE_STALE_MS ((5 * 60 + 30) * 1000)

typedef enum EbBreakerState
{
	EB_BREAKER_CLOSED = 0,
	EB_BREAKER_OPEN,
	EB_BREAKER_HALF_OPEN
} EbBreakerState;

static const char *const breaker_state_names[] = {"closed", "open", "half_open"};

typedef struct EbTargetLimits
{
	char		key[EB_TARGET_KEY_LEN]; /* bus \x1f rule \x1f target_id */
	int32		rate;			/* requests per second; 0: none */
	double		tokens;
	TimestampTz refilled_at;
	int64		rate_limited;	/* claims that spent every token */
	EbBreakerState state;
	int32		failures;		/* in a row, within the window */
	TimestampTz first_failure_at;
	TimestampTz opened_at;		/* when it opened; kept while it stays down */
	int64		cooldown_ms;
	TimestampTz next_probe_at;
	TimestampTz probe_started_at;
} EbTargetLimits;

typedef struct EbLimitsShared
{
	LWLock	   *lock;
} EbLimitsShared;

static EbLimitsShared *limits_shared = NULL;
static HTAB *limits_table = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* The earliest time a target this worker's claim passed over gets room. */
static TimestampTz claim_wake = 0;

static SPIPlanPtr expire_plan = NULL;

/*
 * How often a worker looks for held targets' rows past max_event_age: at
 * most every EB_HELD_SWEEP_MS, and never more often than would make the
 * sweep take more than 1 / EB_HELD_SWEEP_SHARE of the worker's time (it
 * reads each held target's backlog, which may be large).
 */
#define EB_HELD_SWEEP_MS 10000
#define EB_HELD_SWEEP_SHARE 100

PG_FUNCTION_INFO_V1(eventbus_target_room);
PG_FUNCTION_INFO_V1(eventbus_breaker_open);
PG_FUNCTION_INFO_V1(eventbus_breaker_reset);
PG_FUNCTION_INFO_V1(eventbus_target_limits);

/* Asks for the table and its lock (PostgreSQL 15's hook). */
static void
limits_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(EbLimitsShared)));
	RequestAddinShmemSpace(hash_estimate_size(EB_LIMITS_MAX_TARGETS,
											  sizeof(EbTargetLimits)));
	RequestNamedLWLockTranche("pg_eventbus limits", 1);
}

/* Creates or attaches the table; in the postmaster and after a crash. */
static void
limits_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	limits_shared = ShmemInitStruct("pg_eventbus limits", sizeof(EbLimitsShared), &found);
	if (!found)
		limits_shared->lock = &(GetNamedLWLockTranche("pg_eventbus limits"))->lock;
	info.keysize = EB_TARGET_KEY_LEN;
	info.entrysize = sizeof(EbTargetLimits);
	limits_table = ShmemInitHash("pg_eventbus limits table",
								 EB_LIMITS_MAX_TARGETS, EB_LIMITS_MAX_TARGETS,
								 &info, HASH_ELEM | HASH_STRINGS);
	LWLockRelease(AddinShmemInitLock);
}

/* When preloading, hooks the shared memory of the limits. */
void
eb_limits_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = limits_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = limits_shmem_startup;
}

/* The bucket's size: a tenth of a second of requests, at least one. */
static double
capacity_of(int32 rate)
{
	return Max(1.0, rate / 10.0);
}

/* Tokens a target waits for before a claim takes any: half a bucket. */
static double
chunk_of(int32 rate)
{
	return Max(1.0, floor(capacity_of(rate) / 2.0));
}

/* Adds the tokens earned since the last refill. */
static void
refill(EbTargetLimits *e, TimestampTz now)
{
	if (e->rate <= 0)
		return;
	if (now > e->refilled_at)
		e->tokens = Min(capacity_of(e->rate),
						e->tokens + e->rate * (double) (now - e->refilled_at) / 1000000.0);
	e->refilled_at = now;
}

/* The entry of a key, created (zeroed, closed) when `create`; or NULL. */
static EbTargetLimits *
entry_of(const char *key, bool create)
{
	char		k[EB_TARGET_KEY_LEN];
	EbTargetLimits *e;
	bool		found;

	strlcpy(k, key, sizeof(k));
	if (!create)
		return hash_search(limits_table, k, HASH_FIND, NULL);
	e = hash_search(limits_table, k, HASH_ENTER_NULL, &found);
	if (e != NULL && !found)
	{
		memset((char *) e + EB_TARGET_KEY_LEN, 0, sizeof(*e) - EB_TARGET_KEY_LEN);
		e->state = EB_BREAKER_CLOSED;
	}
	return e;
}

/* Forgets an entry that holds nothing: no rate, closed, no failure. */
static void
forget_if_empty(EbTargetLimits *e)
{
	if (e->rate == 0 && e->state == EB_BREAKER_CLOSED && e->failures == 0)
		hash_search(limits_table, e->key, HASH_REMOVE, NULL);
}

/*
 * With the breakers turned off (eventbus.breaker_failures = 0), closes a
 * breaker left open from before.
 */
static void
close_if_off(EbTargetLimits *e)
{
	if (eventbus_breaker_failures == 0 && e->state != EB_BREAKER_CLOSED)
	{
		e->state = EB_BREAKER_CLOSED;
		e->failures = 0;
		e->cooldown_ms = 0;
	}
}

/* Notes when this worker's claim should look at a target again. */
static void
note_wake(TimestampTz at)
{
	if (claim_wake == 0 || at < claim_wake)
		claim_wake = at;
}

/* "bus \x1f rule \x1f target_id", as the worker names a target. */
static void
key_of(char *buf, FunctionCallInfo fcinfo)
{
	snprintf(buf, EB_TARGET_KEY_LEN, "%s\x1f%s\x1f%s",
			 text_to_cstring(PG_GETARG_TEXT_PP(0)),
			 text_to_cstring(PG_GETARG_TEXT_PP(1)),
			 text_to_cstring(PG_GETARG_TEXT_PP(2)));
}

/*
 * eventbus.target_room(bus, rule, target_id, rate_limit): how many requests
 * the target may start now as far as its breaker and rate limit go
 * (2^31 - 1: no limit).  The claim calls it for every target; it records
 * the target's rate limit for eb_limits_take() and notes when a target
 * with no room now gets some.
 */
Datum
eventbus_target_room(PG_FUNCTION_ARGS)
{
	char		key[EB_TARGET_KEY_LEN];
	int32		rate = PG_ARGISNULL(3) ? 0 : Max(0, PG_GETARG_INT32(3));
	TimestampTz now = GetCurrentTimestamp();
	EbTargetLimits *e;
	int32		room = PG_INT32_MAX;

	if (limits_table == NULL || PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_INT32(room);
	key_of(key, fcinfo);

	LWLockAcquire(limits_shared->lock, LW_SHARED);
	e = entry_of(key, false);
	LWLockRelease(limits_shared->lock);
	if (e == NULL && rate == 0)
		PG_RETURN_INT32(room);

	LWLockAcquire(limits_shared->lock, LW_EXCLUSIVE);
	e = entry_of(key, rate > 0);
	if (e == NULL)
	{
		/* no limit, or a full table: the target goes unlimited */
		LWLockRelease(limits_shared->lock);
		PG_RETURN_INT32(room);
	}
	close_if_off(e);
	if (e->rate != rate)
	{
		if (e->rate == 0)
		{
			e->tokens = capacity_of(rate);
			e->refilled_at = now;
		}
		refill(e, now);
		e->rate = rate;
		if (rate > 0)
			e->tokens = Min(e->tokens, capacity_of(rate));
	}

	if (e->state == EB_BREAKER_OPEN)
	{
		if (now >= e->next_probe_at)
			room = 1;
		else
		{
			room = 0;
			note_wake(e->next_probe_at);
		}
	}
	else if (e->state == EB_BREAKER_HALF_OPEN)
		room = (now - e->probe_started_at > EB_PROBE_STALE_MS * (int64) 1000) ? 1 : 0;

	if (room > 0 && e->rate > 0)
	{
		double		chunk = chunk_of(e->rate);

		refill(e, now);
		if (e->tokens < chunk)
		{
			room = 0;
			note_wake(now + (TimestampTz) ceil((chunk - e->tokens) * 1000000.0 / e->rate));
		}
		else
			room = Min(room, (int32) e->tokens);
	}
	if (e->rate == 0)
		forget_if_empty(e);
	LWLockRelease(limits_shared->lock);
	PG_RETURN_INT32(room);
}

/*
 * Takes what a request to the target needs to start: a token if it has a
 * rate limit, the probe if its breaker is open and the cool-down is over.
 * False when it may not start now (the row goes back to the queue).
 */
bool
eb_limits_take(const char *target_key)
{
	EbTargetLimits *e;
	TimestampTz now = GetCurrentTimestamp();
	bool		ok = true;

	if (limits_table == NULL)
		return true;
	LWLockAcquire(limits_shared->lock, LW_EXCLUSIVE);
	e = entry_of(target_key, false);
	if (e != NULL)
	{
		close_if_off(e);
		refill(e, now);
		if (e->rate > 0 && e->tokens < 1.0)
			ok = false;
		else if (e->state == EB_BREAKER_OPEN)
			ok = (now >= e->next_probe_at);
		else if (e->state == EB_BREAKER_HALF_OPEN)
			ok = (now - e->probe_started_at > EB_PROBE_STALE_MS * (int64) 1000);
		if (ok)
		{
			if (e->rate > 0)
				e->tokens -= 1.0;
			if (e->state != EB_BREAKER_CLOSED)
			{
				e->state = EB_BREAKER_HALF_OPEN;
				e->probe_started_at = now;
			}
		}
	}
	LWLockRelease(limits_shared->lock);
	return ok;
}

/*
 * Does this end of a request count against the target's breaker?  No
 * answer, a malformed one, a 5xx or a 408: the target is down or
 * overwhelmed.  DNS, URL and header failures are the configuration's and
 * dead-letter at once; any other status means the target is up.
 */
bool
eb_limits_failed(EbTransport transport, long http_status)
{
	switch (transport)
	{
		case EB_TRANSPORT_CONNECT:
		case EB_TRANSPORT_TIMEOUT:
		case EB_TRANSPORT_MALFORMED:
			return true;
		case EB_TRANSPORT_OK:
			return http_status >= 500 || http_status == 408;
		default:
			return false;
	}
}

/* Opens the breaker for `cooldown_ms`. */
static void
open_breaker(EbTargetLimits *e, TimestampTz now, int64 cooldown_ms)
{
	if (e->state == EB_BREAKER_CLOSED)
		e->opened_at = now;
	e->state = EB_BREAKER_OPEN;
	e->cooldown_ms = cooldown_ms;
	e->next_probe_at = TimestampTzPlusMilliseconds(now, cooldown_ms);
}

/*
 * Records the end of a request to the target: `failed` when it got no
 * answer, a malformed one, or a 5xx or 408 (see eb_limits_failed); any
 * other answer means the target is up.
 */
void
eb_limits_report(const char *target_key, bool failed)
{
	EbTargetLimits *e;
	TimestampTz now = GetCurrentTimestamp();

	if (limits_table == NULL)
		return;
	LWLockAcquire(limits_shared->lock, LW_EXCLUSIVE);
	e = entry_of(target_key, failed && eventbus_breaker_failures > 0);
	if (e == NULL)
	{
		LWLockRelease(limits_shared->lock);
		return;
	}
	if (!failed)
	{
		e->state = EB_BREAKER_CLOSED;
		e->failures = 0;
		e->cooldown_ms = 0;
		forget_if_empty(e);
	}
	else if (e->state == EB_BREAKER_HALF_OPEN)
	{
		e->failures++;
		open_breaker(e, now, Min(e->cooldown_ms * 2,
								 (int64) eventbus_breaker_max_cooldown));
	}
	else if (e->state == EB_BREAKER_OPEN)
		e->failures++;			/* a request from before it opened */
	else
	{
		if (e->failures == 0 ||
			TimestampDifferenceExceeds(e->first_failure_at, now, eventbus_breaker_window))
		{
			e->failures = 1;
			e->first_failure_at = now;
		}
		else
			e->failures++;
		if (eventbus_breaker_failures > 0 && e->failures >= eventbus_breaker_failures)
			open_breaker(e, now, Min(eventbus_breaker_cooldown,
									 eventbus_breaker_max_cooldown));
	}
	LWLockRelease(limits_shared->lock);
}

/*
 * After a claim that took all the room a target had: if its rate limit
 * was what ended it (no token left), count the claim as rate-limited.
 */
void
eb_limits_note_full(const char *target_key)
{
	EbTargetLimits *e;

	if (limits_table == NULL)
		return;
	LWLockAcquire(limits_shared->lock, LW_EXCLUSIVE);
	e = entry_of(target_key, false);
	if (e != NULL && e->rate > 0 && e->tokens < 1.0)
		e->rate_limited++;
	LWLockRelease(limits_shared->lock);
}

/*
 * When the claim that just ran should be followed by another because a
 * target it passed over gets room (tokens back, a probe due); 0 if none.
 * Resets the note for the next claim.
 */
TimestampTz
eb_limits_claim_wake(void)
{
	TimestampTz at = claim_wake;

	claim_wake = 0;
	return at;
}

/*
 * Dead-letters the rows of held targets whose event is older than their
 * max_event_age (eventbus.expire_held_deliveries()); inside the claim's
 * transaction, at most every EB_HELD_SWEEP_MS, and then only after
 * EB_HELD_SWEEP_SHARE times as long as the last sweep took: the sweep
 * reads each held target's backlog (a target down with half a million
 * rows queued took the worker a tenth of a core with a sweep every 10 s),
 * and max_event_age is at least a minute, so a late sweep only delays a
 * dead letter.
 */
void
eb_limits_expire_held(void)
{
	static TimestampTz next_sweep = 0;
	TimestampTz now = GetCurrentTimestamp();
	long		took_ms;

	if (now < next_sweep)
		return;
	if (SPI_execute_plan(eb_saved_plan(&expire_plan,
									   "SELECT eventbus.expire_held_deliveries()", 0, NULL),
						 NULL, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "pg_eventbus: could not expire the deliveries of held targets");
	took_ms = TimestampDifferenceMilliseconds(now, GetCurrentTimestamp());
	next_sweep = TimestampTzPlusMilliseconds(now,
											 Max((long) EB_HELD_SWEEP_MS,
												 took_ms * EB_HELD_SWEEP_SHARE));
}

/* eventbus.breaker_open(bus, rule, target_id): is its breaker not closed? */
Datum
eventbus_breaker_open(PG_FUNCTION_ARGS)
{
	char		key[EB_TARGET_KEY_LEN];
	EbTargetLimits *e;
	bool		open = false;

	if (limits_table == NULL)
		PG_RETURN_BOOL(false);
	key_of(key, fcinfo);
	LWLockAcquire(limits_shared->lock, LW_SHARED);
	e = entry_of(key, false);
	open = (e != NULL && e->state != EB_BREAKER_CLOSED);
	LWLockRelease(limits_shared->lock);
	PG_RETURN_BOOL(open);
}

/*
 * eventbus.breaker_reset(bus, rule, target_id): closes the target's
 * breaker and forgets its failures (enable_target: the operator says it is
 * back).
 */
Datum
eventbus_breaker_reset(PG_FUNCTION_ARGS)
{
	char		key[EB_TARGET_KEY_LEN];
	EbTargetLimits *e;

	if (limits_table == NULL)
		PG_RETURN_VOID();
	key_of(key, fcinfo);
	LWLockAcquire(limits_shared->lock, LW_EXCLUSIVE);
	e = entry_of(key, false);
	if (e != NULL)
	{
		e->state = EB_BREAKER_CLOSED;
		e->failures = 0;
		e->cooldown_ms = 0;
		forget_if_empty(e);
	}
	LWLockRelease(limits_shared->lock);
	PG_RETURN_VOID();
}

/* Text of the i-th field (0, 1, 2) of a target key. */
static text *
key_field(const char *key, int i)
{
	const char *start = key;
	const char *end;

	for (; i > 0 && start != NULL; i--)
	{
		start = strchr(start, '\x1f');
		if (start != NULL)
			start++;
	}
	if (start == NULL)
		return cstring_to_text("");
	end = strchr(start, '\x1f');
	return cstring_to_text_with_len(start, end ? end - start : (int) strlen(start));
}

/*
 * eventbus.target_limits(): one row per target with a rate limit or a
 * breaker that saw failures: bus, rule, target_id, breaker_state,
 * consecutive_failures, opened_at, next_probe_at, rate_limited.
 */
Datum
eventbus_target_limits(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS seq;
	EbTargetLimits *e;

	InitMaterializedSRF(fcinfo, 0);
	if (limits_table == NULL)
		return (Datum) 0;
	LWLockAcquire(limits_shared->lock, LW_SHARED);
	hash_seq_init(&seq, limits_table);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		Datum		values[8];
		bool		nulls[8] = {false};

		values[0] = PointerGetDatum(key_field(e->key, 0));
		values[1] = PointerGetDatum(key_field(e->key, 1));
		values[2] = PointerGetDatum(key_field(e->key, 2));
		values[3] = CStringGetTextDatum(breaker_state_names[e->state]);
		values[4] = Int32GetDatum(e->failures);
		values[5] = TimestampTzGetDatum(e->opened_at);
		nulls[5] = (e->state == EB_BREAKER_CLOSED);
		values[6] = TimestampTzGetDatum(e->next_probe_at);
		nulls[6] = (e->state == EB_BREAKER_CLOSED);
		values[7] = Int64GetDatum(e->rate_limited);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(limits_shared->lock);
	return (Datum) 0;
}
