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

/*
 * Arranges for eventbus_wake_workers_now() to run when the current
 * transaction commits (not when it aborts).  Cheap to call once per
 * inserted delivery: the wake-up happens once per transaction.
 */
extern void eventbus_wake_workers_at_commit(void);

/* True when the library was loaded through shared_preload_libraries. */
extern bool eventbus_workers_enabled(void);

/* Entry point of a delivery worker process (bgw_function_name). */
extern PGDLLEXPORT void eventbus_worker_main(Datum main_arg) pg_attribute_noreturn();

#endif							/* EVENTBUS_WORKER_H */
