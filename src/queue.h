/*-------------------------------------------------------------------------
 *
 * queue.h
 *	  The delivery queue as the worker's loop sees it: claim due rows and
 *	  start their requests, settle the finished ones.
 *
 * Everything here runs in a delivery worker process, outside any
 * transaction: each call opens and commits its own.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTBUS_QUEUE_H
#define EVENTBUS_QUEUE_H

#include "datatype/timestamp.h"

/*
 * Sets the session up for the queue's statements and creates the memory
 * the queue keeps; once, after connecting to the database.
 */
extern void eb_queue_init(void);

/* Sleeps until the extension exists in the worker's database. */
extern void eb_queue_wait_for_extension(void);

/* Puts rows leased before a crash back into the queue, before claiming. */
extern void eb_queue_reconcile_leases(void);

/*
 * Claims up to `room` due deliveries and starts their requests.  Returns
 * when to look at the queue again (0: no row is queued).
 */
extern TimestampTz eb_queue_claim_and_send(int room);

/*
 * Records the results of the finished requests.  Returns the earliest
 * retry time set (or 0) and how many were settled in *settled.
 */
extern TimestampTz eb_queue_settle_finished(int *settled);

/*
 * Puts the deliveries this worker holds back into the queue, due now; for a
 * worker about to exit.
 */
extern void eb_queue_hand_back_leases(void);

/* Did the last claim leave rows behind for targets at their limit? */
extern bool eb_queue_targets_saturated(void);

#endif							/* EVENTBUS_QUEUE_H */
