/*-------------------------------------------------------------------------
 *
 * signature.h
 *	  Signed requests (Standard Webhooks): the signing secrets' formats and
 *	  the webhook-signature header.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_SIGNATURE_H
#define EB_SIGNATURE_H

#include "postgres.h"

/* Random bytes in a new signing key; the specification wants 24 to 64. */
#define EB_SIGNING_KEY_BYTES 32

/* Signatures on one request, at most: the newest secrets sign. */
#define EB_MAX_SIGNATURES 10

/*
 * The webhook-signature header line ("webhook-signature: v1,... v1,...") of
 * a request, palloc'd in the current memory context, or NULL when `keys`
 * (a bytea[] Datum, newest first) holds no key.
 */
extern char *eb_signature_header(Datum keys, const char *webhook_id,
								 const char *timestamp,
								 const char *body, size_t body_len);

#endif							/* EB_SIGNATURE_H */
