/*-------------------------------------------------------------------------
 *
 * publish.c
 *	  eventbus.put_event(): validates one event and inserts it into
 *	  eventbus.events, where the matching trigger takes over.
 *
 * Written in C because it is the hot path of every publishing transaction:
 * the bus check comes from the per-backend rule cache and the insert runs
 * one saved plan.  put_events() (PL/pgSQL) validates its entries with
 * eventbus.check_entry(), which words AWS's per-entry errors; the checks
 * and PostgreSQL-side messages here are the same.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "pg_eventbus.h"
#include "rule_cache.h"
#include "stats.h"

PG_FUNCTION_INFO_V1(eventbus_put_event);

#define MAX_SOURCE_CHARS 256
#define MAX_DETAIL_TYPE_CHARS 128
#define TIME_FIELD_BYTES 14		/* what PutEvents counts for a given Time */

static SPIPlanPtr insert_event_plan = NULL;
static const char *const insert_event_sql =
"INSERT INTO eventbus.events (id, bus, source, detail_type, resources,"
" detail, \"time\", account, region)"
" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
static Oid	insert_event_types[9] = {UUIDOID, TEXTOID, TEXTOID, TEXTOID,
	TEXTARRAYOID, JSONBOID, TIMESTAMPTZOID, TEXTOID, TEXTOID};

/* Raises the error for a NULL or empty required text argument. */
static void
check_required_text(text *value, bool isnull, const char *what,
					const char *hint)
{
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event %s must not be null", what),
				 errhint("%s", hint)));
	if (VARSIZE_ANY_EXHDR(value) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event %s must not be empty", what),
				 errhint("%s", hint)));
}

/* Raises the error for a text argument longer than max characters. */
static void
check_length(text *value, int max, const char *what)
{
	int			len = pg_mbstrlen_with_len(VARDATA_ANY(value),
										   VARSIZE_ANY_EXHDR(value));

	if (len > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event %s is longer than %d characters", what, max),
				 errdetail("The %s has %d characters.", what, len)));
}

/* The JSON type name of a jsonb document's root, as jsonb_typeof() says it. */
static const char *
jsonb_root_type(Jsonb *jb)
{
	JsonbValue	v;

	if (JB_ROOT_IS_OBJECT(jb))
		return "object";
	if (!JB_ROOT_IS_SCALAR(jb))
		return "array";
	JsonbExtractScalar(&jb->root, &v);
	switch (v.type)
	{
		case jbvString:
			return "string";
		case jbvNumeric:
			return "number";
		case jbvBool:
			return "boolean";
		default:
			return "null";
	}
}

/* A version 4 (random) UUID, as gen_random_uuid() makes. */
static pg_uuid_t *
random_uuid(void)
{
	pg_uuid_t  *uuid = palloc(UUID_LEN);

	if (!pg_strong_random(uuid, UUID_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random values")));
	uuid->data[6] = (uuid->data[6] & 0x0f) | 0x40;
	uuid->data[8] = (uuid->data[8] & 0x3f) | 0x80;
	return uuid;
}

/* Inserts the event row with a saved plan. */
static void
insert_event(Datum *values)
{
	int			ret;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_plan(eventbus_saved_plan(&insert_event_plan,
											   insert_event_sql, 9,
											   insert_event_types),
						   values, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not insert the event: %s",
			 SPI_result_code_string(ret));
	SPI_finish();
}

/*
 * eventbus.put_event(source, detail_type, detail, resources, bus, "time")
 * RETURNS uuid
 */
Datum
eventbus_put_event(PG_FUNCTION_ARGS)
{
	text	   *source = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	text	   *detail_type = PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1);
	Jsonb	   *detail = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	ArrayType  *resources = PG_ARGISNULL(3) ? NULL : PG_GETARG_ARRAYTYPE_P(3);
	char	   *bus = PG_ARGISNULL(4) ? "default" : text_to_cstring(PG_GETARG_TEXT_PP(4));
	bool		time_given = !PG_ARGISNULL(5);
	BusRuleSet *set;
	int64		size;
	char	   *detail_text;
	pg_uuid_t  *id;
	Datum		values[9];

	if (detail != NULL && !JB_ROOT_IS_OBJECT(detail))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event detail must be a JSON object"),
				 errdetail("The detail given is a JSON %s.",
						   jsonb_root_type(detail)),
				 errhint("Wrap the value in an object, for example jsonb_build_object('value', ...).")));
	check_required_text(source, source == NULL, "source",
						"Pass the name of the system that publishes the event, such as 'com.example.orders'.");
	check_required_text(detail_type, detail_type == NULL, "detail-type",
						"Pass what kind of event this is, such as 'Order Placed'.");
	if (detail == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event detail must not be null"),
				 errhint("Pass a JSON object; '{}' for an event with no detail.")));
	check_length(source, MAX_SOURCE_CHARS, "source");
	check_length(detail_type, MAX_DETAIL_TYPE_CHARS, "detail-type");
	if (resources == NULL)
		resources = construct_empty_array(TEXTOID);
	if (array_contains_nulls(resources))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event resources must not contain null"),
				 errhint("Leave the resource out, or pass an empty array.")));

	set = eventbus_bus_rules(bus);
	if (!set->bus_exists)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("event bus \"%s\" does not exist", bus),
				 errhint("Create it with eventbus.create_event_bus(), or publish to 'default'.")));

	/* the size as PutEvents counts it */
	detail_text = JsonbToCString(NULL, &detail->root, VARSIZE(detail));
	size = (time_given ? TIME_FIELD_BYTES : 0) +
		VARSIZE_ANY_EXHDR(source) + VARSIZE_ANY_EXHDR(detail_type) +
		strlen(detail_text);
	{
		ArrayIterator it = array_create_iterator(resources, 0, NULL);
		Datum		elem;
		bool		isnull;

		while (array_iterate(it, &elem, &isnull))
			size += VARSIZE_ANY_EXHDR(DatumGetTextPP(elem));
		array_free_iterator(it);
	}
	pfree(detail_text);
	if (size > eventbus_max_event_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("event is too large"),
				 errdetail("The event is " INT64_FORMAT " bytes; the limit is %d bytes.",
						   size, eventbus_max_event_size),
				 errhint("Store large payloads elsewhere and publish a reference, or raise eventbus.max_event_size.")));

	id = random_uuid();
	values[0] = UUIDPGetDatum(id);
	values[1] = CStringGetTextDatum(bus);
	values[2] = PointerGetDatum(source);
	values[3] = PointerGetDatum(detail_type);
	values[4] = PointerGetDatum(resources);
	values[5] = JsonbPGetDatum(detail);
	values[6] = time_given ? PG_GETARG_DATUM(5)
		: TimestampTzGetDatum(GetCurrentTimestamp());
	values[7] = CStringGetTextDatum(eventbus_account);
	values[8] = CStringGetTextDatum(eventbus_region);
	insert_event(values);
	eb_stats_count_put(bus, size);

	PG_RETURN_UUID_P(id);
}
