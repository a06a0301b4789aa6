/*-------------------------------------------------------------------------
 *
 * rule_cache.h
 *	  Per-backend cache of each bus's compiled rule set.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_RULE_CACHE_H
#define EB_RULE_CACHE_H

#include "ebm.h"

/*
 * One enabled rule with targets; its index is its matcher rule id.  A rule
 * with no pattern (a schedule only) is here but not in the matcher.
 */
typedef struct CachedRule
{
	char	   *name;
	int			ntargets;
	char	  **target_ids;
} CachedRule;

/* The compiled rules of one bus. */
typedef struct BusRuleSet
{
	MemoryContext cxt;			/* holds rules and their names */
	bool		bus_exists;		/* is there such a row in eventbus.buses? */
	ebm_ruleset *ruleset;		/* malloc'd by the matcher */
	int			nrules;
	CachedRule *rules;
} BusRuleSet;

extern BusRuleSet *eb_rule_cache_lookup(const char *bus);

#endif							/* EB_RULE_CACHE_H */
