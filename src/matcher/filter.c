/*-------------------------------------------------------------------------
 *
 * filter.c
 *	  Choosing an index entry's pre-filter, and the digest tables that hold
 *	  the entries (see filter.h).
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "ruleset.h"

/* The literal number i of an exact field, across its conditions. */
const ebm_literal *
ebm_field_literal(const ebm_field *f, uint32_t i)
{
	uint32_t	k;

	for (k = 0; k < f->ncond; k++)
	{
		if (i < f->conds[k].nlits)
			return &f->conds[k].lits[i];
		i -= f->conds[k].nlits;
	}
	return NULL;
}

/* The field of s at path_id, or NULL. */
const ebm_field *
ebm_subrule_field_at(const ebm_subrule *s, uint32_t path_id)
{
	uint32_t	i;

	for (i = 0; i < s->nfields; i++)
		if (s->fields[i].path_id == path_id)
			return &s->fields[i];
	return NULL;
}

/* Are two literals the same JSON value (numbers by value)? */
bool
ebm_literal_same(const ebm_literal *a, const ebm_literal *b)
{
	if (a->vtype != b->vtype)
		return false;
	if (a->vtype == EBM_V_NUMBER && a->finite && b->finite)
		return a->num == b->num;
	if (a->vtype == EBM_V_NUMBER && a->finite != b->finite)
		return false;
	return a->len == b->len && ebm_bytes_equal(a->str, b->str, a->len);
}

/*
 * How much a field is worth as a pre-filter (lower is better, 0: never).
 * Selective kinds first; anything-but and exists rarely filter much, but
 * inline they still let a probe decide a whole sub-rule.
 */
static int
filter_rank(const ebm_field *f)
{
	int			worst = 1;
	uint32_t	k;

	if (f->ncond == 0)
		return 0;
	for (k = 0; k < f->ncond; k++)
	{
		int			r;

		switch (f->conds[k].kind)
		{
			case EBM_C_EXACT:
				r = 1;
				break;
			case EBM_C_PREFIX:
			case EBM_C_SUFFIX:
			case EBM_C_EQUALS_IC:
				r = 2;
				break;
			case EBM_C_NUMERIC:
				r = 3;
				break;
			case EBM_C_CIDR:
			case EBM_C_WILDCARD:
				r = 4;
				break;
			default:
				r = 5;
				break;
		}
		if (r > worst)
			worst = r;
	}
	return worst;
}

/* Fill the inline form of field f as a filter, if it has one. */
static void
make_inline(ebm_filter *flt, const ebm_field *f)
{
	const ebm_cond *c = &f->conds[0];
	uint32_t	i;

	flt->kind = EBM_F_FIELD;
	if (f->ncond != 1)
		return;
	switch (c->kind)
	{
		case EBM_C_NUMERIC:
			flt->kind = EBM_F_RANGE;
			flt->u.r.lo = c->has_lo ? c->lo : -HUGE_VAL;
			flt->u.r.hi = c->has_hi ? c->hi : HUGE_VAL;
			flt->incl = ((!c->has_lo || c->lo_incl) ? EBM_FI_LO : 0) |
				((!c->has_hi || c->hi_incl) ? EBM_FI_HI : 0);
			break;
		case EBM_C_EXISTS:
			flt->kind = c->exists ? EBM_F_EXISTS : EBM_F_ABSENT;
			break;
		case EBM_C_PREFIX:
			if (!c->icase && c->nlits == 1 && c->lits[0].len <= 8)
			{
				flt->kind = EBM_F_PREFIX;
				flt->n = (uint8_t) c->lits[0].len;
				flt->u.d[0] = 0;
				memcpy(&flt->u.d[0], c->lits[0].str, c->lits[0].len);
				flt->u.d[1] = 0;
				memset(&flt->u.d[1], 0xFF, c->lits[0].len);
			}
			break;
		case EBM_C_ANYTHING_BUT:
			if (c->abkind == EBM_AB_VALUES && c->nlits <= EBM_FILTER_MAX_DIGESTS)
			{
				flt->kind = EBM_F_NOTIN;
				flt->n = (uint8_t) c->nlits;
				/* the classes are known once the index is resolved */
				for (i = 0; i < c->nlits; i++)
					flt->u.nin.id[i] = 0;
			}
			break;
		default:
			break;
	}
}

/*
 * Choose the pre-filter of sub-rule s, whose anchor is the given fields:
 * the best-ranked other field, inline when possible.
 */
void
ebm_filter_choose(ebm_filter *flt, const ebm_subrule *s,
				  const ebm_field *const *anchors, uint32_t nanchors)
{
	uint32_t	best = UINT32_MAX;
	int			bestrank = 0;
	uint32_t	i,
				j;

	memset(flt, 0, sizeof(*flt));
	flt->kind = EBM_F_NONE;
	for (i = 0; i < s->nfields; i++)
	{
		int			r = filter_rank(&s->fields[i]);

		for (j = 0; j < nanchors; j++)
			if (anchors[j] == &s->fields[i])
				r = 0;
		if (r && (bestrank == 0 || r < bestrank))
		{
			best = i;
			bestrank = r;
		}
	}
	if (best == UINT32_MAX)
	{
		flt->covered = (s->nfields == nanchors);
		return;
	}
	flt->path = s->fields[best].path_id;
	make_inline(flt, &s->fields[best]);
	if (flt->kind == EBM_F_FIELD)
		flt->u.field = best;
	else if (flt->kind == EBM_F_NOTIN)
		flt->u.nin.field = best;
	flt->covered = (flt->kind != EBM_F_FIELD && s->nfields == nanchors + 1);
}

/*
 * Order entries by digest, then by the kind and path of their filter, then
 * sub-rule: within a run, the filters a probe tests one after the other are
 * mostly alike (the same branches taken, the same event values looked up).
 */
static int
cmp_hentry(const void *a, const void *b)
{
	const ebm_hentry *x = a;
	const ebm_hentry *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	if (x->filter.kind != y->filter.kind)
		return x->filter.kind < y->filter.kind ? -1 : 1;
	if (x->filter.path != y->filter.path)
		return x->filter.path < y->filter.path ? -1 : 1;
	return (x->sub > y->sub) - (x->sub < y->sub);
}

/*
 * Do two entries of a group table have the same key values?  (Different
 * values may share a digest; such a run is not "pure" and its entries are
 * always decided exactly.)
 */
static bool
same_key_values(const ebm_ruleset *rs, const ebm_group *groups,
				const ebm_hentry *a, const ebm_hentry *b)
{
	const ebm_group *g = &groups[a->group];
	uint32_t	i;

	if (a->group != b->group)
		return false;
	for (i = 0; i < g->npaths; i++)
	{
		const ebm_field *fa = ebm_subrule_field_at(&rs->subs[a->sub], g->paths[i]);
		const ebm_field *fb = ebm_subrule_field_at(&rs->subs[b->sub], g->paths[i]);

		if (!fa || !fb ||
			!ebm_literal_same(ebm_field_literal(fa, a->lit[i]), ebm_field_literal(fb, b->lit[i])))
			return false;
	}
	return true;
}

/* Do two entries of a string table anchor on the same literal? */
static bool
same_anchor(const ebm_ruleset *rs, const ebm_hentry *a, const ebm_hentry *b)
{
	const ebm_field *fa = ebm_subrule_field_at(&rs->subs[a->sub], a->group);
	const ebm_field *fb = ebm_subrule_field_at(&rs->subs[b->sub], b->group);

	return a->skind == b->skind && a->group == b->group && fa && fb &&
		ebm_literal_same(ebm_field_literal(fa, a->lit[0]), ebm_field_literal(fb, b->lit[0]));
}

/*
 * Build a digest table from n entries (sorted here).  Each run also
 * records an exemplar entry and whether all its entries share the
 * exemplar's anchor values (group tables: groups != NULL; string tables:
 * strings), so that a probe can confirm a whole run with one comparison.
 * The sub-rules must be ranked already: each entry carries its rule's rank,
 * so that a probe deciding a sub-rule need not read the sub-rule.
 */
bool
ebm_htab_build(ebm_htab *t, ebm_hentry *e, size_t n,
			   const ebm_ruleset *rs, const ebm_group *groups, bool strings)
{
	size_t		distinct = 0;
	size_t		i;

	memset(t, 0, sizeof(*t));
	if (n)
		qsort(e, n, sizeof(ebm_hentry), cmp_hentry);
	for (i = 0; i < n; i++)
		if (i == 0 || e[i].key != e[i - 1].key)
			distinct++;
	t->cap = 16;
	while (t->cap < distinct * 2)
		t->cap *= 2;
	t->slots = ebm_calloc(t->cap, sizeof(ebm_hslot));
	t->src = ebm_calloc(t->cap, sizeof(ebm_hslot_src));
	t->ents = ebm_calloc(n ? n : 1, sizeof(ebm_hent));
	if (!t->slots || !t->src || !t->ents)
		return false;
	for (i = 0; i < n; i++)
	{
		size_t		slot = (size_t) e[i].key & (t->cap - 1);
		ebm_hslot  *h;

		t->ents[i].sub = e[i].sub;
		t->ents[i].rank = rs->subs[e[i].sub].rank;
		t->ents[i].f = e[i].filter;
		while (t->slots[slot].key != 0 && t->slots[slot].key != e[i].key)
			slot = (slot + 1) & (t->cap - 1);
		h = &t->slots[slot];
		if (h->key == 0)
		{
			h->key = e[i].key;
			h->start = (uint32_t) i;
			t->src[slot].sub = e[i].sub;
			t->src[slot].where = e[i].group;
			memcpy(t->src[slot].lit, e[i].lit, sizeof(t->src[slot].lit));
			h->ex_kind = e[i].skind;
			h->pure = ((groups != NULL || strings) && !e[i].noex);
		}
		else if (h->pure &&
				 (e[i].noex ||
				  (groups ? !same_key_values(rs, groups, &e[h->start], &e[i])
				   : !same_anchor(rs, &e[h->start], &e[i]))))
			h->pure = false;
		h->count = (uint32_t) (i + 1 - h->start);
	}
	t->nsubs = n;
	return true;
}

/* Key literal k of the exemplar of slot i (NULL if it cannot be found). */
static const ebm_literal *
exemplar_literal(const ebm_htab *t, const ebm_ruleset *rs,
				 const ebm_group *groups, size_t i, uint32_t k)
{
	const ebm_hslot_src *src = &t->src[i];
	uint32_t	path = groups ? groups[src->where].paths[k] : src->where;
	const ebm_field *f = ebm_subrule_field_at(&rs->subs[src->sub], path);

	return f ? ebm_field_literal(f, src->lit[k]) : NULL;
}

/* Bytes of slot i's exemplar record in t->expool; 0 makes it impure. */
static size_t
exemplar_size(const ebm_htab *t, const ebm_ruleset *rs,
			  const ebm_group *groups, size_t i)
{
	uint32_t	n = groups ? groups[t->src[i].where].npaths : 1;
	size_t		size = n * sizeof(ebm_literal);
	uint32_t	k;

	for (k = 0; k < n; k++)
	{
		const ebm_literal *lit = exemplar_literal(t, rs, groups, i, k);

		if (lit == NULL)
			return 0;
		size += lit->len;
	}
	return (size + 7) & ~(size_t) 7;
}

/*
 * Copy the key literals of every pure run's exemplar (groups: npaths of
 * them, in the group's path order; string tables: one) into one record,
 * followed by their text, so that a probe confirms a run by reading one
 * compact record instead of walking the exemplar sub-rule.  Runs once the
 * sub-rules have their final place (after compile.c's relayout).  A run
 * whose literals cannot be found is made impure.
 */
bool
ebm_htab_resolve(ebm_htab *t, const ebm_ruleset *rs, const ebm_group *groups)
{
	size_t		total = 0,
				at = 0,
				i;
	uint32_t	k;

	ebm_free(t->expool);
	t->expool = NULL;
	for (i = 0; i < t->cap; i++)
		if (t->slots[i].key && t->slots[i].pure)
		{
			size_t		size = exemplar_size(t, rs, groups, i);

			/* offsets must fit the slot's 32 bits */
			if (size == 0 || total + size > UINT32_MAX)
				t->slots[i].pure = false;
			else
				total += size;
		}
	t->expool = ebm_malloc(total ? total : 1);
	if (t->expool == NULL)
		return false;
	for (i = 0; i < t->cap; i++)
	{
		ebm_hslot  *h = &t->slots[i];
		uint32_t	n;
		ebm_literal *rec;
		char	   *text;

		if (!h->key || !h->pure)
			continue;
		n = groups ? groups[t->src[i].where].npaths : 1;
		h->ex = (uint32_t) at;
		rec = (ebm_literal *) (t->expool + at);
		text = (char *) (rec + n);
		for (k = 0; k < n; k++)
		{
			const ebm_literal *lit = exemplar_literal(t, rs, groups, i, k);

			rec[k] = *lit;
			if (lit->len)
				memcpy(text, lit->str, lit->len);
			rec[k].str = text;
			text += lit->len;
		}
		at += exemplar_size(t, rs, groups, i);
	}
	return true;
}

/* The slot of a digest, or NULL. */
const ebm_hslot *
ebm_htab_find(const ebm_htab *t, uint64_t key)
{
	size_t		slot;

	if (t->cap == 0)
		return NULL;
	slot = (size_t) key & (t->cap - 1);
	while (t->slots[slot].key != 0)
	{
		if (t->slots[slot].key == key)
			return &t->slots[slot];
		slot = (slot + 1) & (t->cap - 1);
	}
	return NULL;
}

/* Free a digest table. */
void
ebm_htab_free(ebm_htab *t)
{
	ebm_free(t->slots);
	ebm_free(t->src);
	ebm_free(t->expool);
	ebm_free(t->ents);
	memset(t, 0, sizeof(*t));
}
