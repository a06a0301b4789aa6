/*-------------------------------------------------------------------------
 *
 * explain.c
 *	  eventbus.explain_match(): why an event does not match an event
 *	  pattern, from the matcher's ebm_explain() (src/matcher/explain.c).
 *	  eventbus.explain_event(), which runs it for every rule of a bus, is
 *	  SQL in the upgrade script.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "ebm.h"
#include "ebm_explain.h"
#include "jsonb_matcher.h"

PG_FUNCTION_INFO_V1(eventbus_explain_match);

/* The columns of explain_match's result. */
enum
{
	EX_MATCHED,
	EX_FIELD,
	EX_OPERATOR,
	EX_EXPECTED,
	EX_ACTUAL,
	EX_REASON,
	EX_NCOLS
};

/* A UTF-8 string of the matcher in the database encoding, palloc'd. */
static char *
from_utf8(const char *s)
{
	char	   *conv = pg_any_to_server(s, strlen(s), PG_UTF8);

	return conv == s ? pstrdup(s) : conv;
}

/* JSON text of the matcher as a jsonb datum. */
static Datum
jsonb_of(const char *json)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}

/*
 * eventbus.explain_match(event_pattern jsonb, event jsonb): does the event
 * match the pattern and, if not, which field failed and why.  The verdict
 * is test_event_pattern's (the matcher's own), so the two always agree.
 */
Datum
eventbus_explain_match(PG_FUNCTION_ARGS)
{
	Jsonb	   *pattern = PG_GETARG_JSONB_P(0);
	Jsonb	   *event = PG_GETARG_JSONB_P(1);
	TupleDesc	tupdesc;
	Datum		values[EX_NCOLS];
	bool		nulls[EX_NCOLS];
	ebm_pattern *p;
	ebm_builder *b;
	ebm_explanation *e = NULL;
	ebm_status	st;
	char	   *field = NULL;
	char	   *op = NULL;
	char	   *expected = NULL;
	char	   *actual = NULL;
	char	   *reason = NULL;
	bool		matched;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "explain_match must return a record type");
	eb_matcher_check_event_object(event);
	p = eb_matcher_parse_pattern(pattern, NULL);

	b = eb_matcher_builder();
	PG_TRY();
	{
		eb_matcher_feed_jsonb(b, &event->root);
	}
	PG_CATCH();
	{
		ebm_pattern_free(p);
		PG_RE_THROW();
	}
	PG_END_TRY();

	st = ebm_explain(p, b, eb_matcher_match_ctx(), &e);
	ebm_pattern_free(p);
	/* forget the event now, handing back what a large one made us keep */
	ebm_builder_reset(b);
	eb_matcher_check(st);

	/* copy out of the matcher's memory before anything can raise */
	matched = e->matched;
	if (!matched)
	{
		field = pstrdup(e->field);
		op = pstrdup(e->op);
		expected = pstrdup(e->expected);
		actual = e->actual ? pstrdup(e->actual) : NULL;
		reason = pstrdup(e->reason);
	}
	ebm_explanation_free(e);

	memset(nulls, true, sizeof(nulls));
	values[EX_MATCHED] = BoolGetDatum(matched);
	nulls[EX_MATCHED] = false;
	if (!matched)
	{
		values[EX_FIELD] = CStringGetTextDatum(from_utf8(field));
		values[EX_OPERATOR] = CStringGetTextDatum(op);
		values[EX_EXPECTED] = jsonb_of(from_utf8(expected));
		values[EX_REASON] = CStringGetTextDatum(from_utf8(reason));
		nulls[EX_FIELD] = nulls[EX_OPERATOR] = false;
		nulls[EX_EXPECTED] = nulls[EX_REASON] = false;
		if (actual != NULL)
		{
			values[EX_ACTUAL] = jsonb_of(from_utf8(actual));
			nulls[EX_ACTUAL] = false;
		}
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc),
													  values, nulls)));
}
