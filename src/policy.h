/*-------------------------------------------------------------------------
 *
 * policy.h
 *	  Delivery policy: what is retryable, how long to wait before the next
 *	  attempt, how to read Retry-After, which error code a failure gets.
 *
 * Pure functions with no PostgreSQL or libcurl types, so that they can be
 * unit-tested on their own (test/policy).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_POLICY_H
#define EB_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* How the transport ended, before looking at any HTTP status. */
typedef enum EbTransport
{
	EB_TRANSPORT_OK = 0,		/* a response arrived; see the status */
	EB_TRANSPORT_CONNECT,		/* refused, reset, closed, TLS failure */
	EB_TRANSPORT_TIMEOUT,		/* the target's timeout elapsed */
	EB_TRANSPORT_DNS,			/* the host name does not resolve */
	EB_TRANSPORT_BAD_URL,		/* the endpoint cannot be requested at all */
	EB_TRANSPORT_INTERNAL,		/* the request could not be built */
	EB_TRANSPORT_MALFORMED,		/* the answer is not valid HTTP (no or bad
								 * status line, cut short, oversized) */
	EB_TRANSPORT_BAD_HEADER,	/* a target header may not be sent */
	EB_TRANSPORT_FUNCTION_OK,	/* a function target's function returned */
	EB_TRANSPORT_FUNCTION_RETRYABLE,	/* it raised an error that may pass
										 * (eb_function_transport) */
	EB_TRANSPORT_FUNCTION_FAILED	/* it raised any other error */
} EbTransport;

/* What to do with a finished attempt. */
typedef enum EbVerdict
{
	EB_VERDICT_SUCCESS,
	EB_VERDICT_RETRY,
	EB_VERDICT_NON_RETRYABLE
} EbVerdict;

/* Stable error codes of dead letters (EventBridge's vocabulary). */
#define EB_ERR_CONNECTION_FAILURE	"CONNECTION_FAILURE"
#define EB_ERR_TIMEOUT				"TIMEOUT"
#define EB_ERR_ERROR_FROM_TARGET	"ERROR_FROM_TARGET"
#define EB_ERR_THROTTLING			"THROTTLING"
#define EB_ERR_NO_RESOURCE			"NO_RESOURCE"
#define EB_ERR_NO_PERMISSIONS		"NO_PERMISSIONS"
#define EB_ERR_INVALID_PARAMETER	"INVALID_PARAMETER"
#define EB_ERR_TARGET_DELETED		"TARGET_DELETED"
#define EB_ERR_INTERNAL_FAILURE		"INTERNAL_FAILURE"
#define EB_ERR_FUNCTION_ERROR		"FUNCTION_ERROR"
#define EB_ERR_BATCH_ITEM_FAILURE	"BATCH_ITEM_FAILURE"	/* batch.c */

/* Exhausted conditions (the CHECK constraint of eventbus.dead_letters). */
#define EB_EXHAUSTED_RETRIES		"MaximumRetryAttempts"
#define EB_EXHAUSTED_AGE			"MaximumEventAgeInSeconds"
#define EB_EXHAUSTED_NON_RETRYABLE	"NonRetryable"
#define EB_EXHAUSTED_TARGET_DELETED "TargetDeleted"

/*
 * Size bounds of a target's headers: one header (name and value) and all of
 * a target's headers together.  Every delivery carries them, so their size
 * is multiplied by the requests in flight; common servers refuse header
 * lines over 8 kB anyway.
 */
#define EB_HEADER_MAX_BYTES			8192
#define EB_HEADERS_MAX_TOTAL_BYTES	16384

/* Why a header may not be sent (eb_header_check). */
typedef enum EbHeaderProblem
{
	EB_HEADER_OK = 0,
	EB_HEADER_EMPTY_NAME,		/* no name at all */
	EB_HEADER_BAD_NAME,			/* a name character outside RFC 9110's tchar */
	EB_HEADER_CONTROL,			/* a control character other than HTAB */
	EB_HEADER_RESERVED,			/* a header the worker sets itself */
	EB_HEADER_TOO_LONG			/* name and value over EB_HEADER_MAX_BYTES */
} EbHeaderProblem;

extern bool eb_final_status_valid(long http_status);
extern EbVerdict eb_classify(EbTransport transport, long http_status);
extern const char *eb_error_code(EbTransport transport, long http_status);
extern EbTransport eb_function_transport(const char *sqlstate);
extern bool eb_transport_answered(EbTransport transport);
extern int64_t eb_backoff_ms(int attempts, int64_t base_ms, int64_t max_ms,
							 double rand01);
extern bool eb_parse_retry_after(const char *value, time_t now,
								 int64_t *delay_ms);
extern int64_t eb_retry_delay_ms(int attempts, int64_t base_ms, int64_t max_ms,
								 double rand01, const char *retry_after,
								 time_t now);
extern EbHeaderProblem eb_header_check(const char *name, size_t namelen,
									   const char *value, size_t valuelen,
									   bool check_reserved, size_t *at);
extern void eb_header_problem_text(EbHeaderProblem problem,
								   const char *name, const char *value,
								   size_t at, char *buf, size_t bufsize);
extern const char *eb_header_problem_hint(EbHeaderProblem problem);

#endif							/* EB_POLICY_H */
