/*-------------------------------------------------------------------------
 *
 * put_events.c
 *	  eventbus.put_events(entries jsonb): PutEvents with AWS's keys.
 *
 * Each entry is read on its own into an EbEvent and published through
 * eb_publish(), which holds every check; what is wrong with an entry comes
 * back as AWS's per-entry code and never as an ERROR.  Reading an entry
 * therefore never raises one either: every field of any JSON type is
 * looked at without casts that could fail, numbers are compared as numeric
 * before they become times, and a Detail given as a string is parsed in a
 * subtransaction, the one place where PostgreSQL's parser may raise.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "pg_eventbus.h"
#include "publish.h"

PG_FUNCTION_INFO_V1(eventbus_put_events);

#define MAX_ENTRIES 10

/* Unix seconds of 0001-01-01T00:00:00Z and of 10000-01-01T00:00:00Z */
#define UNIX_SECONDS_MIN INT64CONST(-62135596800)
#define UNIX_SECONDS_END INT64CONST(253402300800)

/* Looks up a key of an entry; false when it is missing or JSON null. */
static bool
entry_field(JsonbContainer *entry, const char *key, JsonbValue *v)
{
	if (getKeyJsonValueFromContainer(entry, key, strlen(key), v) == NULL)
		return false;
	return v->type != jbvNull;
}

/* Is the value a JSON object (or an array, for want_array)? */
static bool
is_container(const JsonbValue *v, bool want_array)
{
	if (v->type != jbvBinary)
		return false;
	return want_array ? JsonContainerIsArray(v->val.binary.data)
		: JsonContainerIsObject(v->val.binary.data);
}

/* A jsonb string value as text. */
static text *
string_text(const JsonbValue *v)
{
	return cstring_to_text_with_len(v->val.string.val, v->val.string.len);
}

/*
 * Parses a Detail given as a JSON string into *detail.  Returns false when
 * the text is not JSON jsonb can hold (bad syntax, \u0000, a number out of
 * numeric's range, nesting too deep for the stack).  The parser reports
 * those by raising an ERROR, so it runs in a subtransaction, and only data
 * errors and too-deep nesting are turned into false; anything else (a
 * cancel, out of memory) is raised again.
 */
static bool
parse_detail(const char *s, int len, Jsonb **detail)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	char	   *z = pnstrdup(s, len);
	bool		ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		*detail = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(z)));
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_DATA_EXCEPTION &&
			edata->sqlerrcode != ERRCODE_STATEMENT_TOO_COMPLEX &&
			edata->sqlerrcode != ERRCODE_PROGRAM_LIMIT_EXCEEDED)
			ReThrowError(edata);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	pfree(z);
	return ok;
}

/*
 * Parses an RFC 3339 date-time, "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|
 * -HH:MM)" ('T' may be 't' or a space, 'Z' may be 'z'; digits past the
 * microsecond are dropped).  Nothing else is a time: not "now", "epoch" or
 * "infinity".  Whether the year is one the envelope can spell is
 * eb_publish()'s check.
 */
static bool
parse_rfc3339(const char *s, int len, TimestampTz *out)
{
	int			f[6];
	const char *p = s;
	const char *end = s + len;
	int64		usec = 0;
	int64		offset = 0;
	static const char seps[] = "--T::";

	for (int i = 0; i < 6; i++)
	{
		int			width = (i == 0) ? 4 : 2;

		if (i > 0)
		{
			char		c = (p < end) ? *p : '\0';

			if (!(c == seps[i - 1] ||
				  (i == 3 && (c == 't' || c == ' '))))
				return false;
			p++;
		}
		f[i] = 0;
		for (int d = 0; d < width; d++, p++)
		{
			if (p >= end || *p < '0' || *p > '9')
				return false;
			f[i] = f[i] * 10 + (*p - '0');
		}
	}
	if (p < end && *p == '.')
	{
		int			digits = 0;

		for (p++; p < end && *p >= '0' && *p <= '9'; p++, digits++)
			if (digits < 6)
				usec = usec * 10 + (*p - '0');
		if (digits == 0)
			return false;
		for (; digits < 6; digits++)
			usec *= 10;
	}
	if (p < end && (*p == 'Z' || *p == 'z'))
		p++;
	else if (p + 6 == end && (*p == '+' || *p == '-') && p[3] == ':' &&
			 isdigit((unsigned char) p[1]) && isdigit((unsigned char) p[2]) &&
			 isdigit((unsigned char) p[4]) && isdigit((unsigned char) p[5]))
	{
		int			hh = (p[1] - '0') * 10 + (p[2] - '0');
		int			mm = (p[4] - '0') * 10 + (p[5] - '0');

		if (hh > 23 || mm > 59)
			return false;
		offset = (*p == '-' ? -1 : 1) * (int64) (hh * 60 + mm) * USECS_PER_MINUTE;
		p += 6;
	}
	else
		return false;
	if (p != end)
		return false;

	/* f: year, month, day, hour, minute, second */
	if (f[1] < 1 || f[1] > MONTHS_PER_YEAR ||
		f[2] < 1 || f[2] > day_tab[isleap(f[0])][f[1] - 1] ||
		f[3] > 23 || f[4] > 59 || f[5] > 59)
		return false;
	*out = (int64) (date2j(f[0], f[1], f[2]) - POSTGRES_EPOCH_JDATE) * USECS_PER_DAY +
		((int64) (f[3] * 60 + f[4]) * 60 + f[5]) * USECS_PER_SEC + usec - offset;
	return true;
}

/* Compares two numerics. */
static int
cmp_numeric(Numeric a, int64 b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a),
											 NumericGetDatum(int64_to_numeric(b))));
}

/*
 * Unix seconds as a time, rounded to the microsecond.  Numbers outside the
 * years 1 to 9999 become -infinity or infinity, which eb_publish() refuses
 * as it refuses any time the envelope cannot spell; the comparison is done
 * on the numeric, so no number (1e308, 1e-400) can fail a conversion.
 */
static TimestampTz
unix_seconds_time(Numeric n)
{
	Datum		usec;

	if (cmp_numeric(n, UNIX_SECONDS_MIN) < 0)
		return DT_NOBEGIN;
	if (cmp_numeric(n, UNIX_SECONDS_END) >= 0)
		return DT_NOEND;
	usec = DirectFunctionCall2(numeric_round, NumericGetDatum(n), Int32GetDatum(6));
	usec = DirectFunctionCall2(numeric_mul, usec,
							   NumericGetDatum(int64_to_numeric(USECS_PER_SEC)));
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, usec)) -
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
}

/*
 * The bus an EventBusName names: the name itself, or the part after
 * "event-bus/" of an event-bus ARN (arn:PARTITION:events:REGION:ACCOUNT:
 * event-bus/NAME).
 */
static char *
bus_of(const char *name, int len)
{
	const char *p = name;
	const char *end = name + len;
	/* literal parts, and NULL for a field that runs to the next ':' */
	static const char *const parts[] = {
		"arn:", NULL, "events:", NULL, NULL, "event-bus/"
	};

	for (int i = 0; i < (int) lengthof(parts); i++)
	{
		if (parts[i] == NULL)
		{
			while (p < end && *p != ':')
				p++;
			if (p == end)
				return pnstrdup(name, len);
			p++;
		}
		else
		{
			size_t		n = strlen(parts[i]);

			if (end - p < (ptrdiff_t) n || memcmp(p, parts[i], n) != 0)
				return pnstrdup(name, len);
			p += n;
		}
	}
	return pnstrdup(p, end - p);
}

/*
 * Reads one entry into *ev.  Returns NULL when it can be published as far
 * as its JSON goes, or AWS's error code with *message set.
 */
static const char *
read_entry(JsonbValue *entry, EbEvent *ev, char **message)
{
	JsonbContainer *c;
	JsonbValue	v;

	memset(ev, 0, sizeof(*ev));
	ev->bus = "default";
	if (!is_container(entry, false))
	{
		*message = "Entry is not valid. Reason: an entry must be a JSON object.";
		return "InvalidArgument";
	}
	c = entry->val.binary.data;

	if (entry_field(c, "Source", &v))
	{
		if (v.type != jbvString)
		{
			*message = "Parameter Source is not valid. Reason: Source must be a string.";
			return "InvalidArgument";
		}
		ev->source = string_text(&v);
	}
	if (entry_field(c, "DetailType", &v))
	{
		if (v.type != jbvString)
		{
			*message = "Parameter DetailType is not valid. Reason: DetailType must be a string.";
			return "InvalidArgument";
		}
		ev->detail_type = string_text(&v);
	}

	/*
	 * Detail: a JSON object, or a string holding one (as AWS takes it); an
	 * empty string is no Detail
	 */
	if (entry_field(c, "Detail", &v) &&
		!(v.type == jbvString && v.val.string.len == 0))
	{
		if (is_container(&v, false))
			ev->detail = JsonbValueToJsonb(&v);
		else if (v.type != jbvString)
		{
			*message = "Detail is malformed.";
			return "MalformedDetail";
		}
		else if (v.val.string.len > eventbus_max_event_size)
		{
			EbPublishError err;

			/* not worth parsing: the envelope would be larger still */
			eb_size_error(&err, "Detail string", v.val.string.len);
			*message = err.aws_message;
			return err.aws_code;
		}
		else if (!parse_detail(v.val.string.val, v.val.string.len, &ev->detail))
		{
			*message = "Detail is malformed.";
			return "MalformedDetail";
		}
	}

	/* Resources: an array of strings */
	if (entry_field(c, "Resources", &v))
	{
		JsonbContainer *arr;
		int			n;
		Datum	   *elems;

		if (!is_container(&v, true))
		{
			*message = "Parameter Resources is not valid. Reason: Resources must be an array of strings.";
			return "InvalidArgument";
		}
		arr = v.val.binary.data;
		n = JsonContainerSize(arr);
		elems = palloc(sizeof(Datum) * Max(n, 1));
		for (int i = 0; i < n; i++)
		{
			JsonbValue *r = getIthJsonbValueFromContainer(arr, i);

			CHECK_FOR_INTERRUPTS();
			if (r->type != jbvString)
			{
				*message = "Parameter Resources is not valid. Reason: Resources must be an array of strings.";
				return "InvalidArgument";
			}
			elems[i] = PointerGetDatum(string_text(r));
			pfree(r);
		}
		ev->resources = construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT);
		pfree(elems);
	}

	/* EventBusName: a name or an event bus ARN */
	if (entry_field(c, "EventBusName", &v))
	{
		if (v.type != jbvString)
		{
			*message = "Parameter EventBusName is not valid. Reason: EventBusName must be a string.";
			return "InvalidArgument";
		}
		ev->bus = bus_of(v.val.string.val, v.val.string.len);
	}

	/* Time: an RFC 3339 string or unix seconds */
	if (entry_field(c, "Time", &v))
	{
		ev->time_given = true;
		if (v.type == jbvNumeric)
			ev->time = unix_seconds_time(v.val.numeric);
		else if (v.type != jbvString ||
				 !parse_rfc3339(v.val.string.val, v.val.string.len, &ev->time))
		{
			*message = "Parameter Time is not valid. Reason: Time must be an RFC 3339 timestamp or unix seconds.";
			return "InvalidArgument";
		}
	}
	return NULL;
}

/* Appends {"key": "value"} to the array being built. */
static void
push_entry(JsonbParseState **st, const char *key1, const char *val1,
		   const char *key2, const char *val2)
{
	JsonbValue	k;
	JsonbValue	v;
	const char *keys[2] = {key1, key2};
	const char *vals[2] = {val1, val2};

	pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < 2 && keys[i] != NULL; i++)
	{
		k.type = jbvString;
		k.val.string.val = (char *) keys[i];
		k.val.string.len = strlen(keys[i]);
		pushJsonbValue(st, WJB_KEY, &k);
		v.type = jbvString;
		v.val.string.val = (char *) vals[i];
		v.val.string.len = strlen(vals[i]);
		pushJsonbValue(st, WJB_VALUE, &v);
	}
	pushJsonbValue(st, WJB_END_OBJECT, NULL);
}

/*
 * eventbus.put_events(entries jsonb) RETURNS jsonb: publishes each valid
 * entry and answers {"FailedEntryCount": n, "Entries": [...]} in input
 * order.  Only a call that is not an array of 1 to 10 entries is an ERROR.
 */
Datum
eventbus_put_events(PG_FUNCTION_ARGS)
{
	Jsonb	   *entries = PG_ARGISNULL(0) ? NULL : PG_GETARG_JSONB_P(0);
	int			n;
	int			failed = 0;
	JsonbParseState *st = NULL;
	JsonbValue	k;
	JsonbValue	v;
	JsonbValue *res;

	if (entries == NULL || JB_ROOT_IS_SCALAR(entries) || !JB_ROOT_IS_ARRAY(entries))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("entries must be a JSON array of PutEvents entries"),
				 entries == NULL ? errdetail("The value given is NULL.")
				 : errdetail("The value given is a JSON %s.",
							 eb_jsonb_root_type(entries)),
				 errhint("Pass '[{\"Source\": \"...\", \"DetailType\": \"...\", \"Detail\": \"{...}\"}]'.")));
	n = JB_ROOT_COUNT(entries);
	if (n == 0 || n > MAX_ENTRIES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("put_events takes 1 to %d entries, not %d", MAX_ENTRIES, n),
				 errdetail("PutEvents accepts at most %d entries per call.", MAX_ENTRIES),
				 n > MAX_ENTRIES ? errhint("Split the entries into calls of at most %d.", MAX_ENTRIES) : 0));

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	k.type = jbvString;
	k.val.string.val = "Entries";
	k.val.string.len = strlen("Entries");
	pushJsonbValue(&st, WJB_KEY, &k);
	pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
	{
		JsonbValue *entry = getIthJsonbValueFromContainer(&entries->root, i);
		EbEvent		ev;
		EbPublishError err;
		pg_uuid_t	id;
		const char *code;
		char	   *message = NULL;

		CHECK_FOR_INTERRUPTS();
		code = read_entry(entry, &ev, &message);
		if (code == NULL && !eb_publish(&ev, &id, &err))
		{
			code = err.aws_code;
			message = err.aws_message;
		}
		if (code != NULL)
		{
			failed++;
			push_entry(&st, "ErrorCode", code, "ErrorMessage", message);
		}
		else
			push_entry(&st, "EventId",
					   DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&id))),
					   NULL, NULL);
	}
	pushJsonbValue(&st, WJB_END_ARRAY, NULL);

	k.val.string.val = "FailedEntryCount";
	k.val.string.len = strlen("FailedEntryCount");
	pushJsonbValue(&st, WJB_KEY, &k);
	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(failed);
	pushJsonbValue(&st, WJB_VALUE, &v);
	res = pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(res));
}
