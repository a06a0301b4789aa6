/*-------------------------------------------------------------------------
 *
 * explain_tests.c
 *	  Tests of ebm_explain(): the columns and words for each operator, arrays
 *	  of objects and $or; agreement with ebm_match() on every case of the
 *	  conformance corpus; and the adversarial shapes, bounded.
 *
 * usage: explain_tests <patterns.jsonl> [--time-scale N]
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "countalloc.h"
#include "ebm.h"
#include "ebm_explain.h"
#include "jsonfeed.h"

static int	failures;
static int	passes;
static double time_scale = 1.0;


/* Seconds of process CPU time. */
static double
cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Count one check. */
static void
expect(bool ok, const char *what, const char *got)
{
	if (ok)
		passes++;
	else
	{
		failures++;
		printf("FAIL %s (got %s)\n", what, got ? got : "NULL");
	}
}

/* Do two strings (either may be NULL) agree? */
static bool
same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Explain event against pattern, both JSON text; exits on an error. */
static ebm_explanation *
explain_text(ebm_builder *b, ebm_match_ctx *ctx, const char *pattern,
			 const char *event)
{
	ebm_pattern *p = NULL;
	ebm_error	err;
	ebm_explanation *e = NULL;
	ebm_status	st;

	if (jf_feed_text(b, pattern, strlen(pattern)) != EBM_OK ||
		ebm_pattern_parse(b, &p, &err) != EBM_OK)
	{
		fprintf(stderr, "bad pattern %s: %s\n", pattern, err.message);
		exit(2);
	}
	if (jf_feed_text(b, event, strlen(event)) != EBM_OK)
	{
		fprintf(stderr, "bad event (%zu bytes)\n", strlen(event));
		exit(2);
	}
	st = ebm_explain(p, b, ctx, &e);
	ebm_pattern_free(p);
	if (st != EBM_OK)
	{
		fprintf(stderr, "explain failed: %s\n", ebm_status_string(st));
		exit(2);
	}
	return e;
}

/*
 * One case: the explanation's columns must be as given (NULL: must be
 * NULL); reason is compared exactly.
 */
static void
check(const char *name, const char *pattern, const char *event, bool matched,
	  const char *field, const char *op, const char *expected,
	  const char *actual, const char *reason)
{
	ebm_builder *b = ebm_builder_new();
	ebm_match_ctx *ctx = ebm_match_ctx_new();
	ebm_explanation *e = explain_text(b, ctx, pattern, event);
	char		what[256];

	snprintf(what, sizeof(what), "%s: matched", name);
	expect(e->matched == matched, what, e->matched ? "true" : "false");
	snprintf(what, sizeof(what), "%s: field", name);
	expect(same(e->field, field), what, e->field);
	snprintf(what, sizeof(what), "%s: operator", name);
	expect(same(e->op, op), what, e->op);
	snprintf(what, sizeof(what), "%s: expected", name);
	expect(same(e->expected, expected), what, e->expected);
	snprintf(what, sizeof(what), "%s: actual", name);
	expect(same(e->actual, actual), what, e->actual);
	snprintf(what, sizeof(what), "%s: reason", name);
	expect(same(e->reason, reason), what, e->reason);
	ebm_explanation_free(e);
	ebm_match_ctx_free(ctx);
	ebm_builder_free(b);
}

/* The columns and words, operator by operator. */
static void
unit_tests(void)
{
	check("match", "{\"source\": [\"a\"]}", "{\"source\": \"a\"}", true,
		  NULL, NULL, NULL, NULL, NULL);
	check("numeric", "{\"source\": [\"shop\"], \"detail\": {\"total\": [{\"numeric\": [\">=\", 1000]}]}}",
		  "{\"source\": \"shop\", \"detail\": {\"total\": 120}}", false,
		  "detail.total", "numeric", "[\">=\", 1000]", "120",
		  "value 120 does not match numeric [\">=\", 1000]");
	check("numeric range", "{\"n\": [{\"numeric\": [\">\", 0, \"<=\", 5.5]}]}",
		  "{\"n\": 6}", false, "n", "numeric", "[\">\", 0, \"<=\", 5.5]", "6",
		  "value 6 does not match numeric [\">\", 0, \"<=\", 5.5]");
	check("numeric, large and small bounds", "{\"n\": [{\"numeric\": [\">\", 1e300, \"<\", 1.7976931348623157e308]}]}",
		  "{\"n\": -0.000001}", false, "n", "numeric", "[\">\", 1e+300, \"<\", 1.7976931348623157e+308]", "-0.000001",
		  "value -0.000001 does not match numeric [\">\", 1e+300, \"<\", 1.7976931348623157e+308]");
	check("missing", "{\"source\": [\"a\"], \"detail\": {\"x\": [1]}}",
		  "{\"source\": \"a\", \"detail\": {}}", false,
		  "detail.x", "equals", "1", NULL, "field is missing");
	check("exact values", "{\"source\": [\"a\", \"b\"]}", "{\"source\": \"c\"}", false,
		  "source", "equals", "[\"a\", \"b\"]", "\"c\"",
		  "value \"c\" does not match equals [\"a\", \"b\"]");
	check("exists false", "{\"d\": {\"gone\": [{\"exists\": false}]}}",
		  "{\"d\": {\"gone\": \"here\"}}", false,
		  "d.gone", "exists", "false", "\"here\"",
		  "field is present, and exists: false wants it absent");
	check("exists true", "{\"d\": {\"x\": [{\"exists\": true}]}}",
		  "{\"d\": {\"y\": 1}}", false,
		  "d.x", "exists", "true", NULL, "field is missing");
	check("anything-but", "{\"s\": [{\"anything-but\": [\"x\", \"y\"]}]}",
		  "{\"s\": \"x\"}", false, "s", "anything-but", "[\"x\", \"y\"]", "\"x\"",
		  "value \"x\" is excluded by anything-but [\"x\", \"y\"]");
	check("anything-but prefix", "{\"s\": [{\"anything-but\": {\"prefix\": \"in\"}}]}",
		  "{\"s\": \"internal\"}", false, "s", "anything-but",
		  "{\"prefix\": \"in\"}", "\"internal\"",
		  "value \"internal\" is excluded by anything-but {\"prefix\": \"in\"}");
	check("prefix", "{\"s\": [{\"prefix\": \"com.\"}]}", "{\"s\": \"org.x\"}", false,
		  "s", "prefix", "\"com.\"", "\"org.x\"",
		  "value \"org.x\" does not match prefix \"com.\"");
	check("suffix icase", "{\"s\": [{\"suffix\": {\"equals-ignore-case\": \".PNG\"}}]}",
		  "{\"s\": \"a.jpg\"}", false, "s", "suffix",
		  "{\"equals-ignore-case\": \".png\"}", "\"a.jpg\"",
		  "value \"a.jpg\" does not match suffix {\"equals-ignore-case\": \".png\"}");
	check("wildcard", "{\"s\": [{\"wildcard\": \"a*z\"}]}", "{\"s\": \"abc\"}", false,
		  "s", "wildcard", "\"a*z\"", "\"abc\"",
		  "value \"abc\" does not match wildcard \"a*z\"");
	check("cidr", "{\"ip\": [{\"cidr\": \"10.0.0.0/24\"}]}", "{\"ip\": \"10.0.1.5\"}", false,
		  "ip", "cidr", "\"10.0.0.0/24\"", "\"10.0.1.5\"",
		  "value \"10.0.1.5\" does not match cidr \"10.0.0.0/24\"");
	check("cidr6", "{\"ip\": [{\"cidr\": \"2001:db8::/32\"}]}", "{\"ip\": \"2001:db9::1\"}", false,
		  "ip", "cidr", "\"2001:db8:0:0:0:0:0:0/32\"", "\"2001:db9::1\"",
		  "value \"2001:db9::1\" does not match cidr \"2001:db8:0:0:0:0:0:0/32\"");
	check("equals-ignore-case", "{\"s\": [{\"equals-ignore-case\": \"ABC\"}]}",
		  "{\"s\": \"abd\"}", false, "s", "equals-ignore-case", "\"abc\"", "\"abd\"",
		  "value \"abd\" does not match equals-ignore-case \"abc\"");
	check("mixed list", "{\"s\": [\"a\", {\"prefix\": \"b\"}]}", "{\"s\": \"c\"}", false,
		  "s", "any of", "[\"a\", {\"prefix\": \"b\"}]", "\"c\"",
		  "value \"c\" does not match any of [\"a\", {\"prefix\": \"b\"}]");
	check("several values", "{\"tags\": [\"x\"]}", "{\"tags\": [\"a\", \"b\\n\"]}", false,
		  "tags", "equals", "\"x\"", "[\"a\", \"b\\u000a\"]",
		  "none of its 2 values (\"a\", \"b\\u000a\") matches equals \"x\"");
	check("array of objects",
		  "{\"detail\": {\"items\": {\"sku\": [\"X\"], \"discount\": [{\"exists\": false}]}}}",
		  "{\"detail\": {\"items\": [{\"sku\": \"X\", \"discount\": 5}, {\"sku\": \"Y\"}]}}", false,
		  "detail.items.discount", "exists", "false", "5",
		  "no element of detail.items has sku equals \"X\" together with discount missing (fields taken from one array element must come from the same element)");
	check("array of objects, both present",
		  "{\"items\": {\"a\": [1], \"b\": [2]}}",
		  "{\"items\": [{\"a\": 1, \"b\": 3}, {\"a\": 4, \"b\": 2}]}", false,
		  "items.b", "equals", "2", "[3, 2]",
		  "no element of items has a equals 1 together with b equals 2 (fields taken from one array element must come from the same element)");
	check("$or closest",
		  "{\"$or\": [{\"a\": [1], \"b\": [2]}, {\"a\": [1], \"c\": [3]}]}",
		  "{\"a\": 1, \"c\": 4}", false,
		  "b", "equals", "2", NULL,
		  "alternative 1 of 2 ($or), the closest: field is missing");
	check("$or second closer",
		  "{\"$or\": [{\"x\": [9]}, {\"a\": [1], \"c\": [3]}]}",
		  "{\"a\": 1, \"c\": 4}", false,
		  "c", "equals", "3", "4",
		  "alternative 2 of 2 ($or), the closest: value 4 does not match equals 3");
}

/*
 * Every case of the corpus: explain's verdict is ebm_match's, every
 * non-match has a field and a reason, and explain's own decisions, field by
 * field, find the failure the matcher's index found (no alternative holds
 * when decided whole).
 */
static void
corpus(const char *path)
{
	FILE	   *f = fopen(path, "r");
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		len;
	ebm_builder *b = ebm_builder_new();
	ebm_match_ctx *ctx = ebm_match_ctx_new();
	int			cases = 0,
				nonmatch = 0,
				bad = 0;

	if (f == NULL)
	{
		perror(path);
		exit(2);
	}
	while ((len = getline(&line, &cap, f)) > 0)
	{
		json_error_t jerr;
		json_t	   *c = jf_decode(line, (size_t) len, &jerr);
		json_t	   *pt,
				   *ev;
		ebm_pattern *p = NULL;
		ebm_error	err;
		ebm_ruleset *rs;
		ebm_explanation *e = NULL;
		const uint32_t *ids;
		size_t		nids = 0;
		bool		ok;

		if (c == NULL)
			continue;
		pt = json_object_get(c, "pattern");
		ev = json_object_get(c, "event");
		if (json_is_true(json_object_get(c, "invalid")) || pt == NULL ||
			json_is_null(pt) || ev == NULL || json_is_null(ev))
		{
			/* invalid patterns, and text-only cases (not JSON to a jsonb) */
			json_decref(c);
			continue;
		}
		ebm_builder_reset(b);
		if (jf_feed(b, pt) != EBM_OK || ebm_pattern_parse(b, &p, &err) != EBM_OK)
		{
			json_decref(c);
			continue;
		}
		ebm_builder_reset(b);
		if (jf_feed(b, ev) != EBM_OK)
		{
			ebm_pattern_free(p);
			json_decref(c);
			continue;
		}
		cases++;
		rs = ebm_ruleset_new();
		ebm_ruleset_add(rs, 0, p);
		ebm_ruleset_compile(rs);
		ok = ebm_match(rs, b, ctx, &ids, &nids) == EBM_OK &&
			ebm_explain(p, b, ctx, &e) == EBM_OK &&
			e->matched == (nids > 0) &&
			(e->matched || (e->field && e->field[0] && e->reason && e->reason[0] &&
							e->op && e->expected &&
							strstr(e->reason, "yet the matcher found no match") == NULL));
		if (e && !e->matched)
			nonmatch++;
		if (!ok)
		{
			bad++;
			printf("FAIL corpus %s: match=%d explain=%s reason=%s\n",
				   json_string_value(json_object_get(c, "id")), nids > 0,
				   e ? (e->matched ? "match" : "no match") : "error",
				   e && e->reason ? e->reason : "NULL");
		}
		ebm_explanation_free(e);
		ebm_ruleset_free(rs);
		ebm_pattern_free(p);
		json_decref(c);
	}
	free(line);
	fclose(f);
	ebm_builder_free(b);
	ebm_match_ctx_free(ctx);
	printf("explain corpus: %d cases (%d non-matches), %d disagree or lack a reason\n",
		   cases, nonmatch, bad);
	expect(bad == 0 && cases > 1000, "explain agrees with match on the corpus", "disagreement");
}

/* A growing JSON text for the adversarial events. */
typedef struct text
{
	char	   *s;
	size_t		len;
	size_t		cap;
} text;

/* Append to a text. */
static void
put(text *t, const char *s)
{
	size_t		n = strlen(s);

	if (t->len + n + 1 > t->cap)
	{
		t->cap = (t->len + n + 1) * 2;
		t->s = realloc(t->s, t->cap);
		if (t->s == NULL)
			exit(2);
	}
	memcpy(t->s + t->len, s, n + 1);
	t->len += n;
}

/*
 * The adversarial shapes of adversarial.c that cost the old matcher most,
 * explained: 20,000 items that all have a discount plus 20,000 tags, and
 * two arrays nested 20,000 deep; each must stay within a CPU time and hand
 * back its scratch space.
 */
static void
adversarial(void)
{
	ebm_builder *b = ebm_builder_new();
	ebm_match_ctx *ctx = ebm_match_ctx_new();
	text		ev = {0};
	int			i,
				m = 20000;
	double		t0,
				t;
	size_t		base;
	ebm_explanation *e;
	char		what[256];

	put(&ev, "{\"detail\": {\"items\": [");
	for (i = 0; i < m; i++)
		put(&ev, i ? ", {\"sku\": \"X\", \"discount\": 5}" : "{\"sku\": \"X\", \"discount\": 5}");
	put(&ev, "], \"tags\": [");
	for (i = 0; i < m; i++)
		put(&ev, i ? ", \"t\"" : "\"t\"");
	put(&ev, "]}}");
	base = cur_bytes;
	peak_bytes = cur_bytes;
	t0 = cpu_now();
	e = explain_text(b, ctx,
					 "{\"detail\": {\"items\": {\"sku\": [\"X\"], \"discount\": [{\"exists\": false}]}, \"tags\": [\"t\"]}}",
					 ev.s);
	t = cpu_now() - t0;
	snprintf(what, sizeof(what), "items m=%d: explained in %.3fs (max %.2f), peak %zu B for %zu B of JSON, reason: %s",
			 m, t, 0.5 * time_scale, peak_bytes - base, ev.len, e->reason);
	printf("%s\n", what);
	expect(!e->matched && t <= 0.5 * time_scale &&
		   strstr(e->reason, "no element of detail.items") != NULL &&
		   peak_bytes - base <= 128 * ev.len + 65536, what, e->reason);
	ebm_explanation_free(e);
	ebm_builder_reset(b);
	expect(cur_bytes - base <= 256 * 1024, "items: scratch handed back", "kept");

	/*
	 * two arrays nested m deep, every value 1: the pattern wants w = 2
	 * (built with the builder: JSON parsers refuse such depth)
	 */
	{
		ebm_pattern *p = NULL;
		ebm_error	err;
		const char *pat = "{\"detail\": {\"v\": [1], \"w\": [2]}}";
		int			k;
		size_t		base0 = cur_bytes;

		if (jf_feed_text(b, pat, strlen(pat)) != EBM_OK ||
			ebm_pattern_parse(b, &p, &err) != EBM_OK)
			exit(2);
		ebm_builder_reset(b);
		ebm_begin_object(b);
		ebm_key(b, "detail", 6);
		ebm_begin_object(b);
		for (k = 0; k < 2; k++)
		{
			ebm_key(b, k ? "w" : "v", 1);
			for (i = 0; i < m; i++)
			{
				ebm_begin_array(b);
				ebm_number(b, "1", 1);
			}
			for (i = 0; i < m; i++)
				ebm_end_array(b);
		}
		ebm_end_object(b);
		ebm_end_object(b);
		base = cur_bytes;
		peak_bytes = cur_bytes;
		t0 = cpu_now();
		if (ebm_explain(p, b, ctx, &e) != EBM_OK)
			exit(2);
		t = cpu_now() - t0;
		snprintf(what, sizeof(what), "deep d=%d: explained in %.3fs (max %.2f), peak %zu B, reason: %.80s",
				 m, t, 0.5 * time_scale, peak_bytes - base, e->reason);
		printf("%s\n", what);
		expect(!e->matched && t <= 0.5 * time_scale && same(e->field, "detail.w") &&
			   peak_bytes - base <= 128 * (size_t) (8 * m) + 65536, what, e->reason);
		ebm_explanation_free(e);
		ebm_pattern_free(p);
		ebm_builder_reset(b);
		snprintf(what, sizeof(what), "%zu B", cur_bytes - base0);
		expect(cur_bytes <= base0 + 256 * 1024, "deep: scratch handed back", what);
	}

	free(ev.s);
	ebm_match_ctx_free(ctx);
	ebm_builder_free(b);
}

/* Counts calls of the interrupt callback; says stop at call stop_at. */
static int	interrupt_calls;
static int	stop_at;

static bool
stop_later(void *arg)
{
	(void) arg;
	interrupt_calls++;
	return stop_at > 0 && interrupt_calls >= stop_at;
}

/* A long explanation asks the interrupt callback and stops when told. */
static void
interrupts(void)
{
	ebm_builder *b = ebm_builder_new();
	ebm_match_ctx *ctx = ebm_match_ctx_new();
	text		ev = {0};
	ebm_pattern *p = NULL;
	ebm_error	err;
	ebm_explanation *e = NULL;
	ebm_status	st;
	int			i;
	const char *pat = "{\"items\": {\"a\": [1], \"b\": [2]}}";

	put(&ev, "{\"items\": [");
	for (i = 0; i < 50000; i++)
		put(&ev, i ? ", {\"a\": 1, \"b\": 3}" : "{\"a\": 1, \"b\": 3}");
	put(&ev, "]}");
	if (jf_feed_text(b, pat, strlen(pat)) != EBM_OK ||
		ebm_pattern_parse(b, &p, &err) != EBM_OK ||
		jf_feed_text(b, ev.s, ev.len) != EBM_OK)
		exit(2);
	/* how often a plain match asks; then stop just after that, in explain's own part */
	{
		ebm_ruleset *rs = ebm_ruleset_new();
		const uint32_t *ids;
		size_t		nids;

		ebm_ruleset_add(rs, 0, p);
		ebm_ruleset_compile(rs);
		ebm_match_ctx_set_interrupt(ctx, stop_later, NULL);
		interrupt_calls = 0;
		stop_at = 0;
		if (ebm_match(rs, b, ctx, &ids, &nids) != EBM_OK)
			exit(2);
		ebm_ruleset_free(rs);
	}
	stop_at = interrupt_calls + 1;
	interrupt_calls = 0;
	st = ebm_explain(p, b, ctx, &e);
	expect(st == EBM_ERR_INTERRUPTED && e == NULL && interrupt_calls == stop_at,
		   "interrupt stops an explanation after the match", ebm_status_string(st));
	stop_at = 1;
	interrupt_calls = 0;
	st = ebm_explain(p, b, ctx, &e);
	expect(st == EBM_ERR_INTERRUPTED && e == NULL,
		   "interrupt stops an explanation in the match", ebm_status_string(st));
	/* the context works afterwards */
	ebm_match_ctx_set_interrupt(ctx, NULL, NULL);
	st = ebm_explain(p, b, ctx, &e);
	expect(st == EBM_OK && e != NULL && !e->matched,
		   "explanation after an interrupt", ebm_status_string(st));
	ebm_explanation_free(e);
	ebm_pattern_free(p);
	free(ev.s);
	ebm_match_ctx_free(ctx);
	ebm_builder_free(b);
}

int
main(int argc, char **argv)
{
	if (argc < 2)
	{
		fprintf(stderr, "usage: %s patterns.jsonl [--time-scale N]\n", argv[0]);
		return 2;
	}
	if (argc > 3 && strcmp(argv[2], "--time-scale") == 0)
		time_scale = atof(argv[3]);
	ebm_set_allocator(count_malloc, count_realloc, count_free);
	unit_tests();
	corpus(argv[1]);
	adversarial();
	interrupts();
	printf("explain_tests: %d passed, %d failed\n", passes, failures);
	return failures ? 1 : 0;
}
