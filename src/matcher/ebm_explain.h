/*-------------------------------------------------------------------------
 *
 * ebm_explain.h
 *	  EventBridge event-pattern matcher: why an event does not match a
 *	  pattern.
 *
 * An operator's tool, not the publishing path.  ebm_explain() takes the
 * verdict from the matcher itself (ebm_match on a one-rule set), so it
 * always agrees with publishing; when the event does not match, it decides
 * the pattern's fields one at a time with the matcher's own decision
 * procedure and reports the first field that fails, alone or together
 * with the fields before it.  The same bounds as ebm_match() hold: time
 * linear in the event's size times the pattern's fields, the interrupt
 * callback of the context asked throughout, the context's scratch space
 * trimmed at the end.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EBM_EXPLAIN_H
#define EBM_EXPLAIN_H

#include "ebm.h"

#ifdef __cplusplus
extern "C"
{
#endif

/* Most event values listed in actual (and in a reason). */
#define EBM_EXPLAIN_MAX_VALUES 10

/*
 * The answer.  When matched, every string is NULL.  Otherwise:
 *	field		the dotted path of the field that failed
 *	op			its operator: "equals" (exact values), "prefix", "suffix",
 *				"equals-ignore-case", "wildcard", "numeric", "exists",
 *				"cidr", "anything-but", or "any of" for a match list mixing
 *				operators
 *	expected	JSON text: the operator's argument (one condition) or the
 *				field's match list (several)
 *	actual		JSON text: the event's value at the path, an array of its
 *				first EBM_EXPLAIN_MAX_VALUES values when it has several,
 *				NULL when it has none
 *	reason		the same in words
 * alternative is the $or alternative reported (1-based, after expansion)
 * and nalternatives how many the pattern has.  Strings are UTF-8 and
 * NUL-terminated.
 */
typedef struct ebm_explanation
{
	bool		matched;
	uint32_t	alternative;
	uint32_t	nalternatives;
	char	   *field;
	char	   *op;
	char	   *expected;
	char	   *actual;
	char	   *reason;
} ebm_explanation;

/*
 * Explain the match of the event held by the builder (a finished JSON
 * object) against the pattern.  On EBM_OK *out is a new explanation to
 * free with ebm_explanation_free(); other results as ebm_match().
 */
extern ebm_status ebm_explain(const ebm_pattern *p, ebm_builder *event,
							  ebm_match_ctx *ctx, ebm_explanation **out);
extern void ebm_explanation_free(ebm_explanation *e);

#ifdef __cplusplus
}
#endif

#endif							/* EBM_EXPLAIN_H */
