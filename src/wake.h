/*-------------------------------------------------------------------------
 *
 * wake.h
 *	  The delivery workers' shared slots: any backend wakes the workers
 *	  through them (at once, or when its transaction commits).
 *
 * The only part of the worker that the publishing path sees.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_WAKE_H
#define EB_WAKE_H

/* For every backend */

/*
 * Sets the latch of every running delivery worker so that it looks at the
 * queue now.  Safe to call from any backend at any time (also from a
 * transaction callback); a no-op when the library was not preloaded.
 */
extern void eb_wake_now(void);

/*
 * Arranges for eb_wake_now() to run when the current
 * transaction commits (not when it aborts).  Cheap to call once per
 * inserted delivery: the wake-up happens once per transaction.
 */
extern void eb_wake_at_commit(void);

/* True when the library was loaded through shared_preload_libraries. */
extern bool eb_wake_workers_enabled(void);

/* For the worker's registration and the workers themselves */

/* Asks for the shared slots; while preloading, before registering. */
extern void eb_wake_request_shmem(void);

/* Puts this worker's latch into slot `index` until the process exits. */
extern void eb_wake_take_slot(int index);

/* A missing eventbus.database, remembered across the workers' restarts. */
extern void eb_wake_set_database_missing(bool missing);
extern bool eb_wake_database_missing(void);
extern bool eb_wake_say_database_missing(void);

/* Whose turn it is to put leases left by a crash back into the queue. */
typedef enum EbReconcileTurn
{
	EB_RECONCILE_MINE,			/* this worker reconciles now */
	EB_RECONCILE_OTHER,			/* another worker is at it: wait */
	EB_RECONCILE_DONE			/* done since shared memory was set up */
} EbReconcileTurn;

/*
 * Takes the reconciliation if nobody has done it since shared memory was
 * set up.  A worker that exits while holding it hands it back.
 */
extern EbReconcileTurn eb_reconcile_take_turn(void);

/* Marks the reconciliation taken with EB_RECONCILE_MINE as done. */
extern void eb_reconcile_done(void);

#endif							/* EB_WAKE_H */
