/*-------------------------------------------------------------------------
 *
 * saved_plan.h
 *	  Statements prepared once per backend and kept for its life.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTBUS_SAVED_PLAN_H
#define EVENTBUS_SAVED_PLAN_H

#include "executor/spi.h"

extern SPIPlanPtr eventbus_saved_plan(SPIPlanPtr *plan, const char *sql,
									  int nargs, Oid *types);

#endif							/* EVENTBUS_SAVED_PLAN_H */
