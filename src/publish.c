/*-------------------------------------------------------------------------
 *
 * publish.c
 *	  Publishing one event: the checks, and the insert into eventbus.events,
 *	  where the matching trigger takes over; and eventbus.put_event().
 *
 * eb_publish() is the only way in: put_event(), put_events() (put_events.c)
 * and the outbox trigger all go through it, so the checks and their limits
 * are written once.  A refused event comes back as an EbPublishError that
 * carries both PostgreSQL's error (put_event raises it) and AWS's per-entry
 * code and message (put_events answers with them).
 *
 * The size of an event is the size of what its targets receive: the bytes
 * of its envelope's JSON text, id, time, account and region included.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "envelope.h"
#include "event_id.h"
#include "pg_eventbus.h"
#include "publish.h"
#include "rule_cache.h"
#include "stats.h"

PG_FUNCTION_INFO_V1(eventbus_put_event);

#define MAX_SOURCE_CHARS 256
#define MAX_DETAIL_TYPE_CHARS 128

static SPIPlanPtr insert_event_plan = NULL;
static const char *const insert_event_sql =
"INSERT INTO eventbus.events (id, bus, source, detail_type, resources,"
" detail, \"time\", account, region)"
" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
static Oid	insert_event_types[9] = {UUIDOID, TEXTOID, TEXTOID, TEXTOID,
	TEXTARRAYOID, JSONBOID, TIMESTAMPTZOID, TEXTOID, TEXTOID};

/* Fills in a refusal; detail and hint may be NULL. */
static bool
refuse(EbPublishError *err, int sqlerrcode, char *message, char *detail,
	   char *hint, const char *aws_code, char *aws_message)
{
	err->sqlerrcode = sqlerrcode;
	err->message = message;
	err->detail = detail;
	err->hint = hint;
	err->aws_code = aws_code;
	err->aws_message = aws_message;
	return false;
}

/*
 * Raises put_event's ERROR for a refused event.
 */
void
eb_raise_publish_error(const EbPublishError *err)
{
	ereport(ERROR,
			(errcode(err->sqlerrcode),
			 errmsg_internal("%s", err->message),
			 err->detail ? errdetail_internal("%s", err->detail) : 0,
			 err->hint ? errhint("%s", err->hint) : 0));
	pg_unreachable();
}

/*
 * Fills in the refusal of an event over eventbus.max_event_size; `what` is
 * what was measured ("event", or a part of an entry too large on its own).
 */
void
eb_size_error(EbPublishError *err, const char *what, int64 size)
{
	refuse(err, ERRCODE_PROGRAM_LIMIT_EXCEEDED,
		   psprintf("%s is too large", what),
		   psprintf("The %s is " INT64_FORMAT " bytes; the limit is %d bytes.",
					what, size, eventbus_max_event_size),
		   pstrdup("Store large payloads elsewhere and publish a reference, or raise eventbus.max_event_size."),
		   "ValidationException",
		   psprintf("Total size of the entries in the request is over the limit: the %s is " INT64_FORMAT " bytes, the limit %d.",
					what, size, eventbus_max_event_size));
}

/* Checks a required text field: present and not empty. */
static bool
check_required_text(text *value, const char *what, const char *aws_name,
					const char *hint, EbPublishError *err)
{
	if (value == NULL || VARSIZE_ANY_EXHDR(value) == 0)
		return refuse(err,
					  value == NULL ? ERRCODE_NULL_VALUE_NOT_ALLOWED
					  : ERRCODE_INVALID_PARAMETER_VALUE,
					  psprintf("event %s must not be %s", what,
							   value == NULL ? "null" : "empty"),
					  NULL, pstrdup(hint), "InvalidArgument",
					  psprintf("Parameter %s is not valid. Reason: %s is a required argument.",
							   aws_name, aws_name));
	return true;
}

/* Checks a text field's length in characters. */
static bool
check_length(text *value, int max, const char *what, const char *aws_name,
			 EbPublishError *err)
{
	int			len = pg_mbstrlen_with_len(VARDATA_ANY(value),
										   VARSIZE_ANY_EXHDR(value));

	if (len > max)
		return refuse(err, ERRCODE_INVALID_PARAMETER_VALUE,
					  psprintf("event %s is longer than %d characters", what, max),
					  psprintf("The %s has %d characters.", what, len),
					  NULL, "InvalidArgument",
					  psprintf("Parameter %s is not valid. Reason: %s is longer than %d characters.",
							   aws_name, aws_name, max));
	return true;
}

/* The JSON type name of a jsonb document's root, as jsonb_typeof() says it. */
const char *
eb_jsonb_root_type(Jsonb *jb)
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

/* A time as ISO 8601 text in UTC, whatever the session's TimeZone. */
static char *
utc_text(TimestampTz time)
{
	char		buf[MAXDATELEN + 1];
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_NOT_FINITE(time))
		EncodeSpecialTimestamp(time, buf);
	else if (timestamp2tm(time, NULL, &tm, &fsec, NULL, NULL) == 0)
	{
		EncodeDateTime(&tm, fsec, false, 0, NULL, USE_ISO_DATES, buf);
		return psprintf("%s UTC", buf);
	}
	else
		strlcpy(buf, "out of range", sizeof(buf));
	return pstrdup(buf);
}

/*
 * Checks everything about an event except its size: required fields, their
 * lengths, the resources, the time and the bus.
 */
static bool
check_event(const EbEvent *ev, EbPublishError *err)
{
	char		timebuf[EB_TIME_TEXT_LEN];

	if (!check_required_text(ev->source, "source", "Source",
							 "Pass the name of the system that publishes the event, such as 'com.example.orders'.",
							 err) ||
		!check_required_text(ev->detail_type, "detail-type", "DetailType",
							 "Pass what kind of event this is, such as 'Order Placed'.",
							 err))
		return false;
	if (ev->detail == NULL)
		return refuse(err, ERRCODE_NULL_VALUE_NOT_ALLOWED,
					  pstrdup("event detail must not be null"), NULL,
					  pstrdup("Pass a JSON object; '{}' for an event with no detail."),
					  "InvalidArgument",
					  pstrdup("Parameter Detail is not valid. Reason: Detail is a required argument."));
	if (!JB_ROOT_IS_OBJECT(ev->detail))
		return refuse(err, ERRCODE_INVALID_PARAMETER_VALUE,
					  pstrdup("event detail must be a JSON object"),
					  psprintf("The detail given is a JSON %s.",
							   eb_jsonb_root_type(ev->detail)),
					  pstrdup("Wrap the value in an object, for example jsonb_build_object('value', ...)."),
					  "MalformedDetail", pstrdup("Detail is malformed."));
	if (!check_length(ev->source, MAX_SOURCE_CHARS, "source", "Source", err) ||
		!check_length(ev->detail_type, MAX_DETAIL_TYPE_CHARS, "detail-type",
					  "DetailType", err))
		return false;

	if (ev->resources != NULL && ARR_NDIM(ev->resources) > 1)
		return refuse(err, ERRCODE_INVALID_PARAMETER_VALUE,
					  pstrdup("event resources must be a one-dimensional array"),
					  psprintf("The resources given have %d dimensions.",
							   ARR_NDIM(ev->resources)),
					  pstrdup("Pass a text[] of resource names, such as ARRAY['arn:aws:s3:::bucket'], or an empty array."),
					  "InvalidArgument",
					  pstrdup("Parameter Resources is not valid. Reason: Resources must be an array of strings."));
	if (ev->resources != NULL && array_contains_nulls(ev->resources))
		return refuse(err, ERRCODE_NULL_VALUE_NOT_ALLOWED,
					  pstrdup("event resources must not contain null"), NULL,
					  pstrdup("Leave the resource out, or pass an empty array."),
					  "InvalidArgument",
					  pstrdup("Parameter Resources is not valid. Reason: Resources must not contain null."));

	if (ev->time_given && !eb_envelope_time_text(ev->time, timebuf))
		return refuse(err, ERRCODE_DATETIME_VALUE_OUT_OF_RANGE,
					  pstrdup("event time is out of range"),
					  psprintf("The time given is %s.", utc_text(ev->time)),
					  pstrdup("Pass a time from 0001-01-01 to 9999-12-31 UTC: the event envelope spells its time in RFC 3339."),
					  "InvalidArgument",
					  pstrdup("Parameter Time is not valid. Reason: Time must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z."));

	if (!eb_rule_cache_lookup(ev->bus)->bus_exists)
		return refuse(err, ERRCODE_UNDEFINED_OBJECT,
					  psprintf("event bus \"%s\" does not exist", ev->bus),
					  NULL,
					  pstrdup("Create it with eventbus.create_event_bus(), or publish to 'default'."),
					  "ResourceNotFoundException",
					  psprintf("Event bus %s does not exist.", ev->bus));
	return true;
}

/* Inserts the event row with a saved plan. */
static void
insert_event(Datum *values)
{
	int			ret;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_plan(eb_saved_plan(&insert_event_plan,
											   insert_event_sql, 9,
											   insert_event_types),
						   values, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not insert the event: %s",
			 SPI_result_code_string(ret));
	SPI_finish();
}

/*
 * Checks an event and, when it passes, inserts it (the trigger then matches
 * it and queues its deliveries), writes its new id to *id and returns true.
 * Otherwise fills in *err and returns false, having changed nothing.
 */
bool
eb_publish(const EbEvent *ev, pg_uuid_t *id, EbPublishError *err)
{
	Datum		columns[EB_EV_NCOLUMNS];
	bool		isnull[EB_EV_NCOLUMNS] = {false};
	Datum		values[9];
	char	   *envelope;
	int			size;

	if (!check_event(ev, err))
		return false;

	eb_new_event_id(id);
	columns[EB_EV_ID] = UUIDPGetDatum(id);
	columns[EB_EV_SOURCE] = PointerGetDatum(ev->source);
	columns[EB_EV_DETAIL_TYPE] = PointerGetDatum(ev->detail_type);
	columns[EB_EV_DETAIL] = JsonbPGetDatum(ev->detail);
	columns[EB_EV_RESOURCES] = PointerGetDatum(ev->resources != NULL ? ev->resources
											   : construct_empty_array(TEXTOID));
	columns[EB_EV_TIME] = TimestampTzGetDatum(ev->time_given ? ev->time
											  : GetCurrentTimestamp());
	columns[EB_EV_ACCOUNT] = CStringGetTextDatum(eventbus_account);
	columns[EB_EV_REGION] = CStringGetTextDatum(eventbus_region);
	isnull[EB_EV_REPLAY_NAME] = true;

	/* the size of what a target receives */
	envelope = eb_envelope_text(columns, isnull, &size);
	pfree(envelope);
	if (size > eventbus_max_event_size)
	{
		eb_size_error(err, "event", size);
		return false;
	}

	values[0] = columns[EB_EV_ID];
	values[1] = CStringGetTextDatum(ev->bus);
	values[2] = columns[EB_EV_SOURCE];
	values[3] = columns[EB_EV_DETAIL_TYPE];
	values[4] = columns[EB_EV_RESOURCES];
	values[5] = columns[EB_EV_DETAIL];
	values[6] = columns[EB_EV_TIME];
	values[7] = columns[EB_EV_ACCOUNT];
	values[8] = columns[EB_EV_REGION];
	insert_event(values);
	eb_stats_count_put(ev->bus, size);
	return true;
}

/*
 * eventbus.put_event(source, detail_type, detail, resources, bus, "time")
 * RETURNS uuid
 */
Datum
eventbus_put_event(PG_FUNCTION_ARGS)
{
	EbEvent		ev;
	EbPublishError err;
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

	ev.source = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	ev.detail_type = PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1);
	ev.detail = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	ev.resources = PG_ARGISNULL(3) ? NULL : PG_GETARG_ARRAYTYPE_P(3);
	ev.bus = PG_ARGISNULL(4) ? "default" : text_to_cstring(PG_GETARG_TEXT_PP(4));
	ev.time_given = !PG_ARGISNULL(5);
	ev.time = ev.time_given ? PG_GETARG_TIMESTAMPTZ(5) : 0;

	if (!eb_publish(&ev, id, &err))
		eb_raise_publish_error(&err);
	PG_RETURN_UUID_P(id);
}
