/*-------------------------------------------------------------------------
 *
 * event.c
 *	  Flatten an event into leaves: (field path id, scalar value, array
 *	  positions), keeping only the fields some rule looks at.
 *
 * We walk the builder's tokens with the rule set's path trie: a key whose
 * path no rule mentions skips its whole value in O(1).  Every array on a
 * path some rule mentions gets a record (its path node and the element it
 * sits in), every element of it one more (its array and position), and
 * every scalar remembers the innermost element it sits in, so that fields
 * taken from one element of an array of objects can be told apart from
 * fields of different elements (ebm_internal.h, eval.c).  Finally the
 * leaves are grouped by path (a counting sort) so a rule can find a
 * field's values at once.
 *
 * Cost: one pass over the tokens, O(1) per token plus the key's length for
 * each key followed into the trie; memory: one leaf per scalar kept, one
 * record per array and per array element.  Nothing here allocates once
 * the context's buffers have grown.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "index.h"

/* One open container of the walk. */
typedef struct frame
{
	uint32_t	end;			/* token index after the container */
	uint32_t	node;			/* trie node of the container's path */
	bool		is_array;
	uint32_t	tok;			/* token index of the container */
	uint32_t	arr;			/* arrays: its record */
	uint32_t	nextindex;		/* arrays: index of the next element */
	uint32_t	elem;			/* innermost element around the contents */
	uint32_t	ntrail;			/* arrays around the contents */
} frame;

/*
 * Descend from node along a key, one dot-separated segment at a time.
 * *dotted is set when the key crossed a dot on the way to a node.
 */
static inline uint32_t
descend(const ebm_pathtrie *t, const uint64_t *firsts, uint32_t node,
		const char *key, size_t len, bool *dotted)
{
	size_t		start = 0;
	size_t		i;
	unsigned char c0 = len ? (unsigned char) key[0] : 0;

	/* most keys lead nowhere: tell by the first byte */
	if (!(firsts[4 * (size_t) node + c0 / 64] & (UINT64_C(1) << (c0 % 64))))
		return EBM_NO_NODE;
	*dotted = false;
	for (i = 0; i <= len && node != EBM_NO_NODE; i++)
		if (i == len || key[i] == '.')
		{
			node = ebm_pathtrie_child(t, node, key + start, i - start);
			start = i + 1;
			if (i < len)
				*dotted = true;
		}
	return node;
}

/* Append a leaf for the scalar token v at path pid, inside element elem. */
static bool
add_leaf(ebm_match_ctx *ctx, const ebm_builder *b, const ebm_token *v,
		 uint32_t pid, uint32_t elem, uint32_t ntrail)
{
	ebm_leaf   *l;

	if (!ebm_reserve((void **) &ctx->leaves, &ctx->leafcap, ctx->nleaves + 1, sizeof(ebm_leaf)))
		return false;
	l = &ctx->leaves[ctx->nleaves++];
	l->path_id = pid;
	l->len = v->len;
	l->str = b->text + v->off;
	l->num = 0.0;
	l->finite = false;
	switch (v->type)
	{
		case EBM_T_STRING:
			l->vtype = EBM_V_STRING;
			break;
		case EBM_T_NUMBER:
			l->vtype = EBM_V_NUMBER;
			l->num = ebm_number_value(l->str, l->len, &l->finite);
			break;
		case EBM_T_TRUE:
			l->vtype = EBM_V_TRUE;
			break;
		case EBM_T_FALSE:
			l->vtype = EBM_V_FALSE;
			break;
		default:
			l->vtype = EBM_V_NULL;
			break;
	}
	l->digest = ebm_value_digest(l->vtype, l->str, l->len, l->finite, l->num);
	l->ntrail = ntrail;
	l->elem = elem;
	return true;
}

/*
 * Note that a key of the object at token objtok led to trie node node; a
 * second key of the same object leading there (a repeated key) makes the
 * event ambiguous, as a dotted key does (eval.c).
 */
static void
note_node(ebm_match_ctx *ctx, uint32_t node, uint32_t objtok)
{
	uint64_t	stamp = ((uint64_t) ctx->walk << 32) | objtok;

	if (ctx->nodeseen[node] == stamp)
		ctx->ambiguous = true;
	ctx->nodeseen[node] = stamp;
}

/* Group the leaves by path id into ctx->byp, with pfirst/pcount per path. */
static bool
group_by_path(ebm_match_ctx *ctx, size_t npaths)
{
	size_t		i;
	uint32_t	pos = 0;

	if (!ebm_reserve((void **) &ctx->byp, &ctx->bypcap, ctx->nleaves, sizeof(ebm_leaf)))
		return false;
	if (npaths > ctx->npathcap)
	{
		size_t		cap = ctx->npathcap;
		size_t		cap2 = ctx->npathcap;
		size_t		cap3 = ctx->npathcap;

		if (!ebm_reserve((void **) &ctx->pfirst, &cap, npaths, sizeof(uint32_t)) ||
			!ebm_reserve((void **) &ctx->pcount, &cap2, npaths, sizeof(uint32_t)) ||
			!ebm_reserve((void **) &ctx->pgen, &cap3, npaths, sizeof(uint32_t)))
			return false;
		memset(ctx->pgen + ctx->npathcap, 0, (cap3 - ctx->npathcap) * sizeof(uint32_t));
		ctx->npathcap = cap3;
	}
	ctx->ntouched = 0;
	for (i = 0; i < ctx->nleaves; i++)
	{
		uint32_t	p = ctx->leaves[i].path_id;

		if (ctx->pgen[p] != ctx->gen)
		{
			ctx->pgen[p] = ctx->gen;
			ctx->pcount[p] = 0;
			if (!ebm_reserve((void **) &ctx->touched, &ctx->touchedcap, ctx->ntouched + 1,
						  sizeof(uint32_t)))
				return false;
			ctx->touched[ctx->ntouched++] = p;
		}
		ctx->pcount[p]++;
	}
	for (i = 0; i < ctx->ntouched; i++)
	{
		uint32_t	p = ctx->touched[i];

		ctx->pfirst[p] = pos;
		pos += ctx->pcount[p];
		ctx->pcount[p] = 0;
	}
	for (i = 0; i < ctx->nleaves; i++)
	{
		uint32_t	p = ctx->leaves[i].path_id;

		ctx->byp[ctx->pfirst[p] + ctx->pcount[p]++] = ctx->leaves[i];
	}
	return true;
}

/*
 * Flatten the event held by b for the paths of trie t (npaths of them).
 * Afterwards, path p has ctx->pcount[p] leaves from ctx->byp[pfirst[p]] when
 * ctx->pgen[p] == ctx->gen, and none otherwise.  EBM_ERR_INTERRUPTED when
 * the interrupt callback asked to stop.
 */
ebm_status
ebm_event_flatten(const ebm_pathtrie *t, size_t npaths, const ebm_builder *b,
				  ebm_match_ctx *ctx)
{
	frame	   *frames;
	size_t		depth = 0;
	uint32_t	i;
	uint32_t	ticks = 0;		/* tokens since the last ebm_tick */
	const uint64_t *firsts = ebm_pathtrie_firsts(t);
	size_t		nnodes = ebm_pathtrie_nnodes(t);

	if (b == NULL || !b->done || b->failed || b->ntoks == 0)
		return EBM_ERR_STATE;
	if (b->toks[0].type != EBM_T_OBJECT)
		return EBM_ERR_STATE;
	ctx->nleaves = 0;
	ctx->nelems = 0;
	ctx->narrs = 0;
	ctx->ambiguous = false;
	if (++ctx->gen == 0)
	{
		if (ctx->pgen)
			memset(ctx->pgen, 0, ctx->npathcap * sizeof(uint32_t));
		ctx->gen = 1;
	}
	if (nnodes > ctx->nodeseencap)
	{
		size_t		old = ctx->nodeseencap;

		if (!ebm_reserve((void **) &ctx->nodeseen, &ctx->nodeseencap, nnodes,
						 sizeof(uint64_t)))
			return EBM_ERR_NOMEM;
		memset(ctx->nodeseen + old, 0, (ctx->nodeseencap - old) * sizeof(uint64_t));
	}
	if (++ctx->walk == 0)
	{
		memset(ctx->nodeseen, 0, ctx->nodeseencap * sizeof(uint64_t));
		ctx->walk = 1;
	}
	if (!ebm_reserve(&ctx->frames, &ctx->framecap, 8, sizeof(frame)))
		return EBM_ERR_NOMEM;
	frames = ctx->frames;
	frames[0].end = b->toks[0].end;
	frames[0].node = 0;
	frames[0].is_array = false;
	frames[0].tok = 0;
	frames[0].elem = EBM_NO_ELEM;
	frames[0].ntrail = 0;
	depth = 1;
	i = 1;
	while (depth > 0)
	{
		frame	   *f = &frames[depth - 1];
		uint32_t	node;
		const ebm_token *v;

		/* counted locally: this loop runs once per token */
		if (++ticks == 256)
		{
			ticks = 0;
			if (!ebm_tick(ctx, 256))
				return EBM_ERR_INTERRUPTED;
		}
		if (i >= f->end)
		{
			depth--;
			continue;
		}
		if (f->is_array)
		{
			ebm_elem   *e;

			node = f->node;
			if (!ebm_reserve((void **) &ctx->elems, &ctx->elemcap, ctx->nelems + 1,
							 sizeof(ebm_elem)))
				return EBM_ERR_NOMEM;
			e = &ctx->elems[ctx->nelems];
			e->array = f->arr;
			e->index = f->nextindex++;
			f->elem = (uint32_t) ctx->nelems++;
		}
		else
		{
			const ebm_token *k = &b->toks[i];
			bool		dotted;

			node = descend(t, firsts, f->node, b->text + k->off, k->len, &dotted);
			i++;
			if (node == EBM_NO_NODE)
			{
				v = &b->toks[i];
				i = (v->type == EBM_T_OBJECT || v->type == EBM_T_ARRAY) ? v->end : i + 1;
				continue;
			}
			if (dotted)
				ctx->ambiguous = true;
			note_node(ctx, node, f->tok);
		}
		v = &b->toks[i];
		if (v->type == EBM_T_OBJECT || v->type == EBM_T_ARRAY)
		{
			frame	   *nf;

			if (!ebm_reserve(&ctx->frames, &ctx->framecap, depth + 1, sizeof(frame)))
				return EBM_ERR_NOMEM;
			frames = ctx->frames;
			f = &frames[depth - 1];
			nf = &frames[depth++];
			nf->end = v->end;
			nf->node = node;
			nf->is_array = (v->type == EBM_T_ARRAY);
			nf->tok = i;
			nf->nextindex = 0;
			nf->elem = f->elem;
			nf->ntrail = f->ntrail;
			if (nf->is_array)
			{
				ebm_arr    *a;

				if (!ebm_reserve((void **) &ctx->arrs, &ctx->arrcap, ctx->narrs + 1,
								 sizeof(ebm_arr)))
					return EBM_ERR_NOMEM;
				a = &ctx->arrs[ctx->narrs];
				a->parent = f->elem;
				a->node = node;
				nf->arr = (uint32_t) ctx->narrs++;
				nf->ntrail++;
			}
			i++;
			continue;
		}
		if (ebm_pathtrie_path_id(t, node) != EBM_NO_NODE &&
			!add_leaf(ctx, b, v, ebm_pathtrie_path_id(t, node), f->elem, f->ntrail))
			return EBM_ERR_NOMEM;
		i++;
	}
	if (!group_by_path(ctx, npaths))
		return EBM_ERR_NOMEM;
	return EBM_OK;
}

/* Free the walk's buffers that one large event grew (match.c, after a match). */
void
ebm_event_trim(ebm_match_ctx *ctx)
{
	ebm_trim_scratch((void **) &ctx->leaves, &ctx->leafcap, sizeof(ebm_leaf));
	ebm_trim_scratch((void **) &ctx->byp, &ctx->bypcap, sizeof(ebm_leaf));
	ebm_trim_scratch((void **) &ctx->elems, &ctx->elemcap, sizeof(ebm_elem));
	ebm_trim_scratch((void **) &ctx->arrs, &ctx->arrcap, sizeof(ebm_arr));
	ebm_trim_scratch(&ctx->frames, &ctx->framecap, sizeof(frame));
}
