/*
 * countalloc.c
 *	  The counting allocator of countalloc.h: every block carries its size
 *	  in a header in front of it.
 */
#include <stdlib.h>
#include <string.h>

#include "countalloc.h"

#define HDR 16

size_t		cur_bytes;
size_t		peak_bytes;

/* malloc that counts live bytes. */
void *
count_malloc(size_t n)
{
	char	   *p = malloc(n + HDR);

	if (p == NULL)
		return NULL;
	memcpy(p, &n, sizeof(n));
	cur_bytes += n;
	if (cur_bytes > peak_bytes)
		peak_bytes = cur_bytes;
	return p + HDR;
}

/* free that counts live bytes. */
void
count_free(void *q)
{
	char	   *p = (char *) q - HDR;
	size_t		n;

	memcpy(&n, p, sizeof(n));
	cur_bytes -= n;
	free(p);
}

/* realloc that counts live bytes. */
void *
count_realloc(void *q, size_t n)
{
	char	   *p = (char *) q - HDR;
	size_t		old;
	char	   *np;

	memcpy(&old, p, sizeof(old));
	np = realloc(p, n + HDR);
	if (np == NULL)
		return NULL;
	memcpy(np, &n, sizeof(n));
	cur_bytes = cur_bytes - old + n;
	if (cur_bytes > peak_bytes)
		peak_bytes = cur_bytes;
	return np + HDR;
}

/* ---- helpers ---- */
