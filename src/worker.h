/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The delivery worker: its registration and its loop.
 *
 * The publishing path includes wake.h, never this file.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_WORKER_H
#define EB_WORKER_H

#include "fmgr.h"

/*
 * Called from _PG_init() while the library is being loaded through
 * shared_preload_libraries: requests the shared slots and registers
 * eventbus.workers delivery workers.
 */
extern void eb_worker_register(void);

/* Entry point of a delivery worker process (bgw_function_name). */
extern PGDLLEXPORT void eb_worker_main(Datum main_arg) pg_attribute_noreturn();

#endif							/* EB_WORKER_H */
