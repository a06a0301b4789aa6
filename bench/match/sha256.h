/*
 * sha256.h
 *	  A small SHA-256 (FIPS 180-4), enough to fingerprint the bench results.
 */
#ifndef BENCH_SHA256_H
#define BENCH_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct sha256_ctx
{
	uint32_t	h[8];
	uint64_t	len;			/* bytes hashed so far */
	unsigned char buf[64];
	size_t		nbuf;
} sha256_ctx;

extern void sha256_init(sha256_ctx *c);
extern void sha256_update(sha256_ctx *c, const void *data, size_t n);
extern void sha256_hex(sha256_ctx *c, char out[65]);

#endif
