/*-------------------------------------------------------------------------
 *
 * compile.c
 *	  Collect the patterns of a bus into one rule set and compile it.
 *
 *-------------------------------------------------------------------------
 */
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
		ebm_free(rs->subs[i].fields);	/* packed: one block each */
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
		cap2 = rs->subcap;		/* keep both arrays the same capacity */
		if (!ebm_grow((void **) &rs->sub_rule, &cap2, rs->subcap, sizeof(uint32_t)))
			return EBM_ERR_NOMEM;
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
		rs->nsubs++;
		if (dst->nfields > rs->maxfields)
			rs->maxfields = dst->nfields;
	}
	rs->nrules++;
	rs->compiled = false;
	return EBM_OK;
}

/* Build the index over all sub-rules (index.c). */
ebm_status
ebm_ruleset_compile(ebm_ruleset *rs)
{
	ebm_status	st;

	if (rs == NULL)
		return EBM_ERR_STATE;
	st = ebm_index_build(rs);
	rs->compiled = (st == EBM_OK);
	return st;
}
