/*-------------------------------------------------------------------------
 *
 * eval.c
 *	  Decide one condition against one value, and one sub-rule against a
 *	  flattened event.  This is the reference semantics: the index
 *	  (index.c, match.c) only chooses which sub-rules to decide here, and
 *	  decides by itself only sub-rules whose every field it has checked.
 *
 * A sub-rule holds when every field has a value satisfying one of its
 * conditions, with two refinements:
 *	- a field whose conditions include exists:false also holds when the
 *	  event has no value (no leaf) at that path;
 *	- the values chosen for different fields must be able to come from
 *	  the same element of every array they share (arrays of objects are
 *	  matched element by element); an exists:false field holds when no
 *	  value at its path fits the chosen elements.
 * An allocation failure while deciding counts as "does not hold" (match.c
 * reserves the scratch space beforehand, so this does not happen there).
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "ebm_internal.h"

/* Make sure the case-folding scratch buffer holds need bytes. */
bool
ebm_ctx_reserve_fold(ebm_match_ctx *ctx, size_t need)
{
	return ebm_reserve((void **) &ctx->fold, &ctx->foldcap, need, 1);
}

/* Case-fold a leaf's string into the context's scratch buffer. */
static const char *
fold_leaf(const ebm_leaf *v, ebm_match_ctx *ctx, size_t *len)
{
	if (!ebm_ctx_reserve_fold(ctx, (size_t) v->len * EBM_CASEFOLD_MAX_GROWTH + 1))
		return NULL;
	*len = ebm_casefold(v->str, v->len, ctx->fold);
	return ctx->fold;
}

/* Does string s (len n) start, or end, with the literal? */
static bool
affix(const ebm_literal *lit, const char *s, size_t n, bool suffix)
{
	if (lit->len > n)
		return false;
	if (suffix)
		return ebm_bytes_equal(s + n - lit->len, lit->str, lit->len);
	return ebm_bytes_equal(s, lit->str, lit->len);
}

/* Does any literal of c stand in the string relation of kind to v? */
static bool
any_string_literal(const ebm_cond *c, int kind, const ebm_leaf *v,
				   ebm_match_ctx *ctx)
{
	const char *s = v->str;
	size_t		n = v->len;
	uint32_t	i;

	if (v->vtype != EBM_V_STRING)
		return false;
	if (kind == EBM_C_EQUALS_IC ||
		((kind == EBM_C_PREFIX || kind == EBM_C_SUFFIX) && c->icase))
	{
		s = fold_leaf(v, ctx, &n);
		if (s == NULL)
			return false;
	}
	for (i = 0; i < c->nlits; i++)
	{
		const ebm_literal *lit = &c->lits[i];

		switch (kind)
		{
			case EBM_C_PREFIX:
				if (affix(lit, s, n, false))
					return true;
				break;
			case EBM_C_SUFFIX:
				if (affix(lit, s, n, true))
					return true;
				break;
			case EBM_C_EQUALS_IC:
				if (lit->len == n && ebm_bytes_equal(lit->str, s, n))
					return true;
				break;
			case EBM_C_WILDCARD:
				if (ebm_wildcard_match(lit->str, lit->len, s, n))
					return true;
				break;
		}
	}
	return false;
}

/* Is the number inside the numeric condition's range? */
static bool
in_range(const ebm_cond *c, double x)
{
	if (c->has_lo && (c->lo_incl ? x < c->lo : x <= c->lo))
		return false;
	if (c->has_hi && (c->hi_incl ? x > c->hi : x >= c->hi))
		return false;
	return true;
}

/* Does the value v (a leaf of the event) satisfy the condition c? */
bool
ebm_cond_holds(const ebm_cond *c, const ebm_leaf *v, ebm_match_ctx *ctx)
{
	uint32_t	i;

	switch (c->kind)
	{
		case EBM_C_EXACT:
			for (i = 0; i < c->nlits; i++)
				if (ebm_literal_equals(&c->lits[i], v))
					return true;
			return false;
		case EBM_C_PREFIX:
		case EBM_C_SUFFIX:
		case EBM_C_EQUALS_IC:
		case EBM_C_WILDCARD:
			return any_string_literal(c, c->kind, v, ctx);
		case EBM_C_NUMERIC:
			return v->vtype == EBM_V_NUMBER && v->finite && in_range(c, v->num);
		case EBM_C_EXISTS:
			return c->exists;
		case EBM_C_CIDR:
			return v->vtype == EBM_V_STRING && ebm_cidr_contains(&c->cidr, v->str, v->len);
		case EBM_C_ANYTHING_BUT:
			switch (c->abkind)
			{
				case EBM_AB_VALUES:
					for (i = 0; i < c->nlits; i++)
						if (ebm_literal_equals(&c->lits[i], v))
							return false;
					return true;
				case EBM_AB_PREFIX:
					return !any_string_literal(c, EBM_C_PREFIX, v, ctx);
				case EBM_AB_SUFFIX:
					return !any_string_literal(c, EBM_C_SUFFIX, v, ctx);
				case EBM_AB_EQUALS_IC:
					return !any_string_literal(c, EBM_C_EQUALS_IC, v, ctx);
				case EBM_AB_WILDCARD:
					return !any_string_literal(c, EBM_C_WILDCARD, v, ctx);
			}
			return false;
	}
	return false;
}

/* May two leaves come from the same element of every array they share? */
static bool
compatible(const ebm_match_ctx *ctx, const ebm_leaf *a, const ebm_leaf *b)
{
	const ebm_arrpos *ta = ctx->trails + a->trail;
	const ebm_arrpos *tb = ctx->trails + b->trail;
	uint16_t	n = a->ntrail < b->ntrail ? a->ntrail : b->ntrail;
	uint16_t	i;

	for (i = 0; i < n; i++)
	{
		if (ta[i].array != tb[i].array)
			return true;
		if (ta[i].index != tb[i].index)
			return false;
	}
	return true;
}

/* Is leaf l compatible with the leaves chosen for fields 0..nf-1? */
static bool
fits_choice(const ebm_match_ctx *ctx, const ebm_leaf *l, uint32_t nf)
{
	uint32_t	g;

	for (g = 0; g < nf; g++)
		if (!compatible(ctx, l, ctx->pick[ctx->pickoff[2 * g] + ctx->choice[g]]))
			return false;
	return true;
}

/*
 * With the leaves chosen for the nf positive fields, does every field that
 * may hold by absence hold?  It does when one of its values satisfies its
 * other conditions and fits the choice, or when none of its values fits
 * the choice at all (the field is absent from the chosen array elements).
 */
static bool
absences_hold(const ebm_subrule *s, ebm_match_ctx *ctx, uint32_t nf)
{
	uint32_t	i;

	for (i = 0; i < s->nfields; i++)
	{
		const ebm_field *f = &s->fields[i];
		uint32_t	p = f->path_id;
		uint32_t	n;
		const ebm_leaf *leaves;
		bool		present = false;
		uint32_t	j,
					k;

		if (!f->absent_ok)
			continue;
		n = (p < ctx->npathcap && ctx->pgen[p] == ctx->gen) ? ctx->pcount[p] : 0;
		leaves = ctx->byp + (n ? ctx->pfirst[p] : 0);
		for (j = 0; j < n; j++)
		{
			if (!fits_choice(ctx, &leaves[j], nf))
				continue;
			present = true;
			for (k = 0; k < f->ncond; k++)
				if (ebm_cond_holds(&f->conds[k], &leaves[j], ctx))
					break;
			if (k < f->ncond)
				break;
		}
		if (present && j == n)
			return false;
	}
	return true;
}

/*
 * Choose one candidate per positive field (the nf pick lists), pairwise
 * compatible, such that the absence fields hold too: depth-first search
 * with an explicit choice array.
 */
static bool
consistent_choice(const ebm_subrule *s, ebm_match_ctx *ctx, uint32_t nf)
{
	uint32_t	f = 0;

	if (nf == 0)
		return absences_hold(s, ctx, 0);
	ctx->choice[0] = 0;
	while (true)
	{
		uint32_t	start = ctx->pickoff[2 * f];
		uint32_t	count = ctx->pickoff[2 * f + 1];
		bool		ok = false;

		while (ctx->choice[f] < count)
		{
			ok = fits_choice(ctx, ctx->pick[start + ctx->choice[f]], f);
			if (ok && f + 1 == nf && !absences_hold(s, ctx, nf))
				ok = false;
			if (ok)
				break;
			ctx->choice[f]++;
		}
		if (ok)
		{
			if (f + 1 == nf)
				return true;
			ctx->choice[++f] = 0;
		}
		else
		{
			if (f == 0)
				return false;
			ctx->choice[--f]++;
		}
	}
}

/*
 * Make the backtracking scratch fit sub-rules of up to maxfields fields
 * (match.c calls this once per event, so deciding allocates nothing).
 */
bool
ebm_ctx_reserve_eval(ebm_match_ctx *ctx, size_t maxfields)
{
	return ebm_reserve((void **) &ctx->pickoff, &ctx->pickoffcap, 2 * maxfields + 2,
					   sizeof(uint32_t)) &&
		ebm_reserve((void **) &ctx->choice, &ctx->choicecap, maxfields + 1,
					sizeof(uint32_t)) &&
		ebm_reserve((void **) &ctx->pick, &ctx->pickcap, ctx->nleaves + 1,
					sizeof(ebm_leaf *));
}

/*
 * Does the value satisfy one of the field's conditions?  The common kinds
 * are decided inline; the string kinds go through ebm_cond_holds.
 */
static inline bool
field_holds(const ebm_field *f, const ebm_leaf *v, ebm_match_ctx *ctx)
{
	uint32_t	k,
				i;

	for (k = 0; k < f->ncond; k++)
	{
		const ebm_cond *c = &f->conds[k];

		switch (c->kind)
		{
			case EBM_C_EXACT:
				for (i = 0; i < c->nlits; i++)
					if (ebm_literal_equals(&c->lits[i], v))
						return true;
				break;
			case EBM_C_NUMERIC:
				if (v->vtype == EBM_V_NUMBER && v->finite && in_range(c, v->num))
					return true;
				break;
			case EBM_C_EXISTS:
				if (c->exists)
					return true;
				break;
			case EBM_C_ANYTHING_BUT:
				if (c->abkind == EBM_AB_VALUES)
				{
					for (i = 0; i < c->nlits; i++)
						if (ebm_literal_equals(&c->lits[i], v))
							break;
					if (i == c->nlits)
						return true;
					break;
				}
				/* FALLTHROUGH */
			default:
				if (ebm_cond_holds(c, v, ctx))
					return true;
				break;
		}
	}
	return false;
}

/*
 * Does the sub-rule hold for the event flattened in ctx?
 *
 * A value outside every array fits with any choice of the other fields, so
 * a field with such a satisfying value is settled at once; only fields whose
 * satisfying values all sit in arrays take part in the search for one
 * consistent choice (consistent_choice), as do fields that may hold by
 * absence.
 */
bool
ebm_subrule_holds(const ebm_subrule *s, ebm_match_ctx *ctx)
{
	uint32_t	nf = 0;
	uint32_t	npick = 0;
	bool		absences = false;
	uint32_t	i;
	/* locals: the compiler cannot keep ctx's fields in registers itself */
	const uint32_t *pgen = ctx->pgen;
	const uint32_t *pcount = ctx->pcount;
	const uint32_t *pfirst = ctx->pfirst;
	const ebm_leaf *byp = ctx->byp;
	const ebm_leaf **pick = ctx->pick;
	uint32_t	gen = ctx->gen;
	size_t		npaths = ctx->npathcap;

	if (2 * (size_t) s->nfields + 2 > ctx->pickoffcap || ctx->nleaves + 1 > ctx->pickcap)
	{
		/* usually match.c has reserved this already */
		if (!ebm_ctx_reserve_eval(ctx, s->nfields))
			return false;
		pick = ctx->pick;
	}
	for (i = 0; i < s->nfields; i++)
	{
		const ebm_field *f = &s->fields[i];
		uint32_t	p = f->path_id;
		uint32_t	n = (p < npaths && pgen[p] == gen) ? pcount[p] : 0;
		const ebm_leaf *leaves;
		uint32_t	first = npick;
		uint32_t	j;

		if (f->absent_ok)
		{
			/* decided after the others, see absences_hold */
			absences = true;
			continue;
		}
		if (n == 0)
			return false;
		leaves = byp + pfirst[p];
		for (j = 0; j < n; j++)
		{
			if (!field_holds(f, &leaves[j], ctx))
				continue;
			if (leaves[j].ntrail == 0)
				break;			/* fits any choice: field settled */
			pick[npick++] = &leaves[j];
		}
		if (j < n)
		{
			npick = first;
			continue;
		}
		if (npick == first)
			return false;
		ctx->pickoff[2 * nf] = first;
		ctx->pickoff[2 * nf + 1] = npick - first;
		nf++;
	}
	if (!absences && nf < 2)
		return true;			/* nothing to keep consistent */
	return consistent_choice(s, ctx, nf);
}
