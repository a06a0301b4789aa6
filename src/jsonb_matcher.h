/*-------------------------------------------------------------------------
 *
 * jsonb_matcher.h
 *	  jsonb -> matcher input, and matcher errors -> ereport.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTBUS_JSONB_MATCHER_H
#define EVENTBUS_JSONB_MATCHER_H

#include "utils/jsonb.h"

#include "ebm.h"

extern void eventbus_check_ebm(ebm_status st);
extern ebm_builder *eventbus_builder(void);
extern ebm_match_ctx *eventbus_match_ctx(void);
extern void eventbus_feed_string(ebm_builder *b, const char *s, int len,
								 bool is_key);
extern void eventbus_feed_jsonb(ebm_builder *b, JsonbContainer *container);
extern ebm_pattern *eventbus_try_parse_pattern(Jsonb *pattern,
											   ebm_error *err);
extern void eventbus_report_pattern_error(const ebm_error *err,
										  const char *rule_name, int elevel);
extern ebm_pattern *eventbus_parse_pattern(Jsonb *pattern,
										   const char *rule_name);
extern void eventbus_check_event_object(Jsonb *event);

#endif							/* EVENTBUS_JSONB_MATCHER_H */
