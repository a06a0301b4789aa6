/*-------------------------------------------------------------------------
 *
 * match.c
 *	  Match one event against a compiled rule set.
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>

#include "ruleset.h"

/* A fresh, empty matching context. */
ebm_match_ctx *
ebm_match_ctx_new(void)
{
	return ebm_calloc(1, sizeof(ebm_match_ctx));
}

/* Free a context and all its scratch space. */
void
ebm_match_ctx_free(ebm_match_ctx *ctx)
{
	if (ctx == NULL)
		return;
	ebm_free(ctx->leaves);
	ebm_free(ctx->byp);
	ebm_free(ctx->trails);
	ebm_free(ctx->trailstack);
	ebm_free(ctx->pfirst);
	ebm_free(ctx->pcount);
	ebm_free(ctx->pgen);
	ebm_free(ctx->touched);
	ebm_free(ctx->sgen);
	ebm_free(ctx->cands);
	ebm_free(ctx->ids);
	ebm_free(ctx->fold);
	ebm_free(ctx->pick);
	ebm_free(ctx->pickoff);
	ebm_free(ctx->choice);
	ebm_free(ctx->frames);
	ebm_free(ctx);
}

/* Ascending order of rule ids, for qsort. */
static int
cmp_u32(const void *a, const void *b)
{
	uint32_t	x = *(const uint32_t *) a;
	uint32_t	y = *(const uint32_t *) b;

	return (x > y) - (x < y);
}

/* Sort the collected ids and drop duplicates. */
static void
sort_unique(ebm_match_ctx *ctx)
{
	size_t		i,
				n = 0;

	if (ctx->nids < 2)
		return;
	qsort(ctx->ids, ctx->nids, sizeof(uint32_t), cmp_u32);
	for (i = 0; i < ctx->nids; i++)
		if (n == 0 || ctx->ids[n - 1] != ctx->ids[i])
			ctx->ids[n++] = ctx->ids[i];
	ctx->nids = n;
}

/* Match the event held by the builder; see ebm.h. */
ebm_status
ebm_match(const ebm_ruleset *rs, ebm_builder *event, ebm_match_ctx *ctx,
		  const uint32_t **ids, size_t *nids)
{
	ebm_status	st;
	uint32_t	i;

	*ids = NULL;
	*nids = 0;
	if (rs == NULL || !rs->compiled)
		return EBM_ERR_STATE;
	st = ebm_event_flatten(rs->paths, ebm_pathtrie_npaths(rs->paths), event, ctx);
	if (st != EBM_OK)
		return st;
	ctx->nids = 0;
	for (i = 0; i < rs->index.nalways; i++)
	{
		uint32_t	s = rs->index.always[i];

		if (ebm_subrule_holds(&rs->subs[s], ctx))
		{
			if (!ebm_grow((void **) &ctx->ids, &ctx->idcap, ctx->nids + 1, sizeof(uint32_t)))
				return EBM_ERR_NOMEM;
			ctx->ids[ctx->nids++] = rs->sub_rule[s];
		}
	}
	sort_unique(ctx);
	*ids = ctx->ids;
	*nids = ctx->nids;
	return EBM_OK;
}
