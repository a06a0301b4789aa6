/*-------------------------------------------------------------------------
 *
 * limits.h
 *	  Per-target rate limits and circuit breakers, shared by every delivery
 *	  worker through shared memory (see limits.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_LIMITS_H
#define EB_LIMITS_H

#include "datatype/timestamp.h"

#include "policy.h"

extern void eb_limits_init(void);
extern bool eb_limits_take(const char *target_key);
extern bool eb_limits_failed(EbTransport transport, long http_status);
extern void eb_limits_report(const char *target_key, bool failed);
extern void eb_limits_note_full(const char *target_key);
extern TimestampTz eb_limits_claim_wake(void);
extern void eb_limits_expire_held(void);

#endif							/* EB_LIMITS_H */
