/*-------------------------------------------------------------------------
 *
 * index.c
 *	  Build the candidate index of a rule set (see index.h for its shape).
 *
 * Each sub-rule gets exactly one anchor, chosen by how selective and how
 * cheap to look up it is: its exact-value fields together, else one field
 * of string conditions, else one numeric field, else any field that needs
 * a value, else nothing (exists:false only: checked for every event).
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ruleset.h"

/* A (path, value) pair, to be grouped by path. */
typedef struct pathval
{
	uint32_t	path;
	uint32_t	kind;
	uint32_t	val;
} pathval;

/* Growable arrays used while building. */
typedef struct builder_state
{
	ebm_hentry *exact;
	size_t		nexact,
				capexact;
	ebm_hentry *strings;
	size_t		nstrings,
				capstrings;
	pathval    *pv;				/* kind 0: group by first path, 1: presence,
								 * 2..5: string lengths */
	size_t		npv,
				cappv;
	ebm_range  *ranges;
	uint32_t   *rangepath;
	size_t		nranges,
				capranges,
				caprangepath;
	uint32_t   *always;
	size_t		nalways,
				capalways;
	/* group signatures */
	uint64_t   *sigkeys;		/* open addressing: signature digest */
	uint32_t   *siggroup;
	size_t		sigcap;
	size_t		capgroups;
} builder_state;

/* Order path/kind/value triples. */
static int
cmp_pathval(const void *a, const void *b)
{
	const pathval *x = a;
	const pathval *y = b;

	if (x->path != y->path)
		return x->path < y->path ? -1 : 1;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return (x->val > y->val) - (x->val < y->val);
}

/* Free everything the index owns. */
void
ebm_index_free(ebm_index *ix)
{
	uint32_t	i;
	int			k;

	for (i = 0; i < ix->ngroups; i++)
		ebm_free(ix->groups[i].all);
	ebm_free(ix->groups);
	ebm_htab_free(&ix->exact);
	ebm_htab_free(&ix->strings);
	for (i = 0; i < ix->npaths; i++)
	{
		ebm_free(ix->paths[i].groups);
		ebm_free(ix->paths[i].presence);
		ebm_free(ix->paths[i].ranges);
		for (k = 0; k < 4; k++)
			ebm_free(ix->paths[i].lens[k]);
	}
	ebm_free(ix->paths);
	ebm_free(ix->always);
	ebm_free(ix->nin);
	ebm_free(ix->nin_amb);
	ebm_free(ix->nin_slots);
	memset(ix, 0, sizeof(*ix));
}

/* Append an entry (false when out of memory). */
static bool
push_entry(ebm_hentry **v, size_t *n, size_t *cap, const ebm_hentry *e)
{
	if (!ebm_grow((void **) v, cap, *n + 1, sizeof(ebm_hentry)))
		return false;
	(*v)[(*n)++] = *e;
	return true;
}

/* Append a per-path fact (false when out of memory). */
static bool
push_pv(builder_state *st, uint32_t path, uint32_t kind, uint32_t val)
{
	if (!ebm_grow((void **) &st->pv, &st->cappv, st->npv + 1, sizeof(pathval)))
		return false;
	st->pv[st->npv].path = path;
	st->pv[st->npv].kind = kind;
	st->pv[st->npv].val = val;
	st->npv++;
	return true;
}

/* Is every condition of the field an exact value? */
static bool
field_is_exact(const ebm_field *f)
{
	uint32_t	k;

	if (f->ncond == 0)
		return false;
	for (k = 0; k < f->ncond; k++)
		if (f->conds[k].kind != EBM_C_EXACT)
			return false;
	return true;
}

/* Number of literals of an exact field (its OR-list length). */
static uint32_t
field_nlits(const ebm_field *f)
{
	uint32_t	k,
				n = 0;

	for (k = 0; k < f->ncond; k++)
		n += f->conds[k].nlits;
	return n;
}

/* Find or create the group of a signature (ascending path ids). */
static int64_t
group_for(ebm_index *ix, builder_state *st, const uint32_t *paths, uint32_t n)
{
	uint64_t	h = EBM_HASH_SEED;
	size_t		slot;
	uint32_t	i;
	ebm_group  *g;

	for (i = 0; i < n; i++)
		h = ebm_hash_mix(h * 31 + paths[i] + 1);
	h = h ? h : 1;
	if ((ix->ngroups + 1) * 2 > st->sigcap)
	{
		/* grow the signature table and re-insert */
		size_t		ncap = st->sigcap ? st->sigcap * 2 : 64;
		uint64_t   *nk = ebm_calloc(ncap, sizeof(uint64_t));
		uint32_t   *ng = ebm_calloc(ncap, sizeof(uint32_t));

		if (!nk || !ng)
		{
			ebm_free(nk);
			ebm_free(ng);
			return -1;
		}
		for (slot = 0; slot < st->sigcap; slot++)
			if (st->sigkeys[slot])
			{
				size_t		j = (size_t) st->sigkeys[slot] & (ncap - 1);

				while (nk[j])
					j = (j + 1) & (ncap - 1);
				nk[j] = st->sigkeys[slot];
				ng[j] = st->siggroup[slot];
			}
		ebm_free(st->sigkeys);
		ebm_free(st->siggroup);
		st->sigkeys = nk;
		st->siggroup = ng;
		st->sigcap = ncap;
	}
	slot = (size_t) h & (st->sigcap - 1);
	while (st->sigkeys[slot])
	{
		if (st->sigkeys[slot] == h)
		{
			g = &ix->groups[st->siggroup[slot]];
			if (g->npaths == n && memcmp(g->paths, paths, n * sizeof(uint32_t)) == 0)
				return st->siggroup[slot];
		}
		slot = (slot + 1) & (st->sigcap - 1);
	}
	if (!ebm_grow((void **) &ix->groups, &st->capgroups, ix->ngroups + 1, sizeof(ebm_group)))
		return -1;
	g = &ix->groups[ix->ngroups];
	memset(g, 0, sizeof(*g));
	g->npaths = n;
	memcpy(g->paths, paths, n * sizeof(uint32_t));
	g->id = ix->ngroups;
	st->sigkeys[slot] = h;
	st->siggroup[slot] = ix->ngroups;
	if (!push_pv(st, paths[0], 0, ix->ngroups))
		return -1;
	return ix->ngroups++;
}

/* File sub-rule s under the conjunction of (some of) its exact fields. */
static bool
anchor_group(ebm_index *ix, builder_state *st, const ebm_subrule *s,
			 uint32_t sub)
{
	const ebm_field *chosen[EBM_GROUP_MAX];
	uint32_t	nchosen = 0;
	uint32_t	paths[EBM_GROUP_MAX];
	uint32_t	idx[EBM_GROUP_MAX];
	uint32_t	product = 1;
	uint32_t	i,
				j;
	int64_t		gid;
	ebm_hentry	e;

	/* fields with the shortest OR-lists first, while expansions stay few */
	while (nchosen < EBM_GROUP_MAX)
	{
		const ebm_field *best = NULL;

		for (i = 0; i < s->nfields; i++)
		{
			const ebm_field *f = &s->fields[i];
			bool		taken = false;

			if (!field_is_exact(f))
				continue;
			for (j = 0; j < nchosen; j++)
				if (chosen[j] == f || chosen[j]->path_id == f->path_id)
					taken = true;
			if (!taken && (best == NULL || field_nlits(f) < field_nlits(best)))
				best = f;
		}
		if (best == NULL || (nchosen > 0 && product * field_nlits(best) > EBM_GROUP_MAX_KEYS))
			break;
		product *= field_nlits(best);
		chosen[nchosen++] = best;
	}
	/* ascending path order, the order the event side hashes in */
	for (i = 1; i < nchosen; i++)
		for (j = i; j > 0 && chosen[j]->path_id < chosen[j - 1]->path_id; j--)
		{
			const ebm_field *t = chosen[j];

			chosen[j] = chosen[j - 1];
			chosen[j - 1] = t;
		}
	for (i = 0; i < nchosen; i++)
	{
		paths[i] = chosen[i]->path_id;
		idx[i] = 0;
	}
	gid = group_for(ix, st, paths, nchosen);
	if (gid < 0)
		return false;
	memset(&e, 0, sizeof(e));
	ebm_filter_choose(&e.filter, s, chosen, nchosen);
	e.sub = sub;
	e.group = (uint32_t) gid;
	/* one digest per combination of the fields' literals */
	while (true)
	{
		uint64_t	h = EBM_HASH_SEED;

		for (i = 0; i < nchosen; i++)
		{
			const ebm_literal *l = ebm_field_literal(chosen[i], idx[i]);

			h = ebm_hash_mix(h * 31 + ebm_value_digest(l->vtype, l->str, l->len,
													   l->finite, l->num));
		}
		e.key = ebm_probe_key(0, (uint32_t) gid, h);
		e.noex = false;
		for (i = 0; i < nchosen; i++)
		{
			e.lit[i] = (uint16_t) idx[i];
			if (idx[i] > UINT16_MAX)
				e.noex = true;
		}
		if (!push_entry(&st->exact, &st->nexact, &st->capexact, &e))
			return false;
		for (i = 0; i < nchosen; i++)
		{
			if (++idx[i] < field_nlits(chosen[i]))
				break;
			idx[i] = 0;
		}
		if (i == nchosen)
			break;
	}
	{
		ebm_group  *g = &ix->groups[gid];
		uint32_t   *na = ebm_realloc(g->all, (g->nall + 1) * sizeof(uint32_t));

		if (na == NULL)
			return false;
		g->all = na;
		g->all[g->nall++] = sub;
	}
	return true;
}

/* Can the field be looked up by string probes alone? */
static bool
field_is_stringy(const ebm_field *f)
{
	uint32_t	k;

	if (f->ncond == 0)
		return false;
	for (k = 0; k < f->ncond; k++)
		switch (f->conds[k].kind)
		{
			case EBM_C_EXACT:
			case EBM_C_PREFIX:
			case EBM_C_SUFFIX:
			case EBM_C_EQUALS_IC:
				break;
			default:
				return false;
		}
	return true;
}

/* Digest of a prefix (forward) or suffix (backward) literal. */
static uint64_t
affix_digest(const char *s, size_t len, bool backward)
{
	uint64_t	h = EBM_HASH_SEED;
	size_t		i;

	for (i = 0; i < len; i++)
		h = ebm_fnv_step(h, (unsigned char) s[backward ? len - 1 - i : i]);
	return h;
}

/* File sub-rule s under each condition of its string field f. */
static bool
anchor_strings(builder_state *st, const ebm_subrule *s, const ebm_field *f,
			   uint32_t sub)
{
	uint32_t	k,
				i;
	ebm_hentry	e;

	uint32_t	litno = 0;

	memset(&e, 0, sizeof(e));
	ebm_filter_choose(&e.filter, s, &f, 1);
	e.sub = sub;
	e.group = f->path_id;

	for (k = 0; k < f->ncond; k++)
	{
		const ebm_cond *c = &f->conds[k];

		for (i = 0; i < c->nlits; i++)
		{
			const ebm_literal *l = &c->lits[i];
			uint32_t	kind;
			uint64_t	h;

			switch (c->kind)
			{
				case EBM_C_EXACT:
					kind = EBM_S_EXACT;
					h = ebm_value_digest(l->vtype, l->str, l->len, l->finite, l->num);
					break;
				case EBM_C_PREFIX:
					kind = c->icase ? EBM_S_PREFIX_IC : EBM_S_PREFIX;
					h = affix_digest(l->str, l->len, false);
					break;
				case EBM_C_SUFFIX:
					kind = c->icase ? EBM_S_SUFFIX_IC : EBM_S_SUFFIX;
					h = affix_digest(l->str, l->len, true);
					break;
				default:
					kind = EBM_S_EQUALS_IC;
					h = ebm_hash_bytes(l->str, l->len, EBM_HASH_SEED);
					break;
			}
			e.key = ebm_probe_key(kind, f->path_id, h);
			e.skind = (uint8_t) kind;
			e.lit[0] = (uint16_t) litno;
			e.noex = (litno > UINT16_MAX);
			litno++;
			if (!push_entry(&st->strings, &st->nstrings, &st->capstrings, &e) ||
				!push_pv(st, f->path_id, 2 + kind - EBM_S_EXACT, l->len))
				return false;
		}
	}
	return true;
}

/* Is every condition of the field a numeric range? */
static bool
field_is_numeric(const ebm_field *f)
{
	uint32_t	k;

	if (f->ncond == 0)
		return false;
	for (k = 0; k < f->ncond; k++)
		if (f->conds[k].kind != EBM_C_NUMERIC)
			return false;
	return true;
}

/* Does the field need a value at its path (cannot hold by absence)? */
static bool
field_needs_value(const ebm_field *f)
{
	uint32_t	k;

	for (k = 0; k < f->ncond; k++)
		if (f->conds[k].kind == EBM_C_EXISTS && !f->conds[k].exists)
			return false;
	return f->ncond > 0;
}

/* Choose the anchor of one sub-rule and file it there. */
static bool
anchor_subrule(ebm_index *ix, builder_state *st, const ebm_subrule *s,
			   uint32_t sub)
{
	const ebm_field *best = NULL;
	uint32_t	i,
				k;

	for (i = 0; i < s->nfields; i++)
		if (field_is_exact(&s->fields[i]))
			return anchor_group(ix, st, s, sub);
	for (i = 0; i < s->nfields; i++)
		if (field_is_stringy(&s->fields[i]) &&
			(best == NULL || s->fields[i].ncond < best->ncond))
			best = &s->fields[i];
	if (best)
		return anchor_strings(st, s, best, sub);
	for (i = 0; i < s->nfields; i++)
		if (field_is_numeric(&s->fields[i]))
		{
			const ebm_field *f = &s->fields[i];

			for (k = 0; k < f->ncond; k++)
			{
				const ebm_cond *c = &f->conds[k];
				ebm_range  *r;

				if (!ebm_grow((void **) &st->ranges, &st->capranges, st->nranges + 1, sizeof(ebm_range)) ||
					!ebm_grow((void **) &st->rangepath, &st->caprangepath, st->nranges + 1, sizeof(uint32_t)))
					return false;
				r = &st->ranges[st->nranges];
				r->lo = c->has_lo ? c->lo : -HUGE_VAL;
				r->lo_incl = c->has_lo ? c->lo_incl : true;
				r->hi = c->has_hi ? c->hi : HUGE_VAL;
				r->hi_incl = c->has_hi ? c->hi_incl : true;
				r->sub = sub;
				st->rangepath[st->nranges++] = f->path_id;
			}
			return true;
		}
	for (i = 0; i < s->nfields; i++)
		if (field_needs_value(&s->fields[i]))
			return push_pv(st, s->fields[i].path_id, 1, sub);
	if (!ebm_grow((void **) &st->always, &st->capalways, st->nalways + 1, sizeof(uint32_t)))
		return false;
	st->always[st->nalways++] = sub;
	return true;
}

/* Order ranges by lower bound (for the per-path binary search). */
static int
cmp_range(const void *a, const void *b)
{
	const ebm_range *x = a;
	const ebm_range *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return (x->sub > y->sub) - (x->sub < y->sub);
}

/* Distribute the collected per-path facts into ix->paths. */
static bool
fill_paths(ebm_index *ix, builder_state *st)
{
	size_t		i;

	if (st->npv)
		qsort(st->pv, st->npv, sizeof(pathval), cmp_pathval);
	for (i = 0; i < st->npv; i++)
	{
		const pathval *p = &st->pv[i];
		ebm_pathinfo *pi = &ix->paths[p->path];

		if (p->kind == 0)
		{
			uint32_t   *n = ebm_realloc(pi->groups, (pi->ngroups + 1) * sizeof(uint32_t));

			if (!n)
				return false;
			pi->groups = n;
			pi->groups[pi->ngroups++] = p->val;
		}
		else if (p->kind == 1)
		{
			uint32_t   *n = ebm_realloc(pi->presence, (pi->npresence + 1) * sizeof(uint32_t));

			if (!n)
				return false;
			pi->presence = n;
			pi->presence[pi->npresence++] = p->val;
		}
		else if (p->kind == 2)
			pi->has_exact = true;
		else if (p->kind == 2 + EBM_S_EQUALS_IC - EBM_S_EXACT)
			pi->has_eic = true;
		else
		{
			int			k = (int) p->kind - 3;	/* prefix, suffix, -ic, -ic */
			uint32_t   *n;

			if (pi->nlens[k] && pi->lens[k][pi->nlens[k] - 1] == p->val)
				continue;
			n = ebm_realloc(pi->lens[k], (pi->nlens[k] + 1) * sizeof(uint32_t));
			if (!n)
				return false;
			pi->lens[k] = n;
			pi->lens[k][pi->nlens[k]++] = p->val;
		}
	}
	for (i = 0; i < st->nranges; i++)
	{
		ebm_pathinfo *pi = &ix->paths[st->rangepath[i]];
		ebm_range  *n = ebm_realloc(pi->ranges, (pi->nranges + 1) * sizeof(ebm_range));

		if (!n)
			return false;
		pi->ranges = n;
		pi->ranges[pi->nranges++] = st->ranges[i];
	}
	for (i = 0; i < ix->npaths; i++)
		if (ix->paths[i].nranges > 1)
			qsort(ix->paths[i].ranges, ix->paths[i].nranges, sizeof(ebm_range), cmp_range);
	return true;
}

/* Free the temporary build state. */
static void
state_free(builder_state *st)
{
	ebm_free(st->exact);
	ebm_free(st->strings);
	ebm_free(st->pv);
	ebm_free(st->ranges);
	ebm_free(st->rangepath);
	ebm_free(st->always);
	ebm_free(st->sigkeys);
	ebm_free(st->siggroup);
}

/*
 * The class of an anything-but literal (index.h), added if new.  Every
 * class of the same type and digest that is not the same value becomes
 * ambiguous, and so does the new one.  The table has room (nin_cap is at
 * least twice the number of literals).
 */
static uint32_t
nin_intern(ebm_index *ix, const ebm_literal *lit)
{
	size_t		slot = (size_t) lit->digest & (ix->nin_cap - 1);
	bool		amb = false;

	while (ix->nin_slots[slot])
	{
		uint32_t	c = ix->nin_slots[slot];
		const ebm_literal *o = &ix->nin[c - 1];

		if (ebm_literal_same(o, lit))
			return c;
		if (o->digest == lit->digest && o->vtype == lit->vtype)
		{
			ix->nin_amb[c - 1] = true;
			amb = true;
		}
		slot = (slot + 1) & (ix->nin_cap - 1);
	}
	ix->nin[ix->nnin] = *lit;
	ix->nin_amb[ix->nnin] = amb;
	ix->nin_slots[slot] = ++ix->nnin;
	return ix->nnin;
}

/* Give the anything-but filters of a table the classes of their values. */
static void
nin_resolve(ebm_index *ix, ebm_htab *t, const ebm_ruleset *rs)
{
	size_t		i;
	uint32_t	k;

	for (i = 0; i < t->nsubs; i++)
	{
		ebm_filter *f = &t->ents[i].f;
		const ebm_cond *c;

		if (f->kind != EBM_F_NOTIN)
			continue;
		c = &rs->subs[t->ents[i].sub].fields[f->u.nin.field].conds[0];
		for (k = 0; k < f->n; k++)
			f->u.nin.id[k] = nin_intern(ix, &c->lits[k]);
	}
}

/* Count the literals of a table's anything-but filters. */
static size_t
nin_count(const ebm_htab *t)
{
	size_t		i,
				n = 0;

	for (i = 0; i < t->nsubs; i++)
		if (t->ents[i].f.kind == EBM_F_NOTIN)
			n += t->ents[i].f.n;
	return n;
}

/*
 * Point the index at the sub-rules' final copies (see ebm_htab_resolve),
 * and number the values of the anything-but filters: call after the
 * sub-rules have been laid out.
 */
bool
ebm_index_resolve(ebm_index *ix, const ebm_ruleset *rs)
{
	size_t		n = nin_count(&ix->exact) + nin_count(&ix->strings);

	if (!ebm_htab_resolve(&ix->exact, rs, ix->groups) ||
		!ebm_htab_resolve(&ix->strings, rs, NULL))
		return false;
	ebm_free(ix->nin);
	ebm_free(ix->nin_amb);
	ebm_free(ix->nin_slots);
	ix->nin = NULL;
	ix->nin_amb = NULL;
	ix->nin_slots = NULL;
	ix->nnin = 0;
	ix->nin_cap = 0;
	if (n == 0)
		return true;
	ix->nin_cap = 16;
	while (ix->nin_cap < 2 * n)
		ix->nin_cap *= 2;
	ix->nin = ebm_calloc(n, sizeof(ebm_literal));
	ix->nin_amb = ebm_calloc(n, sizeof(bool));
	ix->nin_slots = ebm_calloc(ix->nin_cap, sizeof(uint32_t));
	if (!ix->nin || !ix->nin_amb || !ix->nin_slots)
	{
		ix->nin_cap = 0;
		return false;
	}
	nin_resolve(ix, &ix->exact, rs);
	nin_resolve(ix, &ix->strings, rs);
	return true;
}

/* Build the index of all sub-rules of rs into rs->index. */
ebm_status
ebm_index_build(ebm_ruleset *rs)
{
	ebm_index  *ix = &rs->index;
	builder_state st;
	uint32_t	i;
	bool		ok = true;

	ebm_index_free(ix);
	memset(&st, 0, sizeof(st));
	ix->npaths = ebm_pathtrie_npaths(rs->paths);
	ix->paths = ebm_calloc(ix->npaths ? ix->npaths : 1, sizeof(ebm_pathinfo));
	ok = ix->paths != NULL;
	for (i = 0; ok && i < rs->nsubs; i++)
		ok = anchor_subrule(ix, &st, &rs->subs[i], i);
	ok = ok && ebm_htab_build(&ix->exact, st.exact, st.nexact, rs, ix->groups, false);
	ok = ok && ebm_htab_build(&ix->strings, st.strings, st.nstrings, rs, NULL, true);
	ok = ok && fill_paths(ix, &st);
	if (ok)
	{
		ix->always = st.always;
		ix->nalways = (uint32_t) st.nalways;
		st.always = NULL;
	}
	state_free(&st);
	if (!ok)
	{
		ebm_index_free(ix);
		return EBM_ERR_NOMEM;
	}
	return EBM_OK;
}
