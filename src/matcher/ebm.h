/*-------------------------------------------------------------------------
 *
 * ebm.h
 *	  EventBridge event-pattern matcher: public interface.
 *
 * A standalone C99 library with no PostgreSQL headers.  The caller never
 * hands it JSON text: it walks its own parsed document (jsonb in the server,
 * a jansson tree in tests and benchmarks) and feeds the values to an
 * ebm_builder, a SAX-style sink.  The same builder feeds patterns (parsed and
 * validated into an ebm_pattern) and events (flattened into field path ->
 * values, ready to match).
 *
 * Life cycle:
 *	  parse    ebm_pattern_parse()      builder -> validated pattern, or error
 *	  compile  ebm_ruleset_add/compile  all patterns of a bus -> one structure
 *	  match    ebm_match()              flattened event -> matching rule ids
 *
 * Memory comes from malloc/free (or the hooks set with ebm_set_allocator);
 * no function longjmps or aborts: failures are reported through return
 * values.  No global mutable state apart from the allocator hooks, so
 * separate objects may be used from separate threads.
 *
 * Bounds: matching one event costs at most linear time in the event's size
 * times the size of the rules it touches, and memory a small multiple of
 * the event's size, handed back at the end of each match (the argument is
 * at the head of eval.c).  A long match calls an interrupt callback every
 * few thousand steps (ebm_match_ctx_set_interrupt), so its caller can stop
 * it at once.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EBM_H
#define EBM_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C"
{
#endif

/* Result codes. */
typedef enum ebm_status
{
	EBM_OK = 0,
	EBM_ERR_NOMEM,				/* allocation failed */
	EBM_ERR_STATE,				/* builder call out of order (e.g. key in array) */
	EBM_ERR_PATTERN,			/* the pattern is invalid: see ebm_error */
	EBM_ERR_INTERRUPTED,		/* the interrupt callback asked to stop */
	EBM_ERR_LIMIT				/* the event needs more work than the search
								 * budget allows (see eval.c) */
} ebm_status;

/* This version has EBM_ERR_LIMIT and the interrupt callback. */
#define EBM_HAS_LIMITS 1

/*
 * The budget of the search that decides a match for an event reaching one
 * field path at two places of one object (a key with dots such as "a.b"
 * beside "a": {"b": ...}, or a repeated key): deciding those exactly is a
 * search, and past this many steps in one event ebm_match() returns
 * EBM_ERR_LIMIT rather than guess (a few tens of milliseconds).  Other
 * events never search (eval.c).
 */
#define EBM_SEARCH_BUDGET 20000000

/*
 * Why a pattern was rejected.  message is what a user reads, in the spirit
 * of AWS's "Event pattern is not valid. Reason: ..." (without that prefix);
 * path is the dotted field path where the problem is ("detail.price", empty
 * at the top level); op is the operator involved ("numeric", "prefix", ...,
 * empty when none).  All three are NUL-terminated and truncated to fit.
 */
typedef struct ebm_error
{
	char		message[256];
	char		path[256];
	char		op[32];
} ebm_error;

/*
 * Builder: receives one JSON document as a stream of calls, in document
 * order, exactly as a JSON parser's SAX events or jsonb's iterator produce
 * them.  Strings are UTF-8, already unescaped, with explicit length (they may
 * contain NUL).  Numbers are passed as their JSON lexical text ("300.0",
 * "3.018e2", "-1"), so the library decides how to compare them.  Object keys
 * may repeat: for patterns the last one wins, as in AWS.
 *
 * A builder is reusable: ebm_builder_reset() forgets the document but keeps
 * the allocated buffers up to a modest size (larger ones, left by a large
 * document, are freed), so the per-event path allocates nothing once warm.
 */
typedef struct ebm_builder ebm_builder;

extern ebm_builder *ebm_builder_new(void);
extern void ebm_builder_free(ebm_builder *b);
extern void ebm_builder_reset(ebm_builder *b);

extern ebm_status ebm_begin_object(ebm_builder *b);
extern ebm_status ebm_end_object(ebm_builder *b);
extern ebm_status ebm_begin_array(ebm_builder *b);
extern ebm_status ebm_end_array(ebm_builder *b);
extern ebm_status ebm_key(ebm_builder *b, const char *s, size_t len);
extern ebm_status ebm_string(ebm_builder *b, const char *s, size_t len);
extern ebm_status ebm_number(ebm_builder *b, const char *text, size_t len);
extern ebm_status ebm_bool(ebm_builder *b, bool v);
extern ebm_status ebm_null(ebm_builder *b);

/*
 * Patterns.  ebm_pattern_parse() reads the complete document held by the
 * builder (which must be a finished JSON object) and validates it with
 * EventBridge's rules; on EBM_ERR_PATTERN it fills *err and returns NULL in
 * *out.  The builder may be reset and reused afterwards; the pattern does
 * not point into it.
 */
typedef struct ebm_pattern ebm_pattern;

extern ebm_status ebm_pattern_parse(ebm_builder *b, ebm_pattern **out,
									ebm_error *err);

/*
 * Added: EventBridge limits a pattern to 2,048 characters (a quota that can
 * be raised to 4,096).  ebm_pattern_parse() applies the default; this one
 * takes the limit, in characters of the pattern written as compact JSON
 * (0: no limit).
 */
#define EBM_DEFAULT_MAX_PATTERN_SIZE 2048
extern ebm_status ebm_pattern_parse_limited(ebm_builder *b, ebm_pattern **out,
											ebm_error *err, size_t max_size);
extern void ebm_pattern_free(ebm_pattern *p);

/*
 * Rule sets.  Add any number of patterns, each under a caller-chosen rule
 * id (ids need not be dense or unique: a rule added twice is matched once
 * per id value), then compile once.  The rule set copies what it needs, so
 * the patterns may be freed after ebm_ruleset_add().  A compiled rule set is
 * read-only: ebm_match() may run on it from several threads, each with its
 * own ebm_match_ctx.
 */
typedef struct ebm_ruleset ebm_ruleset;

extern ebm_ruleset *ebm_ruleset_new(void);
extern void ebm_ruleset_free(ebm_ruleset *rs);
extern ebm_status ebm_ruleset_add(ebm_ruleset *rs, uint32_t rule_id,
								  const ebm_pattern *p);
extern ebm_status ebm_ruleset_compile(ebm_ruleset *rs);
extern size_t ebm_ruleset_size(const ebm_ruleset *rs);	/* rules added */

/*
 * Matching.  The event is the complete document held by the builder (a
 * finished JSON object: the whole envelope).  Dotted keys and nested keys
 * name the same path, as in AWS.  On success *ids points to *nids distinct
 * matching rule ids in ascending order, valid until the next ebm_match()
 * with the same context or until the context is freed.  A context is the
 * reusable scratch space of one matching thread; it may be used with any
 * rule set.  Besides EBM_OK it returns EBM_ERR_NOMEM, EBM_ERR_STATE (the
 * builder holds no finished object), EBM_ERR_INTERRUPTED (see below) and
 * EBM_ERR_LIMIT (an event that reaches one field path at two places of an
 * object, through dotted or repeated keys, needed more search than the
 * budget allows; never a guessed verdict).
 */
typedef struct ebm_match_ctx ebm_match_ctx;

extern ebm_match_ctx *ebm_match_ctx_new(void);
extern void ebm_match_ctx_free(ebm_match_ctx *ctx);

/*
 * Interrupts.  While matching with ctx, the library calls cb(arg) every few
 * thousand steps of work (well under a millisecond apart); when it returns
 * true, ebm_match() stops and returns EBM_ERR_INTERRUPTED, leaving the
 * context ready for the next match.  The callback must return: it is
 * asked, it does not act (a caller that wants to raise an error raises it
 * after ebm_match() returns).  NULL removes it.
 */
extern void ebm_match_ctx_set_interrupt(ebm_match_ctx *ctx,
										bool (*cb) (void *arg), void *arg);
extern ebm_status ebm_match(const ebm_ruleset *rs, ebm_builder *event,
							ebm_match_ctx *ctx,
							const uint32_t **ids, size_t *nids);

/* Optional allocator hooks (process-wide; set once before any other call). */
extern void ebm_set_allocator(void *(*malloc_fn) (size_t),
							  void *(*realloc_fn) (void *, size_t),
							  void (*free_fn) (void *));

/* Human-readable name of a status code. */
extern const char *ebm_status_string(ebm_status s);

#ifdef __cplusplus
}
#endif

#endif							/* EBM_H */
