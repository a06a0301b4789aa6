/*-------------------------------------------------------------------------
 *
 * attempts.h
 *	  The attempt log: one row of eventbus.delivery_attempts per HTTP
 *	  attempt, written in the worker's settle transaction.
 *
 * The worker's rooms call in at four places: when a claimed row becomes a
 * request (what the row knows that the settle no longer does), when the
 * request starts, once per settled delivery, and once where the settle
 * transaction runs its statements; and the loop asks for the log's
 * partitions to be kept.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTBUS_ATTEMPTS_H
#define EVENTBUS_ATTEMPTS_H

#include "datatype/timestamp.h"
#include "utils/uuid.h"

struct EbClaimedRow;
struct EbDelivery;

/* What the attempt log keeps of a delivery between its claim and settle. */
typedef struct EbAttemptNote
{
	pg_uuid_t	event_id;
	TimestampTz started_at;		/* when the request was handed to libcurl */
} EbAttemptNote;

/* Notes the claimed row's event id; when its request is built. */
extern void eb_attempt_note_claim(EbAttemptNote *note,
								  const struct EbClaimedRow *row);

/* Notes that the request starts now; right before it is submitted. */
extern void eb_attempt_note_start(EbAttemptNote *note);

/*
 * Adds the finished attempt of `d` to the rows of the current settle, if
 * eventbus.attempt_log wants it; in the settle's memory context, before
 * the settle transaction.
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

#endif							/* EVENTBUS_ATTEMPTS_H */
