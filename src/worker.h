/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The delivery worker: registration, shared state and wake-ups.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTBUS_WORKER_H
#define EVENTBUS_WORKER_H

/*
 * Called from _PG_init().  Defines the worker's settings and, when the
 * library is being loaded through shared_preload_libraries, requests shared
 * memory and registers the delivery worker(s).
 */
extern void eventbus_worker_init(void);

/*
 * Sets the latch of every running delivery worker so that it looks at the
 * queue now.  Safe to call from any backend at any time (also from a
 * transaction callback); a no-op when the library was not preloaded.
 */
extern void eventbus_wake_workers_now(void);

/* True when the library was loaded through shared_preload_libraries. */
extern bool eventbus_workers_enabled(void);

#endif							/* EVENTBUS_WORKER_H */
