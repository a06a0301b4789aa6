/*-------------------------------------------------------------------------
 *
 * match.c
 *	  Match one event against a compiled rule set.
 *
 * Flatten the event (event.c), probe the index (index.h) with the values
 * found at the paths the rules use, let the probes decide the sub-rules
 * they fully checked, decide each remaining candidate exactly (eval.c), and
 * return the distinct rule ids in ascending order.  The cost
 * follows the event's size and the number of candidates, not the number of
 * rules (eval.c has the bound).  Scratch space lives in the context and is
 * reused; buffers grown past EBM_KEEP_SCRATCH by a large event are freed
 * at the end of its match.  Every loop whose length an event decides
 * counts its work with ebm_tick, which calls the interrupt callback.
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>

#include "ruleset.h"

#if defined(__GNUC__)
#define EBM_PREFETCH(p) __builtin_prefetch(p)
#define EBM_CTZ64(x) __builtin_ctzll(x)
#else
#define EBM_PREFETCH(p) ((void) (p))
#define EBM_CTZ64(x) ebm_ctz64(x)

/* Index of the lowest set bit of a nonzero word (portable fallback). */
static int
ebm_ctz64(uint64_t x)
{
	int			n = 0;

	while (!(x & 1))
	{
		x >>= 1;
		n++;
	}
	return n;
}
#endif

/*
 * Number of set bits of a word, without branches (and without the library
 * call __builtin_popcountll becomes when the target has no instruction).
 */
static inline int
ebm_popcount64(uint64_t x)
{
	x = x - ((x >> 1) & UINT64_C(0x5555555555555555));
	x = (x & UINT64_C(0x3333333333333333)) + ((x >> 2) & UINT64_C(0x3333333333333333));
	x = (x + (x >> 4)) & UINT64_C(0x0f0f0f0f0f0f0f0f);
	return (int) ((x * UINT64_C(0x0101010101010101)) >> 56);
}

/* A fresh, empty matching context. */
ebm_match_ctx *
ebm_match_ctx_new(void)
{
	return ebm_calloc(1, sizeof(ebm_match_ctx));
}

/* Free the per-element arrays, which share ecap. */
static void
free_element_scratch(ebm_match_ctx *ctx)
{
	ebm_free(ctx->estamp);
	ebm_free(ctx->ecount);
	ebm_free(ctx->efield);
	ebm_free(ctx->epend);
	ebm_free(ctx->eanchor);
	ebm_free(ctx->equeue);
	ebm_free(ctx->evisit);
	ebm_free(ctx->eastamp);
	ebm_free(ctx->ebad);
	ctx->estamp = ctx->ecount = ctx->efield = ctx->epend = NULL;
	ctx->eanchor = ctx->equeue = ctx->evisit = ctx->eastamp = NULL;
	ctx->ebad = NULL;
	ctx->ecap = 0;
}

/* Free a context and all its scratch space. */
void
ebm_match_ctx_free(ebm_match_ctx *ctx)
{
	if (ctx == NULL)
		return;
	ebm_free(ctx->leaves);
	ebm_free(ctx->byp);
	ebm_free(ctx->elems);
	ebm_free(ctx->arrs);
	ebm_free(ctx->nodeseen);
	free_element_scratch(ctx);
	ebm_free(ctx->astamp);
	ebm_free(ctx->nstamp);
	ebm_free(ctx->npos);
	ebm_free(ctx->pfirst);
	ebm_free(ctx->pcount);
	ebm_free(ctx->pgen);
	ebm_free(ctx->touched);
	ebm_free(ctx->sgen);
	ebm_free(ctx->cands);
	ebm_free(ctx->ids);
	ebm_free(ctx->rankbits);
	ebm_free(ctx->fold);
	ebm_free(ctx->probefold);
	ebm_free(ctx->pick);
	ebm_free(ctx->pickoff);
	ebm_free(ctx->choice);
	ebm_free(ctx->frames);
	ebm_free(ctx);
}

/* Set or remove the interrupt callback; see ebm.h. */
void
ebm_match_ctx_set_interrupt(ebm_match_ctx *ctx, bool (*cb) (void *arg),
							void *arg)
{
	ctx->interrupt = cb;
	ctx->interrupt_arg = arg;
}

/*
 * ebm_tick's slow path, every EBM_TICK_INTERVAL units of work: ask the
 * callback whether to stop.  False when the match must stop.
 */
bool
ebm_tick_slow(ebm_match_ctx *ctx)
{
	ctx->ticks = 0;
	if (ctx->interrupt && !ctx->interrupted && ctx->interrupt(ctx->interrupt_arg))
		ctx->interrupted = true;
	return !ctx->interrupted;
}

/*
 * Hand back what one large event made the context grow.  Buffers sized by
 * the rule set (stamps per sub-rule, rank bitmap, ids) stay: the next
 * event on the same rules needs them.  The per-element arrays share ecap,
 * the per-path ones npathcap.
 */
static void
trim_ctx(ebm_match_ctx *ctx)
{
	ebm_event_trim(ctx);
	ebm_trim_scratch((void **) &ctx->pick, &ctx->pickcap, sizeof(ebm_leaf *));
	ebm_trim_scratch((void **) &ctx->fold, &ctx->foldcap, 1);
	ebm_trim_scratch((void **) &ctx->probefold, &ctx->probefoldcap, 1);
	ebm_trim_scratch((void **) &ctx->astamp, &ctx->acap, sizeof(uint32_t));
	if (ctx->ecap * 8 * sizeof(uint32_t) > EBM_KEEP_SCRATCH)
		free_element_scratch(ctx);
}

/* trim_ctx, for explain.c, which decides sub-rules outside ebm_match(). */
void
ebm_match_ctx_trim(ebm_match_ctx *ctx)
{
	trim_ctx(ctx);
}

/* Make room for one stamp and one candidate slot per sub-rule. */
static bool
reserve_subs(ebm_match_ctx *ctx, size_t nsubs)
{
	size_t		old = ctx->nsubcap;
	size_t		cap = ctx->nsubcap;

	if (nsubs <= ctx->nsubcap)
		return true;
	if (!ebm_reserve((void **) &ctx->sgen, &cap, nsubs, sizeof(uint8_t)))
		return false;
	memset(ctx->sgen + old, 0, (cap - old) * sizeof(uint8_t));
	ctx->nsubcap = cap;
	return ebm_reserve((void **) &ctx->cands, &ctx->candcap, cap, sizeof(uint32_t));
}

/*
 * Ask for a candidate's rule data now: with thousands of rules it is out of
 * cache, and by the time candidates are decided it will have arrived.
 */
static inline void
prefetch_subrule(const ebm_ruleset *rs, uint32_t s)
{
	const char *p = (const char *) rs->subs[s].fields;

	EBM_PREFETCH(p);
	EBM_PREFETCH(p + 64);
	EBM_PREFETCH(p + 128);
	EBM_PREFETCH(p + 192);
}

/*
 * Room for the rank bitmap (kept all zero between events) and the ids (with
 * the slack collect_ids writes past the last one).
 */
static bool
reserve_ranks(ebm_match_ctx *ctx, size_t nranks)
{
	size_t		words = nranks / 64 + 1;
	size_t		old = ctx->rankcap;

	if (!ebm_reserve((void **) &ctx->ids, &ctx->idcap, nranks + 4, sizeof(uint32_t)))
		return false;
	if (words <= ctx->rankcap)
		return true;
	if (!ebm_grow((void **) &ctx->rankbits, &ctx->rankcap, words, sizeof(uint64_t)))
		return false;
	memset(ctx->rankbits + old, 0, (ctx->rankcap - old) * sizeof(uint64_t));
	return true;
}

/* Note sub-rule s as a candidate, once per event. */
static inline void
add_cand(const ebm_ruleset *rs, ebm_match_ctx *ctx, uint32_t s)
{
	if (ctx->sgen[s] != ctx->sgen_gen)
	{
		ctx->sgen[s] = ctx->sgen_gen;
		ctx->cands[ctx->ncands++] = s;
		prefetch_subrule(rs, s);
	}
}

/* Note every sub-rule of a run as a candidate. */
static inline void
add_cands(const ebm_ruleset *rs, ebm_match_ctx *ctx, const uint32_t *subs,
		  uint32_t n)
{
	uint32_t	i;

	for (i = 0; i < n; i++)
		add_cand(rs, ctx, subs[i]);
}

static inline const ebm_leaf *leaves_at(const ebm_match_ctx *ctx, uint32_t p,
										uint32_t *n);

/* Does some value at the field's path satisfy one of its conditions? */
static bool
prefilter(const ebm_field *f, ebm_match_ctx *ctx)
{
	uint32_t	n;
	const ebm_leaf *lv = leaves_at(ctx, f->path_id, &n);
	uint32_t	i,
				k;

	ebm_tick(ctx, n * f->ncond);
	for (i = 0; i < n && !ctx->interrupted; i++)
		for (k = 0; k < f->ncond; k++)
			if (ebm_cond_holds(&f->conds[k], &lv[i], ctx))
				return true;
	return false;
}

/* Record that a sub-rule of the rule of rank r holds, in the bitmap. */
static inline void
mark_rank(ebm_match_ctx *ctx, uint32_t r)
{
	size_t		w = r / 64;

	ctx->rankbits[w] |= UINT64_C(1) << (r % 64);
	if (w < ctx->rank_lo)
		ctx->rank_lo = w;
	if (w > ctx->rank_hi)
		ctx->rank_hi = w;
	ctx->nmatched++;
}

/* Record that sub-rule s holds: set its rule's rank in the bitmap. */
static inline void
mark_matched(const ebm_ruleset *rs, ebm_match_ctx *ctx, uint32_t s)
{
	mark_rank(ctx, rs->subs[s].rank);
}

#define NIN_LEAVES 8				/* values whose classes add_run keeps */

/*
 * Test an anything-but filter against the n values lv at its path, whose
 * classes (index.h) are in cls (computed by the caller, who sets *known to
 * say so; without them, or with more values than NIN_LEAVES, the exact
 * check decides).  *used is set to the value that satisfied it.
 */
static inline int
notin_test(const ebm_index *ix, const ebm_filter *f, const ebm_leaf *lv,
		   uint32_t n, uint32_t *cls, bool *known, const ebm_leaf **used)
{
	uint32_t	i,
				k;
	bool		maybe = false;

	*used = NULL;
	if (n == 0)
		return EBM_FILTER_FAILS;
	if (n > NIN_LEAVES)
		return EBM_FILTER_MAYBE;
	if (!*known)
	{
		for (i = 0; i < n; i++)
			cls[i] = ebm_nin_class(ix, &lv[i]);
		*known = true;
	}
	for (i = 0; i < n; i++)
	{
		if (cls[i] == EBM_NIN_AMBIGUOUS)
		{
			maybe = true;
			continue;
		}
		for (k = 0; k < f->n; k++)
			if (cls[i] == f->u.nin.id[k])
				break;
		if (k == f->n)
		{
			/* equal to none of the excluded values */
			*used = &lv[i];
			return EBM_FILTER_HOLDS;
		}
	}
	return maybe ? EBM_FILTER_MAYBE : EBM_FILTER_FAILS;
}

/*
 * Go through a run of index entries found by a probe.  Each sub-rule's
 * pre-filter is tested; then either the probe decides the sub-rule itself
 * (its anchor values were confirmed byte for byte -- "verified" -- and the
 * anchor and filter are all its fields, with no two of the values used in
 * arrays), or the sub-rule becomes a candidate for the exact check.
 * key_trails counts the anchor values that sit in arrays.
 */
static void
add_run(const ebm_ruleset *rs, ebm_match_ctx *ctx, const ebm_htab *t,
		const ebm_hslot *h, bool verified, int key_trails)
{
	uint32_t	i;
	const ebm_hent *ents = t->ents + h->start;
	uint8_t    *sgen = ctx->sgen;
	uint8_t		gen = ctx->sgen_gen;
	uint32_t	lastpath = UINT32_MAX;	/* leaves of the last filter path */
	const ebm_leaf *lv = NULL;
	uint32_t	n = 0;
	uint32_t	cls[NIN_LEAVES];	/* classes of lv, when known */
	bool		known = false;
	uint32_t	work = 0;		/* counted locally, reported in batches */

	for (i = 0; i < h->count; i++)
	{
		uint32_t	s = ents[i].sub;
		const ebm_filter *f = &ents[i].f;
		const ebm_leaf *used = NULL;
		int			r;

		if (sgen[s] == gen)
			continue;
		work += 1 + n;
		if (work >= 256)
		{
			if (!ebm_tick(ctx, work))
				return;			/* ebm_match sees ctx->interrupted */
			work = 0;
		}
		if (f->kind == EBM_F_NONE)
			r = EBM_FILTER_HOLDS;
		else if (f->kind == EBM_F_FIELD)
			r = prefilter(&rs->subs[s].fields[f->u.field], ctx) ? EBM_FILTER_MAYBE : EBM_FILTER_FAILS;
		else
		{
			if (f->path != lastpath)
			{
				lv = leaves_at(ctx, f->path, &n);
				lastpath = f->path;
				known = false;
			}
			if (f->kind == EBM_F_NOTIN)
				r = notin_test(&rs->index, f, lv, n, cls, &known, &used);
			else
				r = ebm_filter_test(f, lv, n, &used);
		}
		if (r == EBM_FILTER_FAILS)
			continue;
		sgen[s] = gen;
		if (r == EBM_FILTER_HOLDS && f->covered && verified &&
			key_trails + (used && used->ntrail ? 1 : 0) <= 1)
			mark_rank(ctx, ents[i].rank);
		else
		{
			ctx->cands[ctx->ncands++] = s;
			prefetch_subrule(rs, s);
		}
	}
	if (work)
		ebm_tick(ctx, work);
}

/* Leaves of the event at path p (count in *n). */
static inline const ebm_leaf *
leaves_at(const ebm_match_ctx *ctx, uint32_t p, uint32_t *n)
{
	if (p >= ctx->npathcap || ctx->pgen[p] != ctx->gen)
	{
		*n = 0;
		return NULL;
	}
	*n = ctx->pcount[p];
	return ctx->byp + ctx->pfirst[p];
}

/*
 * Are the event values exactly the key values of the run's exemplar?  In a
 * pure run that confirms the anchor of every entry at once.
 */
static bool
exemplar_matches(const ebm_ruleset *rs, const ebm_group *g, const ebm_hslot *h,
				 const ebm_leaf *const *keyleaf)
{
	const ebm_literal *lit = (const ebm_literal *) (rs->index.exact.expool + h->ex);
	uint32_t	i;

	if (!h->pure)
		return false;
	for (i = 0; i < g->npaths; i++)
		if (!ebm_literal_equals(&lit[i], keyleaf[i]))
			return false;
	return true;
}

/* Probe one group with every combination of the event's values. */
static void
probe_group(const ebm_ruleset *rs, const ebm_group *g, ebm_match_ctx *ctx)
{
	const ebm_leaf *lv[EBM_GROUP_MAX];
	uint32_t	cnt[EBM_GROUP_MAX];
	uint32_t	idx[EBM_GROUP_MAX];
	uint32_t	combos = 1;
	uint32_t	i;

	for (i = 0; i < g->npaths; i++)
	{
		lv[i] = leaves_at(ctx, g->paths[i], &cnt[i]);
		if (cnt[i] == 0)
			return;
		combos = (combos > EBM_GROUP_MAX_COMBOS) ? combos : combos * cnt[i];
		idx[i] = 0;
	}
	if (combos > EBM_GROUP_MAX_COMBOS)
	{
		/* too many value combinations: let the exact check sort it out */
		add_cands(rs, ctx, g->all, g->nall);
		return;
	}
	while (true)
	{
		uint64_t	h = EBM_HASH_SEED;
		const ebm_hslot *slot;
		const ebm_leaf *keyleaf[EBM_GROUP_MAX];
		int			trails = 0;

		for (i = 0; i < g->npaths; i++)
		{
			keyleaf[i] = &lv[i][idx[i]];
			h = ebm_hash_mix(h * 31 + keyleaf[i]->digest);
			trails += keyleaf[i]->ntrail ? 1 : 0;
		}
		slot = ebm_htab_find(&rs->index.exact, ebm_probe_key(0, g->id, h));
		if (slot)
			add_run(rs, ctx, &rs->index.exact, slot,
					exemplar_matches(rs, g, slot, keyleaf), trails);
		for (i = 0; i < g->npaths; i++)
		{
			if (++idx[i] < cnt[i])
				break;
			idx[i] = 0;
		}
		if (i == g->npaths)
			break;
	}
}

/*
 * Does the probed string s (the value, folded for the -ic kinds) really
 * stand in the run's relation to its exemplar literal?  In a pure run that
 * confirms the anchor of every entry at once.
 */
static bool
string_exemplar_matches(const ebm_ruleset *rs, const ebm_hslot *h,
						uint32_t kind, const ebm_leaf *l, const char *s, size_t len)
{
	const ebm_literal *lit;

	if (!h->pure || h->ex_kind != kind)
		return false;
	lit = (const ebm_literal *) (rs->index.strings.expool + h->ex);
	switch (kind)
	{
		case EBM_S_EXACT:
			return ebm_literal_equals(lit, l);
		case EBM_S_PREFIX:
		case EBM_S_PREFIX_IC:
			return lit->len <= len && ebm_bytes_equal(s, lit->str, lit->len);
		case EBM_S_SUFFIX:
		case EBM_S_SUFFIX_IC:
			return lit->len <= len && ebm_bytes_equal(s + len - lit->len, lit->str, lit->len);
		default:
			return lit->len == len && ebm_bytes_equal(s, lit->str, len);
	}
}

/*
 * Probe the prefixes (or, backward, the suffixes) of s whose lengths are in
 * lens[0..nlens), under the given kind.
 */
static void
probe_affixes(const ebm_ruleset *rs, ebm_match_ctx *ctx, uint32_t path,
			  uint32_t kind, const ebm_leaf *l, const char *s, size_t len,
			  const uint32_t *lens, uint32_t nlens, bool backward)
{
	uint64_t	h = EBM_HASH_SEED;
	size_t		done = 0;
	uint32_t	k;

	for (k = 0; k < nlens && lens[k] <= len; k++)
	{
		const ebm_hslot *slot;

		for (; done < lens[k]; done++)
			h = ebm_fnv_step(h, (unsigned char) s[backward ? len - 1 - done : done]);
		slot = ebm_htab_find(&rs->index.strings, ebm_probe_key(kind, path, h));
		if (slot)
			add_run(rs, ctx, &rs->index.strings, slot,
					string_exemplar_matches(rs, slot, kind, l, s, len),
					l->ntrail ? 1 : 0);
	}
}

/* String probes of one value at path p. */
static void
probe_strings(const ebm_ruleset *rs, const ebm_pathinfo *pi, uint32_t p,
			  const ebm_leaf *l, ebm_match_ctx *ctx)
{
	const ebm_hslot *slot;

	if (pi->has_exact)
	{
		slot = ebm_htab_find(&rs->index.strings, ebm_probe_key(EBM_S_EXACT, p, l->digest));
		if (slot)
			add_run(rs, ctx, &rs->index.strings, slot,
					string_exemplar_matches(rs, slot, EBM_S_EXACT, l, l->str, l->len),
					l->ntrail ? 1 : 0);
	}
	if (l->vtype != EBM_V_STRING)
		return;
	probe_affixes(rs, ctx, p, EBM_S_PREFIX, l, l->str, l->len, pi->lens[0], pi->nlens[0], false);
	probe_affixes(rs, ctx, p, EBM_S_SUFFIX, l, l->str, l->len, pi->lens[1], pi->nlens[1], true);
	if (pi->has_eic || pi->nlens[2] || pi->nlens[3])
	{
		size_t		flen;

		/* its own buffer: deciding pre-filters may fold into ctx->fold */
		if (!ebm_reserve((void **) &ctx->probefold, &ctx->probefoldcap,
						 (size_t) l->len * EBM_CASEFOLD_MAX_GROWTH + 1, 1))
			return;
		flen = ebm_casefold(l->str, l->len, ctx->probefold);
		if (pi->has_eic)
		{
			slot = ebm_htab_find(&rs->index.strings,
								 ebm_probe_key(EBM_S_EQUALS_IC, p,
											   ebm_hash_bytes(ctx->probefold, flen, EBM_HASH_SEED)));
			if (slot)
				add_run(rs, ctx, &rs->index.strings, slot,
						string_exemplar_matches(rs, slot, EBM_S_EQUALS_IC, l, ctx->probefold, flen),
						l->ntrail ? 1 : 0);
		}
		probe_affixes(rs, ctx, p, EBM_S_PREFIX_IC, l, ctx->probefold, flen, pi->lens[2], pi->nlens[2], false);
		probe_affixes(rs, ctx, p, EBM_S_SUFFIX_IC, l, ctx->probefold, flen, pi->lens[3], pi->nlens[3], true);
	}
}

/* Numeric-range probes of one number at path p. */
static void
probe_ranges(const ebm_ruleset *rs, const ebm_pathinfo *pi, double x,
			 ebm_match_ctx *ctx)
{
	uint32_t	lo = 0;
	uint32_t	hi = pi->nranges;
	uint32_t	i;

	/* ranges whose lower bound is <= x come first */
	while (lo < hi)
	{
		uint32_t	mid = (lo + hi) / 2;

		if (pi->ranges[mid].lo <= x)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (i = 0; i < lo; i++)
	{
		const ebm_range *r = &pi->ranges[i];

		if ((r->lo_incl ? x >= r->lo : x > r->lo) &&
			(r->hi_incl ? x <= r->hi : x < r->hi))
			add_cand(rs, ctx, r->sub);
	}
}

/* Collect the candidate sub-rules of the flattened event. */
static void
collect_candidates(const ebm_ruleset *rs, ebm_match_ctx *ctx)
{
	const ebm_index *ix = &rs->index;
	size_t		t;
	uint32_t	i;

	ctx->ncands = 0;
	for (t = 0; t < ctx->ntouched; t++)
	{
		uint32_t	p = ctx->touched[t];
		const ebm_pathinfo *pi = &ix->paths[p];
		uint32_t	n;
		const ebm_leaf *lv = leaves_at(ctx, p, &n);

		for (i = 0; i < pi->ngroups; i++)
			probe_group(rs, &ix->groups[pi->groups[i]], ctx);
		add_cands(rs, ctx, pi->presence, pi->npresence);
		if (ctx->interrupted)
			return;
		if (pi->has_exact || pi->has_eic || pi->nlens[0] || pi->nlens[1] ||
			pi->nlens[2] || pi->nlens[3] || pi->nranges)
		{
			if (!ebm_tick(ctx, n))
				return;
			for (i = 0; i < n && !ctx->interrupted; i++)
			{
				probe_strings(rs, pi, p, &lv[i], ctx);
				if (pi->nranges && lv[i].vtype == EBM_V_NUMBER && lv[i].finite)
					probe_ranges(rs, pi, lv[i].num, ctx);
			}
		}
	}
	add_cands(rs, ctx, ix->always, ix->nalways);
}

/* Bit 63: or-ed in, it makes EBM_CTZ64 defined (63) for an empty word. */
#define TOPBIT (UINT64_C(1) << 63)

/*
 * Read the matched ranks back from the bitmap as ascending, distinct rule
 * ids, clearing the bitmap for the next event.  Four ids are written for
 * every word whatever its count (ids has the room; the count says how many
 * are real), so that most words cost no branch at all.
 */
static bool
collect_ids(const ebm_ruleset *rs, ebm_match_ctx *ctx, size_t lo, size_t hi)
{
	size_t		w;
	uint64_t   *rankbits = ctx->rankbits;
	uint32_t   *ids = ctx->ids;
	size_t		nids = 0;
	/* rule ids 0..n-1: the rank is the id, no table to read */
	const uint32_t *map = rs->rank_identity ? NULL : rs->rank_rule;

	for (w = lo; w <= hi; w++)
	{
		uint64_t	bits = rankbits[w];
		uint32_t	base = (uint32_t) (w * 64);
		int			cnt = ebm_popcount64(bits);
		uint32_t   *out = ids + nids;
		int			k;

		rankbits[w] = 0;
		out[0] = base + (uint32_t) EBM_CTZ64(bits | TOPBIT);
		bits &= bits - 1;
		out[1] = base + (uint32_t) EBM_CTZ64(bits | TOPBIT);
		bits &= bits - 1;
		out[2] = base + (uint32_t) EBM_CTZ64(bits | TOPBIT);
		bits &= bits - 1;
		out[3] = base + (uint32_t) EBM_CTZ64(bits | TOPBIT);
		bits &= bits - 1;
		for (k = 4; k < cnt; k++)
		{
			out[k] = base + (uint32_t) EBM_CTZ64(bits);
			bits &= bits - 1;
		}
		nids += (size_t) cnt;
	}
	if (map)
		for (w = 0; w < nids; w++)
			ids[w] = map[ids[w]];
	ctx->nids = nids;
	return true;
}

/* Match the event held by the builder; see ebm.h. */
ebm_status
ebm_match(const ebm_ruleset *rs, ebm_builder *event, ebm_match_ctx *ctx,
		  const uint32_t **ids, size_t *nids)
{
	ebm_status	st;
	size_t		c;

	*ids = NULL;
	*nids = 0;
	if (rs == NULL || ctx == NULL || !rs->compiled)
		return EBM_ERR_STATE;
	if (!reserve_subs(ctx, rs->nsubs) ||
		!reserve_ranks(ctx, rs->nranks))
		return EBM_ERR_NOMEM;
	ctx->trie = rs->paths;
	ctx->ticks = 0;
	ctx->interrupted = false;
	ctx->search_steps = 0;
	ctx->over_budget = false;
	ctx->nids = 0;
	st = ebm_event_flatten(rs->paths, ebm_pathtrie_npaths(rs->paths), event, ctx);
	if (st != EBM_OK)
	{
		trim_ctx(ctx);
		return st;
	}
	if (!ebm_ctx_reserve_eval(ctx, rs->maxfields))
	{
		trim_ctx(ctx);
		return EBM_ERR_NOMEM;
	}
	/* a new one-byte generation; clear the stamps when it wraps */
	if (++ctx->sgen_gen == 0)
	{
		if (ctx->sgen)
			memset(ctx->sgen, 0, ctx->nsubcap);
		ctx->sgen_gen = 1;
	}
	ctx->rank_lo = SIZE_MAX;
	ctx->rank_hi = 0;
	ctx->nmatched = 0;
	collect_candidates(rs, ctx);
	for (c = 0; c < ctx->ncands && !ctx->interrupted && !ctx->over_budget; c++)
	{
		uint32_t	s = ctx->cands[c];

		if (ebm_subrule_holds(&rs->subs[s], ctx) &&
			!ctx->interrupted && !ctx->over_budget)
			mark_matched(rs, ctx, s);
		if (!ebm_tick(ctx, 1))
			break;
	}
	/* read the bitmap back (which also clears it) even when stopping */
	if (ctx->nmatched)
		collect_ids(rs, ctx, ctx->rank_lo, ctx->rank_hi);
	else
		ctx->nids = 0;
	trim_ctx(ctx);
	if (ctx->interrupted)
		return EBM_ERR_INTERRUPTED;
	if (ctx->over_budget)
		return EBM_ERR_LIMIT;
	*ids = ctx->ids;
	*nids = ctx->nids;
	return EBM_OK;
}
