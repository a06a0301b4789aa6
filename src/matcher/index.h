/*-------------------------------------------------------------------------
 *
 * index.h
 *	  The candidate index of a compiled rule set.
 *
 * Every sub-rule is filed under one "anchor", a condition that must hold
 * for the sub-rule to hold and that the event can look up cheaply:
 *
 *	group	 the conjunction of its exact-value fields (up to
 *			 EBM_GROUP_MAX of them): one hash probe per combination of the
 *			 event's values at those paths finds every sub-rule whose exact
 *			 fields all agree;
 *	string	 one field made only of exact / prefix / suffix /
 *			 equals-ignore-case conditions: probes of the event value, of
 *			 its prefixes and suffixes of the lengths present, folded or not;
 *	numeric  one field made only of numeric ranges: sorted by lower bound;
 *	presence any other field that needs a value (anything-but, exists:true,
 *			 wildcard, cidr): candidate when the path has a value at all;
 *	always	 sub-rules made only of exists:false fields.
 *
 * An entry of the group and string tables may carry a pre-filter: another
 * field of the sub-rule that some value at its path must satisfy before the
 * sub-rule is worth deciding (filter.h).  A probe yields candidates, which
 * eval.c decides exactly -- except the sub-rules a group probe can decide
 * itself, having compared the anchor values byte for byte.  Hash keys are
 * 64-bit digests of (anchor kind, path, value): a digest collision only
 * adds a candidate that the exact check then drops.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EBM_INDEX_H
#define EBM_INDEX_H

#include "ebm_internal.h"
#include "filter.h"

#define EBM_GROUP_MAX 3			/* exact fields in a group key */
#define EBM_GROUP_MAX_KEYS 64	/* OR-list expansions per sub-rule */
#define EBM_GROUP_MAX_COMBOS 256	/* event value combinations probed */

/* Kinds of string probe (also part of the digest). */
typedef enum ebm_skind
{
	EBM_S_EXACT = 1,
	EBM_S_PREFIX,
	EBM_S_SUFFIX,
	EBM_S_PREFIX_IC,
	EBM_S_SUFFIX_IC,
	EBM_S_EQUALS_IC
} ebm_skind;

/* The exact-field signature of a group of sub-rules. */
typedef struct ebm_group
{
	uint32_t	npaths;
	uint32_t	paths[EBM_GROUP_MAX];	/* ascending path ids */
	uint32_t	id;
	uint32_t   *all;			/* every sub-rule of the group (fallback) */
	uint32_t	nall;
} ebm_group;

/* A numeric range anchor. */
typedef struct ebm_range
{
	double		lo;
	double		hi;
	bool		lo_incl;
	bool		hi_incl;
	uint32_t	sub;
} ebm_range;

/* What the index knows about one path. */
typedef struct ebm_pathinfo
{
	uint32_t   *groups;			/* groups whose first path is this one */
	uint32_t	ngroups;
	uint32_t   *presence;		/* sub-rules anchored on a value here */
	uint32_t	npresence;
	ebm_range  *ranges;			/* numeric anchors, by lower bound */
	uint32_t	nranges;
	bool		has_exact;		/* string-probe kinds present here */
	bool		has_eic;
	uint32_t   *lens[4];		/* prefix, suffix, prefix-ic, suffix-ic */
	uint32_t	nlens[4];		/* distinct lengths, ascending */
} ebm_pathinfo;

typedef struct ebm_index
{
	ebm_group  *groups;
	uint32_t	ngroups;
	ebm_htab	exact;			/* group digests */
	ebm_htab	strings;		/* string-probe digests */
	ebm_pathinfo *paths;
	uint32_t	npaths;
	uint32_t   *always;
	uint32_t	nalways;
	/*
	 * The distinct values of the inline anything-but filters ("classes",
	 * numbered from 1), found by value digest.  A class that another
	 * literal of the same type and digest could be confused with is
	 * "ambiguous": a value equal to it is left to the exact check.
	 */
	ebm_literal *nin;			/* class k is nin[k - 1] */
	bool	   *nin_amb;
	uint32_t	nnin;
	uint32_t   *nin_slots;		/* open addressing: class, 0 = empty */
	size_t		nin_cap;		/* power of two, or 0 */
} ebm_index;

#define EBM_NIN_AMBIGUOUS UINT32_MAX

/*
 * The anything-but class a value is equal to: 0 for none, or
 * EBM_NIN_AMBIGUOUS when that cannot be told from the classes alone.
 */
static inline uint32_t
ebm_nin_class(const ebm_index *ix, const ebm_leaf *v)
{
	size_t		slot;

	if (ix->nin_cap == 0)
		return 0;
	slot = (size_t) v->digest & (ix->nin_cap - 1);
	while (ix->nin_slots[slot])
	{
		uint32_t	c = ix->nin_slots[slot];

		if (ebm_literal_equals(&ix->nin[c - 1], v))
			return ix->nin_amb[c - 1] ? EBM_NIN_AMBIGUOUS : c;
		slot = (slot + 1) & (ix->nin_cap - 1);
	}
	return 0;
}

/* Final digest of a probe: kind, path (or group) and value digest. */
static inline uint64_t
ebm_probe_key(uint32_t kind, uint32_t where, uint64_t h)
{
	uint64_t	k = ebm_hash_mix(h ^ ((uint64_t) kind << 56) ^
								 ((uint64_t) where * UINT64_C(0x9e3779b97f4a7c15)));

	return k ? k : 1;
}

/* FNV-1a step, for prefix/suffix digests computed byte by byte. */
static inline uint64_t
ebm_fnv_step(uint64_t h, unsigned char c)
{
	return (h ^ c) * UINT64_C(0x100000001b3);
}

extern void ebm_index_free(ebm_index *ix);
extern bool ebm_index_resolve(ebm_index *ix, const struct ebm_ruleset *rs);

struct ebm_ruleset;
extern ebm_status ebm_index_build(struct ebm_ruleset *rs);

#endif							/* EBM_INDEX_H */
