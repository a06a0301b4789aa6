/*-------------------------------------------------------------------------
 *
 * queue.h
 *	  The delivery queue's statements: wait until the schema is ready,
 *	  claim due rows, settle finished deliveries, hand leases back.
 *
 * Everything here runs in a delivery worker process, outside any
 * transaction: each call opens and commits its own.  Nothing here drives
 * libcurl; the loop (worker.c) sends what the claim returns and hands the
 * finished deliveries to the settle.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_QUEUE_H
#define EB_QUEUE_H

#include "datatype/timestamp.h"

#include "request.h"

/*
 * Sets the session up for the queue's statements and creates the memory
 * the queue keeps; once, after connecting to the database.
 */
extern void eb_queue_init(void);

/*
 * Sleeps until the extension exists in the worker's database at the
 * version this library is built for, saying once in the log what it waits
 * for.
 */
extern void eb_queue_wait_until_ready(void);

/* Puts rows leased before a crash back into the queue, before claiming. */
extern void eb_queue_reconcile_leases(void);

/*
 * Claims up to `room` due deliveries, target by target within each
 * target's slots, and builds them; *claimed gets them as a list (through
 * `next`), those with to_send to be sent.  Returns when to look at the
 * queue again (0: nothing is due later); sets *ready to false when the
 * extension is gone or changed (nothing was claimed then).
 */
extern TimestampTz eb_queue_claim(int room, EbDelivery **claimed, bool *ready);

/*
 * Records the results of the finished deliveries (a list through `next`)
 * and frees them.  Returns the earliest retry time set (or 0).
 */
extern TimestampTz eb_queue_settle(EbDelivery *finished);

/*
 * Puts the deliveries this worker holds back into the queue, due now; for a
 * worker about to exit.
 */
extern void eb_queue_hand_back_leases(void);

/* Did the last claim leave rows behind for targets at their limit? */
extern bool eb_queue_targets_saturated(void);

#endif							/* EB_QUEUE_H */
