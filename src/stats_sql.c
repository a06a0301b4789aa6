/*-------------------------------------------------------------------------
 *
 * stats_sql.c
 *	  The SQL functions over the counters of stats.c: the entries (for the
 *	  eventbus.*_stats views), their reset, the table's overview, the
 *	  delivery workers' states and the histograms' bucket bounds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "settings.h"
#include "stats.h"
#include "stats_internal.h"

PG_FUNCTION_INFO_V1(eventbus_stats_entries);
PG_FUNCTION_INFO_V1(eventbus_stats_reset);
PG_FUNCTION_INFO_V1(eventbus_stats_overview);
PG_FUNCTION_INFO_V1(eventbus_worker_status);
PG_FUNCTION_INFO_V1(eventbus_latency_bucket_bounds);

static const char *const kind_names[EB_NKINDS] = {"bus", "rule", "target"};

/* ------------------------------------------------------------------------
 * SQL functions
 * ------------------------------------------------------------------------
 */

/* A bigint[] of a histogram's cumulative bucket counts, +Inf left out. */
static Datum
cumulative_buckets(EbStatsEntry *e, EbHistogram h, int64 *count)
{
	Datum		elems[EB_NBOUNDS];
	int64		total = 0;

	for (int b = 0; b < EB_NBUCKETS; b++)
	{
		total += (int64) pg_atomic_read_u64(&e->buckets[h][b]);
		if (b < EB_NBOUNDS)
			elems[b] = Int64GetDatum(total);
	}
	*count = total;
	return PointerGetDatum(construct_array(elems, EB_NBOUNDS, INT8OID, 8,
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* Are all of an entry's counters and histograms zero? */
static bool
entry_is_zero(EbStatsEntry *e)
{
	for (int i = 0; i < EB_NCOUNTERS; i++)
		if (pg_atomic_read_u64(&e->counters[i]) != 0)
			return false;
	for (int h = 0; h < EB_NHISTOGRAMS; h++)
		for (int b = 0; b < EB_NBUCKETS; b++)
			if (pg_atomic_read_u64(&e->buckets[h][b]) != 0)
				return false;
	return true;
}

/*
 * eventbus.stats_entries(): every entry of the eb_stats_table, with its counters
 * and histograms (the views pick what each kind uses).
 */
Datum
eventbus_stats_entries(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS seq;
	EbStatsEntry *e;

	InitMaterializedSRF(fcinfo, 0);
	if (eb_stats_shared == NULL)
		return (Datum) 0;

	LWLockAcquire(eb_stats_shared->lock, LW_SHARED);
	hash_seq_init(&seq, eb_stats_table);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		Datum		values[4 + EB_NCOUNTERS + 3 * EB_NHISTOGRAMS + 1];
		bool		nulls[lengthof(values)];
		int			col = 0;

		if (strcmp(e->key.bus, EB_OTHER_NAME) == 0 && entry_is_zero(e))
			continue;			/* "(other)" shows only once it counts */
		memset(nulls, 0, sizeof(nulls));
		values[col++] = CStringGetTextDatum(kind_names[e->key.kind]);
		values[col++] = CStringGetTextDatum(e->key.bus);
		nulls[col] = (e->key.kind < EB_KIND_RULE);
		values[col++] = CStringGetTextDatum(e->key.rule);
		nulls[col] = (e->key.kind < EB_KIND_TARGET);
		values[col++] = CStringGetTextDatum(e->key.target);
		for (int i = 0; i < EB_NCOUNTERS; i++)
			values[col++] = Int64GetDatum((int64) pg_atomic_read_u64(&e->counters[i]));
		for (int h = 0; h < EB_NHISTOGRAMS; h++)
		{
			int64		count;

			values[col++] = cumulative_buckets(e, h, &count);
			values[col++] = Float8GetDatum((double) pg_atomic_read_u64(&e->sum_us[h]) / 1e6);
			values[col++] = Int64GetDatum(count);
		}
		values[col++] = TimestampTzGetDatum(e->stats_reset);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(eb_stats_shared->lock);
	return (Datum) 0;
}

/* eventbus.latency_bucket_bounds(): the histograms' upper bounds, in seconds. */
Datum
eventbus_latency_bucket_bounds(PG_FUNCTION_ARGS)
{
	Datum		elems[EB_NBOUNDS];

	for (int b = 0; b < EB_NBOUNDS; b++)
		elems[b] = Float8GetDatum((double) eb_stats_bucket_bounds_us[b] / 1e6);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, EB_NBOUNDS, FLOAT8OID, 8,
										  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * eventbus.stats_reset(bus, rule, target_id): zeroes the entries that match
 * every given name -- the bus's own entry only when rule and target_id are
 * NULL, a rule's only when target_id is NULL -- and returns the reset time.
 * With no names, removes every entry (freeing the room of deleted rules and
 * targets) but the "(other)" ones, which are zeroed.
 */
Datum
eventbus_stats_reset(PG_FUNCTION_ARGS)
{
	char	   *bus = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *rule = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *target = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	TimestampTz now = GetCurrentTimestamp();
	HASH_SEQ_STATUS seq;
	EbStatsEntry *e;
	bool		all = (bus == NULL && rule == NULL && target == NULL);

	if (eb_stats_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_eventbus statistics are not available"),
				 errdetail("The counters live in shared memory, which needs the library preloaded."),
				 errhint("Add pg_eventbus to shared_preload_libraries in postgresql.conf and restart the server.")));

	LWLockAcquire(eb_stats_shared->lock, LW_EXCLUSIVE);
	if (all)
		eb_stats_shared->generation++;	/* entries go: forget their addresses */
	hash_seq_init(&seq, eb_stats_table);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		bool		other = (strcmp(e->key.bus, EB_OTHER_NAME) == 0);

		if (all)
		{
			if (other)
				eb_stats_zero_entry(e, now);
			else
				hash_search(eb_stats_table, &e->key, HASH_REMOVE, NULL);
			continue;
		}
		if (bus != NULL && strcmp(e->key.bus, bus) != 0)
			continue;
		if (rule != NULL && (e->key.kind < EB_KIND_RULE || strcmp(e->key.rule, rule) != 0))
			continue;
		if (target != NULL && (e->key.kind < EB_KIND_TARGET || strcmp(e->key.target, target) != 0))
			continue;
		eb_stats_zero_entry(e, now);
	}
	if (all)
	{
		eb_stats_shared->stats_reset = now;
		pg_atomic_write_u64(&eb_stats_shared->overflowed, 0);
	}
	LWLockRelease(eb_stats_shared->lock);
	PG_RETURN_TIMESTAMPTZ(now);
}

/*
 * eventbus.stats_overview(): entries in use, the capacity, counts that went
 * to "(other)" entries, and the last reset of everything.
 */
Datum
eventbus_stats_overview(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	InitMaterializedSRF(fcinfo, 0);
	if (eb_stats_shared == NULL)
		return (Datum) 0;
	LWLockAcquire(eb_stats_shared->lock, LW_SHARED);
	values[0] = Int64GetDatum((int64) hash_get_num_entries(eb_stats_table) - EB_NKINDS);
	values[1] = Int64GetDatum((int64) eb_settings->stats_max_entries);
	values[2] = Int64GetDatum((int64) pg_atomic_read_u64(&eb_stats_shared->overflowed));
	values[3] = TimestampTzGetDatum(eb_stats_shared->stats_reset);
	LWLockRelease(eb_stats_shared->lock);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/* eventbus.worker_status(): one row per running delivery worker. */
Datum
eventbus_worker_status(PG_FUNCTION_ARGS)
{
	static const char *const state_names[] = {
		"starting", "waiting for extension", "idle", "claiming", "sending",
		"settling"
	};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (eb_stats_shared == NULL)
		return (Datum) 0;
	for (int i = 0; i < eb_stats_shared->nworkers; i++)
	{
		EbWorkerSlot s;
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, false, false};

		SpinLockAcquire(&eb_stats_shared->mutex);
		s = eb_stats_shared->workers[i];
		SpinLockRelease(&eb_stats_shared->mutex);
		if (s.pid == 0)
			continue;
		values[0] = Int32GetDatum(i + 1);
		values[1] = Int32GetDatum(s.pid);
		values[2] = CStringGetTextDatum(state_names[s.state]);
		values[3] = Int32GetDatum(s.in_flight);
		values[4] = TimestampTzGetDatum(s.last_claim);
		nulls[4] = (s.last_claim == 0);
		values[5] = Int64GetDatum(s.claimed);
		values[6] = TimestampTzGetDatum(s.started_at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
