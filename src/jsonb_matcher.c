/*-------------------------------------------------------------------------
 *
 * jsonb_matcher.c
 *	  Binds jsonb to the matcher: walks jsonb documents straight into the
 *	  matcher's builder (no JSON text round trip), turns matcher errors into
 *	  ereports, lets query cancels and timeouts stop a match, and implements
 *	  TestEventPattern.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "ebm.h"
#include "jsonb_matcher.h"

PG_FUNCTION_INFO_V1(eventbus_test_event_pattern);
PG_FUNCTION_INFO_V1(eventbus_validate_event_pattern);

/* Per-backend scratch objects, allocated on first use and reused. */
static ebm_builder *scratch_builder = NULL;
static ebm_match_ctx *scratch_ctx = NULL;

/*
 * A reset callback is registered to forget the builder's document; it
 * forgets it only if no newer document has been started since (counted
 * by builder_uses), so it never disturbs a document in use.
 */
static bool builder_release_armed = false;
static uint64 builder_uses = 0;
static uint64 builder_release_use = 0;

/*
 * Numbers whose plain decimal form would be longer than this many digits
 * before or after the point are given to the matcher in scientific
 * notation (feed_numeric).
 */
#define EVENTBUS_PLAIN_NUMBER_DIGITS 64

/*
 * Reports a failed status of the matcher.  Running out of memory and misuse
 * are not user errors; an interrupted match becomes the cancel or timeout
 * that interrupted it; an event that needs more search than the matcher's
 * budget is 54000.
 */
void
eb_matcher_check(ebm_status st)
{
	if (st == EBM_OK)
		return;
	if (st == EBM_ERR_NOMEM)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory in the event-pattern matcher")));
	if (st == EBM_ERR_INTERRUPTED)
	{
		/* as the regex library's REG_CANCEL: let the pending interrupt act */
		CHECK_FOR_INTERRUPTS();
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("event-pattern matching was interrupted")));
	}
	if (st == EBM_ERR_LIMIT)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("event is too complex to match against the event patterns"),
				 errdetail("The event reaches one field path at two places of one object (a key containing dots beside the nested keys it names), and deciding the match needed more than %d search steps.",
						   EBM_SEARCH_BUDGET),
				 errhint("Spell each field path one way in the event: nest the objects instead of writing keys with dots.")));
	elog(ERROR, "event-pattern matcher failed: %s", ebm_status_string(st));
}

/*
 * The matcher's interrupt callback: stop when a query cancel (a statement
 * timeout is one) or a termination is pending, as the regex library does;
 * eb_matcher_check() then lets CHECK_FOR_INTERRUPTS() act.
 */
static bool
eb_matcher_interrupt(void *arg)
{
	(void) arg;
	return INTERRUPTS_PENDING_CONDITION() &&
		(QueryCancelPending || ProcDiePending);
}

/*
 * Memory context reset callback: forget the builder's document, which
 * frees the buffers a large one made it grow (the match context frees its
 * own at the end of each match).
 */
static void
release_builder(void *arg)
{
	builder_release_armed = false;
	if (scratch_builder != NULL && builder_uses == builder_release_use)
		ebm_builder_reset(scratch_builder);
}

/*
 * The backend's reusable builder, reset and ready for a new document.  The
 * document is forgotten when the memory context current now is reset or
 * deleted (usually the end of the caller's row or statement), unless a
 * newer one has been started by then, so a large event's buffers do not
 * outlive the operation that matched it.
 */
ebm_builder *
eb_matcher_builder(void)
{
	if (scratch_builder == NULL)
	{
		scratch_builder = ebm_builder_new();
		if (scratch_builder == NULL)
			eb_matcher_check(EBM_ERR_NOMEM);
	}
	ebm_builder_reset(scratch_builder);
	builder_uses++;
	if (!builder_release_armed && CurrentMemoryContext != TopMemoryContext)
	{
		MemoryContextCallback *cb = MemoryContextAlloc(CurrentMemoryContext,
													   sizeof(MemoryContextCallback));

		cb->func = release_builder;
		cb->arg = NULL;
		MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
		builder_release_armed = true;
		builder_release_use = builder_uses;
	}
	return scratch_builder;
}

/* The backend's reusable matching context. */
ebm_match_ctx *
eb_matcher_match_ctx(void)
{
	if (scratch_ctx == NULL)
	{
		scratch_ctx = ebm_match_ctx_new();
		if (scratch_ctx == NULL)
			eb_matcher_check(EBM_ERR_NOMEM);
		/* every match in this backend can be cancelled */
		ebm_match_ctx_set_interrupt(scratch_ctx, eb_matcher_interrupt, NULL);
	}
	return scratch_ctx;
}

/*
 * Feeds a string to the builder in UTF-8, converting from the database
 * encoding when that is not UTF-8.
 */
void
eb_matcher_feed_string(ebm_builder *b, const char *s, int len, bool is_key)
{
	char	   *utf8 = (char *) s;

	if (GetDatabaseEncoding() != PG_UTF8)
	{
		utf8 = (char *) pg_do_encoding_conversion((unsigned char *) s, len,
												  GetDatabaseEncoding(),
												  PG_UTF8);
		if (utf8 != s)
			len = strlen(utf8);
	}
	eb_matcher_check(is_key ? ebm_key(b, utf8, len) : ebm_string(b, utf8, len));
}

/*
 * Feeds one number.  numeric_out() writes every digit, so 1e131071 would be
 * 131,072 characters of text (and a few bytes of jsonb); a number whose
 * plain form would have more than EVENTBUS_PLAIN_NUMBER_DIGITS digits on
 * either side of the point goes to the matcher in scientific notation
 * instead, with all its significant digits and no trailing zeros, so its
 * text is at most about twice its stored size.  The matcher compares
 * numbers by value, and numbers beyond the double range by their text,
 * which is then this canonical form on the pattern's side and the event's
 * alike: no verdict depends on the choice.
 */
static void
feed_numeric(ebm_builder *b, Numeric num)
{
	static Numeric big = NULL;
	static Numeric minus_big = NULL;
	char	   *text;
	int32		dscale = DatumGetInt32(DirectFunctionCall1(numeric_scale,
														   NumericGetDatum(num)));

	if (big == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		big = DatumGetNumeric(DirectFunctionCall3(numeric_in,
												  CStringGetDatum("1e" CppAsString2(EVENTBUS_PLAIN_NUMBER_DIGITS)),
												  ObjectIdGetDatum(InvalidOid),
												  Int32GetDatum(-1)));
		minus_big = DatumGetNumeric(DirectFunctionCall1(numeric_uminus,
														NumericGetDatum(big)));
		MemoryContextSwitchTo(old);
	}
	if (dscale > EVENTBUS_PLAIN_NUMBER_DIGITS ||
		DatumGetBool(DirectFunctionCall2(numeric_ge, NumericGetDatum(num),
										 NumericGetDatum(big))) ||
		DatumGetBool(DirectFunctionCall2(numeric_le, NumericGetDatum(num),
										 NumericGetDatum(minus_big))))
	{
		char	   *e;
		char	   *m;

		/* two bytes of storage hold at most four digits: no rounding */
		text = numeric_out_sci(num, 2 * (int) VARSIZE_ANY_EXHDR(num));
		e = strchr(text, 'e');
		Assert(e != NULL);
		m = e;
		while (m > text && m[-1] == '0')
			m--;
		if (m > text && m[-1] == '.')
			m--;
		memmove(m, e, strlen(e) + 1);
	}
	else
		text = DatumGetCString(DirectFunctionCall1(numeric_out,
												   NumericGetDatum(num)));
	eb_matcher_check(ebm_number(b, text, strlen(text)));
	pfree(text);
}

/* Feeds one scalar jsonb value. */
static void
feed_scalar(ebm_builder *b, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			eb_matcher_check(ebm_null(b));
			break;
		case jbvBool:
			eb_matcher_check(ebm_bool(b, v->val.boolean));
			break;
		case jbvString:
			eb_matcher_feed_string(b, v->val.string.val, v->val.string.len, false);
			break;
		case jbvNumeric:
			feed_numeric(b, v->val.numeric);
			break;
		default:
			elog(ERROR, "unexpected jsonb scalar type %d", (int) v->type);
	}
}

/*
 * Walks a jsonb container into the builder in document order, as jsonb's
 * iterator yields it.  The walk is as long as the document, so it lets a
 * cancel act as it goes.
 */
void
eb_matcher_feed_jsonb(ebm_builder *b, JsonbContainer *container)
{
	JsonbIterator *it = JsonbIteratorInit(container);
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		raw_scalar = false;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		CHECK_FOR_INTERRUPTS();
		switch (tok)
		{
			case WJB_BEGIN_OBJECT:
				eb_matcher_check(ebm_begin_object(b));
				break;
			case WJB_END_OBJECT:
				eb_matcher_check(ebm_end_object(b));
				break;
			case WJB_BEGIN_ARRAY:
				/* a scalar document is stored as a one-element raw array */
				if (v.val.array.rawScalar)
					raw_scalar = true;
				else
					eb_matcher_check(ebm_begin_array(b));
				break;
			case WJB_END_ARRAY:
				if (!raw_scalar)
					eb_matcher_check(ebm_end_array(b));
				break;
			case WJB_KEY:
				eb_matcher_feed_string(b, v.val.string.val, v.val.string.len, true);
				break;
			case WJB_VALUE:
			case WJB_ELEM:
				feed_scalar(b, &v);
				break;
			case WJB_DONE:
				break;
		}
	}
}

/*
 * Parses and validates an event pattern without raising an error for an
 * invalid one: returns NULL and fills *err instead.  (Running out of memory
 * still raises.)
 */
ebm_pattern *
eb_matcher_try_parse_pattern(Jsonb *pattern, ebm_error *err)
{
	ebm_builder *b;
	ebm_pattern *p = NULL;
	ebm_status	st;

	memset(err, 0, sizeof(*err));
	if (!JB_ROOT_IS_OBJECT(pattern))
	{
		snprintf(err->message, sizeof(err->message),
				 "an event pattern must be a JSON object, not a JSON %s",
				 JB_ROOT_IS_SCALAR(pattern) ? "scalar" : "array");
		return NULL;
	}

	b = eb_matcher_builder();
	eb_matcher_feed_jsonb(b, &pattern->root);
	st = ebm_pattern_parse(b, &p, err);
	if (st == EBM_ERR_PATTERN)
		return NULL;
	eb_matcher_check(st);
	return p;
}

/*
 * Raises 22023 for an invalid pattern, with the matcher's reason, the field
 * path and the operator.  rule_name, when given, names the rule.
 */
void
eb_matcher_report_pattern_error(const ebm_error *err, const char *rule_name,
							  int elevel)
{
	char	   *where;

	if (err->path[0] != '\0' && err->op[0] != '\0')
		where = psprintf("At field \"%s\", operator \"%s\".", err->path, err->op);
	else if (err->path[0] != '\0')
		where = psprintf("At field \"%s\".", err->path);
	else if (err->op[0] != '\0')
		where = psprintf("In operator \"%s\".", err->op);
	else
		where = pstrdup("At the top level of the pattern.");

	ereport(elevel,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 rule_name
			 ? errmsg("invalid event pattern for rule \"%s\": %s", rule_name, err->message)
			 : errmsg("invalid event pattern: %s", err->message),
			 errdetail("%s", where),
			 errhint("Event patterns follow Amazon EventBridge's syntax; see the README's operator table.")));
}

/* Parses and validates an event pattern; raises 22023 when it is invalid. */
ebm_pattern *
eb_matcher_parse_pattern(Jsonb *pattern, const char *rule_name)
{
	ebm_error	err;
	ebm_pattern *p = eb_matcher_try_parse_pattern(pattern, &err);

	if (p == NULL)
		eb_matcher_report_pattern_error(&err, rule_name, ERROR);
	return p;
}

/*
 * eventbus.validate_event_pattern(event_pattern jsonb): raises an error
 * saying what is wrong with an invalid pattern.
 */
Datum
eventbus_validate_event_pattern(PG_FUNCTION_ARGS)
{
	Jsonb	   *pattern = PG_GETARG_JSONB_P(0);

	ebm_pattern_free(eb_matcher_parse_pattern(pattern, NULL));
	PG_RETURN_VOID();
}

/*
 * Raises 22023 unless the event given to test a pattern with (an
 * envelope) is a JSON object; test_event_pattern and explain_match.
 */
void
eb_matcher_check_event_object(Jsonb *event)
{
	if (!JB_ROOT_IS_OBJECT(event))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the event to test must be a JSON object"),
				 errhint("Pass a whole event envelope, such as {\"source\": \"com.example\", \"detail-type\": \"x\", \"detail\": {}}.")));
}

/*
 * eventbus.test_event_pattern(event_pattern jsonb, event jsonb): does the
 * event match the pattern?  As EventBridge's TestEventPattern.
 */
Datum
eventbus_test_event_pattern(PG_FUNCTION_ARGS)
{
	Jsonb	   *pattern = PG_GETARG_JSONB_P(0);
	Jsonb	   *event = PG_GETARG_JSONB_P(1);
	ebm_pattern *p;
	ebm_ruleset *rs;
	ebm_builder *b;
	ebm_status	st;
	const uint32_t *ids;
	size_t		nids = 0;

	eb_matcher_check_event_object(event);
	p = eb_matcher_parse_pattern(pattern, NULL);
	rs = ebm_ruleset_new();
	if (rs == NULL)
	{
		ebm_pattern_free(p);
		eb_matcher_check(EBM_ERR_NOMEM);
	}
	st = ebm_ruleset_add(rs, 0, p);
	ebm_pattern_free(p);
	if (st == EBM_OK)
		st = ebm_ruleset_compile(rs);
	if (st != EBM_OK)
	{
		ebm_ruleset_free(rs);
		eb_matcher_check(st);
	}

	b = eb_matcher_builder();
	PG_TRY();
	{
		eb_matcher_feed_jsonb(b, &event->root);
	}
	PG_CATCH();
	{
		ebm_ruleset_free(rs);
		PG_RE_THROW();
	}
	PG_END_TRY();

	st = ebm_match(rs, b, eb_matcher_match_ctx(), &ids, &nids);
	ebm_ruleset_free(rs);
	/* forget the event now, handing back what a large one made us keep */
	ebm_builder_reset(b);
	eb_matcher_check(st);
	PG_RETURN_BOOL(nids > 0);
}
