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
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/rel.h"

#include "envelope.h"
#include "jsonb_matcher.h"
#include "pg_eventbus.h"
#include "rule_cache.h"
#include "wake.h"

PG_FUNCTION_INFO_V1(eventbus_match_event_trigger);

static SPIPlanPtr insert_deliveries_plan = NULL;
static const char *const insert_deliveries_sql =
"INSERT INTO eventbus.deliveries (event_id, bus, rule, target_id)"
" SELECT $1, $2, u.r, u.t"
" FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4)) AS u(r, t)";
static Oid	insert_deliveries_types[4] = {UUIDOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID};
static bool warned_no_worker = false;

/*
 * Inserts one delivery per (rule, target) pair, for the event, with one
 * execution of a saved plan.
 */
static void
insert_deliveries(Datum event_id, Datum bus, Datum *rules, Datum *targets,
				  int n)
{
	Datum		args[4];
	int			ret;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	args[0] = event_id;
	args[1] = bus;
	args[2] = PointerGetDatum(construct_array(rules, n, TEXTOID, -1, false,
											  TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_array(targets, n, TEXTOID, -1, false,
											  TYPALIGN_INT));
	ret = SPI_execute_plan(eventbus_saved_plan(&insert_deliveries_plan,
											   insert_deliveries_sql, 4,
											   insert_deliveries_types),
						   args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not queue deliveries: %s",
			 SPI_result_code_string(ret));
	SPI_finish();
}

/*
 * AFTER INSERT FOR EACH ROW trigger on eventbus.events.
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
	const uint32_t *ids;
	size_t		nids = 0;
	size_t		i;
	int			npairs = 0;
	Datum	   *rule_names;
	Datum	   *target_ids;
	char	   *bus;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("eventbus.match_event_trigger() must be an AFTER INSERT FOR EACH ROW trigger")));

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

	/*
	 * Take in rule changes committed since our last look.  Our locks on the
	 * rules table are already held, so lock acquisition would not do it.
	 */
	AcceptInvalidationMessages();
	bus = TextDatumGetCString(bus_datum);
	set = eventbus_bus_rules(bus);
	if (set->nrules == 0)
		return PointerGetDatum(NULL);

	b = eventbus_builder();
	eb_envelope_feed(b, values, nulls);
	eventbus_check_ebm(ebm_match(set->ruleset, b, eventbus_match_ctx(),
								 &ids, &nids));
	if (nids == 0)
		return PointerGetDatum(NULL);

	for (i = 0; i < nids; i++)
		npairs += set->rules[ids[i]].ntargets;
	rule_names = palloc(sizeof(Datum) * npairs);
	target_ids = palloc(sizeof(Datum) * npairs);
	npairs = 0;
	for (i = 0; i < nids; i++)
	{
		CachedRule *rule = &set->rules[ids[i]];
		int			t;

		for (t = 0; t < rule->ntargets; t++)
		{
			rule_names[npairs] = CStringGetTextDatum(rule->name);
			target_ids[npairs] = CStringGetTextDatum(rule->target_ids[t]);
			npairs++;
		}
	}

	insert_deliveries(values[EB_EV_ID], bus_datum, rule_names, target_ids,
					  npairs);
	eventbus_wake_workers_at_commit();

	if (!eventbus_workers_enabled() && !warned_no_worker)
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
