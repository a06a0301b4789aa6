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
#ifndef EVENTBUS_POLICY_H
#define EVENTBUS_POLICY_H

#include <stdbool.h>
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
	EB_TRANSPORT_INTERNAL		/* the request could not be built */
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

/* Exhausted conditions (the CHECK constraint of eventbus.dead_letters). */
#define EB_EXHAUSTED_RETRIES		"MaximumRetryAttempts"
#define EB_EXHAUSTED_AGE			"MaximumEventAgeInSeconds"
#define EB_EXHAUSTED_NON_RETRYABLE	"NonRetryable"
#define EB_EXHAUSTED_TARGET_DELETED "TargetDeleted"

extern EbVerdict eb_classify(EbTransport transport, long http_status);
extern const char *eb_error_code(EbTransport transport, long http_status);
extern int64_t eb_backoff_ms(int attempts, int64_t base_ms, int64_t max_ms,
							 double rand01);
extern bool eb_parse_retry_after(const char *value, time_t now,
								 int64_t *delay_ms);
extern int64_t eb_retry_delay_ms(int attempts, int64_t base_ms, int64_t max_ms,
								 double rand01, const char *retry_after,
								 time_t now);

#endif							/* EVENTBUS_POLICY_H */
