/*-------------------------------------------------------------------------
 *
 * conformance.c
 *	  Run every case of the shared EventBridge conformance corpus
 *	  (patterns.jsonl) through parse, compile and match.
 *
 * usage: conformance <patterns.jsonl> [known_differences.txt]
 * A case listed in the known-differences file (one id per line, '#'
 * comments) is reported but not counted as a failure.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebm.h"
#include "jsonfeed.h"

static char **known;
static size_t nknown;

/* Load the ids of the known differences. */
static void
load_known(const char *path)
{
	FILE	   *f = fopen(path, "r");
	char		line[1024];

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f))
	{
		char	   *p = line;
		size_t		n;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '#' || *p == '\n' || *p == '\0')
			continue;
		n = strcspn(p, " \t\n#");
		p[n] = '\0';
		known = realloc(known, (nknown + 1) * sizeof(char *));
		known[nknown++] = strdup(p);
	}
	fclose(f);
}

static int
is_known(const char *id)
{
	size_t		i;

	for (i = 0; i < nknown; i++)
		if (strcmp(known[i], id) == 0)
			return 1;
	return 0;
}

/* Feed either the JSON subtree or the verbatim text; false if not JSON. */
static int
feed_doc(ebm_builder *b, json_t *tree, json_t *text)
{
	ebm_builder_reset(b);
	if (tree != NULL && !json_is_null(tree))
		return jf_feed(b, tree) == EBM_OK;
	if (text != NULL && json_is_string(text))
		return jf_feed_text(b, json_string_value(text), json_string_length(text)) == EBM_OK;
	return 0;
}

int
main(int argc, char **argv)
{
	FILE	   *f;
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		len;
	int			passed = 0,
				failed = 0,
				known_seen = 0;
	ebm_builder *b = ebm_builder_new();
	ebm_match_ctx *ctx = ebm_match_ctx_new();

	if (argc < 2)
	{
		fprintf(stderr, "usage: %s patterns.jsonl [known_differences]\n", argv[0]);
		return 2;
	}
	if (argc > 2)
		load_known(argv[2]);
	f = fopen(argv[1], "r");
	if (f == NULL)
	{
		perror(argv[1]);
		return 2;
	}
	while ((len = getline(&line, &cap, f)) > 0)
	{
		json_error_t jerr;
		json_t	   *c = jf_decode(line, (size_t) len, &jerr);
		const char *id;
		int			invalid,
					has_event,
					want = 0,
					ok = 0,
					parsed;
		ebm_pattern *p = NULL;
		ebm_error	err;
		char		why[1024] = "";

		if (c == NULL)
		{
			fprintf(stderr, "unreadable corpus line: %s\n", jerr.text);
			failed++;
			continue;
		}
		id = json_string_value(json_object_get(c, "id"));
		invalid = json_is_true(json_object_get(c, "invalid"));
		has_event = json_object_get(c, "event") != NULL || json_object_get(c, "event_text") != NULL;
		parsed = feed_doc(b, json_object_get(c, "pattern"), json_object_get(c, "pattern_text")) &&
			ebm_pattern_parse(b, &p, &err) == EBM_OK;
		if (invalid)
		{
			ok = !parsed;
			if (!ok)
				snprintf(why, sizeof(why), "pattern accepted, expected rejection");
		}
		else if (!parsed)
			snprintf(why, sizeof(why), "pattern rejected: %s (path '%s', op '%s')",
					 err.message, err.path, err.op);
		else if (!has_event)
			ok = 1;
		else
		{
			ebm_ruleset *rs = ebm_ruleset_new();
			const uint32_t *ids;
			size_t		nids = 0;
			ebm_status	st;

			want = json_is_true(json_object_get(c, "match"));
			ebm_ruleset_add(rs, 7, p);
			ebm_ruleset_compile(rs);
			if (!feed_doc(b, json_object_get(c, "event"), json_object_get(c, "event_text")))
				snprintf(why, sizeof(why), "event is not JSON");
			else if ((st = ebm_match(rs, b, ctx, &ids, &nids)) != EBM_OK)
				snprintf(why, sizeof(why), "match failed: %s", ebm_status_string(st));
			else
			{
				ok = ((nids == 1 && ids[0] == 7) == want);
				if (!ok)
					snprintf(why, sizeof(why), "expected %s", want ? "match" : "no match");
			}
			ebm_ruleset_free(rs);
		}
		ebm_pattern_free(p);
		if (ok)
			passed++;
		else if (is_known(id))
		{
			known_seen++;
			printf("known difference %s: %s\n", id, why);
			passed++;
		}
		else
		{
			failed++;
			printf("FAIL %s: %s\n", id, why);
		}
		json_decref(c);
	}
	free(line);
	fclose(f);
	ebm_builder_free(b);
	ebm_match_ctx_free(ctx);
	for (len = 0; len < (ssize_t) nknown; len++)
		free(known[len]);
	free(known);
	if (known_seen)
		printf("(%d known differences, listed above, counted as passed)\n", known_seen);
	printf("conformance: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
