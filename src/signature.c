/*-------------------------------------------------------------------------
 *
 * signature.c
 *	  Signed requests, as the Standard Webhooks specification defines them.
 *
 * A target may have signing secrets (eventbus.signing_keys, readable by the
 * extension's owner alone; eventbus.rotate_signing_secret() makes them).
 * This file owns their formats: the key is EB_SIGNING_KEY_BYTES bytes from
 * pg_strong_random(), its secret text is "whsec_" and the base64 of the key,
 * and its fingerprint the first 8 hex digits of the SHA-256 of that text.
 * The worker signs each request with every key the claim returned, newest
 * first, at most EB_MAX_SIGNATURES of them:
 *
 *	  webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">
 *
 * one "v1,..." per key, space-separated, where id and timestamp are the
 * request's webhook-id and webhook-timestamp and body the bytes sent.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/base64.h"
#include "common/cryptohash.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "signature.h"

#define EB_SECRET_PREFIX "whsec_"

/* Hex digits of the SHA-256 of a secret's text that make its fingerprint. */
#define EB_FINGERPRINT_DIGITS 8

PG_FUNCTION_INFO_V1(eventbus_new_signing_secret);

/* The base64 of `len` bytes, in the current memory context. */
static char *
base64_of(const uint8 *data, int len)
{
	int			size = pg_b64_enc_len(len) + 1;
	char	   *out = palloc(size);
	int			n = pg_b64_encode((const char *) data, len, out, size);

	if (n < 0)
		elog(ERROR, "pg_eventbus: could not encode %d bytes in base64", len);
	out[n] = '\0';
	return out;
}

/* The fingerprint of a secret's text: 8 hex digits of its SHA-256. */
static char *
fingerprint_of(const char *secret)
{
	static const char hex[] = "0123456789abcdef";
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	char	   *out = palloc(EB_FINGERPRINT_DIGITS + 1);

	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) secret, strlen(secret)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "pg_eventbus: could not compute a SHA-256 digest: %s",
			 pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	for (int i = 0; i < EB_FINGERPRINT_DIGITS / 2; i++)
	{
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 0x0f];
	}
	out[EB_FINGERPRINT_DIGITS] = '\0';
	return out;
}

/*
 * eventbus.new_signing_secret(OUT key bytea, OUT secret text,
 * OUT fingerprint text, OUT max_secrets integer): a fresh random key, its
 * secret text and its fingerprint, and how many secrets a target keeps at
 * most (the newest sign), for rotate_signing_secret(), which stores them.
 * Not for anyone else: EXECUTE is revoked from PUBLIC.
 */
Datum
eventbus_new_signing_secret(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	uint8		key[EB_SIGNING_KEY_BYTES];
	bytea	   *key_datum;
	char	   *encoded;
	char	   *secret;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "pg_eventbus: new_signing_secret must return a record");
	desc = BlessTupleDesc(desc);

	if (!pg_strong_random(key, sizeof(key)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random signing secret"),
				 errdetail("The server's source of strong random numbers failed."),
				 errhint("Check the server's random number source (OpenSSL or /dev/urandom), then try again.")));

	key_datum = palloc(VARHDRSZ + sizeof(key));
	SET_VARSIZE(key_datum, VARHDRSZ + sizeof(key));
	memcpy(VARDATA(key_datum), key, sizeof(key));
	encoded = base64_of(key, sizeof(key));
	explicit_bzero(key, sizeof(key));
	secret = psprintf("%s%s", EB_SECRET_PREFIX, encoded);
	explicit_bzero(encoded, strlen(encoded));
	pfree(encoded);

	values[0] = PointerGetDatum(key_datum);
	values[1] = CStringGetTextDatum(secret);
	values[2] = CStringGetTextDatum(fingerprint_of(secret));
	values[3] = Int32GetDatum(EB_MAX_SIGNATURES);
	explicit_bzero(secret, strlen(secret));
	pfree(secret);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/* Appends "v1,<base64 HMAC-SHA256 of id.timestamp.body under key>". */
static void
append_signature(StringInfo buf, const uint8 *key, size_t keylen,
				 const char *webhook_id, const char *timestamp,
				 const char *body, size_t body_len)
{
	uint8		mac[PG_SHA256_DIGEST_LENGTH];
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);
	char	   *encoded;

	if (ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	if (pg_hmac_init(ctx, key, keylen) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) webhook_id, strlen(webhook_id)) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) ".", 1) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) timestamp, strlen(timestamp)) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) ".", 1) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) body, body_len) < 0 ||
		pg_hmac_final(ctx, mac, sizeof(mac)) < 0)
		elog(ERROR, "pg_eventbus: could not compute an HMAC-SHA256: %s",
			 pg_hmac_error(ctx));
	pg_hmac_free(ctx);

	encoded = base64_of(mac, sizeof(mac));
	appendStringInfo(buf, "v1,%s", encoded);
	pfree(encoded);
}

/*
 * The webhook-signature header line of a request whose webhook-id,
 * webhook-timestamp and body are given, signed with each key of `keys`
 * (a bytea[], newest first; NULL elements skipped) up to EB_MAX_SIGNATURES;
 * NULL when there is no key.  The keys are the claim's: they never leave
 * this function, and no message names them.
 */
char *
eb_signature_header(Datum keys, const char *webhook_id, const char *timestamp,
					const char *body, size_t body_len)
{
	ArrayType  *arr = DatumGetArrayTypeP(keys);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			signed_with = 0;
	StringInfoData buf;

	deconstruct_array(arr, BYTEAOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	initStringInfo(&buf);
	appendStringInfoString(&buf, "webhook-signature: ");
	for (int i = 0; i < n && signed_with < EB_MAX_SIGNATURES; i++)
	{
		bytea	   *key;

		if (nulls[i])
			continue;
		key = DatumGetByteaPP(elems[i]);
		if (VARSIZE_ANY_EXHDR(key) == 0)
			continue;
		if (signed_with > 0)
			appendStringInfoChar(&buf, ' ');
		append_signature(&buf, (const uint8 *) VARDATA_ANY(key),
						 VARSIZE_ANY_EXHDR(key), webhook_id, timestamp,
						 body, body_len);
		signed_with++;
	}
	pfree(elems);
	pfree(nulls);
	if (signed_with == 0)
	{
		pfree(buf.data);
		return NULL;
	}
	return buf.data;
}
