/*-------------------------------------------------------------------------
 *
 * jsonb_matcher.h
 *	  jsonb -> matcher input, and matcher errors -> ereport.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_JSONB_MATCHER_H
#define EB_JSONB_MATCHER_H

#include "utils/jsonb.h"

#include "ebm.h"

extern void eb_matcher_check(ebm_status st);
extern ebm_builder *eb_matcher_builder(void);
extern ebm_match_ctx *eb_matcher_match_ctx(void);
extern void eb_matcher_feed_string(ebm_builder *b, const char *s, int len,
								 bool is_key);
extern void eb_matcher_feed_jsonb(ebm_builder *b, JsonbContainer *container);
extern ebm_pattern *eb_matcher_try_parse_pattern(Jsonb *pattern,
											   ebm_error *err);
extern void eb_matcher_report_pattern_error(const ebm_error *err,
										  const char *rule_name, int elevel);
extern ebm_pattern *eb_matcher_parse_pattern(Jsonb *pattern,
										   const char *rule_name);
extern void eb_matcher_check_event_object(Jsonb *event);

#endif							/* EB_JSONB_MATCHER_H */
