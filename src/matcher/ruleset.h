/*-------------------------------------------------------------------------
 *
 * ruleset.h
 *	  The compiled rule set, shared by compile.c (which builds it) and
 *	  match.c (which reads it).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EBM_RULESET_H
#define EBM_RULESET_H

#include "ebm_internal.h"
#include "index.h"

struct ebm_ruleset
{
	/* every sub-rule of every rule, with its rule id */
	ebm_subrule *subs;
	uint32_t   *sub_rule;		/* rule id of each sub-rule */
	uint32_t	nsubs;
	size_t		subcap;
	uint32_t	maxfields;		/* most fields in one sub-rule */
	uint32_t   *rank_rule;		/* rank -> rule id, ascending */
	uint32_t	nranks;
	bool		rank_identity;	/* rank_rule[r] == r for every rank */
	char	   *arena;			/* packed sub-rules, in index order */
	bool	   *in_arena;		/* per sub-rule: packed in the arena (else
								 * in a block of its own) */
	size_t		arenacap;
	size_t		nrules;			/* ebm_ruleset_add calls */
	ebm_pathtrie *paths;
	bool		compiled;
	ebm_index	index;			/* built by ebm_ruleset_compile */
};

#endif							/* EBM_RULESET_H */
