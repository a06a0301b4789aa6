/*-------------------------------------------------------------------------
 *
 * envelope.c
 *	  The EventBridge envelope of an event, written once: what a target
 *	  receives, what the matcher sees, and eventbus.envelope() in SQL.
 *
 * envelope_walk() is the one definition of the envelope: its keys, their
 * order, and how each column is spelt (the id, the time, the resources).
 * Two writers follow it: one prints the JSON text (the body the worker
 * sends, and eventbus.envelope(), which returns that text as jsonb), the
 * other feeds the matcher's builder at publish time.  So the three cannot
 * disagree.
 *
 * The keys come in the order jsonb prints them (by length, then bytewise)
 * and with its spacing, so the body is byte for byte eventbus.envelope(e)
 * printed as text, as shown in eventbus.event_envelopes and
 * eventbus.dead_letters; the TAP tests compare the two.
 *
 * An envelope spells times from 0001-01-01T00:00:00Z to
 * 9999-12-31T23:59:59Z (RFC 3339, to the second, as EventBridge does);
 * publishing rejects any other time.  A stored row from before that check
 * (an infinite, BC or five-digit-year time) gets "time": null everywhere.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

#include "envelope.h"
#include "jsonb_matcher.h"

PG_FUNCTION_INFO_V1(eventbus_envelope);

const char *const eb_event_column_names[EB_EV_NCOLUMNS] = {
	"id", "detail_type", "source", "account", "time", "region", "resources",
	"detail", "replay_name"
};

/*
 * What a writer does with each part of the envelope.  Strings come with
 * their length in the database encoding and need not be zero-terminated.
 */
typedef struct EnvelopeWriter
{
	void		(*key) (void *arg, const char *key);
	void		(*string) (void *arg, const char *s, int len);
	void		(*null) (void *arg);
	void		(*begin_array) (void *arg);
	void		(*end_array) (void *arg);
	void		(*json) (void *arg, Jsonb *value);
} EnvelopeWriter;

/* Writes the text of a uuid (8-4-4-4-12 lower-case hex digits) to out[37]. */
static void
uuid_text(const pg_uuid_t *uuid, char *out)
{
	static const char hex[] = "0123456789abcdef";
	char	   *p = out;

	for (int i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[uuid->data[i] >> 4];
		*p++ = hex[uuid->data[i] & 0x0f];
	}
	*p = '\0';
}

/*
 * Writes the envelope's spelling of a time, "YYYY-MM-DDTHH:MM:SSZ" in UTC
 * (fractions of a second dropped), to out[EB_TIME_TEXT_LEN] and returns
 * true; returns false for a time an envelope cannot spell (infinite, before
 * year 1 or after year 9999).  The one owner of that range: publishing
 * calls it to reject such times.
 */
bool
eb_envelope_time_text(TimestampTz time, char *out)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_NOT_FINITE(time) ||
		timestamp2tm(time, NULL, &tm, &fsec, NULL, NULL) != 0 ||
		tm.tm_year < 1 || tm.tm_year > 9999)
		return false;
	snprintf(out, EB_TIME_TEXT_LEN, "%04d-%02d-%02dT%02d:%02d:%02dZ",
			 tm.tm_year, tm.tm_mon, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec);
	return true;
}

/* Writes "key": <text datum>. */
static void
walk_text_member(const EnvelopeWriter *w, void *arg, const char *key,
				 Datum value)
{
	text	   *t = DatumGetTextPP(value);

	w->key(arg, key);
	w->string(arg, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

/*
 * Walks the envelope of an event through a writer; `values` and `isnull`
 * are its columns, indexed by EbEventColumn, and only replay_name may be
 * null.  Resources are written as one flat array of strings whatever the
 * array's dimensions (a NULL element as null); publishing accepts only
 * one-dimensional arrays without NULLs.
 */
static void
envelope_walk(const EnvelopeWriter *w, void *arg, const Datum *values,
			  const bool *isnull)
{
	char		id[UUID_LEN * 2 + 5];
	char		time[EB_TIME_TEXT_LEN];
	ArrayType  *resources;
	ArrayIterator it;
	Datum		elem;
	bool		elem_null;
	Jsonb	   *detail;

	/* jsonb's key order: shorter keys first, equal lengths bytewise */
	uuid_text(DatumGetUUIDP(values[EB_EV_ID]), id);
	w->key(arg, "id");
	w->string(arg, id, strlen(id));

	w->key(arg, "time");
	if (eb_envelope_time_text(DatumGetTimestampTz(values[EB_EV_TIME]), time))
		w->string(arg, time, strlen(time));
	else
		w->null(arg);

	detail = DatumGetJsonbP(values[EB_EV_DETAIL]);
	w->key(arg, "detail");
	w->json(arg, detail);
	if ((Pointer) detail != DatumGetPointer(values[EB_EV_DETAIL]))
		pfree(detail);

	walk_text_member(w, arg, "region", values[EB_EV_REGION]);
	walk_text_member(w, arg, "source", values[EB_EV_SOURCE]);
	walk_text_member(w, arg, "account", values[EB_EV_ACCOUNT]);
	w->key(arg, "version");
	w->string(arg, "0", 1);

	w->key(arg, "resources");
	w->begin_array(arg);
	resources = DatumGetArrayTypeP(values[EB_EV_RESOURCES]);
	it = array_create_iterator(resources, 0, NULL);
	while (array_iterate(it, &elem, &elem_null))
	{
		CHECK_FOR_INTERRUPTS();
		if (elem_null)
			w->null(arg);
		else
		{
			text	   *t = DatumGetTextPP(elem);

			w->string(arg, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
		}
	}
	array_free_iterator(it);
	if ((Pointer) resources != DatumGetPointer(values[EB_EV_RESOURCES]))
		pfree(resources);
	w->end_array(arg);

	walk_text_member(w, arg, "detail-type", values[EB_EV_DETAIL_TYPE]);
	if (!isnull[EB_EV_REPLAY_NAME])
		walk_text_member(w, arg, "replay-name", values[EB_EV_REPLAY_NAME]);
}

/*
 * The text writer: JSON as jsonb prints it (", " and ": " separators).  The
 * envelope is one object holding at most one array, so a flag per level
 * says whether a separator is due.
 */
typedef struct TextWriter
{
	StringInfo	buf;
	bool		object_empty;
	bool		in_array;
	bool		array_empty;
} TextWriter;

/* Starts a member of the envelope object. */
static void
text_key(void *arg, const char *key)
{
	TextWriter *tw = arg;

	if (!tw->object_empty)
		appendStringInfoString(tw->buf, ", ");
	tw->object_empty = false;
	escape_json(tw->buf, key);
	appendStringInfoString(tw->buf, ": ");
}

/* Separates array elements. */
static void
text_element(TextWriter *tw)
{
	if (tw->in_array)
	{
		if (!tw->array_empty)
			appendStringInfoString(tw->buf, ", ");
		tw->array_empty = false;
	}
}

/* Appends a string value, escaped as JSON. */
static void
text_string(void *arg, const char *s, int len)
{
	TextWriter *tw = arg;
	char	   *z = pnstrdup(s, len);

	text_element(tw);
	escape_json(tw->buf, z);
	pfree(z);
}

/* Appends null. */
static void
text_null(void *arg)
{
	TextWriter *tw = arg;

	text_element(tw);
	appendStringInfoString(tw->buf, "null");
}

/* Opens the resources array. */
static void
text_begin_array(void *arg)
{
	TextWriter *tw = arg;

	appendStringInfoChar(tw->buf, '[');
	tw->in_array = true;
	tw->array_empty = true;
}

/* Closes the resources array. */
static void
text_end_array(void *arg)
{
	TextWriter *tw = arg;

	appendStringInfoChar(tw->buf, ']');
	tw->in_array = false;
}

/* Appends a jsonb value as jsonb prints it. */
static void
text_json(void *arg, Jsonb *value)
{
	TextWriter *tw = arg;

	JsonbToCString(tw->buf, &value->root, VARSIZE(value));
}

static const EnvelopeWriter text_writer = {
	text_key, text_string, text_null, text_begin_array, text_end_array,
	text_json
};

/*
 * The envelope of an event as JSON text, in the current memory context:
 * the body a target receives.  `values` and `isnull` are its columns,
 * indexed by EbEventColumn.  Printing the detail may leave allocations
 * behind: call it in a short-lived context.
 */
char *
eb_envelope_text(const Datum *values, const bool *isnull, int *len)
{
	StringInfoData buf;
	TextWriter	tw = {&buf, true, false, false};

	initStringInfo(&buf);
	enlargeStringInfo(&buf, VARSIZE_ANY(DatumGetPointer(values[EB_EV_DETAIL])) + 256);
	appendStringInfoChar(&buf, '{');
	envelope_walk(&text_writer, &tw, values, isnull);
	appendStringInfoChar(&buf, '}');
	*len = buf.len;
	return buf.data;
}

/* The matcher writer: the same envelope as builder calls. */
static void
feed_key(void *arg, const char *key)
{
	eb_matcher_feed_string(arg, key, strlen(key), true);
}

/* Feeds a string value. */
static void
feed_string(void *arg, const char *s, int len)
{
	eb_matcher_feed_string(arg, s, len, false);
}

/* Feeds null. */
static void
feed_null(void *arg)
{
	eb_matcher_check(ebm_null(arg));
}

/* Opens an array. */
static void
feed_begin_array(void *arg)
{
	eb_matcher_check(ebm_begin_array(arg));
}

/* Closes an array. */
static void
feed_end_array(void *arg)
{
	eb_matcher_check(ebm_end_array(arg));
}

/* Feeds a jsonb value. */
static void
feed_json(void *arg, Jsonb *value)
{
	eb_matcher_feed_jsonb(arg, &value->root);
}

static const EnvelopeWriter feed_writer = {
	feed_key, feed_string, feed_null, feed_begin_array, feed_end_array,
	feed_json
};

/*
 * Feeds the envelope of an event to the matcher's builder: exactly the
 * document a target receives, so a rule matches an event if and only if
 * eventbus.test_event_pattern(its pattern, eventbus.envelope(e)) is true.
 */
void
eb_envelope_feed(ebm_builder *b, const Datum *values, const bool *isnull)
{
	eb_matcher_check(ebm_begin_object(b));
	envelope_walk(&feed_writer, b, values, isnull);
	eb_matcher_check(ebm_end_object(b));
}

/*
 * Reads the envelope's columns of an eventbus.events row into `values` and
 * `isnull`, indexed by EbEventColumn.  Returns false when one of them other
 * than replay_name is NULL (the table forbids it, but a row value made in
 * SQL can be anything).
 */
bool
eb_event_columns(HeapTuple tuple, TupleDesc desc, Datum *values, bool *isnull)
{
	bool		complete = true;

	for (int col = 0; col < EB_EV_NCOLUMNS; col++)
	{
		int			attnum = InvalidAttrNumber;

		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (!att->attisdropped &&
				strcmp(NameStr(att->attname), eb_event_column_names[col]) == 0)
			{
				attnum = att->attnum;
				break;
			}
		}
		if (attnum == InvalidAttrNumber)
			elog(ERROR, "eventbus.events has no column \"%s\"",
				 eb_event_column_names[col]);
		values[col] = heap_getattr(tuple, attnum, desc, &isnull[col]);
		if (isnull[col] && col != EB_EV_REPLAY_NAME)
			complete = false;
	}
	return complete;
}

/*
 * eventbus.envelope(e eventbus.events) RETURNS jsonb: the envelope text a
 * target receives, as jsonb (whose printed form is that same text), or NULL
 * for a NULL row (the empty side of a LEFT JOIN) or one that lacks a
 * column's value.
 */
Datum
eventbus_envelope(PG_FUNCTION_ARGS)
{
	HeapTupleHeader rec;
	HeapTupleData tuple;
	TupleDesc	desc;
	Datum		values[EB_EV_NCOLUMNS];
	bool		isnull[EB_EV_NCOLUMNS];
	char	   *text;
	int			len;
	Datum		result;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	rec = PG_GETARG_HEAPTUPLEHEADER(0);
	desc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(rec),
								  HeapTupleHeaderGetTypMod(rec));
	tuple.t_len = HeapTupleHeaderGetDatumLength(rec);
	ItemPointerSetInvalid(&(tuple.t_self));
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = rec;
	if (!eb_event_columns(&tuple, desc, values, isnull))
	{
		ReleaseTupleDesc(desc);
		PG_RETURN_NULL();
	}
	text = eb_envelope_text(values, isnull, &len);
	ReleaseTupleDesc(desc);

	result = DirectFunctionCall1(jsonb_in, CStringGetDatum(text));
	pfree(text);
	PG_RETURN_DATUM(result);
}

/*
 * Appends the ARN of a rule, as EventBridge spells it: the default bus's
 * rules have no bus in their ARN, another bus's rules do.  The one
 * spelling, for <aws.events.rule-arn> and a Scheduled Event's resources.
 */
void
eb_rule_arn(StringInfo buf, const char *region, const char *account,
			const char *bus, const char *rule)
{
	appendStringInfo(buf, "arn:aws:events:%s:%s:rule/", region, account);
	if (strcmp(bus, "default") != 0)
		appendStringInfo(buf, "%s/", bus);
	appendStringInfoString(buf, rule);
}

/*
 * The Standard Webhooks id of a delivery: "msg_" and the first 32 hex
 * digits of the SHA-256 of "event_id/bus/rule/target_id" in UTF-8, the
 * same on every attempt and after a redrive.  `out` has room for
 * EB_WEBHOOK_ID_LEN bytes.
 */
void
eb_webhook_id(char *out, const pg_uuid_t *event_id, const char *bus,
			  const char *rule, const char *target_id)
{
	static const char hex[] = "0123456789abcdef";
	char		id[UUID_LEN * 2 + 5];
	StringInfoData key;
	char	   *utf8;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	pg_cryptohash_ctx *ctx;

	uuid_text(event_id, id);
	initStringInfo(&key);
	appendStringInfo(&key, "%s/%s/%s/%s", id, bus, rule, target_id);
	utf8 = pg_server_to_any(key.data, key.len, PG_UTF8);

	ctx = pg_cryptohash_create(PG_SHA256);
	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) utf8, strlen(utf8)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "pg_eventbus: could not compute a SHA-256 digest: %s",
			 pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);

	memcpy(out, "msg_", 4);
	for (int i = 0; i < 16; i++)
	{
		out[4 + 2 * i] = hex[digest[i] >> 4];
		out[5 + 2 * i] = hex[digest[i] & 0x0f];
	}
	out[EB_WEBHOOK_ID_LEN - 1] = '\0';

	if (utf8 != key.data)
		pfree(utf8);
	pfree(key.data);
}
