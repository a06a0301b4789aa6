/*-------------------------------------------------------------------------
 *
 * ebm_internal.h
 *	  Types shared by the files of the matcher library; not installed.
 *
 * The library is a pipeline: a builder records one JSON document as a flat
 * token array (builder.c); pattern_parse.c turns a pattern document into an
 * ebm_pattern, a list of sub-rules ($or already expanded), each a
 * conjunction of fields, each field an OR of conditions; compile.c merges
 * the sub-rules of every rule into one index; event.c flattens an event into
 * leaves (field path id -> value, with the innermost array element around
 * it, the elements forming a tree);
 * eval.c decides whether one sub-rule holds for a flattened event; match.c
 * uses the index to find the few sub-rules worth deciding.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EBM_INTERNAL_H
#define EBM_INTERNAL_H

#include <string.h>

#include "ebm.h"

/*
 * Limits.  The pattern size is EventBridge's quota (2,048 characters by
 * default, adjustable to 4,096: see ebm_pattern_parse_limited); the depth
 * and $or expansion limits are ours, far above any real pattern.
 */
#define EBM_MAX_PATTERN_DEPTH	64	/* nested objects in a pattern */
#define EBM_MAX_SUBRULES		1024	/* sub-rules after $or expansion */
#define EBM_MAX_WILDCARD_COMPLEXITY 10	/* see wildcard.c */

/* ---- allocation (alloc.c) ---- */
extern void *ebm_malloc(size_t n);
extern void *ebm_realloc(void *p, size_t n);
extern void ebm_free(void *p);
extern void *ebm_calloc(size_t n, size_t size);
extern char *ebm_memdup(const char *s, size_t len);
extern bool ebm_grow(void **p, size_t *cap, size_t need, size_t elsize);
extern void ebm_free_scratch(void **p, size_t *cap);

/* ebm_grow, with the common "already big enough" case inline. */
static inline bool
ebm_reserve(void **p, size_t *cap, size_t need, size_t elsize)
{
	return need <= *cap || ebm_grow(p, cap, need, elsize);
}

/* Byte equality of two strings of length len, inline for short ones. */
static inline bool
ebm_bytes_equal(const char *a, const char *b, size_t len)
{
	uint64_t	x,
				y;

	while (len >= 8)
	{
		memcpy(&x, a, 8);
		memcpy(&y, b, 8);
		if (x != y)
			return false;
		a += 8;
		b += 8;
		len -= 8;
	}
	while (len--)
		if (*a++ != *b++)
			return false;
	return true;
}

/* ---- builder (builder.c) ---- */
typedef enum ebm_toktype
{
	EBM_T_OBJECT,
	EBM_T_ARRAY,
	EBM_T_KEY,
	EBM_T_STRING,
	EBM_T_NUMBER,
	EBM_T_TRUE,
	EBM_T_FALSE,
	EBM_T_NULL
} ebm_toktype;

/*
 * One token.  Containers know where they end (index of the first token
 * after their last member), so a reader can skip a subtree in O(1).
 * Strings, keys and numbers point into the builder's text arena.
 */
typedef struct ebm_token
{
	uint8_t		type;
	uint32_t	len;			/* text length, or member count of a container */
	size_t		off;			/* text offset in the arena */
	uint32_t	end;			/* containers: index after the last member */
} ebm_token;

struct ebm_builder
{
	ebm_token  *toks;
	size_t		ntoks;
	size_t		tokcap;
	char	   *text;
	size_t		textlen;
	size_t		textcap;
	uint32_t   *stack;			/* open containers */
	size_t		depth;
	size_t		stackcap;
	bool		expect_key;		/* inside an object, waiting for a key */
	bool		done;			/* the root value is complete */
	bool		failed;			/* a call failed: the document is unusable */
};

static inline const char *
ebm_tok_text(const ebm_builder *b, const ebm_token *t)
{
	return b->text + t->off;
}

/* ---- values and numbers (numbers.c) ---- */
typedef enum ebm_vtype
{
	EBM_V_STRING,
	EBM_V_NUMBER,
	EBM_V_TRUE,
	EBM_V_FALSE,
	EBM_V_NULL
} ebm_vtype;

extern bool ebm_number_syntax_ok(const char *s, size_t len);
extern double ebm_number_value(const char *s, size_t len, bool *ok);
extern uint64_t ebm_number_key(double v);

/* ---- case folding (casefold.c) ---- */
extern size_t ebm_casefold(const char *s, size_t len, char *out);

#define EBM_CASEFOLD_MAX_GROWTH 3	/* output bytes per input byte, at most */

/* ---- CIDR (cidr.c) ---- */
typedef struct ebm_cidr
{
	uint8_t		family;			/* 4 or 6 */
	uint8_t		bits;			/* prefix length */
	uint8_t		addr[16];		/* network address, host bits cleared */
} ebm_cidr;

extern bool ebm_cidr_parse(const char *s, size_t len, ebm_cidr *out,
						   char *why, size_t whylen);
extern bool ebm_cidr_contains(const ebm_cidr *c, const char *s, size_t len);

/* ---- wildcard (wildcard.c) ---- */
extern bool ebm_wildcard_check(const char *p, size_t len, char *why,
							   size_t whylen);
extern int	ebm_wildcard_complexity(const char *p, size_t len, int cap);
extern bool ebm_wildcard_match(const char *p, size_t plen,
							   const char *s, size_t slen, ebm_match_ctx *ctx);

/* ---- patterns (pattern_parse.c) ---- */
typedef enum ebm_condkind
{
	EBM_C_EXACT,				/* value: string, number, bool or null */
	EBM_C_PREFIX,
	EBM_C_SUFFIX,
	EBM_C_EQUALS_IC,			/* equals-ignore-case */
	EBM_C_WILDCARD,
	EBM_C_NUMERIC,
	EBM_C_EXISTS,
	EBM_C_CIDR,
	EBM_C_ANYTHING_BUT			/* values, or one of the string forms */
} ebm_condkind;

/* What an anything-but excludes. */
typedef enum ebm_abkind
{
	EBM_AB_VALUES,				/* exact strings or numbers */
	EBM_AB_PREFIX,
	EBM_AB_SUFFIX,
	EBM_AB_EQUALS_IC,
	EBM_AB_WILDCARD
} ebm_abkind;

/* A literal from a pattern: strings are stored case-folded when icase. */
typedef struct ebm_literal
{
	uint8_t		vtype;			/* ebm_vtype */
	bool		finite;			/* number value is usable */
	uint32_t	len;
	char	   *str;			/* string text, or number text */
	double		num;			/* number value */
	uint64_t	digest;			/* ebm_value_digest() of the literal */
} ebm_literal;

typedef struct ebm_cond
{
	uint8_t		kind;			/* ebm_condkind */
	uint8_t		abkind;			/* ebm_abkind, for anything-but */
	bool		icase;			/* prefix/suffix with equals-ignore-case */
	bool		exists;			/* exists: true/false */
	/* numeric */
	bool		has_lo;
	bool		lo_incl;
	bool		has_hi;
	bool		hi_incl;
	double		lo;
	double		hi;
	ebm_cidr	cidr;
	/* literal(s): exact, prefix, suffix, equals-ic, wildcard, anything-but */
	uint32_t	nlits;
	ebm_literal *lits;
} ebm_cond;

/* One field of a sub-rule: the path and the OR of its conditions. */
typedef struct ebm_field
{
	char	   *path;			/* dotted path */
	uint32_t	pathlen;
	uint32_t	path_id;		/* set by the rule set */
	bool		absent_ok;		/* has exists:false: may hold by absence */
	uint32_t	ncond;
	ebm_cond   *conds;
} ebm_field;

/* A conjunction of fields; a pattern is the OR of its sub-rules. */
typedef struct ebm_subrule
{
	uint32_t	nfields;
	uint32_t	rank;			/* in a rule set: rank of its rule id */
	ebm_field  *fields;
} ebm_subrule;

struct ebm_pattern
{
	uint32_t	nsub;
	ebm_subrule *subs;
};

extern void ebm_cond_free_contents(ebm_cond *c);
extern bool ebm_cond_copy(ebm_cond *dst, const ebm_cond *src);
extern void ebm_subrule_free_contents(ebm_subrule *s);
extern bool ebm_field_copy(ebm_field *dst, const ebm_field *src);
extern void ebm_field_free_contents(ebm_field *f);
extern bool ebm_subrule_pack(ebm_subrule *dst, const ebm_subrule *src);
extern size_t ebm_subrule_packed_size(const ebm_subrule *src);
extern void ebm_subrule_pack_into(ebm_subrule *dst, const ebm_subrule *src,
								  char *block);

/* State of one pattern parse (pattern_parse.c, operators.c). */
typedef struct ebm_parse
{
	const ebm_builder *b;
	ebm_error  *err;
	char	   *path;			/* dotted path of the field being read */
	size_t		pathlen;
	size_t		pathcap;
	bool		nomem;
	bool		absent_ok;		/* the match list has exists:false */
} ebm_parse;

#if defined(__GNUC__)
#define EBM_PRINTF_ATTR(f, a) __attribute__((format(printf, f, a)))
#else
#define EBM_PRINTF_ATTR(f, a)
#endif

/* operators.c, the lower layer of the parser (pattern_parse.c calls it) */
extern bool ebm_parse_fail(ebm_parse *ps, const char *op, const char *fmt,...)
			EBM_PRINTF_ATTR(3, 4);
extern bool ebm_parse_match_list(ebm_parse *ps, uint32_t arr, ebm_field *f);
extern bool ebm_is_operator_name(const char *s, size_t len);

/* ---- flattened event (event.c) ---- */

/*
 * The arrays of an event form a tree: each array sits in one element of an
 * enclosing array (or outside every array), and each element of an array
 * is a node of its own.  A value records only the innermost element it sits
 * in; the elements know their parents.  This costs one record per array
 * element, whatever the nesting depth (copying the chain of enclosing
 * positions into every value cost depth x values).
 */
#define EBM_NO_ELEM UINT32_MAX

typedef struct ebm_elem
{
	uint32_t	array;			/* the array it is an element of */
	uint32_t	index;			/* its position in that array */
} ebm_elem;

typedef struct ebm_arr
{
	uint32_t	parent;			/* element it sits in, or EBM_NO_ELEM */
	uint32_t	node;			/* path trie node of its path */
} ebm_arr;

typedef struct ebm_leaf
{
	uint32_t	path_id;
	uint8_t		vtype;			/* ebm_vtype */
	bool		finite;			/* numbers: num is usable */
	uint32_t	ntrail;			/* number of enclosing arrays (0: none) */
	uint32_t	len;
	const char *str;			/* string, or number text */
	double		num;
	uint32_t	elem;			/* innermost element, or EBM_NO_ELEM */
	uint64_t	digest;			/* ebm_value_digest() of the value */
} ebm_leaf;

/*
 * The work a match may do before it calls the interrupt callback again
 * (each unit is a small constant: a token read, a value compared, a search
 * step): a few thousand, a fraction of a millisecond.
 */
#define EBM_TICK_INTERVAL 4096

/* EBM_SEARCH_BUDGET (ebm.h) bounds the search for ambiguous events. */

/*
 * Scratch buffers over this many bytes are freed at the end of a match, so
 * that one huge event does not leave its high-water mark behind.
 */
#define EBM_KEEP_SCRATCH 65536

/*
 * Free the scratch array *p (capacity *cap elements of elsize bytes) if it
 * outgrew EBM_KEEP_SCRATCH bytes: the next use grows it again only if it
 * needs to, and one large event does not leave its high-water mark behind.
 */
static inline void
ebm_trim_scratch(void **p, size_t *cap, size_t elsize)
{
	if (*cap * elsize > EBM_KEEP_SCRATCH)
		ebm_free_scratch(p, cap);
}

/* ---- rule set (compile.c) and matching context (match.c) ---- */
typedef struct ebm_ruleset_priv ebm_ruleset_priv;
typedef struct ebm_pathtrie ebm_pathtrie;

typedef struct ebm_strtab ebm_strtab;

struct ebm_match_ctx
{
	ebm_leaf   *leaves;			/* document order */
	size_t		nleaves;
	size_t		leafcap;
	ebm_leaf   *byp;			/* the same, grouped by path */
	size_t		bypcap;
	ebm_elem   *elems;			/* array elements, in document order */
	size_t		nelems;
	size_t		elemcap;
	ebm_arr    *arrs;			/* arrays, in document order */
	size_t		narrs;
	size_t		arrcap;
	bool		ambiguous;		/* a path reached twice in one object */
	uint64_t   *nodeseen;		/* per trie node: (walk, object) stamp */
	size_t		nodeseencap;
	uint32_t	walk;			/* flatten count, for nodeseen */
	/* the array-tree decision (eval.c): per element, array, trie node */
	uint32_t   *estamp;			/* element visited in this decision */
	uint32_t   *ecount;			/* positive fields covered in it */
	uint32_t   *efield;			/* last field counted in it (+1) */
	uint32_t   *epend;			/* children not yet decided */
	uint32_t   *eanchor;		/* innermost constrained element above */
	uint32_t   *equeue;			/* elements ready to decide */
	uint32_t   *evisit;			/* elements visited in this decision */
	uint32_t   *eastamp;		/* eanchor computed in this decision */
	uint8_t    *ebad;			/* an absence field fails in it */
	size_t		ecap;
	uint32_t   *astamp;			/* array found good in this decision */
	size_t		acap;
	uint32_t   *nstamp;			/* trie node: npos computed */
	uint32_t   *npos;			/* trie node: positive fields under it */
	size_t		ncap;
	uint32_t	dgen;			/* decision count, for the stamps */
	/* interrupts and budgets */
	bool		(*interrupt) (void *arg);
	void	   *interrupt_arg;
	uint32_t	ticks;			/* work since the last callback */
	bool		interrupted;	/* the callback asked to stop */
	uint64_t	search_steps;	/* budgeted search steps in this event */
	bool		over_budget;
	bool		force_search;	/* tests: decide every choice by search */
	const ebm_pathtrie *trie;	/* of the rule set being matched */
	/* per path id: first leaf in byp, count, generation */
	uint32_t   *pfirst;
	uint32_t   *pcount;
	uint32_t   *pgen;
	size_t		npathcap;
	uint32_t   *touched;		/* path ids seen in this event */
	size_t		ntouched;
	size_t		touchedcap;
	uint32_t	gen;
	/* per sub-rule: candidate stamp */
	uint8_t    *sgen;			/* per sub-rule: seen in this event if equal
								 * to sgen_gen */
	uint8_t		sgen_gen;
	size_t		nsubcap;
	uint32_t   *cands;
	size_t		ncands;
	size_t		candcap;
	/* results */
	uint32_t   *ids;
	size_t		nids;
	size_t		idcap;
	uint64_t   *rankbits;		/* matched rule ranks, a bitmap */
	size_t		rankcap;		/* in 64-bit words */
	size_t		rank_lo;		/* words of rankbits touched this event */
	size_t		rank_hi;
	size_t		nmatched;
	/* scratch for case folding and verification */
	char	   *fold;			/* case folding while deciding conditions */
	size_t		foldcap;
	char	   *probefold;		/* case folding of the value being probed */
	size_t		probefoldcap;
	const ebm_leaf **pick;		/* candidate leaves of each field */
	size_t		pickcap;
	uint32_t   *pickoff;		/* per field: start in pick, then count */
	size_t		pickoffcap;
	uint32_t   *choice;			/* backtracking: chosen candidate per field */
	size_t		choicecap;
	void	   *frames;			/* event walk stack (event.c) */
	size_t		framecap;
};

/* eval.c */
extern bool ebm_cond_holds(const ebm_cond *c, const ebm_leaf *v,
						   ebm_match_ctx *ctx);
extern bool ebm_subrule_holds(const ebm_subrule *s, ebm_match_ctx *ctx);
extern bool ebm_ctx_reserve_eval(ebm_match_ctx *ctx, size_t maxfields);
extern bool ebm_ctx_reserve_fold(ebm_match_ctx *ctx, size_t need);

/* match.c: count work, call the interrupt callback now and then */
extern bool ebm_tick_slow(ebm_match_ctx *ctx);
extern void ebm_match_ctx_trim(ebm_match_ctx *ctx);

/*
 * Note n units of work; false when the match must stop (the callback asked
 * to, now or earlier).
 */
static inline bool
ebm_tick(ebm_match_ctx *ctx, uint32_t n)
{
	ctx->ticks += n;
	if (ctx->ticks < EBM_TICK_INTERVAL)
		return !ctx->interrupted;
	return ebm_tick_slow(ctx);
}

/* event.c */
extern ebm_status ebm_event_flatten(const ebm_pathtrie *t, size_t npaths,
									const ebm_builder *b, ebm_match_ctx *ctx);
extern void ebm_event_trim(ebm_match_ctx *ctx);

/* pathtrie (pathtrie.c): dotted path -> id, walked segment by segment */
#define EBM_NO_NODE UINT32_MAX
extern ebm_pathtrie *ebm_pathtrie_new(void);
extern void ebm_pathtrie_free(ebm_pathtrie *t);
extern bool ebm_pathtrie_add(ebm_pathtrie *t, const char *path, size_t len,
							 uint32_t *id);
extern uint32_t ebm_pathtrie_child(const ebm_pathtrie *t, uint32_t node,
								   const char *seg, size_t len);
extern uint32_t ebm_pathtrie_path_id(const ebm_pathtrie *t, uint32_t node);
extern uint32_t ebm_pathtrie_npaths(const ebm_pathtrie *t);
extern const uint64_t *ebm_pathtrie_firsts(const ebm_pathtrie *t);
extern uint32_t ebm_pathtrie_node_of(const ebm_pathtrie *t, uint32_t path_id);
extern uint32_t ebm_pathtrie_nnodes(const ebm_pathtrie *t);
extern bool ebm_pathtrie_covers(const ebm_pathtrie *t, uint32_t a, uint32_t d);

/*
 * Hash of a byte string, eight bytes at a time (callers mix the result
 * further where they need well-spread bits).  Used for path segments and
 * values, on the pattern and the event side alike.
 */
static inline uint64_t
ebm_hash_bytes(const char *s, size_t len, uint64_t h)
{
	const unsigned char *u = (const unsigned char *) s;
	uint64_t	w;
	size_t		i;

	h ^= (uint64_t) len * UINT64_C(0x9e3779b97f4a7c15);
	while (len >= 8)
	{
		memcpy(&w, u, 8);
		h = (h ^ w) * UINT64_C(0xbf58476d1ce4e5b9);
		h ^= h >> 31;
		u += 8;
		len -= 8;
	}
	if (len)
	{
		w = 0;
		for (i = 0; i < len; i++)
			w |= (uint64_t) u[i] << (8 * i);
		h = (h ^ w) * UINT64_C(0xbf58476d1ce4e5b9);
		h ^= h >> 31;
	}
	return h;
}

#define EBM_HASH_SEED UINT64_C(0xcbf29ce484222325)

static inline uint64_t
ebm_hash_mix(uint64_t h)
{
	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64_C(0xc4ceb9fe1a85ec53);
	h ^= h >> 33;
	return h;
}

/* Digest of one JSON value (type-aware; numbers by value). */
static inline uint64_t
ebm_value_digest(uint8_t vtype, const char *s, size_t len, bool finite,
				 double num)
{
	switch (vtype)
	{
		case EBM_V_STRING:
			return ebm_hash_bytes(s, len, EBM_HASH_SEED ^ 0x5354);
		case EBM_V_NUMBER:
			if (finite)
				return ebm_hash_mix(ebm_number_key(num) ^ UINT64_C(0x4e554d));
			return ebm_hash_bytes(s, len, EBM_HASH_SEED ^ 0x4e54);
		case EBM_V_TRUE:
			return UINT64_C(0x7472756574727565);
		case EBM_V_FALSE:
			return UINT64_C(0x66616c7365666c73);
		default:
			return UINT64_C(0x6e756c6c6e756c6c);
	}
}

/* Is the value equal to the literal (same JSON type, numbers by value)? */
static inline bool
ebm_literal_equals(const ebm_literal *lit, const ebm_leaf *v)
{
	if (lit->digest != v->digest || lit->vtype != v->vtype)
		return false;
	switch (v->vtype)
	{
		case EBM_V_STRING:
			return lit->len == v->len && ebm_bytes_equal(lit->str, v->str, v->len);
		case EBM_V_NUMBER:
			if (lit->finite && v->finite)
				return lit->num == v->num;
			return lit->len == v->len && ebm_bytes_equal(lit->str, v->str, v->len);
		default:
			return true;
	}
}

#endif							/* EBM_INTERNAL_H */
