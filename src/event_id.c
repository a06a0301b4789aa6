/*-------------------------------------------------------------------------
 *
 * event_id.c
 *	  The id of every published event: a UUID version 7 (RFC 9562), whose
 *	  first 48 bits are the Unix time in milliseconds.
 *
 * Ids that grow with time keep inserts into eventbus.events' primary key at
 * the index's right edge, instead of scattering them over the whole index
 * as random (version 4) ids do.  The 12 bits after the version hold the
 * fraction of the millisecond (RFC 9562's method 3), and within a backend
 * each id is greater than the one before: when the clock has not moved (or
 * moved back) the previous value plus one is used.  The last 62 bits are
 * random.  Every publish path takes its ids from here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/timestamp.h"

#include "event_id.h"

/* The last id's 60-bit time prefix: Unix ms << 12 | 1/4096ths of a ms. */
static uint64 last_time_prefix = 0;

/* Writes a new version 7 UUID, greater than the backend's previous one. */
void
eb_new_event_id(pg_uuid_t *id)
{
	TimestampTz now = GetCurrentTimestamp();
	uint64		unix_us;
	uint64		prefix;

	/* microseconds since 1970; the clock is past 2000 */
	unix_us = (uint64) now +
		(uint64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
	prefix = ((unix_us / 1000) << 12) | ((unix_us % 1000) * 4096 / 1000);
	if (prefix <= last_time_prefix)
		prefix = last_time_prefix + 1;
	last_time_prefix = prefix;

	if (!pg_strong_random(&id->data[8], UUID_LEN - 8))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random values")));
	for (int i = 0; i < 6; i++)
		id->data[i] = (uint8) (prefix >> (12 + 8 * (5 - i)));
	id->data[6] = 0x70 | (uint8) ((prefix >> 8) & 0x0f);
	id->data[7] = (uint8) (prefix & 0xff);
	id->data[8] = 0x80 | (id->data[8] & 0x3f);
}
