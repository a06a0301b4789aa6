/*-------------------------------------------------------------------------
 *
 * match_trigger.c
 *	  The publish-time trigger: matches each new event against its bus's
 *	  compiled rule set and queues one delivery per target of each matching
 *	  rule, in the publisher's transaction.  The matcher sees the event's
 *	  envelope as envelope.c defines it: the very document a target
 *	  receives.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/rel.h"

#include "envelope.h"
#include "jsonb_matcher.h"
#include "pg_eventbus.h"
#include "rule_cache.h"
#include "schedule.h"
#include "stats.h"
#include "wake.h"

PG_FUNCTION_INFO_V1(eventbus_match_event_trigger);

/*
 * 0.2.0's queue names the event's partition (event_published_at).  The
 * library also serves a 0.1.0 schema until ALTER EXTENSION UPDATE, whose
 * eventbus.events is a plain table: 0.1.0's statement, for that one.
 */
static SPIPlanPtr insert_deliveries_0_1_0_plan = NULL;
static const char *const insert_deliveries_0_1_0_sql =
"INSERT INTO eventbus.deliveries (event_id, bus, rule, target_id)"
" SELECT $1, $2, u.r, u.t"
" FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4)) AS u(r, t)";
static SPIPlanPtr insert_deliveries_plan = NULL;
static const char *const insert_deliveries_sql =
"INSERT INTO eventbus.deliveries (event_id, event_published_at, bus, rule, target_id)"
" SELECT $1, $5, $2, u.r, u.t"
" FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4)) AS u(r, t)";
static Oid	insert_deliveries_types[5] = {
	UUIDOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZOID
};

/*
 * The rules a replay sends to (NULL: every rule of its destination bus).
 * An event whose replay-name names no replay (inserted by hand, or from
 * before 0.2.0) goes to every matching rule, as any event does.
 */
static SPIPlanPtr replay_rules_plan = NULL;
static const char *const replay_rules_sql =
"SELECT r.rules FROM eventbus.replay_runs r WHERE r.name OPERATOR(pg_catalog.=) $1";
static Oid	replay_rules_types[1] = {TEXTOID};
static bool warned_no_worker = false;

/*
 * Inserts one delivery per (rule, target) pair, for the event, with one
 * execution of a saved plan; `partitioned` says the schema is 0.2.0's.
 */
static void
insert_deliveries(bool partitioned, Datum event_id, Datum published_at,
				  Datum bus, Datum *rules, Datum *targets, int n)
{
	Datum		args[5];
	int			ret;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	args[0] = event_id;
	args[1] = bus;
	args[2] = PointerGetDatum(construct_array(rules, n, TEXTOID, -1, false,
											  TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_array(targets, n, TEXTOID, -1, false,
											  TYPALIGN_INT));
	args[4] = published_at;
	if (partitioned)
		ret = SPI_execute_plan(eb_saved_plan(&insert_deliveries_plan,
												   insert_deliveries_sql, 5,
												   insert_deliveries_types),
							   args, NULL, false, 0);
	else
		ret = SPI_execute_plan(eb_saved_plan(&insert_deliveries_0_1_0_plan,
												   insert_deliveries_0_1_0_sql, 4,
												   insert_deliveries_types),
							   args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not queue deliveries: %s",
			 SPI_result_code_string(ret));
	SPI_finish();
}

/*
 * Reads which rules the replay `replay_name` sends to: NULL for every rule
 * (or no such replay), else a palloc'd array of rule names.
 */
static ArrayType *
replay_rules(Datum replay_name)
{
	bool		isnull;
	Datum		rules = (Datum) 0;
	int			ret;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_plan(eb_saved_plan(&replay_rules_plan,
											   replay_rules_sql, 1,
											   replay_rules_types),
						   &replay_name, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the replay: %s",
			 SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0],
									  SPI_tuptable->tupdesc, 1, &isnull);

		/* copied into the caller's memory, which SPI_finish() keeps */
		if (!isnull)
			rules = SPI_datumTransfer(d, false, -1);
	}
	SPI_finish();
	return rules == (Datum) 0 ? NULL : DatumGetArrayTypeP(rules);
}

/* Is `name` one of the rule names in `rules`? */
static bool
rule_listed(ArrayType *rules, const char *name)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(rules, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (!nulls[i] && strcmp(TextDatumGetCString(elems[i]), name) == 0)
			return true;
	}
	return false;
}

/*
 * AFTER INSERT FOR EACH ROW trigger on eventbus.events (on each of its
 * partitions).  An event published by a replay goes only to the rules the
 * replay names; a rule's Scheduled Event (schedule.c) only to that rule.
 */
Datum
eventbus_match_event_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	tuple;
	Datum		values[EB_EV_NCOLUMNS];
	bool		nulls[EB_EV_NCOLUMNS];
	int			bus_attnum;
	Datum		bus_datum;
	bool		bus_null;
	BusRuleSet *set;
	ebm_builder *b;
	const uint32_t *ids = NULL;
	uint32_t	scheduled_id;
	size_t		nids = 0;
	size_t		i;
	int			npairs = 0;
	Datum	   *rule_names;
	Datum	   *target_ids;
	char	   *bus;
	int			published_attnum;
	Datum		published_at;
	bool		published_null;
	ArrayType  *replay_rule_names = NULL;
	bool		partitioned;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("eventbus.match_event_trigger() must be an AFTER INSERT FOR EACH ROW trigger")));

	/* 0.2.0's events is partitioned: the trigger fires on a partition */
	partitioned = trigdata->tg_relation->rd_rel->relispartition;
	tuple = trigdata->tg_trigtuple;
	desc = RelationGetDescr(trigdata->tg_relation);
	if (!eb_event_columns(tuple, desc, values, nulls))
		elog(ERROR, "eventbus.events has a NULL in a NOT NULL column");
	bus_attnum = SPI_fnumber(desc, "bus");
	if (bus_attnum <= 0)
		elog(ERROR, "eventbus.events has no column \"bus\"");
	bus_datum = heap_getattr(tuple, bus_attnum, desc, &bus_null);
	if (bus_null)
		elog(ERROR, "eventbus.events.bus is null");
	published_attnum = SPI_fnumber(desc, "published_at");
	if (published_attnum <= 0)
		elog(ERROR, "eventbus.events has no column \"published_at\"");
	published_at = heap_getattr(tuple, published_attnum, desc, &published_null);
	if (published_null)
		elog(ERROR, "eventbus.events.published_at is null");

	/*
	 * Take in rule changes committed since our last look.  Our locks on the
	 * rules table are already held, so lock acquisition would not do it.
	 */
	AcceptInvalidationMessages();
	bus = TextDatumGetCString(bus_datum);
	set = eb_rule_cache_lookup(bus);
	if (set->nrules == 0)
		return PointerGetDatum(NULL);

	if (eb_schedule_publishing_rule() != NULL)
	{
		/* a Scheduled Event: its own rule, which no pattern decides */
		const char *only = eb_schedule_publishing_rule();

		for (int r = 0; r < set->nrules; r++)
		{
			CHECK_FOR_INTERRUPTS();
			if (strcmp(set->rules[r].name, only) == 0)
			{
				scheduled_id = (uint32_t) r;
				ids = &scheduled_id;
				nids = 1;
				break;
			}
		}
	}
	else
	{
		b = eb_matcher_builder();
		eb_envelope_feed(b, values, nulls);
		eb_matcher_check(ebm_match(set->ruleset, b, eb_matcher_match_ctx(),
								   &ids, &nids));
	}
	if (nids == 0)
		return PointerGetDatum(NULL);
	eb_stats_count_bus_match(bus);

	/* a replayed event: only the replay's rules */
	if (partitioned && !nulls[EB_EV_REPLAY_NAME])
		replay_rule_names = replay_rules(values[EB_EV_REPLAY_NAME]);

	for (i = 0; i < nids; i++)
		if (replay_rule_names == NULL ||
			rule_listed(replay_rule_names, set->rules[ids[i]].name))
			npairs += set->rules[ids[i]].ntargets;
	if (npairs == 0)
		return PointerGetDatum(NULL);
	rule_names = palloc(sizeof(Datum) * npairs);
	target_ids = palloc(sizeof(Datum) * npairs);
	npairs = 0;
	for (i = 0; i < nids; i++)
	{
		CachedRule *rule = &set->rules[ids[i]];
		int			t;

		if (replay_rule_names != NULL &&
			!rule_listed(replay_rule_names, rule->name))
			continue;

		eb_stats_count_rule_match(bus, rule->name);
		for (t = 0; t < rule->ntargets; t++)
		{
			rule_names[npairs] = CStringGetTextDatum(rule->name);
			target_ids[npairs] = CStringGetTextDatum(rule->target_ids[t]);
			npairs++;
		}
	}

	insert_deliveries(partitioned, values[EB_EV_ID], published_at, bus_datum,
					  rule_names, target_ids, npairs);
	eb_wake_at_commit();

	if (!eb_wake_workers_enabled() && !warned_no_worker)
	{
		warned_no_worker = true;
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_eventbus is not in shared_preload_libraries: deliveries are queued but no worker will send them"),
				 errdetail("The delivery worker starts only when the server loads pg_eventbus at start-up."),
				 errhint("Add pg_eventbus to shared_preload_libraries in postgresql.conf and restart the server.")));
	}
	return PointerGetDatum(NULL);
}
