/*-------------------------------------------------------------------------
 *
 * attempts.h
 *	  The attempt log: one row of eventbus.delivery_attempts per HTTP
 *	  attempt, written in the worker's settle transaction.
 *
 * The worker's rooms call in at three places: once per settled delivery,
 * once where the settle transaction runs its statements, and in the loop,
 * which asks for the log's partitions to be kept.  What the log needs of a
 * delivery beyond its outcome (its event id, when its request started)
 * the delivery carries (request.h).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_ATTEMPTS_H
#define EB_ATTEMPTS_H

#include "http.h"

struct EbDelivery;

/*
 * The first bytes of a response's body as valid text of the database
 * encoding (invalid bytes replaced), or NULL; palloc'd.
 */
extern char *eb_response_excerpt(const EbHttpRequest *req);

/*
 * Adds the finished attempt of `d` to the rows of the current settle, if
 * eventbus.attempt_log wants it; kept in the log's own memory until the
 * flush.
 */
extern void eb_attempts_add(const struct EbDelivery *d);

/*
 * Inserts the rows added since the last call, in one statement; inside the
 * settle transaction, under SPI.
 */
extern void eb_attempts_flush(void);

/*
 * Runs eventbus.maintain_attempt_log() in its own transaction when it is
 * due (when the worker starts, then hourly); outside any transaction.
 */
extern void eb_attempts_maintain_if_due(void);

#endif							/* EB_ATTEMPTS_H */
