/*-------------------------------------------------------------------------
 *
 * envelope.c
 *	  The body and the webhook-id of a delivery, built in C by the worker.
 *
 * eventbus.envelope(e) (SQL) defines the envelope a target receives; the
 * worker builds the very same text here from the event's columns, without
 * making a jsonb of it first and printing that.  The keys come in the order
 * jsonb prints them (by length, then bytewise) and with its spacing, so the
 * body is byte for byte eventbus.envelope(e)::text, the text shown for the
 * event in eventbus.event_envelopes and eventbus.dead_letters; the TAP
 * tests compare the two.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "envelope.h"

/* Appends "uuid" in its text form (8-4-4-4-12 lower-case hex digits). */
static void
append_uuid(StringInfo buf, const pg_uuid_t *uuid)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			appendStringInfoChar(buf, '-');
		appendStringInfoChar(buf, hex[uuid->data[i] >> 4]);
		appendStringInfoChar(buf, hex[uuid->data[i] & 0x0f]);
	}
}

/* Appends a text datum as a JSON string. */
static void
append_text(StringInfo buf, Datum value)
{
	char	   *s = TextDatumGetCString(value);

	escape_json(buf, s);
	pfree(s);
}

/*
 * Appends the event time as eventbus.envelope() writes it:
 * to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), or null
 * for an infinite time (to_char's NULL).
 */
static void
append_time(StringInfo buf, TimestampTz time)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			year;

	if (TIMESTAMP_NOT_FINITE(time) ||
		timestamp2tm(time, NULL, &tm, &fsec, NULL, NULL) != 0)
	{
		appendStringInfoString(buf, "null");
		return;
	}
	/* to_char's YYYY: the year of the era, at least four digits */
	year = tm.tm_year > 0 ? tm.tm_year : 1 - tm.tm_year;
	appendStringInfo(buf, "\"%04d-%02d-%02dT%02d:%02d:%02dZ\"",
					 year, tm.tm_mon, tm.tm_mday,
					 tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Appends a text[] as a JSON array of strings (NULL elements as null). */
static void
append_text_array(StringInfo buf, Datum value)
{
	ArrayType  *arr = DatumGetArrayTypeP(value);
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	appendStringInfoChar(buf, '[');
	for (int i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoString(buf, ", ");
		if (nulls[i])
			appendStringInfoString(buf, "null");
		else
			append_text(buf, elems[i]);
	}
	appendStringInfoChar(buf, ']');
	pfree(elems);
	pfree(nulls);
	if ((Pointer) arr != DatumGetPointer(value))
		pfree(arr);
}

/*
 * The envelope of an event, as text in the current memory context; `values`
 * and `isnull` are its columns, indexed by EbEventColumn.  Only replay_name
 * may be null.  Printing the detail may leave allocations behind: call it in
 * a short-lived context.
 */
char *
eb_envelope_text(const Datum *values, const bool *isnull, int *len)
{
	StringInfoData buf;
	Jsonb	   *detail = DatumGetJsonbP(values[EB_EV_DETAIL]);

	initStringInfo(&buf);
	enlargeStringInfo(&buf, VARSIZE(detail) + 256);

	/* jsonb's key order: shorter keys first, equal lengths bytewise */
	appendStringInfoString(&buf, "{\"id\": \"");
	append_uuid(&buf, DatumGetUUIDP(values[EB_EV_ID]));
	appendStringInfoString(&buf, "\", \"time\": ");
	append_time(&buf, DatumGetTimestampTz(values[EB_EV_TIME]));
	appendStringInfoString(&buf, ", \"detail\": ");
	JsonbToCString(&buf, &detail->root, VARSIZE(detail));
	appendStringInfoString(&buf, ", \"region\": ");
	append_text(&buf, values[EB_EV_REGION]);
	appendStringInfoString(&buf, ", \"source\": ");
	append_text(&buf, values[EB_EV_SOURCE]);
	appendStringInfoString(&buf, ", \"account\": ");
	append_text(&buf, values[EB_EV_ACCOUNT]);
	appendStringInfoString(&buf, ", \"version\": \"0\", \"resources\": ");
	append_text_array(&buf, values[EB_EV_RESOURCES]);
	appendStringInfoString(&buf, ", \"detail-type\": ");
	append_text(&buf, values[EB_EV_DETAIL_TYPE]);
	if (!isnull[EB_EV_REPLAY_NAME])
	{
		appendStringInfoString(&buf, ", \"replay-name\": ");
		append_text(&buf, values[EB_EV_REPLAY_NAME]);
	}
	appendStringInfoChar(&buf, '}');

	if ((Pointer) detail != DatumGetPointer(values[EB_EV_DETAIL]))
		pfree(detail);
	*len = buf.len;
	return buf.data;
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
	StringInfoData key;
	char	   *utf8;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	pg_cryptohash_ctx *ctx;

	initStringInfo(&key);
	append_uuid(&key, event_id);
	appendStringInfo(&key, "/%s/%s/%s", bus, rule, target_id);
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
