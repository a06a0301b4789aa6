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
 * How the choice of array elements is decided, and what it costs
 * ---------------------------------------------------------------
 * Call a field without exists:false positive, one with it an absence field.
 * Choosing one value per positive field, pairwise compatible, is a search
 * whose naive form tries every combination: n^k for k fields in arrays of
 * n objects.  We decide it instead on the tree the arrays form.
 *
 * In an event where no object reaches one field path at two places (no
 * repeated key, no dotted key such as "a.b" beside "a"), every path has one
 * place in each element of the arrays around it.  So, for an array A at
 * path q, the positive fields whose values must come from one element of A
 * are exactly the positive fields whose path lies under q: npos(q) of them,
 * known from the path trie alone.  Call A constrained when npos(q) > 0.
 * An element X of A is good when some choice inside it satisfies all those
 * npos(q) fields and leaves every absence field under q holding; A is good
 * when one of its elements is.  Then X is good exactly when
 *	  (fields with a satisfying value directly in X)
 *	+ (npos of each good array directly in X)  =  npos(q),
 * and no absence field fails in X, because different fields and different
 * child arrays of X never share a path.  The root (the part of the event
 * outside every array) is decided the same way against all positive
 * fields.  An absence field's value fits the choice exactly when the
 * innermost constrained element around it (its anchor) is chosen, since
 * arrays that are not constrained are never narrowed; so the field fails
 * in an anchor when values of it are anchored there and none of them
 * satisfies its other conditions.
 *
 * The decision visits the elements around the positive fields' satisfying
 * values once (each chain of enclosing elements is walked up until it
 * meets a visited element), decides them children first (each element
 * waits for the count of its visited children), and finds each absence
 * value's anchor with memoised, path-compressed walks.  So deciding one
 * sub-rule costs O(V + E + P * F * D): V values at its fields' paths, E
 * array elements of the event, and per array path (P of them) a test of
 * each of its F fields against a path of D segments.  Matching one event
 * costs O(event size) to flatten plus that much per sub-rule decided: at
 * most linear in the event's size times the size of the rules it touches.
 * Memory: a few words per leaf, element, array and trie node, reserved
 * once per event (ebm_ctx_reserve_eval).
 *
 * An event that does reach a path at two places of one object makes the
 * element choice a true search (each such path can be taken from either
 * place, and the choices interact like the variables of a boolean
 * formula).  Such events (rare: a repeated key, or keys spelled with dots
 * beside nested ones) are decided by the direct search over combinations,
 * counted in steps; past EBM_SEARCH_BUDGET steps in one event the match
 * fails with EBM_ERR_LIMIT, never with a guessed verdict.
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
				if (ebm_wildcard_match(lit->str, lit->len, s, n, ctx))
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

/* Parent element of element e (EBM_NO_ELEM: outside every array). */
static inline uint32_t
parent_elem(const ebm_match_ctx *ctx, uint32_t e)
{
	return ctx->arrs[ctx->elems[e].array].parent;
}

/* Count n steps of the budgeted search; false when it must stop. */
static inline bool
search_step(ebm_match_ctx *ctx, uint32_t n)
{
	ctx->search_steps += n;
	if (ctx->search_steps > EBM_SEARCH_BUDGET)
		ctx->over_budget = true;
	return ebm_tick(ctx, n) && !ctx->over_budget;
}

/*
 * May two leaves come from the same element of every array they share?
 * They may unless, where their chains of enclosing elements part, both
 * sit in elements of one array.
 */
static bool
compatible(ebm_match_ctx *ctx, const ebm_leaf *a, const ebm_leaf *b)
{
	uint32_t	x = a->elem;
	uint32_t	y = b->elem;
	uint32_t	dx = a->ntrail;
	uint32_t	dy = b->ntrail;

	search_step(ctx, 1 + (dx > dy ? dx : dy));
	while (dx > dy)
	{
		x = parent_elem(ctx, x);
		dx--;
	}
	while (dy > dx)
	{
		y = parent_elem(ctx, y);
		dy--;
	}
	if (x == y)
		return true;			/* one chain contains the other */
	while (parent_elem(ctx, x) != parent_elem(ctx, y))
	{
		x = parent_elem(ctx, x);
		y = parent_elem(ctx, y);
	}
	return ctx->elems[x].array != ctx->elems[y].array;
}

/* Is leaf l compatible with the leaves chosen for fields 0..nf-1? */
static bool
fits_choice(ebm_match_ctx *ctx, const ebm_leaf *l, uint32_t nf)
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
 * The search for ambiguous events (see the head of the file): choose one
 * candidate per positive field (the nf pick lists), pairwise compatible,
 * such that the absence fields hold too, depth first with an explicit
 * choice array.  Every comparison counts against the event's budget; when
 * it runs out (or the interrupt callback asks to stop) the answer is
 * false and match.c reports the reason instead of the verdict.
 */
static bool
search_choice(const ebm_subrule *s, ebm_match_ctx *ctx, uint32_t nf)
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

		if (!search_step(ctx, 1))
			return false;
		while (ctx->choice[f] < count)
		{
			ok = fits_choice(ctx, ctx->pick[start + ctx->choice[f]], f);
			if (ok && f + 1 == nf && !absences_hold(s, ctx, nf))
				ok = false;
			if (ctx->over_budget || ctx->interrupted)
				return false;
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

/* Grow a stamp array to cap entries, the new ones zero (never a stamp). */
static bool
reserve_stamps(uint32_t **p, size_t *cap, size_t need)
{
	size_t		old = *cap;

	if (need <= *cap)
		return true;
	if (!ebm_grow((void **) p, cap, need, sizeof(uint32_t)))
		return false;
	memset(*p + old, 0, (*cap - old) * sizeof(uint32_t));
	return true;
}

/*
 * Make the scratch space fit sub-rules of up to maxfields fields and the
 * event just flattened (match.c calls this once per event, so deciding
 * allocates nothing).
 */
bool
ebm_ctx_reserve_eval(ebm_match_ctx *ctx, size_t maxfields)
{
	size_t		nnodes = ctx->trie ? ebm_pathtrie_nnodes(ctx->trie) : 0;

	if (!ebm_reserve((void **) &ctx->pickoff, &ctx->pickoffcap, 2 * maxfields + 2,
					 sizeof(uint32_t)) ||
		!ebm_reserve((void **) &ctx->choice, &ctx->choicecap, maxfields + 1,
					 sizeof(uint32_t)) ||
		!ebm_reserve((void **) &ctx->pick, &ctx->pickcap, ctx->nleaves + 1,
					 sizeof(ebm_leaf *)))
		return false;
	if (ctx->nelems + 1 > ctx->ecap)
	{
		size_t		old = ctx->ecap;
		size_t		cap = old ? old : 16;
		void	   *np;

		while (cap < ctx->nelems + 1)
			cap *= 2;
		/* every per-element array has ecap entries; the stamps start zero */
#define EBM_GROW_TO(field, type) \
		do { \
			np = ebm_realloc(ctx->field, cap * sizeof(type)); \
			if (np == NULL) \
				return false; \
			ctx->field = np; \
		} while (0)
		EBM_GROW_TO(estamp, uint32_t);
		EBM_GROW_TO(eastamp, uint32_t);
		EBM_GROW_TO(ecount, uint32_t);
		EBM_GROW_TO(efield, uint32_t);
		EBM_GROW_TO(epend, uint32_t);
		EBM_GROW_TO(eanchor, uint32_t);
		EBM_GROW_TO(equeue, uint32_t);
		EBM_GROW_TO(evisit, uint32_t);
		EBM_GROW_TO(ebad, uint8_t);
#undef EBM_GROW_TO
		memset(ctx->estamp + old, 0, (cap - old) * sizeof(uint32_t));
		memset(ctx->eastamp + old, 0, (cap - old) * sizeof(uint32_t));
		ctx->ecap = cap;
	}
	if (!reserve_stamps(&ctx->astamp, &ctx->acap, ctx->narrs + 1))
		return false;
	if (nnodes + 1 > ctx->ncap)
	{
		size_t		c = ctx->ncap;

		if (!reserve_stamps(&ctx->nstamp, &c, nnodes + 1))
			return false;
		if (!ebm_reserve((void **) &ctx->npos, &ctx->ncap, c, sizeof(uint32_t)))
			return false;
		ctx->ncap = c;
	}
	return true;
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
 * Number of the sub-rule's positive fields whose path lies under trie node
 * node (memoised per decision).
 */
static uint32_t
npos_of(const ebm_subrule *s, ebm_match_ctx *ctx, uint32_t node)
{
	uint32_t	i,
				n = 0;

	if (ctx->nstamp[node] == ctx->dgen)
		return ctx->npos[node];
	for (i = 0; i < s->nfields; i++)
		if (!s->fields[i].absent_ok &&
			ebm_pathtrie_covers(ctx->trie, node,
								ebm_pathtrie_node_of(ctx->trie, s->fields[i].path_id)))
			n++;
	ctx->nstamp[node] = ctx->dgen;
	ctx->npos[node] = n;
	return n;
}

/* Is the array of element e constrained (a positive field lies under it)? */
static inline bool
constrained(const ebm_subrule *s, ebm_match_ctx *ctx, uint32_t e)
{
	return npos_of(s, ctx, ctx->arrs[ctx->elems[e].array].node) > 0;
}

/*
 * Visit element e and the chain of elements around it, up to the first
 * one already visited, counting each new element once in its parent's
 * pending count.
 */
static void
visit_chain(ebm_match_ctx *ctx, uint32_t e, size_t *nvisit)
{
	uint32_t	child = EBM_NO_ELEM;

	while (e != EBM_NO_ELEM)
	{
		bool		fresh = ctx->estamp[e] != ctx->dgen;

		if (fresh)
		{
			ctx->estamp[e] = ctx->dgen;
			ctx->ecount[e] = 0;
			ctx->efield[e] = 0;
			ctx->epend[e] = 0;
			ctx->ebad[e] = 0;
			ctx->evisit[(*nvisit)++] = e;
		}
		if (child != EBM_NO_ELEM)
			ctx->epend[e]++;
		if (!fresh)
			break;
		child = e;
		e = parent_elem(ctx, e);
	}
}

/*
 * The anchor of element e: the innermost constrained element around (or
 * being) e, or EBM_NO_ELEM for the root.  Walks are memoised and every
 * element on one is given the answer, so each element is walked once.
 */
static uint32_t
anchor_of(const ebm_subrule *s, ebm_match_ctx *ctx, uint32_t e)
{
	uint32_t	x = e;
	uint32_t	a;

	while (x != EBM_NO_ELEM && ctx->eastamp[x] != ctx->dgen && !constrained(s, ctx, x))
		x = parent_elem(ctx, x);
	if (x == EBM_NO_ELEM)
		a = EBM_NO_ELEM;
	else if (ctx->eastamp[x] == ctx->dgen)
		a = ctx->eanchor[x];
	else
	{
		a = x;
		ctx->eastamp[x] = ctx->dgen;
		ctx->eanchor[x] = x;
	}
	while (e != x)
	{
		ctx->eastamp[e] = ctx->dgen;
		ctx->eanchor[e] = a;
		e = parent_elem(ctx, e);
	}
	return a;
}

/*
 * Decide the choice of array elements on the array tree (see the head of
 * the file).  The nf pick lists hold the satisfying in-array values of the
 * positive fields not settled outside every array; nsettled fields were.
 */
static bool
tree_decide(const ebm_subrule *s, ebm_match_ctx *ctx, uint32_t nf,
			uint32_t nsettled)
{
	size_t		nvisit = 0;
	size_t		nq = 0;
	uint32_t	rootcount = nsettled;
	bool		rootbad = false;
	uint32_t	npos_total = 0;
	uint32_t	i,
				j;
	size_t		v;

	if (++ctx->dgen == 0)
	{
		memset(ctx->estamp, 0, ctx->ecap * sizeof(uint32_t));
		memset(ctx->eastamp, 0, ctx->ecap * sizeof(uint32_t));
		memset(ctx->astamp, 0, ctx->acap * sizeof(uint32_t));
		memset(ctx->nstamp, 0, ctx->ncap * sizeof(uint32_t));
		ctx->dgen = 1;
	}
	for (i = 0; i < s->nfields; i++)
		if (!s->fields[i].absent_ok)
			npos_total++;

	/* the satisfying values of the positive fields, in their elements */
	for (i = 0; i < nf; i++)
	{
		uint32_t	start = ctx->pickoff[2 * i];
		uint32_t	count = ctx->pickoff[2 * i + 1];

		if (!ebm_tick(ctx, count))
			return false;
		for (j = 0; j < count; j++)
		{
			uint32_t	e = ctx->pick[start + j]->elem;

			visit_chain(ctx, e, &nvisit);
			if (ctx->efield[e] != i + 1)
			{
				ctx->efield[e] = i + 1;
				ctx->ecount[e]++;
			}
		}
	}

	/* the absence fields: where they fail */
	for (i = 0; i < s->nfields; i++)
	{
		const ebm_field *f = &s->fields[i];
		uint32_t	p = f->path_id;
		uint32_t	n = (p < ctx->npathcap && ctx->pgen[p] == ctx->gen) ? ctx->pcount[p] : 0;
		const ebm_leaf *leaves = ctx->byp + (n ? ctx->pfirst[p] : 0);
		uint32_t	mark = nf + 1 + i;
		bool		rootsat = false;
		int			pass;

		if (!f->absent_ok || n == 0)
			continue;
		if (!ebm_tick(ctx, 2 * n))
			return false;
		/* first the anchors with a satisfying value, then the others */
		for (pass = 0; pass < 2; pass++)
			for (j = 0; j < n; j++)
			{
				const ebm_leaf *l = &leaves[j];
				bool		sat = field_holds(f, l, ctx);
				uint32_t	a;

				if (sat != (pass == 0))
					continue;
				a = l->elem == EBM_NO_ELEM ? EBM_NO_ELEM : anchor_of(s, ctx, l->elem);
				if (a == EBM_NO_ELEM)
				{
					if (sat)
						rootsat = true;
					else if (!rootsat)
						rootbad = true;
				}
				else if (ctx->estamp[a] == ctx->dgen)
				{
					/* (an element never visited cannot be good anyway) */
					if (sat)
						ctx->efield[a] = mark;
					else if (ctx->efield[a] != mark)
						ctx->ebad[a] = 1;
				}
			}
	}

	/* decide the visited elements, children first */
	for (v = 0; v < nvisit; v++)
		if (ctx->epend[ctx->evisit[v]] == 0)
			ctx->equeue[nq++] = ctx->evisit[v];
	if (!ebm_tick(ctx, (uint32_t) (nvisit < UINT32_MAX ? nvisit : UINT32_MAX)))
		return false;
	while (nq > 0)
	{
		uint32_t	e = ctx->equeue[--nq];
		uint32_t	a = ctx->elems[e].array;
		uint32_t	want = npos_of(s, ctx, ctx->arrs[a].node);
		uint32_t	p = ctx->arrs[a].parent;

		if (!ctx->ebad[e] && ctx->ecount[e] == want && ctx->astamp[a] != ctx->dgen)
		{
			/* the array is good: its fields count in its parent */
			ctx->astamp[a] = ctx->dgen;
			if (p == EBM_NO_ELEM)
				rootcount += want;
			else
				ctx->ecount[p] += want;
		}
		if (p != EBM_NO_ELEM && --ctx->epend[p] == 0)
			ctx->equeue[nq++] = p;
	}
	return !rootbad && rootcount == npos_total;
}

/*
 * Does the sub-rule hold for the event flattened in ctx?
 *
 * A value outside every array fits with any choice of the other fields, so
 * a field with such a satisfying value is settled at once; only fields whose
 * satisfying values all sit in arrays take part in the choice of array
 * elements (tree_decide, or search_choice for ambiguous events), as do
 * fields that may hold by absence.  False as well when the match must stop
 * (ctx->interrupted or ctx->over_budget say so).
 */
bool
ebm_subrule_holds(const ebm_subrule *s, ebm_match_ctx *ctx)
{
	uint32_t	nf = 0;
	uint32_t	nsettled = 0;
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
		if (!ebm_tick(ctx, n))
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
			nsettled++;
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
	if (ctx->ambiguous || ctx->force_search)
		return search_choice(s, ctx, nf);
	return tree_decide(s, ctx, nf, nsettled);
}
