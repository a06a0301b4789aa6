/*-------------------------------------------------------------------------
 *
 * adversarial.c
 *	  Generators of events built to make a matcher slow or hungry, and the
 *	  assertions that it is neither.
 *
 * Each case builds a pattern and an event straight into builders (no JSON
 * text: the sizes reach hundreds of kilobytes), matches them, and checks
 * the verdict, the time taken and the library's peak memory, counted
 * through the allocator hooks.  The families:
 *	  arrays    k arrays of objects x n elements, one field each, and a
 *	            field that is present but must be absent (the old search
 *	            tried all n^k combinations);
 *	  items     an ordinary rule over items[].sku, items[].discount
 *	            (exists: false) and tags, m items and m tags (old: m^2 n);
 *	  deep      arrays nested d deep with a value at every level (old: the
 *	            array trail copied into every value, d^2 memory);
 *	  runs      one value repeated n times at several paths;
 *	  numbers   numbers with huge exponents and very long digit strings;
 *	  dotted    the same path reached through dotted keys, which needs the
 *	            budgeted search: it must answer or fail with EBM_ERR_LIMIT;
 *	  interrupt the interrupt callback is asked often during a long match,
 *	            stops it when it says so, and the context matches normally
 *	            afterwards.
 *
 *	  adversarial [--report] [--time-scale X] [family]
 *	      run every case (or one family); exit 1 on a failed check
 *
 * Limits are generous (a shared, noisy machine; valgrind) yet far below
 * what the old matcher took: seconds to hours, and gigabytes.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "countalloc.h"
#include "ebm.h"

static int	failures;
static int	passes;
static bool report;
static double time_scale = 1.0;	/* --time-scale: valgrind is much slower */

/*
 * The peak of live library memory a match may reach: a small multiple of
 * the event's size as JSON text (a leaf is two 56-byte records however
 * short its text, so one-character values are the worst case).
 */
#define PEAK_LIMIT(bytes) (128 * (bytes) + 65536)

#define CHECK(st) do { ebm_status st_ = (st); if (st_ != EBM_OK) { \
	fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, ebm_status_string(st_)); \
	exit(2); } } while (0)

/* Seconds of process CPU time. */
static double
cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
key(ebm_builder *b, const char *k)
{
	CHECK(ebm_key(b, k, strlen(k)));
}

static void
str(ebm_builder *b, const char *s)
{
	CHECK(ebm_string(b, s, strlen(s)));
}

static void
num(ebm_builder *b, const char *s)
{
	CHECK(ebm_number(b, s, strlen(s)));
}

/* Open the envelope: {"source": "adv", "detail": { ... */
static void
begin_event(ebm_builder *b)
{
	ebm_builder_reset(b);
	CHECK(ebm_begin_object(b));
	key(b, "source");
	str(b, "adv");
	key(b, "detail");
	CHECK(ebm_begin_object(b));
}

static void
end_event(ebm_builder *b)
{
	CHECK(ebm_end_object(b));
	CHECK(ebm_end_object(b));
}

/* Parse the pattern text (built with the builder from a tiny JSON subset). */
static ebm_ruleset *
ruleset_of(ebm_builder *pb)
{
	ebm_pattern *p = NULL;
	ebm_error	err;
	ebm_ruleset *rs = ebm_ruleset_new();

	if (ebm_pattern_parse(pb, &p, &err) != EBM_OK)
	{
		fprintf(stderr, "pattern rejected: %s at %s\n", err.message, err.path);
		exit(2);
	}
	CHECK(ebm_ruleset_add(rs, 7, p));
	CHECK(ebm_ruleset_compile(rs));
	ebm_pattern_free(p);
	return rs;
}

/*
 * Match, then check the verdict (want: 1 match, 0 none, -1 EBM_ERR_LIMIT
 * accepted too), the CPU time and the peak of live library memory during
 * the match beyond what the event and rule set held before it.
 */
static void
run_case(const char *name, ebm_ruleset *rs, ebm_builder *ev, int want,
		 double max_seconds, size_t max_peak, size_t event_bytes)
{
	ebm_match_ctx *ctx = ebm_match_ctx_new();
	const uint32_t *ids;
	size_t		nids = 0;
	size_t		base = cur_bytes;
	size_t		after;
	double		t0,
				t;
	ebm_status	st;
	int			got;
	bool		ok;

	peak_bytes = cur_bytes;
	t0 = cpu_now();
	st = ebm_match(rs, ev, ctx, &ids, &nids);
	t = cpu_now() - t0;
	after = cur_bytes - base;
	if (st == EBM_OK)
		got = nids > 0 ? 1 : 0;
#ifdef EBM_HAS_LIMITS
	else if (st == EBM_ERR_LIMIT)
		got = -1;
#endif
	else
	{
		fprintf(stderr, "%s: %s\n", name, ebm_status_string(st));
		exit(2);
	}
	ok = (want == 2 ? (got == 0 || got == -1) : got == want) &&
		t <= max_seconds * time_scale &&
		peak_bytes - base <= max_peak;
#ifdef EBM_HAS_LIMITS
	/* scratch space beyond a small floor is handed back after the match */
	ok = ok && after <= 256 * 1024;
#endif
	if (!ok)
		failures++;
	else
		passes++;
	if (!ok || report)
		printf("%s %s: verdict=%d (want %d) cpu=%.4fs (max %.2f) event=%zuB "
			   "peak=%zuB (max %zu) retained=%zuB\n",
			   ok ? "ok  " : "FAIL", name, got, want, t, max_seconds,
			   event_bytes, peak_bytes - base, max_peak, after);
	ebm_match_ctx_free(ctx);
}

/* Rough size of the event as JSON text, for the report. */
static size_t ev_bytes;

static void
vkey(ebm_builder *b, const char *k)
{
	ev_bytes += strlen(k) + 3;
	key(b, k);
}

static void
vstr(ebm_builder *b, const char *s)
{
	ev_bytes += strlen(s) + 3;
	str(b, s);
}

static void
vnum(ebm_builder *b, const char *s)
{
	ev_bytes += strlen(s) + 1;
	num(b, s);
}

/*
 * k arrays a0..a(k-1) of n objects {"x": 1}; the pattern wants x = 1 in
 * every array and "gone" absent, but "gone" is present outside the arrays.
 */
static void
case_arrays(int k, int n, double max_seconds)
{
	ebm_builder *pb = ebm_builder_new();
	ebm_builder *ev = ebm_builder_new();
	ebm_ruleset *rs;
	char		name[64];
	int			i,
				j;

	CHECK(ebm_begin_object(pb));
	key(pb, "detail");
	CHECK(ebm_begin_object(pb));
	for (i = 0; i < k; i++)
	{
		snprintf(name, sizeof(name), "a%d.x", i);
		key(pb, name);
		CHECK(ebm_begin_array(pb));
		num(pb, "1");
		CHECK(ebm_end_array(pb));
	}
	key(pb, "gone");
	CHECK(ebm_begin_array(pb));
	CHECK(ebm_begin_object(pb));
	key(pb, "exists");
	CHECK(ebm_bool(pb, false));
	CHECK(ebm_end_object(pb));
	CHECK(ebm_end_array(pb));
	CHECK(ebm_end_object(pb));
	CHECK(ebm_end_object(pb));
	rs = ruleset_of(pb);

	ev_bytes = 0;
	begin_event(ev);
	for (i = 0; i < k; i++)
	{
		snprintf(name, sizeof(name), "a%d", i);
		vkey(ev, name);
		CHECK(ebm_begin_array(ev));
		for (j = 0; j < n; j++)
		{
			CHECK(ebm_begin_object(ev));
			vkey(ev, "x");
			vnum(ev, "1");
			CHECK(ebm_end_object(ev));
		}
		CHECK(ebm_end_array(ev));
	}
	vkey(ev, "gone");
	vstr(ev, "here");
	end_event(ev);
	snprintf(name, sizeof(name), "arrays k=%d n=%d", k, n);
	run_case(name, rs, ev, 0, max_seconds, PEAK_LIMIT(ev_bytes), ev_bytes);

	/* without "gone" it matches, through the same search */
	ev_bytes = 0;
	begin_event(ev);
	for (i = 0; i < k; i++)
	{
		snprintf(name, sizeof(name), "a%d", i);
		vkey(ev, name);
		CHECK(ebm_begin_array(ev));
		for (j = 0; j < n; j++)
		{
			CHECK(ebm_begin_object(ev));
			vkey(ev, "x");
			vnum(ev, j == n - 1 ? "1" : "2");
			CHECK(ebm_end_object(ev));
		}
		CHECK(ebm_end_array(ev));
	}
	end_event(ev);
	snprintf(name, sizeof(name), "arrays k=%d n=%d (match)", k, n);
	run_case(name, rs, ev, 1, max_seconds, PEAK_LIMIT(ev_bytes), ev_bytes);
	ebm_ruleset_free(rs);
	ebm_builder_free(pb);
	ebm_builder_free(ev);
}

/*
 * {"detail": {"items": {"sku": ["X"], "discount": [{"exists": false}]},
 *  "tags": ["t"]}} against m items that all have a discount, and m tags.
 */
static void
case_items(int m, double max_seconds)
{
	ebm_builder *pb = ebm_builder_new();
	ebm_builder *ev = ebm_builder_new();
	ebm_ruleset *rs;
	char		name[64];
	int			i,
				last;

	CHECK(ebm_begin_object(pb));
	key(pb, "detail");
	CHECK(ebm_begin_object(pb));
	key(pb, "items");
	CHECK(ebm_begin_object(pb));
	key(pb, "sku");
	CHECK(ebm_begin_array(pb));
	str(pb, "X");
	CHECK(ebm_end_array(pb));
	key(pb, "discount");
	CHECK(ebm_begin_array(pb));
	CHECK(ebm_begin_object(pb));
	key(pb, "exists");
	CHECK(ebm_bool(pb, false));
	CHECK(ebm_end_object(pb));
	CHECK(ebm_end_array(pb));
	CHECK(ebm_end_object(pb));
	key(pb, "tags");
	CHECK(ebm_begin_array(pb));
	str(pb, "t");
	CHECK(ebm_end_array(pb));
	CHECK(ebm_end_object(pb));
	CHECK(ebm_end_object(pb));
	rs = ruleset_of(pb);

	/* no match, then a match through the very last item */
	for (last = 0; last < 2; last++)
	{
		ev_bytes = 0;
		begin_event(ev);
		vkey(ev, "items");
		CHECK(ebm_begin_array(ev));
		for (i = 0; i < m; i++)
		{
			CHECK(ebm_begin_object(ev));
			vkey(ev, "sku");
			vstr(ev, "X");
			if (!(last && i == m - 1))
			{
				vkey(ev, "discount");
				vnum(ev, "5");
			}
			CHECK(ebm_end_object(ev));
		}
		CHECK(ebm_end_array(ev));
		vkey(ev, "tags");
		CHECK(ebm_begin_array(ev));
		for (i = 0; i < m; i++)
			vstr(ev, "t");
		CHECK(ebm_end_array(ev));
		end_event(ev);
		snprintf(name, sizeof(name), "items m=%d%s", m, last ? " (match)" : "");
		run_case(name, rs, ev, last, max_seconds, PEAK_LIMIT(ev_bytes), ev_bytes);
	}
	ebm_ruleset_free(rs);
	ebm_builder_free(pb);
	ebm_builder_free(ev);
}

/*
 * {"detail": {"v": [1, [1, [1, ... ]]], "w": [...same...]}} nested d deep;
 * the pattern wants v = 1 and w = 2 (w's values are all 1 but the last).
 */
static void
case_deep(int d, double max_seconds)
{
	ebm_builder *pb = ebm_builder_new();
	ebm_builder *ev = ebm_builder_new();
	ebm_ruleset *rs;
	char		name[64];
	int			i,
				f;

	CHECK(ebm_begin_object(pb));
	key(pb, "detail");
	CHECK(ebm_begin_object(pb));
	key(pb, "v");
	CHECK(ebm_begin_array(pb));
	num(pb, "1");
	CHECK(ebm_end_array(pb));
	key(pb, "w");
	CHECK(ebm_begin_array(pb));
	num(pb, "2");
	CHECK(ebm_end_array(pb));
	CHECK(ebm_end_object(pb));
	CHECK(ebm_end_object(pb));
	rs = ruleset_of(pb);

	ev_bytes = 0;
	begin_event(ev);
	for (f = 0; f < 2; f++)
	{
		vkey(ev, f ? "w" : "v");
		for (i = 0; i < d; i++)
		{
			CHECK(ebm_begin_array(ev));
			ev_bytes += 2;
			vnum(ev, (f && i == d - 1) ? "2" : "1");
		}
		for (i = 0; i < d; i++)
			CHECK(ebm_end_array(ev));
	}
	end_event(ev);
	snprintf(name, sizeof(name), "deep d=%d", d);
	run_case(name, rs, ev, 1, max_seconds, PEAK_LIMIT(ev_bytes), ev_bytes);
	ebm_ruleset_free(rs);
	ebm_builder_free(pb);
	ebm_builder_free(ev);
}

/* n copies of one string in two arrays of objects, with prefix and exists:false. */
static void
case_runs(int n, double max_seconds)
{
	ebm_builder *pb = ebm_builder_new();
	ebm_builder *ev = ebm_builder_new();
	ebm_ruleset *rs;
	char		name[64];
	int			i;

	CHECK(ebm_begin_object(pb));
	key(pb, "detail");
	CHECK(ebm_begin_object(pb));
	key(pb, "r.s");
	CHECK(ebm_begin_array(pb));
	CHECK(ebm_begin_object(pb));
	key(pb, "prefix");
	str(pb, "same");
	CHECK(ebm_end_object(pb));
	CHECK(ebm_end_array(pb));
	key(pb, "q.s");
	CHECK(ebm_begin_array(pb));
	str(pb, "same-value");
	CHECK(ebm_end_array(pb));
	key(pb, "r.t");
	CHECK(ebm_begin_array(pb));
	CHECK(ebm_begin_object(pb));
	key(pb, "exists");
	CHECK(ebm_bool(pb, false));
	CHECK(ebm_end_object(pb));
	CHECK(ebm_end_array(pb));
	CHECK(ebm_end_object(pb));
	CHECK(ebm_end_object(pb));
	rs = ruleset_of(pb);

	ev_bytes = 0;
	begin_event(ev);
	vkey(ev, "r");
	CHECK(ebm_begin_array(ev));
	for (i = 0; i < n; i++)
	{
		CHECK(ebm_begin_object(ev));
		vkey(ev, "s");
		vstr(ev, "same-value");
		vkey(ev, "t");
		vstr(ev, "same-value");
		CHECK(ebm_end_object(ev));
	}
	CHECK(ebm_end_array(ev));
	vkey(ev, "q");
	CHECK(ebm_begin_array(ev));
	for (i = 0; i < n; i++)
	{
		CHECK(ebm_begin_object(ev));
		vkey(ev, "s");
		vstr(ev, "same-value");
		CHECK(ebm_end_object(ev));
	}
	CHECK(ebm_end_array(ev));
	end_event(ev);
	snprintf(name, sizeof(name), "runs n=%d", n);
	run_case(name, rs, ev, 0, max_seconds, PEAK_LIMIT(ev_bytes), ev_bytes);
	ebm_ruleset_free(rs);
	ebm_builder_free(pb);
	ebm_builder_free(ev);
}

/* Numbers: n of them with huge exponents, and one with a long mantissa. */
static void
case_numbers(int n, double max_seconds)
{
	ebm_builder *pb = ebm_builder_new();
	ebm_builder *ev = ebm_builder_new();
	ebm_ruleset *rs;
	char		name[64];
	char	   *longnum;
	size_t		len = 200000;
	int			i;

	CHECK(ebm_begin_object(pb));
	key(pb, "detail");
	CHECK(ebm_begin_object(pb));
	key(pb, "n");
	CHECK(ebm_begin_array(pb));
	CHECK(ebm_begin_object(pb));
	key(pb, "numeric");
	CHECK(ebm_begin_array(pb));
	str(pb, ">");
	num(pb, "0");
	CHECK(ebm_end_array(pb));
	CHECK(ebm_end_object(pb));
	num(pb, "1e131071");
	CHECK(ebm_end_array(pb));
	CHECK(ebm_end_object(pb));
	CHECK(ebm_end_object(pb));
	rs = ruleset_of(pb);

	longnum = malloc(len + 1);
	longnum[0] = '-';
	memset(longnum + 1, '9', len - 1);
	longnum[len] = '\0';
	ev_bytes = 0;
	begin_event(ev);
	vkey(ev, "n");
	CHECK(ebm_begin_array(ev));
	for (i = 0; i < n; i++)
		vnum(ev, i % 2 ? "1e-131071" : "-1e131070");
	vnum(ev, longnum);
	vnum(ev, "1e131071");
	CHECK(ebm_end_array(ev));
	end_event(ev);
	snprintf(name, sizeof(name), "numbers n=%d", n);
	run_case(name, rs, ev, 1, max_seconds, PEAK_LIMIT(ev_bytes), ev_bytes);
	free(longnum);
	ebm_ruleset_free(rs);
	ebm_builder_free(pb);
	ebm_builder_free(ev);
}

/*
 * The arrays case again, but every array is reached twice, once through a
 * dotted key ("a0.x": [...] beside "a0": [...]): the same path at two
 * places of one object.  The exact answer then needs a search; within its
 * budget it answers, beyond it it says EBM_ERR_LIMIT, never a wrong verdict.
 */
static void
case_dotted(int k, int n, double max_seconds)
{
	ebm_builder *pb = ebm_builder_new();
	ebm_builder *ev = ebm_builder_new();
	ebm_ruleset *rs;
	char		name[64];
	int			i,
				j;

	CHECK(ebm_begin_object(pb));
	key(pb, "detail");
	CHECK(ebm_begin_object(pb));
	for (i = 0; i < k; i++)
	{
		snprintf(name, sizeof(name), "a%d.x", i);
		key(pb, name);
		CHECK(ebm_begin_array(pb));
		num(pb, "1");
		CHECK(ebm_end_array(pb));
	}
	key(pb, "gone");
	CHECK(ebm_begin_array(pb));
	CHECK(ebm_begin_object(pb));
	key(pb, "exists");
	CHECK(ebm_bool(pb, false));
	CHECK(ebm_end_object(pb));
	CHECK(ebm_end_array(pb));
	CHECK(ebm_end_object(pb));
	CHECK(ebm_end_object(pb));
	rs = ruleset_of(pb);

	ev_bytes = 0;
	begin_event(ev);
	for (i = 0; i < k; i++)
	{
		snprintf(name, sizeof(name), "a%d", i);
		vkey(ev, name);
		CHECK(ebm_begin_array(ev));
		for (j = 0; j < n; j++)
		{
			CHECK(ebm_begin_object(ev));
			vkey(ev, "x");
			vnum(ev, "1");
			CHECK(ebm_end_object(ev));
		}
		CHECK(ebm_end_array(ev));
		snprintf(name, sizeof(name), "a%d.x", i);
		vkey(ev, name);
		CHECK(ebm_begin_array(ev));
		vnum(ev, "3");
		CHECK(ebm_end_array(ev));
	}
	vkey(ev, "gone");
	vstr(ev, "here");
	end_event(ev);
	snprintf(name, sizeof(name), "dotted k=%d n=%d", k, n);
	/* 0 (the right verdict) or -1 (over budget) */
	run_case(name, rs, ev, 2, max_seconds, PEAK_LIMIT(ev_bytes), ev_bytes);
	ebm_ruleset_free(rs);
	ebm_builder_free(pb);
	ebm_builder_free(ev);
}

#ifdef EBM_HAS_LIMITS
static int	interrupt_calls;
static int	interrupt_after;	/* say "stop" at this call (0: never) */

/* Interrupt callback of the test: counts calls, stops when told to. */
static bool
test_interrupt(void *arg)
{
	(void) arg;
	interrupt_calls++;
	return interrupt_after > 0 && interrupt_calls >= interrupt_after;
}

/*
 * The items event with m items: the callback is asked at least once per
 * EBM_TICK_INTERVAL-ish units of work, a "stop" ends the match with
 * EBM_ERR_INTERRUPTED, and the same context then matches normally.
 */
static void
case_interrupt(int m)
{
	ebm_builder *pb = ebm_builder_new();
	ebm_builder *ev = ebm_builder_new();
	ebm_match_ctx *ctx = ebm_match_ctx_new();
	ebm_ruleset *rs;
	const uint32_t *ids;
	size_t		nids = 0;
	ebm_status	st;
	int			i;
	bool		ok;

	CHECK(ebm_begin_object(pb));
	key(pb, "detail");
	CHECK(ebm_begin_object(pb));
	key(pb, "items");
	CHECK(ebm_begin_object(pb));
	key(pb, "sku");
	CHECK(ebm_begin_array(pb));
	str(pb, "X");
	CHECK(ebm_end_array(pb));
	key(pb, "discount");
	CHECK(ebm_begin_array(pb));
	CHECK(ebm_begin_object(pb));
	key(pb, "exists");
	CHECK(ebm_bool(pb, false));
	CHECK(ebm_end_object(pb));
	CHECK(ebm_end_array(pb));
	CHECK(ebm_end_object(pb));
	CHECK(ebm_end_object(pb));
	CHECK(ebm_end_object(pb));
	rs = ruleset_of(pb);
	begin_event(ev);
	key(ev, "items");
	CHECK(ebm_begin_array(ev));
	for (i = 0; i < m; i++)
	{
		CHECK(ebm_begin_object(ev));
		key(ev, "sku");
		str(ev, "X");
		if (i < m - 1)
		{
			key(ev, "discount");
			num(ev, "5");
		}
		CHECK(ebm_end_object(ev));
	}
	CHECK(ebm_end_array(ev));
	end_event(ev);
	ebm_match_ctx_set_interrupt(ctx, test_interrupt, NULL);

	/* never stopped: asked at least once per 4,096 items of the event */
	interrupt_calls = 0;
	interrupt_after = 0;
	st = ebm_match(rs, ev, ctx, &ids, &nids);
	ok = st == EBM_OK && nids == 1 && interrupt_calls >= m / 4096;
	printf("%s interrupt m=%d: never stopped: %s, %zu match, %d calls\n",
		   ok ? "ok  " : "FAIL", m, ebm_status_string(st), nids, interrupt_calls);
	ok ? passes++ : failures++;

	/* stopped at the second call */
	interrupt_calls = 0;
	interrupt_after = 2;
	st = ebm_match(rs, ev, ctx, &ids, &nids);
	ok = st == EBM_ERR_INTERRUPTED && interrupt_calls == 2;
	printf("%s interrupt m=%d: stopped: %s after %d calls\n",
		   ok ? "ok  " : "FAIL", m, ebm_status_string(st), interrupt_calls);
	ok ? passes++ : failures++;

	/* and the context is fine afterwards */
	interrupt_after = 0;
	st = ebm_match(rs, ev, ctx, &ids, &nids);
	ok = st == EBM_OK && nids == 1 && ids[0] == 7;
	printf("%s interrupt m=%d: afterwards: %s, %zu match\n",
		   ok ? "ok  " : "FAIL", m, ebm_status_string(st), nids);
	ok ? passes++ : failures++;
	ebm_match_ctx_free(ctx);
	ebm_ruleset_free(rs);
	ebm_builder_free(pb);
	ebm_builder_free(ev);
}
#endif

int
main(int argc, char **argv)
{
	const char *only = NULL;
	int			i;

	for (i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--report") == 0)
			report = true;
		else if (strcmp(argv[i], "--time-scale") == 0 && i + 1 < argc)
			time_scale = atof(argv[++i]);
		else
			only = argv[i];
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	ebm_set_allocator(count_malloc, count_realloc, count_free);
#define WANT(c) (only == NULL || strcmp(only, c) == 0)
	if (WANT("arrays"))
	{
		case_arrays(4, 8, 0.5);
		case_arrays(8, 8, 0.5);
		case_arrays(12, 8, 0.5);
		case_arrays(64, 64, 0.5);
	}
	if (WANT("items"))
	{
		case_items(800, 0.5);
		case_items(20000, 1.0);
	}
	if (WANT("deep"))
	{
		case_deep(1000, 0.5);
		case_deep(20000, 1.0);
	}
	if (WANT("runs"))
		case_runs(20000, 1.0);
	if (WANT("numbers"))
		case_numbers(20000, 1.0);
	if (WANT("dotted"))
	{
		case_dotted(3, 4, 0.5);
		case_dotted(12, 8, 2.0);
	}
#ifdef EBM_HAS_LIMITS
	if (WANT("interrupt"))
		case_interrupt(100000);
#endif
	printf("adversarial: %d passed, %d failed\n", passes, failures);
	return failures ? 1 : 0;
}
