/*-------------------------------------------------------------------------
 *
 * pg_eventbus.c
 *	  Module entry point (the settings are in settings.c, the workers in
 *	  worker.c), and the small SQL helpers of the publishing functions.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"

#include "limits.h"
#include "maintenance.h"
#include "settings.h"
#include "stats.h"
#include "worker.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(eventbus_input_is_valid_jsonb);
PG_FUNCTION_INFO_V1(eventbus_input_is_valid_timestamptz);
PG_FUNCTION_INFO_V1(eventbus_max_event_size_setting);
PG_FUNCTION_INFO_V1(eventbus_raise_error);

/*
 * Defines the settings and, when the library is loaded through
 * shared_preload_libraries, asks for the counters' shared memory and
 * registers the delivery workers and the maintenance process.
 */
void
_PG_init(void)
{
	eb_define_settings();
	eb_stats_init();
	eb_limits_init();
	if (process_shared_preload_libraries_in_progress)
	{
		eb_worker_register();
		eb_maintenance_register();
	}
}

/*
 * Is the text valid input for jsonb?  Uses the JSON parser's error codes
 * rather than catching an ERROR, so no subtransaction is needed.
 */
Datum
eventbus_input_is_valid_jsonb(PG_FUNCTION_ARGS)
{
	text	   *value = PG_GETARG_TEXT_PP(0);
	JsonLexContext *lex;
	JsonParseErrorType result;

	lex = makeJsonLexContextCstringLen(VARDATA_ANY(value),
									   VARSIZE_ANY_EXHDR(value),
									   GetDatabaseEncoding(), true);
	result = pg_parse_json(lex, &nullSemAction);
	PG_RETURN_BOOL(result == JSON_SUCCESS);
}

/*
 * Is the text a valid timestamptz?  Runs the date/time decoder, which
 * reports errors through return codes, instead of timestamptz_in.
 */
Datum
eventbus_input_is_valid_timestamptz(PG_FUNCTION_ARGS)
{
	char	   *str = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char		workbuf[MAXDATELEN + MAXDATEFIELDS];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype;
	int			tz;
	fsec_t		fsec;
	struct pg_tm tt;
	Timestamp	result;

	if (ParseDateTime(str, workbuf, sizeof(workbuf), field, ftype,
					  MAXDATEFIELDS, &nf) != 0)
		PG_RETURN_BOOL(false);
	if (DecodeDateTime(field, ftype, nf, &dtype, &tt, &fsec, &tz) != 0)
		PG_RETURN_BOOL(false);
	if (dtype == DTK_DATE)
		PG_RETURN_BOOL(tm2timestamp(&tt, fsec, &tz, &result) == 0 &&
					   IS_VALID_TIMESTAMP(result));
	PG_RETURN_BOOL(dtype == DTK_EPOCH || dtype == DTK_LATE ||
				   dtype == DTK_EARLY);
}

/*
 * The event size limit in bytes.  Calling it also loads this library, so
 * that the eventbus.* settings are defined before the publishing functions
 * read them.
 */
Datum
eventbus_max_event_size_setting(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64((int64) eventbus_max_event_size);
}

/*
 * eventbus.raise_error(sqlstate, message, detail, hint): raises an ERROR
 * whose detail and hint are left out when NULL, which PL/pgSQL's RAISE
 * cannot do.  Used by the SQL API's functions.
 */
Datum
eventbus_raise_error(PG_FUNCTION_ARGS)
{
	char	   *sqlstate;
	char	   *message;
	char	   *detail = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *hint = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		elog(ERROR, "eventbus.raise_error needs a SQLSTATE and a message");
	sqlstate = text_to_cstring(PG_GETARG_TEXT_PP(0));
	message = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (strlen(sqlstate) != 5)
		elog(ERROR, "invalid SQLSTATE \"%s\"", sqlstate);

	ereport(ERROR,
			(errcode(MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2],
								   sqlstate[3], sqlstate[4])),
			 errmsg_internal("%s", message),
			 detail ? errdetail_internal("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0));
	PG_RETURN_VOID();
}
