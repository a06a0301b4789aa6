/*-------------------------------------------------------------------------
 *
 * stats.h
 *	  The bus's counters in shared memory: per bus, per rule and per target,
 *	  latency histograms, and the delivery workers' states.
 *
 * Publishing backends count into a backend-local table that is added to
 * shared memory when their transaction commits (nothing on rollback, and
 * what a rolled-back savepoint published is dropped); the delivery workers
 * add as they settle.  Every call is a no-op when the library was not
 * preloaded (no shared memory).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_STATS_H
#define EB_STATS_H

#include "datatype/timestamp.h"

#include "policy.h"

/* What a delivery worker is doing, for eventbus.status. */
typedef enum EbWorkerState
{
	EB_WORKER_STARTING = 0,
	EB_WORKER_WAITING_FOR_EXTENSION,
	EB_WORKER_IDLE,				/* nothing in flight, sleeping */
	EB_WORKER_CLAIMING,
	EB_WORKER_SENDING,			/* requests in flight, sleeping on them */
	EB_WORKER_SETTLING
} EbWorkerState;

/*
 * Called from _PG_init().  Defines eventbus.stats_max_entries and, when
 * preloading, hooks the shared memory request and start-up.
 */
extern void eb_stats_init(void);

/* Publishing side: counted at commit, in the publishing backend. */
extern void eb_stats_count_put(const char *bus, int64 bytes);
extern void eb_stats_count_bus_match(const char *bus);
extern void eb_stats_count_rule_match(const char *bus, const char *rule);

/*
 * Worker side, counted at once.  `target_key` is the worker's key of a
 * target, "bus\x1frule\x1ftarget_id" (queue.c); `published_at` is the
 * event's, 0 when the event is gone.
 */
extern void eb_stats_count_first_attempt(const char *target_key,
										 TimestampTz published_at);
extern void eb_stats_count_attempt(const char *target_key,
								   EbTransport transport, long status,
								   int attempts, bool success,
								   TimestampTz published_at);
extern void eb_stats_count_dead_letter(const char *target_key,
									   EbTransport transport);

/* The delivery workers' slots in shared memory (for eventbus.status). */
extern void eb_stats_worker_register(int index);
extern void eb_stats_worker_state(EbWorkerState state, int in_flight);
extern void eb_stats_worker_claimed(int n);

/* Worker 1 writes the counters to disk every few seconds (crash safety). */
extern void eb_stats_save_periodically(void);

#endif							/* EB_STATS_H */
