/*-------------------------------------------------------------------------
 *
 * index.h
 *	  The candidate index of a compiled rule set (see compile.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EBM_INDEX_H
#define EBM_INDEX_H

#include "ebm_internal.h"

typedef struct ebm_index
{
	uint32_t   *always;			/* sub-rules checked for every event */
	uint32_t	nalways;
} ebm_index;

#endif							/* EBM_INDEX_H */
