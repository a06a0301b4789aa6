/*-------------------------------------------------------------------------
 *
 * worker_internal.h
 *	  What worker.c shares with queue.c: the delivery settings and the
 *	  crash reconciliation handshake kept in shared memory.
 *
 * worker.c owns both (it defines the settings and sets up shared memory);
 * queue.c only reads the settings and takes its turn at reconciling leases.
 * Not for the rest of the extension, which sees worker.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTBUS_WORKER_INTERNAL_H
#define EVENTBUS_WORKER_INTERNAL_H

/* The eventbus.* settings of the delivery workers (see the README). */
typedef struct EbWorkerSettings
{
	char	   *database;		/* eventbus.database */
	int			workers;		/* eventbus.workers */
	int			retry_base_delay;	/* ms */
	int			retry_max_delay;	/* ms */
	int			batch_size;
	int			max_concurrent_requests;
	int			max_concurrent_per_target;
	int			poll_interval;	/* ms */
} EbWorkerSettings;

/* Current values of the settings, read-only outside worker.c. */
extern const EbWorkerSettings *const eb_settings;

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

#endif							/* EVENTBUS_WORKER_INTERNAL_H */
