/*-------------------------------------------------------------------------
 *
 * alloc.c
 *	  Memory allocation through replaceable hooks, and status names.
 *
 * Every allocation of the library goes through here, so that a caller can
 * route it to an allocator of its own with ebm_set_allocator() (the tests
 * count with it; the PostgreSQL glue keeps malloc, since the library frees
 * what it allocates and longjmps never cross it).
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>

#include "ebm_internal.h"

static void *(*ebm_malloc_fn) (size_t) = malloc;
static void *(*ebm_realloc_fn) (void *, size_t) = realloc;
static void (*ebm_free_fn) (void *) = free;

/* Install the process-wide allocator hooks; NULL keeps the default. */
void
ebm_set_allocator(void *(*malloc_fn) (size_t),
				  void *(*realloc_fn) (void *, size_t),
				  void (*free_fn) (void *))
{
	ebm_malloc_fn = malloc_fn ? malloc_fn : malloc;
	ebm_realloc_fn = realloc_fn ? realloc_fn : realloc;
	ebm_free_fn = free_fn ? free_fn : free;
}

/* malloc through the hook; never asked for zero bytes. */
void *
ebm_malloc(size_t n)
{
	return ebm_malloc_fn(n ? n : 1);
}

/* realloc through the hook. */
void *
ebm_realloc(void *p, size_t n)
{
	if (p == NULL)
		return ebm_malloc(n);
	return ebm_realloc_fn(p, n ? n : 1);
}

/* free through the hook; NULL is fine. */
void
ebm_free(void *p)
{
	if (p)
		ebm_free_fn(p);
}

/* Zeroed array allocation, checking the multiplication. */
void *
ebm_calloc(size_t n, size_t size)
{
	void	   *p;

	if (size && n > SIZE_MAX / size)
		return NULL;
	p = ebm_malloc(n * size);
	if (p)
		memset(p, 0, n * size);
	return p;
}

/* Copy len bytes into a new NUL-terminated string. */
char *
ebm_memdup(const char *s, size_t len)
{
	char	   *p = ebm_malloc(len + 1);

	if (p)
	{
		if (len)
			memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

/*
 * Make the array *p (capacity *cap elements of elsize bytes) hold at least
 * need elements, doubling so that appends are amortised O(1).
 */
bool
ebm_grow(void **p, size_t *cap, size_t need, size_t elsize)
{
	size_t		ncap;
	void	   *np;

	if (need <= *cap)
		return true;
	ncap = *cap ? *cap : 16;
	while (ncap < need)
	{
		if (ncap > SIZE_MAX / 2 / elsize)
			return false;
		ncap *= 2;
	}
	np = ebm_realloc(*p, ncap * elsize);
	if (np == NULL)
		return false;
	*p = np;
	*cap = ncap;
	return true;
}

/* Free a scratch array and forget its capacity (see ebm_trim_scratch). */
void
ebm_free_scratch(void **p, size_t *cap)
{
	ebm_free(*p);
	*p = NULL;
	*cap = 0;
}

/* Human-readable name of a status code. */
const char *
ebm_status_string(ebm_status s)
{
	switch (s)
	{
		case EBM_OK:
			return "ok";
		case EBM_ERR_NOMEM:
			return "out of memory";
		case EBM_ERR_STATE:
			return "builder call out of order or document incomplete";
		case EBM_ERR_PATTERN:
			return "invalid event pattern";
		case EBM_ERR_INTERRUPTED:
			return "interrupted";
		case EBM_ERR_LIMIT:
			return "the event needs more work than the matcher's budget allows";
	}
	return "unknown status";
}
