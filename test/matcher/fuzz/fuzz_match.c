/*
 * fuzz_match.c
 *	  libFuzzer harness: parse + compile + match.  The input is JSON text:
 *	  an array whose last element is the event and whose other elements are
 *	  patterns (invalid ones are skipped).  Besides looking for crashes, it
 *	  checks the compiled index against deciding every sub-rule one by one,
 *	  and deciding each sub-rule on the array tree against the direct
 *	  search over combinations (eval.c), and aborts if they disagree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ebm.h"
#include "jsonfeed.h"
#include "ruleset.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static ebm_builder *b;
	static ebm_match_ctx *ctx;
	json_error_t jerr;
	json_t	   *doc;
	ebm_ruleset *rs;
	size_t		i,
				n;
	const uint32_t *ids;
	size_t		nids;

	if (b == NULL)
	{
		b = ebm_builder_new();
		ctx = ebm_match_ctx_new();
	}
	doc = jf_decode((const char *) data, size, &jerr);
	if (doc == NULL)
		return 0;
	if (!json_is_array(doc) || json_array_size(doc) < 2)
	{
		json_decref(doc);
		return 0;
	}
	n = json_array_size(doc);
	rs = ebm_ruleset_new();
	for (i = 0; i + 1 < n; i++)
	{
		ebm_pattern *p;
		ebm_error	err;

		ebm_builder_reset(b);
		if (jf_feed(b, json_array_get(doc, i)) != EBM_OK ||
			ebm_pattern_parse(b, &p, &err) != EBM_OK)
			continue;
		ebm_ruleset_add(rs, (uint32_t) (i * 3 % 7), p);
		ebm_pattern_free(p);
	}
	if (ebm_ruleset_compile(rs) == EBM_OK)
	{
		ebm_builder_reset(b);
		if (jf_feed(b, json_array_get(doc, n - 1)) == EBM_OK &&
			ebm_match(rs, b, ctx, &ids, &nids) == EBM_OK)
		{
			/* oracle: every sub-rule decided on the same flattened event */
			uint32_t	seen[8] = {0};
			size_t		k,
						nexp = 0;
			uint32_t	s;
			uint32_t	got[8];

			/* copy the ids: flattening again reuses the context */
			memcpy(got, ids, (nids < 8 ? nids : 8) * sizeof(uint32_t));
			if (nids > 8)
				abort();
			if (ebm_event_flatten(rs->paths, ebm_pathtrie_npaths(rs->paths), b, ctx) != EBM_OK ||
				!ebm_ctx_reserve_eval(ctx, rs->maxfields))
				abort();
			for (s = 0; s < rs->nsubs; s++)
			{
				bool		tree,
							search;

				ctx->force_search = false;
				tree = ebm_subrule_holds(&rs->subs[s], ctx);
				ctx->force_search = true;
				ctx->search_steps = 0;
				ctx->over_budget = false;
				search = ebm_subrule_holds(&rs->subs[s], ctx);
				ctx->force_search = false;
				if (!ctx->over_budget && tree != search)
					abort();
				if (tree)
					seen[rs->sub_rule[s]] = 1;
			}
			for (k = 0; k < 8; k++)
				nexp += seen[k];
			if (nexp != nids)
				abort();
			for (k = 0; k < nids; k++)
				if (got[k] >= 8 || !seen[got[k]] || (k > 0 && got[k] <= got[k - 1]))
					abort();
		}
	}
	ebm_ruleset_free(rs);
	json_decref(doc);
	return 0;
}
