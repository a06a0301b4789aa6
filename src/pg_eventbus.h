/*-------------------------------------------------------------------------
 *
 * pg_eventbus.h
 *	  Settings and functions shared by the extension's modules.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_EVENTBUS_H
#define PG_EVENTBUS_H

#include "executor/spi.h"

extern char *eventbus_account;
extern char *eventbus_region;
extern int	eventbus_max_event_size;

extern SPIPlanPtr eventbus_saved_plan(SPIPlanPtr *plan, const char *sql,
									  int nargs, Oid *types);

#endif							/* PG_EVENTBUS_H */
