/*-------------------------------------------------------------------------
 *
 * maintenance.h
 *	  The maintenance process: eventbus.maintenance() (partitions of
 *	  eventbus.events created ahead and dropped when expired) at
 *	  eventbus.maintenance_interval, and replays carried on in between.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_MAINTENANCE_H
#define EB_MAINTENANCE_H

#include "fmgr.h"

/* Registers the maintenance process; from _PG_init(), while preloading. */
extern void eb_maintenance_register(void);

/* Entry point of the maintenance process (bgw_function_name). */
extern PGDLLEXPORT void eb_maintenance_main(Datum main_arg) pg_attribute_noreturn();

#endif							/* EB_MAINTENANCE_H */
