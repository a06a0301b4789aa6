/*-------------------------------------------------------------------------
 *
 * wildcard.c
 *	  The "wildcard" operator: syntax, complexity, and matching.
 *
 * A wildcard pattern is literal text where "*" matches any run of bytes
 * (including none), "\*" is a literal star and "\\" a literal backslash; any
 * other backslash, and two stars in a row, are errors.
 *
 * EventBridge rejects patterns whose matching could be expensive: event-
 * ruler's MachineComplexityEvaluator bounds the number of automaton states
 * one input value can keep alive at once.  We measure the same thing on our
 * own automaton (one state per pattern position, stars included): the
 * largest set of simultaneously live positions over all inputs, explored
 * breadth-first over the subset automaton.  "*:*:*:*:*:event-bus/ *" (without the space), which
 * AWS rejects, scores 13 here; the patterns AWS accepts in the corpus score
 * at most 5, so the limit is set at 10 (EBM_MAX_WILDCARD_COMPLEXITY).
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>

#include "ebm_internal.h"

/* Check the escapes and stars of a wildcard pattern; describe any error. */
bool
ebm_wildcard_check(const char *p, size_t len, char *why, size_t whylen)
{
	size_t		i;
	bool		prev_star = false;

	for (i = 0; i < len; i++)
	{
		if (p[i] == '\\')
		{
			if (i + 1 >= len || (p[i + 1] != '*' && p[i + 1] != '\\'))
			{
				snprintf(why, whylen, "Invalid escape character at pos %zu", i);
				return false;
			}
			i++;
			prev_star = false;
		}
		else if (p[i] == '*')
		{
			if (prev_star)
			{
				snprintf(why, whylen, "Consecutive wildcard characters at pos %zu", i);
				return false;
			}
			prev_star = true;
		}
		else
			prev_star = false;
	}
	return true;
}

/* A pattern as tokens: literal bytes, or -1 for a star. */
static int
tokenize(const char *p, size_t len, int *toks)
{
	size_t		i;
	int			n = 0;

	for (i = 0; i < len; i++)
	{
		if (p[i] == '\\' && i + 1 < len)
			toks[n++] = (unsigned char) p[++i];
		else if (p[i] == '*')
			toks[n++] = -1;
		else
			toks[n++] = (unsigned char) p[i];
	}
	return n;
}

/* Add position i and everything reachable from it by skipping stars. */
static void
closure_add(const int *toks, int n, uint64_t *set, int i)
{
	while (true)
	{
		set[i / 64] |= UINT64_C(1) << (i % 64);
		if (i < n && toks[i] == -1)
			i++;
		else
			break;
	}
}

/* Number of positions in a set. */
static int
set_count(const uint64_t *set, int words)
{
	int			c = 0;
	int			w;

	for (w = 0; w < words; w++)
	{
		uint64_t	x = set[w];

		while (x)
		{
			x &= x - 1;
			c++;
		}
	}
	return c;
}

/*
 * Largest number of simultaneously live positions of the pattern's
 * automaton over any input, capped at cap (evaluation stops there).
 * Returns cap as well when the exploration would be too large.
 */
int
ebm_wildcard_complexity(const char *p, size_t len, int cap)
{
	int		   *toks;
	int			n;
	int			words;
	int			alpha[257];
	int			nalpha = 0;
	bool		seen_byte[256];
	size_t		maxsets = 4096;
	uint64_t   *sets;
	size_t		nsets = 0;
	size_t		head = 0;
	int			best = 0;
	int			i;

	if (memchr(p, '*', len) == NULL)
		return 1;
	if (len > 4096)
		return cap;
	toks = ebm_malloc((len + 1) * sizeof(int));
	if (toks == NULL)
		return cap;
	n = tokenize(p, len, toks);
	words = (n + 1 + 63) / 64;
	sets = ebm_calloc(maxsets, (size_t) words * sizeof(uint64_t));
	if (sets == NULL)
	{
		ebm_free(toks);
		return cap;
	}
	memset(seen_byte, 0, sizeof(seen_byte));
	for (i = 0; i < n; i++)
		if (toks[i] >= 0 && !seen_byte[toks[i]])
		{
			seen_byte[toks[i]] = true;
			alpha[nalpha++] = toks[i];
		}
	alpha[nalpha++] = -1;		/* any byte not in the pattern */

	closure_add(toks, n, sets, 0);
	nsets = 1;
	while (head < nsets && best < cap)
	{
		uint64_t   *cur = sets + head * words;
		int			a;

		head++;
		if (set_count(cur, words) > best)
			best = set_count(cur, words);
		for (a = 0; a < nalpha && best < cap; a++)
		{
			uint64_t   *next;
			size_t		k;
			bool		empty = true;

			if (nsets >= maxsets)
			{
				best = cap;
				break;
			}
			next = sets + nsets * words;
			memset(next, 0, (size_t) words * sizeof(uint64_t));
			for (i = 0; i < n; i++)
			{
				if (!(cur[i / 64] & (UINT64_C(1) << (i % 64))))
					continue;
				if (toks[i] == -1)
					closure_add(toks, n, next, i);
				else if (toks[i] == alpha[a])
					closure_add(toks, n, next, i + 1);
			}
			for (k = 0; k < (size_t) words; k++)
				if (next[k])
					empty = false;
			if (empty)
				continue;
			for (k = 0; k < nsets; k++)
				if (memcmp(sets + k * words, next, (size_t) words * sizeof(uint64_t)) == 0)
					break;
			if (k == nsets)
				nsets++;
		}
	}
	ebm_free(sets);
	ebm_free(toks);
	return best < cap ? best : cap;
}

/*
 * Does the string s match the wildcard pattern p?  The classic two-pointer
 * glob walk: on a mismatch, let the last star swallow one more byte.
 * Time O(|p| * |s|) at worst; each restart (at most |s| of them, each
 * costing at most |p|) counts as work for ctx's interrupt callback, and
 * when it asks to stop the answer is false (match.c discards it).
 */
bool
ebm_wildcard_match(const char *p, size_t plen, const char *s, size_t slen,
				   ebm_match_ctx *ctx)
{
	size_t		pi = 0;
	size_t		si = 0;
	size_t		star_p = SIZE_MAX;
	size_t		star_s = 0;

	while (si < slen)
	{
		if (pi < plen && p[pi] == '*')
		{
			star_p = ++pi;
			star_s = si;
			continue;
		}
		if (pi < plen)
		{
			size_t		step = 1;
			char		c = p[pi];

			if (c == '\\' && pi + 1 < plen)
			{
				c = p[pi + 1];
				step = 2;
			}
			if (c == s[si])
			{
				pi += step;
				si++;
				continue;
			}
		}
		if (star_p == SIZE_MAX)
			return false;
		if (!ebm_tick(ctx, 1 + (uint32_t) (plen / 64)))
			return false;
		pi = star_p;
		si = ++star_s;
	}
	while (pi < plen && p[pi] == '*')
		pi++;
	return pi == plen;
}
