/*-------------------------------------------------------------------------
 *
 * unit_tests.c
 *	  Unit tests of the matcher library: every operator and its edges,
 *	  validation errors with their path and operator, the builder's state
 *	  checks, multi-rule sets, and the compiled index against a rule-by-rule
 *	  evaluation.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebm.h"
#include "jsonfeed.h"
#include "ruleset.h"			/* for the oracle test: the sub-rules */

static int passed;
static int failed;

/* Allocation counting hooks (installed first thing in main). */
static size_t nallocs;

static void *
count_malloc(size_t n)
{
	nallocs++;
	return malloc(n);
}

static void *
count_realloc(void *p, size_t n)
{
	nallocs++;
	return realloc(p, n);
}

#define FAIL(...) do { failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } while (0)

/* Parse a pattern from text; NULL (and *err filled) if invalid. */
static ebm_pattern *
parse(const char *text, ebm_error *err, ebm_status *st)
{
	ebm_builder *b = ebm_builder_new();
	ebm_pattern *p = NULL;

	memset(err, 0, sizeof(*err));
	if (jf_feed_text(b, text, strlen(text)) != EBM_OK)
		*st = EBM_ERR_STATE;
	else
		*st = ebm_pattern_parse(b, &p, err);
	ebm_builder_free(b);
	return p;
}

/* Does the one-rule set of pattern match event?  -1 on setup errors. */
static int
matches(const char *pattern, const char *event)
{
	ebm_error	err;
	ebm_status	st;
	ebm_pattern *p = parse(pattern, &err, &st);
	ebm_ruleset *rs;
	ebm_builder *b;
	ebm_match_ctx *ctx;
	const uint32_t *ids;
	size_t		nids = 0;
	int			r = -1;

	if (p == NULL)
	{
		printf("  pattern rejected: %s (%s, %s): %s\n", err.message, err.path, err.op, pattern);
		return -1;
	}
	rs = ebm_ruleset_new();
	b = ebm_builder_new();
	ctx = ebm_match_ctx_new();
	ebm_ruleset_add(rs, 42, p);
	ebm_pattern_free(p);
	if (ebm_ruleset_compile(rs) == EBM_OK &&
		jf_feed_text(b, event, strlen(event)) == EBM_OK &&
		ebm_match(rs, b, ctx, &ids, &nids) == EBM_OK)
		r = (nids == 1 && ids[0] == 42);
	ebm_match_ctx_free(ctx);
	ebm_builder_free(b);
	ebm_ruleset_free(rs);
	return r;
}

#define MATCH(pat, ev) do { int r_ = matches(pat, ev); if (r_ == 1) passed++; else FAIL("expected match: %s ~ %s", pat, ev); } while (0)
#define NOMATCH(pat, ev) do { int r_ = matches(pat, ev); if (r_ == 0) passed++; else FAIL("expected no match: %s ~ %s", pat, ev); } while (0)

/* The pattern must be rejected with a message containing msg, at path/op. */
static void
invalid(int line, const char *text, const char *msg, const char *path, const char *op)
{
	ebm_error	err;
	ebm_status	st;
	ebm_pattern *p = parse(text, &err, &st);

	if (p != NULL)
	{
		ebm_pattern_free(p);
		failed++;
		printf("FAIL line %d: accepted invalid pattern %s\n", line, text);
		return;
	}
	if (st == EBM_ERR_STATE && msg == NULL)
	{
		passed++;				/* not JSON at all */
		return;
	}
	if (st != EBM_ERR_PATTERN || (msg && strstr(err.message, msg) == NULL) ||
		(path && strcmp(err.path, path) != 0) || (op && strcmp(err.op, op) != 0))
	{
		failed++;
		printf("FAIL line %d: %s -> status %d, message '%s', path '%s', op '%s'\n",
			   line, text, (int) st, err.message, err.path, err.op);
		return;
	}
	passed++;
}

#define INVALID(text, msg, path, op) invalid(__LINE__, text, msg, path, op)

static void
valid(int line, const char *text)
{
	ebm_error	err;
	ebm_status	st;
	ebm_pattern *p = parse(text, &err, &st);

	if (p == NULL)
	{
		failed++;
		printf("FAIL line %d: rejected %s: %s\n", line, text, err.message);
		return;
	}
	ebm_pattern_free(p);
	passed++;
}

#define VALID(text) valid(__LINE__, text)

static void
test_exact(void)
{
	MATCH("{\"source\": [\"aws.ec2\"]}", "{\"source\": \"aws.ec2\"}");
	NOMATCH("{\"source\": [\"aws.ec2\"]}", "{\"source\": \"aws.ec2 \"}");
	NOMATCH("{\"source\": [\"aws.ec2\"]}", "{\"other\": \"aws.ec2\"}");
	MATCH("{\"s\": [\"a\", \"b\", \"c\"]}", "{\"s\": \"c\"}");
	MATCH("{\"s\": [\"\"]}", "{\"s\": \"\"}");
	NOMATCH("{\"s\": [\"\"]}", "{\"s\": null}");
	MATCH("{\"n\": [null]}", "{\"n\": null}");
	NOMATCH("{\"n\": [null]}", "{\"m\": 1}");
	NOMATCH("{\"n\": [null]}", "{\"n\": \"null\"}");
	MATCH("{\"b\": [true]}", "{\"b\": true}");
	NOMATCH("{\"b\": [true]}", "{\"b\": \"true\"}");
	NOMATCH("{\"b\": [false]}", "{\"b\": true}");
	/* strings never match numbers */
	NOMATCH("{\"x\": [\"1\"]}", "{\"x\": 1}");
	NOMATCH("{\"x\": [1]}", "{\"x\": \"1\"}");
	/* unicode and escapes, NUL inside strings */
	MATCH("{\"x\": [\"caf\\u00e9\"]}", "{\"x\": \"café\"}");
	MATCH("{\"x\": [\"a\\u0000b\"]}", "{\"x\": \"a\\u0000b\"}");
	NOMATCH("{\"x\": [\"a\\u0000b\"]}", "{\"x\": \"a\"}");
	MATCH("{\"x\": [\"\\ud83d\\ude00\"]}", "{\"x\": \"😀\"}");
}

static void
test_numbers(void)
{
	MATCH("{\"n\": [300]}", "{\"n\": 300.0}");
	MATCH("{\"n\": [300]}", "{\"n\": 3.0e2}");
	MATCH("{\"n\": [3.018e2]}", "{\"n\": 301.8}");
	MATCH("{\"n\": [-0]}", "{\"n\": 0}");
	MATCH("{\"n\": [1E-7]}", "{\"n\": 0.0000001}");
	NOMATCH("{\"n\": [300]}", "{\"n\": 300.0000001}");
	/* beyond 64-bit integers and the double range: kept as text */
	MATCH("{\"n\": [123456789012345678901234567890]}", "{\"n\": 123456789012345678901234567890}");
	MATCH("{\"n\": [1e400]}", "{\"n\": 1e400}");
	NOMATCH("{\"n\": [1e400]}", "{\"n\": 1e401}");
	MATCH("{\"n\": [1.7976931348623157e308]}", "{\"n\": 1.7976931348623157E308}");
	MATCH("{\"n\": [5e-324]}", "{\"n\": 4.9406564584124654e-324}");
	MATCH("{\"n\": [{\"numeric\": [\">\", 0, \"<\", 1e-300]}]}", "{\"n\": 1e-301}");
	MATCH("{\"n\": [{\"numeric\": [\">\", 1e300]}]}", "{\"n\": 1e301}");
	NOMATCH("{\"n\": [{\"numeric\": [\">\", 1e300]}]}", "{\"n\": 1e400}");
}

static void
test_numeric(void)
{
	MATCH("{\"n\": [{\"numeric\": [\"=\", 5]}]}", "{\"n\": 5.0}");
	NOMATCH("{\"n\": [{\"numeric\": [\"=\", 5]}]}", "{\"n\": \"5\"}");
	MATCH("{\"n\": [{\"numeric\": [\">\", 5]}]}", "{\"n\": 5.000001}");
	NOMATCH("{\"n\": [{\"numeric\": [\">\", 5]}]}", "{\"n\": 5}");
	MATCH("{\"n\": [{\"numeric\": [\">=\", 5]}]}", "{\"n\": 5}");
	MATCH("{\"n\": [{\"numeric\": [\"<\", -1]}]}", "{\"n\": -1.5}");
	NOMATCH("{\"n\": [{\"numeric\": [\"<\", -1]}]}", "{\"n\": -1}");
	MATCH("{\"n\": [{\"numeric\": [\"<=\", -1]}]}", "{\"n\": -1}");
	MATCH("{\"n\": [{\"numeric\": [\">\", 0, \"<=\", 5]}]}", "{\"n\": 5}");
	NOMATCH("{\"n\": [{\"numeric\": [\">\", 0, \"<=\", 5]}]}", "{\"n\": 0}");
	MATCH("{\"n\": [{\"numeric\": [\">=\", 0, \"<\", 5]}]}", "{\"n\": 0}");
	NOMATCH("{\"n\": [{\"numeric\": [\">=\", 0, \"<\", 5]}]}", "{\"n\": 5}");
	MATCH("{\"n\": [{\"numeric\": [\">\", 1e2, \"<\", 2.5E2]}]}", "{\"n\": 101}");
	MATCH("{\"n\": [{\"numeric\": [\"<\", 10]}, {\"numeric\": [\">\", 100]}]}", "{\"n\": 101}");
	NOMATCH("{\"n\": [{\"numeric\": [\"<\", 10]}, {\"numeric\": [\">\", 100]}]}", "{\"n\": 50}");
	MATCH("{\"n\": [{\"numeric\": [\">\", 10]}]}", "{\"n\": [1, 2, 30]}");
	NOMATCH("{\"n\": [{\"numeric\": [\">\", 10]}]}", "{\"n\": true}");
	INVALID("{\"n\": [{\"numeric\": [\">=\", 5, \"<=\", 5]}]}", "Bottom must be less than top", "n", "numeric");
	INVALID("{\"n\": [{\"numeric\": [\">\", 10, \"<\", 5]}]}", "Bottom must be less than top", "n", "numeric");
	INVALID("{\"n\": [{\"numeric\": [\"<\", 5, \">\", 1]}]}", "Too many elements", "n", "numeric");
	INVALID("{\"n\": [{\"numeric\": [\"=\", 5, \"<\", 10]}]}", "Too many elements", "n", "numeric");
	INVALID("{\"n\": [{\"numeric\": [\">\", 0, \">\", 1]}]}", "Bad numeric range operator: >", "n", "numeric");
	INVALID("{\"n\": [{\"numeric\": [\">\", 0, \"<\", 10, \"<\", 11]}]}", "Too many", "n", "numeric");
	INVALID("{\"n\": [{\"numeric\": [\"==\", 5]}]}", "Unrecognized numeric range operator: ==", "n", "numeric");
	INVALID("{\"n\": [{\"numeric\": [\"=\", \"5\"]}]}", "Value of equals must be numeric", "n", "numeric");
	INVALID("{\"n\": [{\"numeric\": [\"<\"]}]}", "Value of < must be numeric", "n", "numeric");
	INVALID("{\"n\": [{\"numeric\": []}]}", "Empty arrays", "n", "numeric");
	INVALID("{\"n\": [{\"numeric\": 5}]}", "must be an array", "n", "numeric");
	INVALID("{\"n\": [{\"numeric\": {\">\": 5}}]}", "must be an array", "n", "numeric");
	INVALID("{\"n\": [{\"numeric\": [\"=\", 2.0e422]}]}", "Cannot compare number", "n", "numeric");
	INVALID("{\"n\": [{\"numeric\": [\"=\", 1E-325]}]}", "Cannot compare number", "n", "numeric");
	VALID("{\"n\": [{\"numeric\": [\"=\", 0.0]}]}");
}

static void
test_prefix_suffix(void)
{
	MATCH("{\"t\": [{\"prefix\": \"2017-10\"}]}", "{\"t\": \"2017-10-02T00:00:00Z\"}");
	NOMATCH("{\"t\": [{\"prefix\": \"2017-10\"}]}", "{\"t\": \"2017-1\"}");
	MATCH("{\"t\": [{\"prefix\": \"\"}]}", "{\"t\": \"anything\"}");
	NOMATCH("{\"t\": [{\"prefix\": \"\"}]}", "{\"t\": 5}");
	NOMATCH("{\"t\": [{\"prefix\": \"1\"}]}", "{\"t\": 123}");
	MATCH("{\"f\": [{\"suffix\": \".png\"}]}", "{\"f\": \"image.png\"}");
	NOMATCH("{\"f\": [{\"suffix\": \".png\"}]}", "{\"f\": \"image.PNG\"}");
	MATCH("{\"f\": [{\"suffix\": {\"equals-ignore-case\": \".png\"}}]}", "{\"f\": \"image.PnG\"}");
	MATCH("{\"f\": [{\"prefix\": {\"equals-ignore-case\": \"ÉCO\"}}]}", "{\"f\": \"école\"}");
	NOMATCH("{\"f\": [{\"prefix\": {\"equals-ignore-case\": \"abc\"}}]}", "{\"f\": \"ab\"}");
	MATCH("{\"f\": [{\"prefix\": \"ab\"}, {\"suffix\": \"yz\"}]}", "{\"f\": \"xyz\"}");
	MATCH("{\"f\": [{\"prefix\": \"é\"}]}", "{\"f\": \"été\"}");
	MATCH("{\"f\": [{\"prefix\": \"a\"}]}", "{\"f\": [\"x\", \"abc\"]}");
	INVALID("{\"f\": [{\"prefix\": 5}]}", "prefix match pattern must be a string", "f", "prefix");
	INVALID("{\"f\": [{\"prefix\": [\"a\"]}]}", "prefix match pattern must be a string", "f", "prefix");
	INVALID("{\"f\": [{\"suffix\": null}]}", "suffix match pattern must be a string", "f", "suffix");
	INVALID("{\"f\": [{\"prefix\": {\"foo\": \"x\"}}]}", "Unsupported prefix pattern: foo", "f", "prefix");
	INVALID("{\"f\": [{\"suffix\": {\"equals-ignore-case\": 5}}]}", "equals-ignore-case match pattern must be a string", "f", "equals-ignore-case");
	INVALID("{\"f\": [{\"prefix\": \"a\", \"suffix\": \"b\"}]}", "Only one key", "f", "");
	VALID("{\"f\": [{\"suffix\": \"\"}]}");
}

static void
test_equals_ignore_case(void)
{
	MATCH("{\"a\": [{\"equals-ignore-case\": \"aBc\"}]}", "{\"a\": \"ABC\"}");
	NOMATCH("{\"a\": [{\"equals-ignore-case\": \"aBc\"}]}", "{\"a\": \"aabc\"}");
	MATCH("{\"a\": [{\"equals-ignore-case\": \"ÉCOLE\"}]}", "{\"a\": \"école\"}");
	MATCH("{\"a\": [{\"equals-ignore-case\": \"ΣΟΦΙΑ\"}]}", "{\"a\": \"σοφια\"}");
	MATCH("{\"a\": [{\"equals-ignore-case\": \"ΟΔΟΣ\"}]}", "{\"a\": \"οδος\"}");
	MATCH("{\"a\": [{\"equals-ignore-case\": \"ΟΔΟΣ\"}]}", "{\"a\": \"οδος\"}");
	MATCH("{\"a\": [{\"equals-ignore-case\": \"ПРИВЕТ\"}]}", "{\"a\": \"привет\"}");
	MATCH("{\"a\": [{\"equals-ignore-case\": \"ŁÓDŹ\"}]}", "{\"a\": \"łódź\"}");
	MATCH("{\"a\": [{\"equals-ignore-case\": \"straße\"}]}", "{\"a\": \"STRAßE\"}");
	MATCH("{\"a\": [{\"equals-ignore-case\": \"ǅ\"}]}", "{\"a\": \"ǆ\"}");
	NOMATCH("{\"a\": [{\"equals-ignore-case\": \"abc\"}]}", "{\"a\": 5}");
	MATCH("{\"a\": [{\"equals-ignore-case\": \"\"}]}", "{\"a\": \"\"}");
	/* invalid UTF-8 passes through unchanged */
	MATCH("{\"a\": [{\"equals-ignore-case\": \"\\u00ff\"}]}", "{\"a\": \"\\u0178\"}");
	INVALID("{\"a\": [{\"equals-ignore-case\": [\"x\"]}]}", "equals-ignore-case match pattern must be a string", "a", "equals-ignore-case");
}

static void
test_wildcard(void)
{
	MATCH("{\"a\": [{\"wildcard\": \"*.png\"}]}", "{\"a\": \"dir/x.png\"}");
	MATCH("{\"a\": [{\"wildcard\": \"a*b*c\"}]}", "{\"a\": \"aXbYbZc\"}");
	NOMATCH("{\"a\": [{\"wildcard\": \"a*b*c\"}]}", "{\"a\": \"aXbYbZ\"}");
	MATCH("{\"a\": [{\"wildcard\": \"\"}]}", "{\"a\": \"\"}");
	NOMATCH("{\"a\": [{\"wildcard\": \"\"}]}", "{\"a\": \"x\"}");
	MATCH("{\"a\": [{\"wildcard\": \"*\"}]}", "{\"a\": \"\"}");
	MATCH("{\"a\": [{\"wildcard\": \"a\\\\*b\"}]}", "{\"a\": \"a*b\"}");
	NOMATCH("{\"a\": [{\"wildcard\": \"a\\\\*b\"}]}", "{\"a\": \"axb\"}");
	MATCH("{\"a\": [{\"wildcard\": \"a\\\\\\\\b\"}]}", "{\"a\": \"a\\\\b\"}");
	MATCH("{\"a\": [{\"wildcard\": \"*\\\\**\"}]}", "{\"a\": \"x*y\"}");
	NOMATCH("{\"a\": [{\"wildcard\": \"*\\\\**\"}]}", "{\"a\": \"xy\"}");
	NOMATCH("{\"a\": [{\"wildcard\": \"*\"}]}", "{\"a\": 5}");
	INVALID("{\"a\": [{\"wildcard\": \"a**b\"}]}", "Consecutive wildcard characters at pos 2", "a", "wildcard");
	INVALID("{\"a\": [{\"wildcard\": \"a\\\\b\"}]}", "Invalid escape", "a", "wildcard");
	INVALID("{\"a\": [{\"wildcard\": \"ab\\\\\"}]}", "Invalid escape", "a", "wildcard");
	INVALID("{\"EventBusArn\": [{\"wildcard\": \"*:*:*:*:*:event-bus/*\"}]}", "Rule is too complex", "EventBusArn", "wildcard");
	VALID("{\"a\": [{\"wildcard\": \"arn:aws:events:us-east-1:*:event-bus/*\"}]}");
	INVALID("{\"a\": [{\"wildcard\": 5}]}", "wildcard match pattern must be a string", "a", "wildcard");
}

static void
test_anything_but(void)
{
	MATCH("{\"s\": [{\"anything-but\": \"x\"}]}", "{\"s\": \"y\"}");
	NOMATCH("{\"s\": [{\"anything-but\": \"x\"}]}", "{\"s\": \"x\"}");
	NOMATCH("{\"s\": [{\"anything-but\": \"x\"}]}", "{\"t\": \"y\"}");
	MATCH("{\"s\": [{\"anything-but\": \"x\"}]}", "{\"s\": null}");
	MATCH("{\"s\": [{\"anything-but\": \"x\"}]}", "{\"s\": true}");
	MATCH("{\"s\": [{\"anything-but\": \"5\"}]}", "{\"s\": 5}");
	MATCH("{\"s\": [{\"anything-but\": [\"a\", \"b\"]}]}", "{\"s\": \"c\"}");
	NOMATCH("{\"s\": [{\"anything-but\": [\"a\", \"b\"]}]}", "{\"s\": \"b\"}");
	MATCH("{\"s\": [{\"anything-but\": [\"a\", \"b\"]}]}", "{\"s\": [\"a\", \"c\"]}");
	NOMATCH("{\"s\": [{\"anything-but\": [\"a\", \"b\"]}]}", "{\"s\": [\"a\", \"b\"]}");
	MATCH("{\"s\": [{\"anything-but\": 5}]}", "{\"s\": 6}");
	NOMATCH("{\"s\": [{\"anything-but\": [5, 6]}]}", "{\"s\": 5.0}");
	MATCH("{\"s\": [{\"anything-but\": [5, 6]}]}", "{\"s\": \"5\"}");
	MATCH("{\"s\": [{\"anything-but\": {\"prefix\": \"ab\"}}]}", "{\"s\": \"xab\"}");
	NOMATCH("{\"s\": [{\"anything-but\": {\"prefix\": \"ab\"}}]}", "{\"s\": \"abc\"}");
	MATCH("{\"s\": [{\"anything-but\": {\"prefix\": \"ab\"}}]}", "{\"s\": 5}");
	NOMATCH("{\"s\": [{\"anything-but\": {\"prefix\": [\"ab\", \"cd\"]}}]}", "{\"s\": \"cde\"}");
	NOMATCH("{\"s\": [{\"anything-but\": {\"suffix\": \".txt\"}}]}", "{\"s\": \"a.txt\"}");
	MATCH("{\"s\": [{\"anything-but\": {\"suffix\": \".txt\"}}]}", "{\"s\": \"a.TXT\"}");
	NOMATCH("{\"s\": [{\"anything-but\": {\"equals-ignore-case\": [\"yes\", \"please\"]}}]}", "{\"s\": \"YES\"}");
	MATCH("{\"s\": [{\"anything-but\": {\"equals-ignore-case\": \"yes\"}}]}", "{\"s\": \"no\"}");
	NOMATCH("{\"s\": [{\"anything-but\": {\"wildcard\": \"*foo*\"}}]}", "{\"s\": \"afoob\"}");
	MATCH("{\"s\": [{\"anything-but\": {\"wildcard\": [\"*foo*\", \"*bar*\"]}}]}", "{\"s\": \"baz\"}");
	MATCH("{\"s\": [{\"anything-but\": {\"wildcard\": \"*foo*\"}}]}", "{\"s\": 12}");
	INVALID("{\"s\": [{\"anything-but\": null}]}", "Value of anything-but must be an array or single string/number value", "s", "anything-but");
	INVALID("{\"s\": [{\"anything-but\": true}]}", "Value of anything-but", "s", "anything-but");
	INVALID("{\"s\": [{\"anything-but\": []}]}", "Empty arrays", "s", "anything-but");
	INVALID("{\"s\": [{\"anything-but\": [\"x\", 1]}]}", "mixed type", "s", "anything-but");
	INVALID("{\"s\": [{\"anything-but\": [\"x\", null]}]}", "start|null|boolean", "s", "anything-but");
	INVALID("{\"s\": [{\"anything-but\": [[\"x\"]]}]}", "start|null|boolean", "s", "anything-but");
	INVALID("{\"s\": [{\"anything-but\": {\"prefix\": \"\"}}]}", "Null prefix/suffix not allowed", "s", "anything-but");
	INVALID("{\"s\": [{\"anything-but\": {\"suffix\": [\"a\", \"\"]}}]}", "Null prefix/suffix not allowed", "s", "anything-but");
	INVALID("{\"s\": [{\"anything-but\": {\"prefix\": 5}}]}", "prefix/suffix match pattern must be a string", "s", "anything-but");
	INVALID("{\"s\": [{\"anything-but\": {\"prefix\": {\"equals-ignore-case\": \"x\"}}}]}", "Value of anything-but", "s", "anything-but");
	INVALID("{\"s\": [{\"anything-but\": {\"equals-ignore-case\": [1, 2]}}]}", "equals-ignore-case list", "s", "anything-but");
	INVALID("{\"s\": [{\"anything-but\": {\"wildcard\": \"a**\"}}]}", "Consecutive wildcard", "s", "anything-but");
	INVALID("{\"s\": [{\"anything-but\": {\"numeric\": [\">\", 1]}}]}", "Unsupported anything-but pattern: numeric", "s", "anything-but");
	INVALID("{\"s\": [{\"anything-but\": {\"prefix\": \"x\", \"suffix\": \"y\"}}]}", "Only one key", "s", "anything-but");
}

/*
 * anything-but as the pre-filter of an index entry (anchored on k): the
 * probe tells excluded values by their class (index.h).
 */
static void
test_anything_but_filter(void)
{
	const char *p = "{\"k\": [\"a\"], \"s\": [{\"anything-but\": [5, 6, 7]}]}";
	const char *q = "{\"k\": [\"a\"], \"s\": [{\"anything-but\": [\"x\", \"y\"]}]}";

	MATCH(p, "{\"k\": \"a\", \"s\": 8}");
	NOMATCH(p, "{\"k\": \"a\", \"s\": 5}");
	NOMATCH(p, "{\"k\": \"a\", \"s\": 6.0}");
	NOMATCH(p, "{\"k\": \"a\", \"s\": 7e0}");
	MATCH(p, "{\"k\": \"a\", \"s\": \"5\"}");
	MATCH(p, "{\"k\": \"a\", \"s\": null}");
	NOMATCH(p, "{\"k\": \"a\"}");
	NOMATCH(p, "{\"k\": \"a\", \"s\": [5, 6, 7, 5.0]}");
	MATCH(p, "{\"k\": \"a\", \"s\": [5, 6, 7, 8]}");
	/* more values than the probe keeps classes for: the exact check */
	NOMATCH(p, "{\"k\": \"a\", \"s\": [5, 6, 7, 5, 6, 7, 5, 6, 7]}");
	MATCH(p, "{\"k\": \"a\", \"s\": [5, 6, 7, 5, 6, 7, 5, 6, 9]}");
	MATCH(q, "{\"k\": \"a\", \"s\": \"z\"}");
	NOMATCH(q, "{\"k\": \"a\", \"s\": \"y\"}");
	NOMATCH(q, "{\"k\": \"a\", \"s\": [\"y\", \"x\"]}");
	MATCH(q, "{\"k\": \"a\", \"s\": [\"y\", \"X\"]}");
	/* in arrays of objects: the values must come from one element */
	MATCH("{\"o\": {\"k\": [\"a\"], \"s\": [{\"anything-but\": \"x\"}]}}",
		  "{\"o\": [{\"k\": \"a\", \"s\": \"z\"}, {\"k\": \"b\", \"s\": \"x\"}]}");
	NOMATCH("{\"o\": {\"k\": [\"a\"], \"s\": [{\"anything-but\": \"x\"}]}}",
			"{\"o\": [{\"k\": \"a\", \"s\": \"x\"}, {\"k\": \"b\", \"s\": \"z\"}]}");
}

static void
test_exists(void)
{
	MATCH("{\"a\": [{\"exists\": true}]}", "{\"a\": null}");
	MATCH("{\"a\": [{\"exists\": true}]}", "{\"a\": [1]}");
	NOMATCH("{\"a\": [{\"exists\": true}]}", "{\"a\": []}");
	NOMATCH("{\"a\": [{\"exists\": true}]}", "{\"a\": {\"b\": 1}}");
	NOMATCH("{\"a\": [{\"exists\": true}]}", "{\"b\": 1}");
	MATCH("{\"a\": [{\"exists\": false}]}", "{\"b\": 1}");
	MATCH("{\"a\": [{\"exists\": false}]}", "{\"a\": {\"b\": 1}}");
	MATCH("{\"a\": [{\"exists\": false}]}", "{\"a\": []}");
	NOMATCH("{\"a\": [{\"exists\": false}]}", "{\"a\": null}");
	MATCH("{\"a\": {\"b\": [{\"exists\": false}]}}", "{\"x\": 1}");
	MATCH("{\"a\": [{\"exists\": false}, \"x\"]}", "{\"a\": \"x\"}");
	MATCH("{\"a\": [{\"exists\": false}, \"x\"]}", "{\"b\": \"x\"}");
	NOMATCH("{\"a\": [{\"exists\": false}, \"x\"]}", "{\"a\": \"y\"}");
	/* arrays of objects: exists:false looks at the element the other fields chose */
	MATCH("{\"i\": {\"k\": [\"A\"], \"v\": [{\"exists\": false}]}}", "{\"i\": [{\"k\": \"B\", \"v\": 1}, {\"k\": \"A\"}]}");
	NOMATCH("{\"i\": {\"k\": [\"A\"], \"v\": [{\"exists\": false}]}}", "{\"i\": [{\"k\": \"A\", \"v\": 1}, {\"k\": \"B\"}]}");
	/* exists:false as the pre-filter of an entry anchored on k */
	MATCH("{\"k\": [\"A\"], \"v\": [{\"exists\": false}]}", "{\"k\": \"A\"}");
	NOMATCH("{\"k\": [\"A\"], \"v\": [{\"exists\": false}]}", "{\"k\": \"A\", \"v\": 1}");
	NOMATCH("{\"k\": [\"A\"], \"v\": [{\"exists\": false}]}", "{\"k\": \"A\", \"v\": [1, 2]}");
	NOMATCH("{\"k\": [\"A\"], \"v\": [{\"exists\": false}]}", "{\"k\": [\"A\"], \"v\": [1]}");
	MATCH("{\"i\": {\"k\": [\"A\"], \"v\": [{\"exists\": false}]}}", "{\"i\": [{\"k\": \"A\"}, {\"k\": \"A\", \"v\": 1}]}");
	NOMATCH("{\"i\": {\"v\": [{\"exists\": false}]}}", "{\"i\": [{\"x\": 1}, {\"v\": 1}]}");
	INVALID("{\"a\": [{\"exists\": \"true\"}]}", "exists match pattern must be either true or false", "a", "exists");
	INVALID("{\"a\": [{\"exists\": true, \"x\": 1}]}", "Only one key", "a", "");
}

static void
test_cidr(void)
{
	MATCH("{\"ip\": [{\"cidr\": \"10.0.0.0/24\"}]}", "{\"ip\": \"10.0.0.255\"}");
	NOMATCH("{\"ip\": [{\"cidr\": \"10.0.0.0/24\"}]}", "{\"ip\": \"10.0.1.0\"}");
	MATCH("{\"ip\": [{\"cidr\": \"10.0.0.0/8\"}]}", "{\"ip\": \"10.0.0.010\"}");
	MATCH("{\"ip\": [{\"cidr\": \"0.0.0.0/0\"}]}", "{\"ip\": \"1.2.3.4\"}");
	NOMATCH("{\"ip\": [{\"cidr\": \"0.0.0.0/0\"}]}", "{\"ip\": \"::1\"}");
	NOMATCH("{\"ip\": [{\"cidr\": \"10.0.0.0/8\"}]}", "{\"ip\": \"10.0.0\"}");
	NOMATCH("{\"ip\": [{\"cidr\": \"10.0.0.0/8\"}]}", "{\"ip\": 10}");
	MATCH("{\"ip\": [{\"cidr\": \"2001:db8::/64\"}]}", "{\"ip\": \"2001:0db8:0000:0000:0000:0000:0000:0001\"}");
	MATCH("{\"ip\": [{\"cidr\": \"2001:DB8::/32\"}]}", "{\"ip\": \"2001:db8:ffff::1\"}");
	NOMATCH("{\"ip\": [{\"cidr\": \"2001:db8::/64\"}]}", "{\"ip\": \"2001:db8:0:1::1\"}");
	MATCH("{\"ip\": [{\"cidr\": \"::ffff:0:0/96\"}]}", "{\"ip\": \"::ffff:10.1.2.3\"}");
	MATCH("{\"ip\": [{\"cidr\": \"10.1.2.128/25\"}]}", "{\"ip\": \"10.1.2.200\"}");
	NOMATCH("{\"ip\": [{\"cidr\": \"10.1.2.128/25\"}]}", "{\"ip\": \"10.1.2.100\"}");
	INVALID("{\"ip\": [{\"cidr\": \"10.0.0.1/32\"}]}", "mask bits", "ip", "cidr");
	INVALID("{\"ip\": [{\"cidr\": \"2001:db8::1/128\"}]}", "mask bits", "ip", "cidr");
	INVALID("{\"ip\": [{\"cidr\": \"10.0.0.1\"}]}", "one '/' required", "ip", "cidr");
	INVALID("{\"ip\": [{\"cidr\": \"10.0.0/24\"}]}", "Nonstandard IP address: 10.0.0", "ip", "cidr");
	INVALID("{\"ip\": [{\"cidr\": \"10.0.0.256/24\"}]}", "Nonstandard IP address", "ip", "cidr");
	INVALID("{\"ip\": [{\"cidr\": \"10.0.0.0/x\"}]}", "must be an integer", "ip", "cidr");
	INVALID("{\"ip\": [{\"cidr\": \"1::2::3/64\"}]}", "Nonstandard IP address", "ip", "cidr");
	INVALID("{\"ip\": [{\"cidr\": 10}]}", "must be a string", "ip", "cidr");
}

static void
test_structure(void)
{
	/* nested objects and dotted keys name the same path */
	MATCH("{\"detail\": {\"a\": {\"b\": [1]}}}", "{\"detail\": {\"a\": {\"b\": 1}}}");
	MATCH("{\"detail.a.b\": [1]}", "{\"detail\": {\"a\": {\"b\": 1}}}");
	MATCH("{\"detail\": {\"a\": {\"b\": [1]}}}", "{\"detail.a\": {\"b\": 1}}");
	MATCH("{\"detail\": {\"a.b\": [1]}}", "{\"detail\": {\"a\": {\"b\": [2, 1]}}}");
	NOMATCH("{\"detail\": {\"a\": {\"b\": [1]}}}", "{\"detail\": {\"a\": 1}}");
	/* all fields must hold */
	MATCH("{\"a\": [1], \"b\": [2]}", "{\"a\": 1, \"b\": 2, \"c\": 3}");
	NOMATCH("{\"a\": [1], \"b\": [2]}", "{\"a\": 1, \"b\": 3}");
	/* duplicate keys: the last wins */
	MATCH("{\"a\": [1], \"a\": [2]}", "{\"a\": 2}");
	NOMATCH("{\"a\": [1], \"a\": [2]}", "{\"a\": 1}");
	/* nested arrays are flattened */
	MATCH("{\"a\": [3]}", "{\"a\": [[1, 2], [3]]}");
	/* deep nesting */
	MATCH("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":{\"j\":[\"deep\"]}}}}}}}}}}",
		  "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":{\"j\":\"deep\"}}}}}}}}}}");
	/* arrays of objects: fields of one element stay together */
	MATCH("{\"e\": {\"f\": [\"Anna\"], \"l\": [\"Smith\"]}}",
		  "{\"e\": [{\"f\": \"John\", \"l\": \"Doe\"}, {\"f\": \"Anna\", \"l\": \"Smith\"}]}");
	NOMATCH("{\"e\": {\"f\": [\"Anna\"], \"l\": [\"Doe\"]}}",
			"{\"e\": [{\"f\": \"John\", \"l\": \"Doe\"}, {\"f\": \"Anna\", \"l\": \"Smith\"}]}");
	MATCH("{\"e\": {\"f\": [\"Anna\"], \"l\": [\"Doe\"]}}",
		  "{\"e\": [{\"f\": [\"John\", \"Anna\"], \"l\": \"Doe\"}]}");
	MATCH("{\"e\": {\"f\": [\"Anna\"]}, \"x\": [1]}",
		  "{\"e\": [{\"f\": \"Anna\"}], \"x\": [0, 1]}");
	NOMATCH("{\"o\": {\"i\": {\"a\": [1], \"b\": [2]}}}",
			"{\"o\": [{\"i\": [{\"a\": 1}, {\"b\": 2}]}]}");
	MATCH("{\"o\": {\"i\": {\"a\": [1], \"b\": [2]}}}",
		  "{\"o\": [{\"i\": [{\"a\": 1, \"b\": 3}, {\"a\": 1, \"b\": 2}]}]}");
	MATCH("{\"o\": {\"k\": [\"x\"], \"i\": {\"b\": [2]}}}",
		  "{\"o\": [{\"k\": \"y\", \"i\": [{\"b\": 2}]}, {\"k\": \"x\", \"i\": [{\"b\": 1}, {\"b\": 2}]}]}");
	/* the index decides some rules by itself: same answers with arrays */
	NOMATCH("{\"i\": {\"sku\": [\"A\"], \"qty\": [{\"numeric\": [\">\", 5]}]}}",
			"{\"i\": [{\"sku\": \"A\", \"qty\": 1}, {\"sku\": \"B\", \"qty\": 9}]}");
	MATCH("{\"i\": {\"sku\": [\"A\"], \"qty\": [{\"numeric\": [\">\", 5]}]}}",
		  "{\"i\": [{\"sku\": \"A\", \"qty\": 1}, {\"sku\": \"A\", \"qty\": 9}]}");
	NOMATCH("{\"i\": {\"sku\": [\"A\"], \"st\": [{\"anything-but\": \"x\"}]}}",
			"{\"i\": [{\"sku\": \"A\", \"st\": \"x\"}, {\"sku\": \"B\", \"st\": \"y\"}]}");
	MATCH("{\"s\": [\"a\"], \"i\": {\"st\": [{\"anything-but\": \"x\"}]}}",
		  "{\"s\": \"a\", \"i\": [{\"st\": \"x\"}, {\"st\": \"y\"}]}");
	NOMATCH("{\"i\": {\"sku\": [\"A\"], \"p\": [{\"prefix\": \"ab\"}]}}",
			"{\"i\": [{\"sku\": \"A\", \"p\": \"x\"}, {\"sku\": \"B\", \"p\": \"abc\"}]}");
	NOMATCH("{\"i\": {\"sku\": [\"A\"], \"p\": [{\"exists\": false}]}}",
			"{\"i\": [{\"sku\": \"A\", \"p\": 1}]}");
	MATCH("{\"i\": {\"sku\": [\"A\"], \"p\": [{\"exists\": false}]}}",
		  "{\"i\": [{\"sku\": \"B\", \"p\": 1}, {\"sku\": \"A\"}]}");
	MATCH("{\"a\": [\"x\", \"y\"], \"b\": [1, 2], \"c\": [{\"numeric\": [\"<\", 0]}]}",
		  "{\"a\": \"y\", \"b\": 2.0, \"c\": -1}");
	NOMATCH("{\"a\": [\"x\", \"y\"], \"b\": [1, 2], \"c\": [{\"numeric\": [\"<\", 0]}]}",
			"{\"a\": \"y\", \"b\": 3, \"c\": -1}");
	/* string anchors decided by the index, case-folded ones too */
	MATCH("{\"a\": [{\"prefix\": {\"equals-ignore-case\": \"AB\"}}], \"b\": [{\"suffix\": {\"equals-ignore-case\": \"XY\"}}]}",
		  "{\"a\": \"abc\", \"b\": \"wxy\"}");
	NOMATCH("{\"a\": [{\"prefix\": {\"equals-ignore-case\": \"AB\"}}], \"b\": [{\"suffix\": {\"equals-ignore-case\": \"XY\"}}]}",
			"{\"a\": \"abc\", \"b\": \"wxz\"}");
	MATCH("{\"a\": [{\"equals-ignore-case\": \"ÉCOLE\"}], \"b\": [{\"prefix\": \"p\"}]}",
		  "{\"a\": \"école\", \"b\": \"pq\"}");
	NOMATCH("{\"a\": [{\"prefix\": \"ab\"}], \"b\": [{\"prefix\": \"cd\"}]}",
			"{\"a\": \"abc\", \"b\": \"c\"}");
	MATCH("{\"a\": [{\"prefix\": {\"equals-ignore-case\": \"A\"}}, {\"prefix\": {\"equals-ignore-case\": \"ABC\"}}], \"b\": [{\"equals-ignore-case\": \"QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ\"}]}",
		  "{\"a\": \"abcd\", \"b\": \"qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq\"}");
	/* unknown event fields and big events are fine */
	MATCH("{\"a\": [\"x\"]}", "{\"z\": {\"deep\": [[[{\"q\": 1}]]]}, \"a\": \"x\"}");
	/* validation of the structure */
	INVALID("{}", "Empty objects", "", "");
	INVALID("{\"detail\": {}}", "Empty objects", "detail", "");
	INVALID("{\"detail\": {\"a\": []}}", "Empty arrays", "detail.a", "");
	INVALID("{\"source\": \"aws.ec2\"}", "must be an object or an array", "source", "");
	INVALID("{\"source\": 5}", "must be an object or an array", "source", "");
	INVALID("{\"source\": null}", "must be an object or an array", "source", "");
	INVALID("{\"source\": [[\"x\"]]}", "Match value must be", "source", "");
	INVALID("{\"source\": [{\"contains\": \"x\"}]}", "Unrecognized match type contains", "source", "");
	INVALID("{\"source\": [{\"EXISTS\": true}]}", "Unrecognized match type EXISTS", "source", "");
	INVALID("{\"source\": [{}]}", "Empty objects", "source", "");
	INVALID("[{\"source\": [\"x\"]}]", "Filter is not an object", "", "");
	INVALID("\"x\"", "Filter is not an object", "", "");
	INVALID("{\"source\": [\"x\"]", NULL, NULL, NULL);
	INVALID("{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":[1]}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}",
			"nested too deeply", NULL, "");
	VALID("{\"source\": [\"x\"]} trailing text ignored");
	{
		/* a pattern bigger than the limit */
		char	   *big = malloc(10000);
		int			i;

		strcpy(big, "{\"a\": [");
		for (i = 0; i < 1000; i++)
			strcat(big, i ? ",\"xyz\"" : "\"xyz\"");
		strcat(big, "]}");
		INVALID(big, "too long", "", "");
		free(big);
	}
	{
		/* 2,048 characters pass, 2,049 do not; a raised quota lets more in */
		char	   *text = malloc(5000);
		ebm_builder *b = ebm_builder_new();
		ebm_pattern *p = NULL;
		ebm_error	err;
		int			pad;

		for (pad = 2038; pad <= 2039; pad++)
		{
			/* {"a":["<pad characters, the last an é>"]}: pad + 10 */
			sprintf(text, "{\"a\":[\"%0*d\u00e9\"]}", pad - 1, 0);
			jf_feed_text(b, text, strlen(text));
			if ((ebm_pattern_parse(b, &p, &err) == EBM_OK) != (pad + 10 <= 2048))
				FAIL("size limit at %d characters: %s", pad + 10, err.message);
			else
				passed++;
			ebm_pattern_free(p);
			p = NULL;
		}
		if (ebm_pattern_parse_limited(b, &p, &err, 4096) != EBM_OK)
			FAIL("raised size limit");
		else
			passed++;
		ebm_pattern_free(p);
		ebm_builder_free(b);
		free(text);
	}
}

static void
test_or(void)
{
	MATCH("{\"$or\": [{\"a\": [\"x\"]}, {\"b\": [\"y\"]}]}", "{\"b\": \"y\"}");
	NOMATCH("{\"$or\": [{\"a\": [\"x\"]}, {\"b\": [\"y\"]}]}", "{\"a\": \"y\", \"b\": \"x\"}");
	MATCH("{\"s\": [\"1\"], \"$or\": [{\"a\": [\"x\"]}, {\"b\": [\"y\"]}]}", "{\"s\": \"1\", \"a\": \"x\"}");
	NOMATCH("{\"s\": [\"1\"], \"$or\": [{\"a\": [\"x\"]}, {\"b\": [\"y\"]}]}", "{\"s\": \"2\", \"a\": \"x\"}");
	MATCH("{\"d\": {\"$or\": [{\"p\": [{\"numeric\": [\"<\", 10]}]}, {\"q\": [{\"numeric\": [\">\", 90]}]}]}}", "{\"d\": {\"p\": 50, \"q\": 95}}");
	MATCH("{\"$or\": [{\"a\": [1]}, {\"$or\": [{\"b\": [2]}, {\"c\": [3]}]}]}", "{\"c\": 3}");
	MATCH("{\"$or\": [{\"a\": [1]}, {\"b\": [2]}], \"x\": {\"$or\": [{\"c\": [3]}, {\"d\": [4]}]}}", "{\"b\": 2, \"x\": {\"d\": 4}}");
	NOMATCH("{\"$or\": [{\"a\": [1]}, {\"b\": [2]}], \"x\": {\"$or\": [{\"c\": [3]}, {\"d\": [4]}]}}", "{\"b\": 2, \"x\": {\"e\": 4}}");
	/* not an OR: a field named $or */
	MATCH("{\"$or\": [\"a\", \"b\"]}", "{\"$or\": \"a\"}");
	MATCH("{\"$or\": [{\"numeric\": [\">\", 1]}, {\"prefix\": \"abc\"}]}", "{\"$or\": \"abcd\"}");
	INVALID("{\"$or\": [{\"a\": [\"x\"]}]}", "Unrecognized match type a", "$or", "");
	INVALID("{\"$or\": []}", "Empty arrays", "$or", "");
	INVALID("{\"$or\": [{\"a\": [\"x\"]}, {\"b\": \"y\"}]}", "must be an object or an array", "b", "");
}

/* Several rules in one set, with ids that are not dense and repeat. */
static void
test_ruleset(void)
{
	const char *pats[] = {
		"{\"source\": [\"a\"]}",
		"{\"source\": [\"a\"], \"detail\": {\"n\": [{\"numeric\": [\">\", 5]}]}}",
		"{\"source\": [{\"prefix\": \"a\"}]}",
		"{\"detail\": {\"n\": [{\"numeric\": [\"<\", 5]}]}}",
		"{\"detail\": {\"s\": [{\"anything-but\": \"x\"}]}}",
		"{\"detail\": {\"z\": [{\"exists\": false}]}}",
		"{\"source\": [\"b\"]}",
	};
	uint32_t	ids[] = {7, 1000000, 3, 3, 99, 5, 7};
	ebm_ruleset *rs = ebm_ruleset_new();
	ebm_builder *b = ebm_builder_new();
	ebm_match_ctx *ctx = ebm_match_ctx_new();
	const uint32_t *out;
	size_t		n,
				i;

	for (i = 0; i < sizeof(pats) / sizeof(pats[0]); i++)
	{
		ebm_pattern *p;
		ebm_error	err;
		ebm_status	st;

		p = parse(pats[i], &err, &st);
		ebm_ruleset_add(rs, ids[i], p);
		ebm_pattern_free(p);
	}
	if (ebm_ruleset_size(rs) != 7)
		FAIL("ruleset size");
	ebm_ruleset_compile(rs);
	jf_feed_text(b, "{\"source\": \"a\", \"detail\": {\"n\": 6, \"s\": \"y\"}}", 46);
	if (ebm_match(rs, b, ctx, &out, &n) != EBM_OK || n != 5 || out[0] != 3 || out[1] != 5 ||
		out[2] != 7 || out[3] != 99 || out[4] != 1000000)
		FAIL("ruleset match 1: %zu ids", n);
	else
		passed++;
	/* the builder is reusable, and so is the context */
	jf_feed_text(b, "{\"source\": \"b\", \"detail\": {\"n\": 1, \"s\": \"x\", \"z\": 0}}", 53);
	if (ebm_match(rs, b, ctx, &out, &n) != EBM_OK || n != 2 || out[0] != 3 || out[1] != 7)
		FAIL("ruleset match 2: %zu ids", n);
	else
		passed++;
	/* recompiling after more rules */
	{
		ebm_pattern *p;
		ebm_error	err;
		ebm_status	st;

		p = parse("{\"detail\": {\"s\": [\"x\"]}}", &err, &st);
		ebm_ruleset_add(rs, 0, p);
		ebm_pattern_free(p);
		if (ebm_match(rs, b, ctx, &out, &n) != EBM_ERR_STATE)
			FAIL("match before compile must fail");
		ebm_ruleset_compile(rs);
		if (ebm_match(rs, b, ctx, &out, &n) != EBM_OK || n != 3 || out[0] != 0)
			FAIL("ruleset match 3: %zu ids", n);
		else
			passed++;
	}
	ebm_match_ctx_free(ctx);
	ebm_builder_free(b);
	ebm_ruleset_free(rs);
}

/* An empty rule set matches nothing, event after event (found by fuzzing). */
static void
test_empty_ruleset(void)
{
	ebm_ruleset *rs = ebm_ruleset_new();
	ebm_builder *b = ebm_builder_new();
	ebm_match_ctx *ctx = ebm_match_ctx_new();
	const uint32_t *ids;
	size_t		n = 1;
	int			i,
				bad = 0;

	if (ebm_ruleset_compile(rs) != EBM_OK)
		bad++;
	jf_feed_text(b, "{\"a\": 1}", 8);
	for (i = 0; i < 600; i++)
		if (ebm_match(rs, b, ctx, &ids, &n) != EBM_OK || n != 0)
			bad++;
	jf_feed_text(b, "[1]", 3);
	if (ebm_match(rs, b, ctx, &ids, &n) != EBM_ERR_STATE)
		bad++;					/* events must be objects */
	if (bad)
		FAIL("empty rule set: %d failures", bad);
	else
		passed++;
	ebm_match_ctx_free(ctx);
	ebm_builder_free(b);
	ebm_ruleset_free(rs);
}

/* The builder refuses calls out of order. */
static void
test_builder(void)
{
	ebm_builder *b = ebm_builder_new();
	ebm_pattern *p = NULL;
	ebm_error	err;

	if (ebm_key(b, "a", 1) != EBM_ERR_STATE)
		FAIL("key at top level accepted");
	ebm_builder_reset(b);
	ebm_begin_object(b);
	if (ebm_string(b, "a", 1) != EBM_ERR_STATE)
		FAIL("value without key accepted");
	ebm_builder_reset(b);
	ebm_begin_array(b);
	if (ebm_key(b, "a", 1) != EBM_ERR_STATE)
		FAIL("key in array accepted");
	ebm_builder_reset(b);
	ebm_begin_object(b);
	ebm_key(b, "a", 1);
	if (ebm_end_object(b) != EBM_ERR_STATE)
		FAIL("object closed after a key");
	ebm_builder_reset(b);
	ebm_begin_object(b);
	if (ebm_end_array(b) != EBM_ERR_STATE)
		FAIL("object closed as array");
	ebm_builder_reset(b);
	ebm_begin_object(b);
	if (ebm_pattern_parse(b, &p, &err) != EBM_ERR_STATE)
		FAIL("unfinished document parsed");
	ebm_builder_reset(b);
	ebm_begin_object(b);
	ebm_end_object(b);
	if (ebm_begin_object(b) != EBM_ERR_STATE)
		FAIL("second root accepted");
	/* a pattern built by hand, with NUL in a key and a number as text */
	ebm_builder_reset(b);
	if (ebm_begin_object(b) != EBM_OK || ebm_key(b, "a\0b", 3) != EBM_OK ||
		ebm_begin_array(b) != EBM_OK || ebm_number(b, "1.50", 4) != EBM_OK ||
		ebm_end_array(b) != EBM_OK || ebm_end_object(b) != EBM_OK ||
		ebm_pattern_parse(b, &p, &err) != EBM_OK)
		FAIL("hand-built pattern");
	else
		passed++;
	ebm_pattern_free(p);
	/* a number that is not JSON */
	ebm_builder_reset(b);
	ebm_begin_object(b);
	ebm_key(b, "a", 1);
	ebm_begin_array(b);
	ebm_number(b, "0x10", 4);
	ebm_end_array(b);
	ebm_end_object(b);
	if (ebm_pattern_parse(b, &p, &err) != EBM_ERR_PATTERN)
		FAIL("bad number accepted");
	else
		passed++;
	if (strcmp(ebm_status_string(EBM_ERR_NOMEM), "out of memory") != 0)
		FAIL("status string");
	ebm_builder_free(b);
	passed++;
}

/* The numbers fast path must agree with strtod on every input. */
static void
test_number_values(void)
{
	unsigned	seed = 12345;
	int			i,
				bad = 0;

	for (i = 0; i < 200000; i++)
	{
		char		buf[64];
		int			n = 0;
		int			k,
					nd;
		bool		ok;
		double		v;

		seed = seed * 1103515245 + 12345;
		if (seed & 1)
			buf[n++] = '-';
		nd = 1 + (int) ((seed >> 8) % 17);
		buf[n++] = (char) ('1' + (seed >> 3) % 9);
		for (k = 1; k < nd; k++)
		{
			seed = seed * 1103515245 + 12345;
			buf[n++] = (char) ('0' + (seed >> 16) % 10);
		}
		if ((seed >> 20) & 1)
		{
			buf[n++] = '.';
			for (k = 0; k < 1 + (int) ((seed >> 21) % 8); k++)
			{
				seed = seed * 1103515245 + 12345;
				buf[n++] = (char) ('0' + (seed >> 16) % 10);
			}
		}
		if ((seed >> 25) & 1)
			n += sprintf(buf + n, "e%d", (int) ((seed >> 26) % 50) - 25);
		buf[n] = '\0';
		v = ebm_number_value(buf, (size_t) n, &ok);
		if (!ok || v != strtod(buf, NULL))
		{
			if (bad++ < 5)
				printf("number %s: %.17g vs strtod %.17g\n", buf, v, strtod(buf, NULL));
		}
	}
	if (bad)
		FAIL("%d numbers differ from strtod", bad);
	else
		passed++;
}

/* Read a whole file, or NULL. */
static char *
slurp(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t) n + 1);
	if (fread(buf, 1, (size_t) n, f) != (size_t) n)
		n = 0;
	buf[n] = '\0';
	fclose(f);
	*len = (size_t) n;
	return buf;
}

/*
 * The compiled index must find exactly what deciding every sub-rule one by
 * one finds: all 10,000 benchmark rules against all benchmark events.
 */
static void
test_index_oracle(const char *dir)
{
	char		path[4096];
	size_t		len;
	char	   *text;
	json_t	   *rules;
	json_error_t jerr;
	ebm_ruleset *rs = ebm_ruleset_new();
	ebm_builder *b = ebm_builder_new();
	ebm_match_ctx *ctx = ebm_match_ctx_new();
	uint32_t   *expect = malloc(10001 * sizeof(uint32_t));
	size_t		i,
				nev = 0,
				bad = 0;
	char	   *line,
			   *save = NULL;

	snprintf(path, sizeof(path), "%s/rules.json", dir);
	text = slurp(path, &len);
	if (text == NULL)
	{
		printf("(skipping the index oracle test: no %s)\n", path);
		free(expect);
		ebm_ruleset_free(rs);
		ebm_builder_free(b);
		ebm_match_ctx_free(ctx);
		return;
	}
	rules = jf_decode(text, len, &jerr);
	free(text);
	for (i = 0; i < json_array_size(rules); i++)
	{
		ebm_pattern *p;
		ebm_error	err;

		ebm_builder_reset(b);
		jf_feed(b, json_object_get(json_array_get(rules, i), "pattern"));
		if (ebm_pattern_parse(b, &p, &err) != EBM_OK)
		{
			FAIL("bench rule %zu rejected: %s", i, err.message);
			continue;
		}
		ebm_ruleset_add(rs, (uint32_t) i, p);
		ebm_pattern_free(p);
	}
	ebm_ruleset_compile(rs);
	json_decref(rules);
	snprintf(path, sizeof(path), "%s/events.jsonl", dir);
	text = slurp(path, &len);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
	{
		const uint32_t *ids;
		size_t		n,
					ne = 0;
		uint32_t	s;

		jf_feed_text(b, line, strlen(line));
		if (ebm_match(rs, b, ctx, &ids, &n) != EBM_OK)
		{
			bad++;
			continue;
		}
		/* ctx still holds the flattened event: decide every sub-rule */
		for (s = 0; s < rs->nsubs; s++)
			if (ebm_subrule_holds(&rs->subs[s], ctx) &&
				(ne == 0 || expect[ne - 1] != rs->sub_rule[s]))
				expect[ne++] = rs->sub_rule[s];
		if (ne != n || memcmp(expect, ids, n * sizeof(uint32_t)) != 0)
			bad++;
		nev++;
	}
	if (bad || nev == 0)
		FAIL("index disagrees with rule-by-rule evaluation on %zu of %zu events", bad, nev);
	else
		passed++;

	/* once warm, matching allocates nothing */
	{
		size_t		before;
		json_t	  **evs = NULL;
		size_t		k,
					nevs = 0;

		snprintf(path, sizeof(path), "%s/events.jsonl", dir);
		free(text);
		text = slurp(path, &len);
		save = NULL;
		for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		{
			evs = realloc(evs, (nevs + 1) * sizeof(json_t *));
			evs[nevs++] = jf_decode(line, strlen(line), &jerr);
		}
		for (k = 0; k < nevs; k++)
		{
			const uint32_t *ids;
			size_t		n;

			ebm_builder_reset(b);
			jf_feed(b, evs[k]);
			ebm_match(rs, b, ctx, &ids, &n);
		}
		before = nallocs;
		for (k = 0; k < nevs; k++)
		{
			const uint32_t *ids;
			size_t		n;

			ebm_builder_reset(b);
			jf_feed(b, evs[k]);
			ebm_match(rs, b, ctx, &ids, &n);
		}
		if (nallocs != before)
			FAIL("%zu allocations while matching with a warm context", nallocs - before);
		else
			passed++;
		for (k = 0; k < nevs; k++)
			json_decref(evs[k]);
		free(evs);
	}
	free(text);
	free(expect);
	ebm_match_ctx_free(ctx);
	ebm_builder_free(b);
	ebm_ruleset_free(rs);
}

int
main(int argc, char **argv)
{
	ebm_set_allocator(count_malloc, count_realloc, free);
	test_exact();
	test_numbers();
	test_numeric();
	test_number_values();
	test_prefix_suffix();
	test_equals_ignore_case();
	test_wildcard();
	test_anything_but();
	test_anything_but_filter();
	test_exists();
	test_cidr();
	test_structure();
	test_or();
	test_ruleset();
	test_empty_ruleset();
	test_builder();
	if (argc > 1)
		test_index_oracle(argv[1]);
	printf("unit: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
