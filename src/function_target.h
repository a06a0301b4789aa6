/*-------------------------------------------------------------------------
 *
 * function_target.h
 *	  SQL-function targets: the check of put_target's "function" and the
 *	  worker's call of a claimed delivery's function.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_FUNCTION_TARGET_H
#define EB_FUNCTION_TARGET_H

#include "request.h"

/* The most of a function's error message a delivery keeps, in bytes. */
#define EB_FUNCTION_ERROR_MAX 1024

extern void eb_function_target_call(EbDelivery *d);

#endif							/* EB_FUNCTION_TARGET_H */
