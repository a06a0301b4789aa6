/*-------------------------------------------------------------------------
 *
 * saved_plan.h
 *	  Statements prepared once per backend and kept for its life.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_SAVED_PLAN_H
#define EB_SAVED_PLAN_H

#include "executor/spi.h"

extern SPIPlanPtr eb_saved_plan(SPIPlanPtr *plan, const char *sql,
									  int nargs, Oid *types);

#endif							/* EB_SAVED_PLAN_H */
