/*-------------------------------------------------------------------------
 *
 * bench_match.c
 *	  Throughput of the pattern matcher on the shared benchmark data.
 *
 * usage: bench_match <bench dir>   (rules.json, events.jsonl,
 *								   expected_counts.json)
 *
 * Events are parsed with jansson up front (untimed).  For N = 1, 100, 1000
 * and 10000 rules (the first N of rules.json, rule id = index) we compile
 * the rule set, then time walking each event's jansson tree into the
 * builder plus ebm_match, over several passes, and report the median.
 * The matched (event, rule) pairs are checked against the count and the
 * SHA-256 recorded by event-ruler in expected_counts.json.  Exit status is
 * non-zero on any mismatch; slowness never fails.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ebm.h"
#include "jsonfeed.h"
#include "sha256.h"

#define NPASSES 7
#define MIN_PASS_NS 200000000.0	/* each pass runs at least 0.2 s */

/* event-ruler 2.0.1, run A, events/s (conformance/bench/README.md) */
static const int sizes[] = {1, 100, 1000, 10000};
static const double event_ruler_eps[] = {257604, 90418, 28879, 3544};

static double
now_ns(void)
{
	struct timespec ts;
	static int	cputime = -1;

	/* BENCH_CPUTIME=1: this thread's CPU time, steadier on a busy machine */
	if (cputime < 0)
		cputime = getenv("BENCH_CPUTIME") != NULL;
	clock_gettime(cputime ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Read a whole file into a malloc'd buffer. */
static char *
slurp(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		n;

	if (f == NULL)
	{
		perror(path);
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t) n + 1);
	if (fread(buf, 1, (size_t) n, f) != (size_t) n)
	{
		perror(path);
		exit(2);
	}
	buf[n] = '\0';
	fclose(f);
	*len = (size_t) n;
	return buf;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "../../../shared/conformance/bench";

	/*
	 * For profiling: BENCH_ONLY=N runs one size only, BENCH_FIXED=1 runs
	 * each pass over the events once (no calibration).
	 */
	char		path[4096];
	char	   *text;
	size_t		len;
	json_error_t jerr;
	json_t	   *rules;
	json_t	   *expected;
	json_t	  **events = NULL;
	size_t		nevents = 0;
	char	   *line;
	ebm_builder *b = ebm_builder_new();
	ebm_match_ctx *ctx = ebm_match_ctx_new();
	int			failures = 0;
	double		results[4];
	double		compile_ms[4];
	double		parse_ns;
	double		plain_parse_ns;
	size_t		si;

	/* rules and expectations */
	snprintf(path, sizeof(path), "%s/rules.json", dir);
	text = slurp(path, &len);
	rules = jf_decode(text, len, &jerr);
	free(text);
	snprintf(path, sizeof(path), "%s/expected_counts.json", dir);
	text = slurp(path, &len);
	expected = json_loadb(text, len, 0, &jerr);
	free(text);
	if (rules == NULL || expected == NULL)
	{
		fprintf(stderr, "cannot read rules or expectations: %s\n", jerr.text);
		return 2;
	}

	/* events, parsed once; also measure what parsing text would cost */
	snprintf(path, sizeof(path), "%s/events.jsonl", dir);
	text = slurp(path, &len);
	{
		double		t0 = now_ns();
		int			rep;

		for (rep = 0; rep < 5; rep++)
		{
			char	   *save = NULL;
			char	   *copy = strdup(text);

			for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			{
				json_t	   *ev = jf_decode(line, strlen(line), &jerr);

				if (ev == NULL)
				{
					fprintf(stderr, "bad event: %s\n", jerr.text);
					return 2;
				}
				if (rep == 0)
				{
					events = realloc(events, (nevents + 1) * sizeof(json_t *));
					events[nevents++] = ev;
				}
				else
					json_decref(ev);
			}
			free(copy);
		}
		parse_ns = (now_ns() - t0) / (5.0 * nevents);
		/* the same with plain json_loadb (numbers may lose their text) */
		t0 = now_ns();
		for (rep = 0; rep < 5; rep++)
		{
			char	   *save = NULL;
			char	   *copy = strdup(text);

			for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
				json_decref(json_loadb(line, strlen(line), 0, &jerr));
			free(copy);
		}
		plain_parse_ns = (now_ns() - t0) / (5.0 * nevents);
	}
	free(text);

	for (si = 0; si < 4; si++)
	{
		int			n = sizes[si];
		ebm_ruleset *rs;
		double		t0 = now_ns();
		double		times[NPASSES];
		size_t		total = 0;
		char	  **pairs = NULL;
		size_t		npairs = 0;
		size_t		e;
		int			pass;
		long		reps = 1;
		char		key[16];
		json_t	   *exp;
		sha256_ctx	sha;
		char		hex[65];
		size_t		i;

		if (getenv("BENCH_ONLY") && atoi(getenv("BENCH_ONLY")) != n)
		{
			results[si] = 1;
			compile_ms[si] = 0;
			continue;
		}
		rs = ebm_ruleset_new();
		for (i = 0; i < (size_t) n && i < json_array_size(rules); i++)
		{
			ebm_pattern *p;
			ebm_error	err;

			ebm_builder_reset(b);
			if (jf_feed(b, json_object_get(json_array_get(rules, i), "pattern")) != EBM_OK ||
				ebm_pattern_parse(b, &p, &err) != EBM_OK)
			{
				fprintf(stderr, "rule %zu rejected: %s\n", i, err.message);
				return 2;
			}
			ebm_ruleset_add(rs, (uint32_t) i, p);
			ebm_pattern_free(p);
		}
		if (ebm_ruleset_compile(rs) != EBM_OK)
			return 2;
		compile_ms[si] = (now_ns() - t0) / 1e6;

		/* correctness pass: collect every (event, rule) pair */
		for (e = 0; e < nevents; e++)
		{
			const uint32_t *ids;
			size_t		nids;

			ebm_builder_reset(b);
			if (jf_feed(b, events[e]) != EBM_OK ||
				ebm_match(rs, b, ctx, &ids, &nids) != EBM_OK)
				return 2;
			for (i = 0; i < nids; i++)
			{
				const char *name = json_string_value(json_object_get(json_array_get(rules, ids[i]), "name"));
				char	   *s = malloc(strlen(name) + 32);

				sprintf(s, "%zu\t%s\n", e, name);
				pairs = realloc(pairs, (npairs + 1) * sizeof(char *));
				pairs[npairs++] = s;
			}
			total += nids;
		}

		/* timed passes: enough repetitions of the event list per pass */
		for (pass = -1; pass < NPASSES; pass++)
		{
			double		start = now_ns();
			double		el;
			long		r;
			size_t		sink = 0;

			for (r = 0; r < reps; r++)
				for (e = 0; e < nevents; e++)
				{
					const uint32_t *ids;
					size_t		nids;

					ebm_builder_reset(b);
					jf_feed(b, events[e]);
					ebm_match(rs, b, ctx, &ids, &nids);
					sink += nids;
				}
			el = now_ns() - start;
			if (sink != total * (size_t) reps)
				failures++;
			if (pass < 0)
			{
				/* warm-up, and calibrate the repetitions */
				while (el * reps < MIN_PASS_NS && getenv("BENCH_FIXED") == NULL)
					reps *= 2;
				continue;
			}
			times[pass] = el / ((double) reps * nevents);
		}
		qsort(times, NPASSES, sizeof(double), cmp_double);
		results[si] = times[NPASSES / 2];

		printf("rules=%d events=%zu matches=%zu ns_per_event=%.0f\n",
			   n, nevents, total, results[si]);
		fflush(stdout);

		/* verify against event-ruler's recorded results */
		qsort(pairs, npairs, sizeof(char *), cmp_str);
		sha256_init(&sha);
		for (i = 0; i < npairs; i++)
		{
			sha256_update(&sha, pairs[i], strlen(pairs[i]));
			free(pairs[i]);
		}
		free(pairs);
		sha256_hex(&sha, hex);
		snprintf(key, sizeof(key), "%d", n);
		exp = json_object_get(json_object_get(expected, "counts"), key);
		if ((size_t) json_integer_value(json_object_get(exp, "total_matches")) != total ||
			strcmp(json_string_value(json_object_get(exp, "matched_pairs_sha256")), hex) != 0)
		{
			fprintf(stderr, "MISMATCH at rules=%d: matches %zu (expected %lld), sha256 %s (expected %s)\n",
					n, total, (long long) json_integer_value(json_object_get(exp, "total_matches")),
					hex, json_string_value(json_object_get(exp, "matched_pairs_sha256")));
			failures++;
		}
		ebm_ruleset_free(rs);
	}

	printf("\nverification: matched pairs %s event-ruler's (count and SHA-256) at every size\n",
		   failures ? "DIFFER FROM" : "equal");
	printf("time to parse+compile the rules:");
	for (si = 0; si < 4; si++)
		printf(" %d: %.1f ms%s", sizes[si], compile_ms[si], si < 3 ? "," : "\n");
	printf("scaling: ns_per_event at 10000 rules / at 100 rules = %.2f\n", results[3] / results[1]);
	printf("text parsing, not included above: jansson json_loadb %.0f ns per event, "
		   "with the number-keeping pre-pass %.0f ns (both including json_decref)\n",
		   plain_parse_ns, parse_ns);
	if (getenv("BENCH_CPUTIME"))
		printf("(times above are this thread's CPU time: BENCH_CPUTIME is set)\n");
	printf("comparison with event-ruler 2.0.1 figures recorded earlier on this machine\n"
		   "(conformance/bench/README.md, run A, events passed as JSON text;\n"
		   " the figure in brackets adds our jansson parse time to be comparable):\n");
	for (si = 0; si < 4; si++)
	{
		double		eps = 1e9 / results[si];

		printf("  rules=%-5d  %10.0f events/s vs event-ruler %6.0f: %.1fx"
			   " (%.1fx if text parsing were included)\n",
			   sizes[si], eps, event_ruler_eps[si], eps / event_ruler_eps[si],
			   1e9 / (results[si] + plain_parse_ns) / event_ruler_eps[si]);
	}
	for (si = 0; si < nevents; si++)
		json_decref(events[si]);
	free(events);
	json_decref(rules);
	json_decref(expected);
	ebm_builder_free(b);
	ebm_match_ctx_free(ctx);
	return failures ? 1 : 0;
}
