/*-------------------------------------------------------------------------
 *
 * compile.c
 *	  Collect the patterns of a bus into one rule set and compile it.
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>

#include "ruleset.h"

/* An empty rule set. */
ebm_ruleset *
ebm_ruleset_new(void)
{
	ebm_ruleset *rs = ebm_calloc(1, sizeof(ebm_ruleset));

	if (rs == NULL)
		return NULL;
	rs->paths = ebm_pathtrie_new();
	if (rs->paths == NULL)
	{
		ebm_free(rs);
		return NULL;
	}
	return rs;
}

/* Free a rule set. */
void
ebm_ruleset_free(ebm_ruleset *rs)
{
	uint32_t	i;

	if (rs == NULL)
		return;
	for (i = 0; i < rs->nsubs; i++)
		if (!(rs->in_arena && rs->in_arena[i]))
			ebm_free(rs->subs[i].fields);	/* packed: one block each */
	ebm_free(rs->arena);
	ebm_free(rs->in_arena);
	ebm_free(rs->rank_rule);
	ebm_free(rs->subs);
	ebm_free(rs->sub_rule);
	ebm_pathtrie_free(rs->paths);
	ebm_index_free(&rs->index);
	ebm_free(rs);
}

/* Number of ebm_ruleset_add calls. */
size_t
ebm_ruleset_size(const ebm_ruleset *rs)
{
	return rs->nrules;
}

/* Copy the sub-rules of a pattern into the rule set under rule_id. */
ebm_status
ebm_ruleset_add(ebm_ruleset *rs, uint32_t rule_id, const ebm_pattern *p)
{
	uint32_t	i,
				k;
	size_t		cap2;

	if (rs == NULL || p == NULL)
		return EBM_ERR_STATE;
	cap2 = rs->subcap;
	if (!ebm_grow((void **) &rs->subs, &rs->subcap, rs->nsubs + p->nsub, sizeof(ebm_subrule)) ||
		!ebm_grow((void **) &rs->sub_rule, &cap2, rs->nsubs + p->nsub, sizeof(uint32_t)))
		return EBM_ERR_NOMEM;
	if (cap2 != rs->subcap)
	{
		cap2 = rs->subcap;		/* keep the arrays the same capacity */
		if (!ebm_grow((void **) &rs->sub_rule, &cap2, rs->subcap, sizeof(uint32_t)))
			return EBM_ERR_NOMEM;
	}
	if (rs->in_arena)
	{
		cap2 = rs->arenacap;
		if (!ebm_grow((void **) &rs->in_arena, &cap2, rs->subcap, sizeof(bool)))
			return EBM_ERR_NOMEM;
		memset(rs->in_arena + rs->arenacap, 0, (cap2 - rs->arenacap) * sizeof(bool));
		rs->arenacap = cap2;
	}
	for (i = 0; i < p->nsub; i++)
	{
		ebm_subrule *dst = &rs->subs[rs->nsubs];

		if (!ebm_subrule_pack(dst, &p->subs[i]))
			return EBM_ERR_NOMEM;
		for (k = 0; k < dst->nfields; k++)
			if (!ebm_pathtrie_add(rs->paths, dst->fields[k].path, dst->fields[k].pathlen,
								  &dst->fields[k].path_id))
			{
				ebm_free(dst->fields);
				return EBM_ERR_NOMEM;
			}
		rs->sub_rule[rs->nsubs] = rule_id;
		if (rs->in_arena)
			rs->in_arena[rs->nsubs] = false;
		rs->nsubs++;
		if (dst->nfields > rs->maxfields)
			rs->maxfields = dst->nfields;
	}
	rs->nrules++;
	rs->compiled = false;
	return EBM_OK;
}

/* Note sub-rule s in the layout order, once. */
static void
order_add(uint32_t *order, uint32_t *n, bool *seen, uint32_t s)
{
	if (!seen[s])
	{
		seen[s] = true;
		order[(*n)++] = s;
	}
}

/*
 * Re-pack every sub-rule into one arena, in the order the index lists
 * them: the sub-rules one probe finds then lie side by side in memory, so
 * deciding a run of candidates streams through consecutive cache lines.
 */
static ebm_status
relayout(ebm_ruleset *rs)
{
	const ebm_index *ix = &rs->index;
	uint32_t   *order = ebm_calloc(rs->nsubs + 1, sizeof(uint32_t));
	bool	   *seen = ebm_calloc(rs->nsubs + 1, sizeof(bool));
	bool	   *in_arena = ebm_calloc(rs->subcap + 1, sizeof(bool));
	uint32_t	n = 0;
	size_t		total = 0,
				at = 0,
				i;
	char	   *arena;

	if (!order || !seen || !in_arena)
		goto nomem;
	for (i = 0; i < ix->exact.nsubs; i++)
		order_add(order, &n, seen, ix->exact.ents[i].sub);
	for (i = 0; i < ix->strings.nsubs; i++)
		order_add(order, &n, seen, ix->strings.ents[i].sub);
	for (i = 0; i < rs->nsubs; i++)
		order_add(order, &n, seen, (uint32_t) i);
	for (i = 0; i < rs->nsubs; i++)
		total += ebm_subrule_packed_size(&rs->subs[i]);
	arena = ebm_malloc(total);
	if (arena == NULL)
		goto nomem;
	for (i = 0; i < n; i++)
	{
		ebm_subrule *s = &rs->subs[order[i]];
		ebm_subrule packed;
		size_t		size = ebm_subrule_packed_size(s);

		ebm_subrule_pack_into(&packed, s, arena + at);
		at += size;
		if (!(rs->in_arena && rs->in_arena[order[i]]))
			ebm_free(s->fields);
		packed.rank = s->rank;
		*s = packed;
		in_arena[order[i]] = true;
	}
	ebm_free(rs->arena);
	ebm_free(rs->in_arena);
	rs->arena = arena;
	rs->in_arena = in_arena;
	rs->arenacap = rs->subcap + 1;
	ebm_free(order);
	ebm_free(seen);
	return EBM_OK;
nomem:
	ebm_free(order);
	ebm_free(seen);
	ebm_free(in_arena);
	return EBM_ERR_NOMEM;
}

/* Ascending order of uint32 values, for qsort. */
static int
cmp_u32(const void *a, const void *b)
{
	uint32_t	x = *(const uint32_t *) a;
	uint32_t	y = *(const uint32_t *) b;

	return (x > y) - (x < y);
}

/*
 * Number the distinct rule ids in ascending order.  A match marks the
 * ranks of the rules it finds in a bitmap, and reading the bitmap back
 * yields the ids sorted and without duplicates, at no sorting cost.
 */
static ebm_status
rank_rules(ebm_ruleset *rs)
{
	uint32_t   *ids = ebm_calloc(rs->nsubs + 1, sizeof(uint32_t));
	uint32_t	n = 0;
	uint32_t	i;

	ebm_free(rs->rank_rule);
	rs->rank_rule = ids;
	if (ids == NULL)
		return EBM_ERR_NOMEM;
	if (rs->nsubs == 0)
	{
		rs->nranks = 0;
		rs->rank_identity = true;
		return EBM_OK;
	}
	memcpy(ids, rs->sub_rule, rs->nsubs * sizeof(uint32_t));
	qsort(ids, rs->nsubs, sizeof(uint32_t), cmp_u32);
	for (i = 0; i < rs->nsubs; i++)
		if (n == 0 || ids[n - 1] != ids[i])
			ids[n++] = ids[i];
	rs->nranks = n;
	rs->rank_identity = true;
	for (i = 0; i < n; i++)
		if (ids[i] != i)
			rs->rank_identity = false;
	for (i = 0; i < rs->nsubs; i++)
	{
		/* binary search: the rank of this sub-rule's rule id */
		uint32_t	lo = 0,
					hi = n;

		while (lo < hi)
		{
			uint32_t	mid = (lo + hi) / 2;

			if (ids[mid] < rs->sub_rule[i])
				lo = mid + 1;
			else
				hi = mid;
		}
		rs->subs[i].rank = lo;
	}
	return EBM_OK;
}

/* Build the index over all sub-rules (index.c), then lay them out. */
ebm_status
ebm_ruleset_compile(ebm_ruleset *rs)
{
	ebm_status	st;

	if (rs == NULL)
		return EBM_ERR_STATE;
	/* ranks first: the index entries carry them */
	st = rank_rules(rs);
	if (st == EBM_OK)
		st = ebm_index_build(rs);
	if (st == EBM_OK)
		st = relayout(rs);
	if (st == EBM_OK && !ebm_index_resolve(&rs->index, rs))
		st = EBM_ERR_NOMEM;
	rs->compiled = (st == EBM_OK);
	return st;
}
