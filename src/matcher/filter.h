/*-------------------------------------------------------------------------
 *
 * filter.h
 *	  Pre-filters of index entries, and the digest tables that hold them.
 *
 * An index entry names a sub-rule and may carry one more of its fields as a
 * pre-filter, stored inline (a numeric range, a short prefix, exists, or
 * "none of these values", by their classes: index.h) so the probe can test
 * it without reading the sub-rule.  When an entry's anchor and filter are all of its
 * sub-rule's fields ("covered"), and the probe has confirmed the anchor
 * values byte for byte, the probe decides the sub-rule by itself; only
 * the rest become candidates for the exact check in eval.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EBM_FILTER_H
#define EBM_FILTER_H

#include "ebm_internal.h"

typedef enum ebm_fkind
{
	EBM_F_NONE,					/* no filter */
	EBM_F_FIELD,				/* a field tested through the sub-rule */
	EBM_F_RANGE,				/* one numeric range */
	EBM_F_EXISTS,				/* exists: true */
	EBM_F_ABSENT,				/* exists: false */
	EBM_F_PREFIX,				/* one prefix of at most 8 bytes */
	EBM_F_NOTIN					/* anything-but at most 3 values */
} ebm_fkind;

#define EBM_FILTER_MAX_DIGESTS 3

/* Bits of ebm_filter.incl: which bounds of a RANGE are inclusive. */
#define EBM_FI_LO 1
#define EBM_FI_HI 2

/*
 * 24 bytes, so that a table entry (with its sub-rule and rank) is 32: a
 * probe streams through every entry of a run, most of them failing here.
 */
typedef struct ebm_filter
{
	uint32_t	path;			/* path id of the filter field */
	uint8_t		kind;			/* ebm_fkind */
	uint8_t		n;				/* prefix length, or digests in u.h */
	bool		covered;		/* anchor + this filter = the whole sub-rule */
	uint8_t		incl;			/* RANGE: EBM_FI_LO | EBM_FI_HI */
	union
	{
		struct
		{
			double		lo;
			double		hi;
		}			r;			/* RANGE */
		uint64_t	d[2];		/* PREFIX bytes, then their mask */
		struct
		{
			uint32_t	id[EBM_FILTER_MAX_DIGESTS];	/* the values' classes */
			uint32_t	field;	/* the field's index in the sub-rule */
		}			nin;		/* NOTIN (see ebm_index_resolve) */
		uint32_t	field;		/* FIELD: its index in the sub-rule */
	}			u;
} ebm_filter;

/* One entry of a digest table. */
typedef struct ebm_hent
{
	uint32_t	sub;			/* the sub-rule */
	uint32_t	rank;			/* the rank of its rule */
	ebm_filter	f;				/* its pre-filter */
} ebm_hent;

/* Outcome of testing a filter against the values at its path. */
#define EBM_FILTER_FAILS 0		/* the sub-rule cannot hold */
#define EBM_FILTER_HOLDS 1		/* the filter field holds, for sure */
#define EBM_FILTER_MAYBE 2		/* only the exact check can tell */

/* Digest -> run of (sub-rule, filter) entries, as an open-addressing table. */
typedef struct ebm_hslot
{
	uint64_t	key;			/* 0 marks an empty slot */
	uint32_t	start;
	uint32_t	count;
	uint32_t	ex;				/* pure runs: the exemplar's key literals
								 * are at expool + ex */
	uint8_t		ex_kind;		/* string tables: the exemplar's probe kind */
	bool		pure;			/* every entry has those same key values */
} ebm_hslot;

/* Where a run's exemplar literals come from (build time only). */
typedef struct ebm_hslot_src
{
	uint32_t	sub;			/* a sub-rule of the run... */
	uint32_t	where;			/* ...its group (group tables) or path */
	uint16_t	lit[4];			/* ...and the literal of each key field */
} ebm_hslot_src;

typedef struct ebm_htab
{
	ebm_hslot  *slots;
	size_t		cap;			/* power of two */
	ebm_hslot_src *src;			/* parallel to slots, for ebm_htab_resolve */
	char	   *expool;			/* per pure run: copies of its exemplar's key
								 * literals, then their text */
	ebm_hent   *ents;			/* runs, concatenated */
	size_t		nsubs;
} ebm_htab;

/* What the index build hands to the table builder, one per entry. */
typedef struct ebm_hentry
{
	uint64_t	key;
	uint32_t	sub;
	uint32_t	group;			/* group tables: group id; string tables: path */
	uint16_t	lit[4];			/* literal index per key field (string
								 * tables: lit[0], across the field) */
	uint8_t		skind;			/* string tables: probe kind */
	bool		noex;			/* lit could not be recorded: never pure */
	ebm_filter	filter;
} ebm_hentry;

struct ebm_ruleset;
struct ebm_group;

extern bool ebm_htab_build(ebm_htab *t, ebm_hentry *e, size_t n,
						   const struct ebm_ruleset *rs,
						   const struct ebm_group *groups, bool strings);
extern bool ebm_htab_resolve(ebm_htab *t, const struct ebm_ruleset *rs,
							 const struct ebm_group *groups);
extern void ebm_htab_free(ebm_htab *t);
extern const ebm_hslot *ebm_htab_find(const ebm_htab *t, uint64_t key);

extern void ebm_filter_choose(ebm_filter *flt, const ebm_subrule *s,
							  const ebm_field *const *anchors,
							  uint32_t nanchors);
extern const ebm_literal *ebm_field_literal(const ebm_field *f, uint32_t i);
extern const ebm_field *ebm_subrule_field_at(const ebm_subrule *s,
											 uint32_t path_id);
extern bool ebm_literal_same(const ebm_literal *a, const ebm_literal *b);

/*
 * Test an inline filter (other than NOTIN, see match.c) against the n
 * values at its path.  *used is set to the value that satisfied it (NULL
 * when none was needed).
 */
static inline int
ebm_filter_test(const ebm_filter *f, const ebm_leaf *lv, uint32_t n,
				const ebm_leaf **used)
{
	uint32_t	i;

	*used = NULL;
	switch (f->kind)
	{
		case EBM_F_RANGE:
			for (i = 0; i < n; i++)
			{
				double		x = lv[i].num;

				if (lv[i].vtype == EBM_V_NUMBER && lv[i].finite &&
					((f->incl & EBM_FI_LO) ? x >= f->u.r.lo : x > f->u.r.lo) &&
					((f->incl & EBM_FI_HI) ? x <= f->u.r.hi : x < f->u.r.hi))
				{
					*used = &lv[i];
					return EBM_FILTER_HOLDS;
				}
			}
			return EBM_FILTER_FAILS;
		case EBM_F_EXISTS:
			if (n == 0)
				return EBM_FILTER_FAILS;
			*used = &lv[0];
			return EBM_FILTER_HOLDS;
		case EBM_F_ABSENT:
			if (n == 0)
				return EBM_FILTER_HOLDS;
			/* a value outside every array is there whatever the choice */
			for (i = 0; i < n; i++)
				if (lv[i].ntrail == 0)
					return EBM_FILTER_FAILS;
			return EBM_FILTER_MAYBE;
		case EBM_F_PREFIX:
			for (i = 0; i < n; i++)
			{
				uint64_t	w;

				if (lv[i].vtype != EBM_V_STRING || lv[i].len < f->n)
					continue;
				/* a whole word: the builder keeps 8 bytes of slack */
				memcpy(&w, lv[i].str, 8);
				if ((w & f->u.d[1]) == f->u.d[0])
				{
					*used = &lv[i];
					return EBM_FILTER_HOLDS;
				}
			}
			return EBM_FILTER_FAILS;
		default:
			return EBM_FILTER_MAYBE;
	}
}

#endif							/* EBM_FILTER_H */
