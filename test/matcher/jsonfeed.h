/*
 * jsonfeed.h
 *	  Test/benchmark helper: JSON text -> jansson tree -> ebm_builder calls.
 */
#ifndef JSONFEED_H
#define JSONFEED_H

#include <jansson.h>

#include "ebm.h"

/* Decode JSON text into a jansson tree keeping numbers' lexical form. */
extern json_t *jf_decode(const char *text, size_t len, json_error_t *err);

/* Feed a tree produced by jf_decode (or any jansson tree) to a builder. */
extern ebm_status jf_feed(ebm_builder *b, const json_t *v);

/* Convenience: reset the builder and feed text; EBM_ERR_STATE if the text
 * is not JSON. */
extern ebm_status jf_feed_text(ebm_builder *b, const char *text, size_t len);

#endif
