/*-------------------------------------------------------------------------
 *
 * match_trigger.c
 *	  The publish-time trigger: matches each new event against its bus's
 *	  compiled rule set and queues one delivery per target of each matching
 *	  rule, in the publisher's transaction.
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
#include "utils/datetime.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "jsonb_matcher.h"
#include "pg_eventbus.h"
#include "rule_cache.h"
#include "stats.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(eventbus_match_event_trigger);

/* Columns of eventbus.events the envelope is made of. */
typedef enum EventColumn
{
	COL_ID,
	COL_BUS,
	COL_SOURCE,
	COL_DETAIL_TYPE,
	COL_RESOURCES,
	COL_DETAIL,
	COL_TIME,
	COL_ACCOUNT,
	COL_REGION,
	COL_REPLAY_NAME,
	NUM_EVENT_COLUMNS
} EventColumn;

static const char *const event_column_names[NUM_EVENT_COLUMNS] = {
	"id", "bus", "source", "detail_type", "resources", "detail", "time",
	"account", "region", "replay_name"
};

static SPIPlanPtr insert_deliveries_plan = NULL;
static const char *const insert_deliveries_sql =
"INSERT INTO eventbus.deliveries (event_id, bus, rule, target_id)"
" SELECT $1, $2, u.r, u.t"
" FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4)) AS u(r, t)";
static Oid	insert_deliveries_types[4] = {UUIDOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID};
static bool warned_no_worker = false;

/* Feeds "key": "string value" to the builder. */
static void
feed_member(ebm_builder *b, const char *key, const char *val, int len)
{
	eventbus_feed_string(b, key, strlen(key), true);
	eventbus_feed_string(b, val, len, false);
}

/* Feeds "key": <text datum>. */
static void
feed_text_member(ebm_builder *b, const char *key, Datum d)
{
	text	   *t = DatumGetTextPP(d);

	feed_member(b, key, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

/*
 * Feeds the event's envelope, as eventbus.envelope() builds it, straight
 * from the row's columns.
 */
static void
feed_envelope(ebm_builder *b, Datum *values, bool *nulls)
{
	char	   *id = DatumGetCString(DirectFunctionCall1(uuid_out, values[COL_ID]));
	struct pg_tm tm;
	fsec_t		fsec;
	char		timebuf[64];
	ArrayType  *resources;
	Datum	   *elems;
	bool	   *elem_nulls;
	int			nelems;
	int			i;

	if (timestamp2tm(DatumGetTimestampTz(values[COL_TIME]), NULL, &tm, &fsec,
					 NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("event time is out of range")));
	snprintf(timebuf, sizeof(timebuf), "%04d-%02d-%02dT%02d:%02d:%02dZ",
			 tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec);

	eventbus_check_ebm(ebm_begin_object(b));
	feed_member(b, "version", "0", 1);
	feed_member(b, "id", id, strlen(id));
	feed_text_member(b, "detail-type", values[COL_DETAIL_TYPE]);
	feed_text_member(b, "source", values[COL_SOURCE]);
	feed_text_member(b, "account", values[COL_ACCOUNT]);
	feed_member(b, "time", timebuf, strlen(timebuf));
	feed_text_member(b, "region", values[COL_REGION]);

	eventbus_feed_string(b, "resources", strlen("resources"), true);
	eventbus_check_ebm(ebm_begin_array(b));
	resources = DatumGetArrayTypeP(values[COL_RESOURCES]);
	deconstruct_array(resources, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &elem_nulls, &nelems);
	for (i = 0; i < nelems; i++)
	{
		if (elem_nulls[i])
			eventbus_check_ebm(ebm_null(b));
		else
		{
			text	   *t = DatumGetTextPP(elems[i]);

			eventbus_feed_string(b, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), false);
		}
	}
	eventbus_check_ebm(ebm_end_array(b));

	eventbus_feed_string(b, "detail", strlen("detail"), true);
	eventbus_feed_jsonb(b, &DatumGetJsonbP(values[COL_DETAIL])->root);

	if (!nulls[COL_REPLAY_NAME])
		feed_text_member(b, "replay-name", values[COL_REPLAY_NAME]);
	eventbus_check_ebm(ebm_end_object(b));
}

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
	Datum		values[NUM_EVENT_COLUMNS];
	bool		nulls[NUM_EVENT_COLUMNS];
	BusRuleSet *set;
	ebm_builder *b;
	const uint32_t *ids;
	size_t		nids = 0;
	size_t		i;
	int			npairs = 0;
	int			col;
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
	for (col = 0; col < NUM_EVENT_COLUMNS; col++)
	{
		int			attnum = SPI_fnumber(desc, event_column_names[col]);

		if (attnum <= 0)
			elog(ERROR, "eventbus.events has no column \"%s\"",
				 event_column_names[col]);
		values[col] = heap_getattr(tuple, attnum, desc, &nulls[col]);
		if (nulls[col] && col != COL_REPLAY_NAME)
			elog(ERROR, "eventbus.events.%s is null", event_column_names[col]);
	}

	/*
	 * Take in rule changes committed since our last look.  Our locks on the
	 * rules table are already held, so lock acquisition would not do it.
	 */
	AcceptInvalidationMessages();
	bus = TextDatumGetCString(values[COL_BUS]);
	set = eventbus_bus_rules(bus);
	if (set->nrules == 0)
		return PointerGetDatum(NULL);

	b = eventbus_builder();
	feed_envelope(b, values, nulls);
	eventbus_check_ebm(ebm_match(set->ruleset, b, eventbus_match_ctx(),
								 &ids, &nids));
	if (nids == 0)
		return PointerGetDatum(NULL);
	eb_stats_count_bus_match(bus);

	for (i = 0; i < nids; i++)
		npairs += set->rules[ids[i]].ntargets;
	rule_names = palloc(sizeof(Datum) * npairs);
	target_ids = palloc(sizeof(Datum) * npairs);
	npairs = 0;
	for (i = 0; i < nids; i++)
	{
		CachedRule *rule = &set->rules[ids[i]];
		int			t;

		eb_stats_count_rule_match(bus, rule->name);
		for (t = 0; t < rule->ntargets; t++)
		{
			rule_names[npairs] = CStringGetTextDatum(rule->name);
			target_ids[npairs] = CStringGetTextDatum(rule->target_ids[t]);
			npairs++;
		}
	}

	insert_deliveries(values[COL_ID], values[COL_BUS], rule_names, target_ids,
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
