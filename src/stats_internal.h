/*-------------------------------------------------------------------------
 *
 * stats_internal.h
 *	  What stats.c (the counters and their shared table) shares with
 *	  stats_sql.c (the SQL functions that read and reset them).  Not for the
 *	  rest of the extension, which sees stats.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_STATS_INTERNAL_H
#define EB_STATS_INTERNAL_H

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/hsearch.h"

/* Longest names the API allows (README); longer ones are cut. */
#define EB_BUS_LEN 256
#define EB_RULE_LEN 64
#define EB_TARGET_LEN 64

/* The name an overflow entry shows: no bus, rule or target can have it. */
#define EB_OTHER_NAME "(other)"

typedef enum EbStatsKind
{
	EB_KIND_BUS = 0,
	EB_KIND_RULE,
	EB_KIND_TARGET,
	EB_NKINDS
} EbStatsKind;

/* The counters; which kind uses which is in the views. */
typedef enum EbCounter
{
	C_PUT_EVENTS,				/* bus: events put */
	C_PUT_BYTES,				/* bus: their size as PutEvents counts it */
	C_MATCHED_EVENTS,			/* bus: events matching a rule; rule: events
								 * it matched */
	C_INVOCATIONS,				/* target: deliveries ended (success or
								 * failure for good), after a request */
	C_ATTEMPTS,					/* target: requests sent */
	C_SUCCESSFUL_ATTEMPTS,
	C_RETRY_ATTEMPTS,			/* requests that were retries */
	C_THROTTLED_ATTEMPTS,		/* answered 429 */
	C_TIMED_OUT_ATTEMPTS,		/* the target's timeout elapsed */
	C_FAILED_INVOCATIONS,		/* failed for good after a request */
	C_DEAD_LETTER_INVOCATIONS,	/* moved to dead_letters by the worker */
	EB_NCOUNTERS
} EbCounter;

/* Latency histograms: upper bounds in microseconds, then +Inf. */
#define EB_NBOUNDS 16
#define EB_NBUCKETS (EB_NBOUNDS + 1)
extern const int64 eb_stats_bucket_bounds_us[EB_NBOUNDS];

typedef enum EbHistogram
{
	H_FIRST_ATTEMPT,			/* IngestionToInvocationStartLatency */
	H_SUCCESS,					/* IngestionToInvocationSuccessLatency */
	EB_NHISTOGRAMS
} EbHistogram;

/* An entry's key; zero-padded, compared and hashed up to each NUL. */
typedef struct EbStatsKey
{
	int32		kind;
	char		bus[EB_BUS_LEN + 1];
	char		rule[EB_RULE_LEN + 1];
	char		target[EB_TARGET_LEN + 1];
} EbStatsKey;

typedef struct EbStatsEntry
{
	EbStatsKey	key;
	TimestampTz stats_reset;	/* under the lock */
	pg_atomic_uint64 counters[EB_NCOUNTERS];
	pg_atomic_uint64 buckets[EB_NHISTOGRAMS][EB_NBUCKETS];
	pg_atomic_uint64 sum_us[EB_NHISTOGRAMS];
} EbStatsEntry;

/* A delivery worker's slot. */
typedef struct EbWorkerSlot
{
	int			pid;			/* 0: not running */
	int			state;			/* an EbWorkerState (stats.h) */
	int			in_flight;
	TimestampTz last_claim;
	int64		claimed;
	TimestampTz started_at;
} EbWorkerSlot;

typedef struct EbStatsShared
{
	LWLock	   *lock;			/* the hash table and stats_reset */
	TimestampTz stats_reset;	/* last reset of everything */
	pg_atomic_uint64 overflowed;	/* counts that went to "(other)" */
	uint64		generation;		/* under the lock: bumped when entries go */
	slock_t		mutex;			/* the worker slots */
	int			nworkers;
	EbWorkerSlot workers[FLEXIBLE_ARRAY_MEMBER];
} EbStatsShared;

/* The shared table, its header and its capacity (eventbus.stats_max_entries). */
extern EbStatsShared *eb_stats_shared;
extern HTAB *eb_stats_table;

/* Zeroes an entry's counters; with the lock held exclusive. */
extern void eb_stats_zero_entry(EbStatsEntry *e, TimestampTz now);

#endif							/* EB_STATS_INTERNAL_H */
