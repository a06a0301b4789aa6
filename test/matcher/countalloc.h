/*
 * countalloc.h
 *	  A counting allocator for the matcher's tests: install it with
 *	  ebm_set_allocator(count_malloc, count_realloc, count_free) and read
 *	  the live and peak bytes the matcher holds.
 */
#ifndef EBM_TEST_COUNTALLOC_H
#define EBM_TEST_COUNTALLOC_H

#include <stddef.h>

/* Bytes the matcher holds now, and the most it held since last reset. */
extern size_t cur_bytes;
extern size_t peak_bytes;

extern void *count_malloc(size_t n);
extern void *count_realloc(void *q, size_t n);
extern void count_free(void *q);

#endif							/* EBM_TEST_COUNTALLOC_H */
