/*-------------------------------------------------------------------------
 *
 * saved_plan.h
 *	  Statements prepared once per backend and kept for its life, and the
 *	  short transactions a background process runs them in.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_SAVED_PLAN_H
#define EB_SAVED_PLAN_H

#include "executor/spi.h"

extern SPIPlanPtr eb_saved_plan(SPIPlanPtr *plan, const char *sql,
									  int nargs, Oid *types);
extern void eb_xact_begin(const char *activity);
extern void eb_xact_commit(void);

#endif							/* EB_SAVED_PLAN_H */
