/*-------------------------------------------------------------------------
 *
 * policy.c
 *	  Delivery policy as pure functions: classification of an attempt,
 *	  error codes, exponential backoff with jitter, Retry-After parsing.
 *
 * No PostgreSQL headers: the unit tests in test/policy link this file
 * alone.
 *
 *-------------------------------------------------------------------------
 */
#include "policy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Decides whether an attempt succeeded, may be retried, or must go to the
 * dead-letter table at once.  Retryable are what EventBridge API
 * destinations retry: connection failures, timeouts, 401, 407, 408, 409,
 * 429 and 5xx.  A name that does not resolve or an endpoint that cannot be
 * requested will not get better, so those are not retried; neither are
 * redirects, which are never followed.
 */
EbVerdict
eb_classify(EbTransport transport, long http_status)
{
	switch (transport)
	{
		case EB_TRANSPORT_OK:
			break;
		case EB_TRANSPORT_CONNECT:
		case EB_TRANSPORT_TIMEOUT:
			return EB_VERDICT_RETRY;
		case EB_TRANSPORT_DNS:
		case EB_TRANSPORT_BAD_URL:
		case EB_TRANSPORT_INTERNAL:
			return EB_VERDICT_NON_RETRYABLE;
	}

	if (http_status >= 200 && http_status <= 299)
		return EB_VERDICT_SUCCESS;
	if (http_status >= 500 && http_status <= 599)
		return EB_VERDICT_RETRY;
	switch (http_status)
	{
		case 401:
		case 407:
		case 408:
		case 409:
		case 429:
			return EB_VERDICT_RETRY;
		default:
			return EB_VERDICT_NON_RETRYABLE;
	}
}

/*
 * The error_code a failed attempt is recorded with.  The mapping is part of
 * the public contract (dead_letters.error_code, redrive filters), so it
 * only ever grows.
 */
const char *
eb_error_code(EbTransport transport, long http_status)
{
	switch (transport)
	{
		case EB_TRANSPORT_OK:
			break;
		case EB_TRANSPORT_CONNECT:
			return EB_ERR_CONNECTION_FAILURE;
		case EB_TRANSPORT_TIMEOUT:
			return EB_ERR_TIMEOUT;
		case EB_TRANSPORT_DNS:
		case EB_TRANSPORT_BAD_URL:
			return EB_ERR_INVALID_PARAMETER;
		case EB_TRANSPORT_INTERNAL:
			return EB_ERR_INTERNAL_FAILURE;
	}

	switch (http_status)
	{
		case 408:
			return EB_ERR_TIMEOUT;
		case 429:
			return EB_ERR_THROTTLING;
		case 404:
		case 410:
			return EB_ERR_NO_RESOURCE;
		case 401:
		case 403:
		case 407:
			return EB_ERR_NO_PERMISSIONS;
		default:
			return EB_ERR_ERROR_FROM_TARGET;
	}
}

/*
 * Delay before the next attempt after `attempts` attempts (1 or more):
 * exponential growth from base_ms, capped at max_ms, with random jitter so
 * that many deliveries failing together do not retry together.  The result
 * lies in [max(base, cap/2), cap] where cap = min(max_ms, base_ms * 2^attempts),
 * and never exceeds max_ms.  rand01 is a uniform random number in [0, 1).
 */
int64_t
eb_backoff_ms(int attempts, int64_t base_ms, int64_t max_ms, double rand01)
{
	int64_t		cap;
	int64_t		lo;

	if (base_ms < 0)
		base_ms = 0;
	if (max_ms < base_ms)
		max_ms = base_ms;
	if (attempts < 1)
		attempts = 1;
	if (rand01 < 0.0)
		rand01 = 0.0;
	if (rand01 >= 1.0)
		rand01 = 0.999999;

	cap = base_ms;
	for (int i = 0; i < attempts && cap < max_ms; i++)
		cap = cap > 0 ? cap * 2 : 0;
	if (cap > max_ms)
		cap = max_ms;

	lo = cap / 2;
	if (lo < base_ms)
		lo = base_ms;
	if (lo > cap)
		lo = cap;

	return lo + (int64_t) ((double) (cap - lo) * rand01);
}

/* Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant). */
static int64_t
days_from_civil(int y, int m, int d)
{
	int			era;
	unsigned	yoe;
	unsigned	doy;
	unsigned	doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned) (y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (int64_t) era * 146097 + (int64_t) doe - 719468;
}

/* Month number (1-12) of an English three-letter abbreviation, or 0. */
static int
month_number(const char *mon)
{
	static const char *const names[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
	};

	for (int i = 0; i < 12; i++)
		if (strncmp(mon, names[i], 3) == 0)
			return i + 1;
	return 0;
}

/*
 * Parses an HTTP-date (RFC 9110: IMF-fixdate, the obsolete RFC 850 form and
 * asctime's) into unix seconds.
 */
static bool
parse_http_date(const char *s, int64_t *unix_seconds)
{
	char		wday[16];
	char		mon[4];
	int			d,
				y,
				hh,
				mm,
				ss,
				m;
	int			n = 0;

	/* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
	if (sscanf(s, "%15[A-Za-z], %d %3s %d %d:%d:%d GMT%n",
			   wday, &d, mon, &y, &hh, &mm, &ss, &n) == 7 && n > 0)
		;
	/* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
	else if (n = 0, sscanf(s, "%15[A-Za-z], %d-%3s-%d %d:%d:%d GMT%n",
						   wday, &d, mon, &y, &hh, &mm, &ss, &n) == 7 && n > 0)
	{
		if (y < 100)
			y += y < 70 ? 2000 : 1900;
	}
	/* asctime: Sun Nov  6 08:49:37 1994 */
	else if (n = 0, sscanf(s, "%15[A-Za-z] %3s %d %d:%d:%d %d%n",
						   wday, mon, &d, &hh, &mm, &ss, &y, &n) == 7 && n > 0)
		;
	else
		return false;

	while (s[n] != '\0' && isspace((unsigned char) s[n]))
		n++;
	if (s[n] != '\0')
		return false;

	m = month_number(mon);
	if (m == 0 || d < 1 || d > 31 || y < 1970 || y > 9999 ||
		hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60)
		return false;

	*unix_seconds = days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss;
	return true;
}

/*
 * Reads a Retry-After header value: delta-seconds or an HTTP-date.  On
 * success stores the delay from `now` in milliseconds (0 for a date in the
 * past) and returns true; returns false for anything else, in which case
 * the caller falls back to its backoff.
 */
bool
eb_parse_retry_after(const char *value, time_t now, int64_t *delay_ms)
{
	const char *p = value;
	int64_t		when;

	if (value == NULL)
		return false;
	while (isspace((unsigned char) *p))
		p++;
	if (*p == '\0')
		return false;

	if (isdigit((unsigned char) *p))
	{
		int64_t		secs = 0;

		for (; isdigit((unsigned char) *p); p++)
		{
			if (secs > INT64_C(1000000000))
				secs = INT64_C(1000000000);	/* saturate; capped later */
			else
				secs = secs * 10 + (*p - '0');
		}
		while (isspace((unsigned char) *p))
			p++;
		if (*p != '\0')
			return false;
		*delay_ms = secs * 1000;
		return true;
	}

	if (!parse_http_date(p, &when))
		return false;
	*delay_ms = when > (int64_t) now ? (when - (int64_t) now) * 1000 : 0;
	return true;
}

/*
 * The delay before the next attempt: what the target asked for in
 * Retry-After when it said something readable, otherwise the backoff;
 * never more than max_ms.
 */
int64_t
eb_retry_delay_ms(int attempts, int64_t base_ms, int64_t max_ms,
				  double rand01, const char *retry_after, time_t now)
{
	int64_t		delay;

	if (eb_parse_retry_after(retry_after, now, &delay))
	{
		if (max_ms < base_ms)
			max_ms = base_ms;
		return delay > max_ms ? max_ms : delay;
	}
	return eb_backoff_ms(attempts, base_ms, max_ms, rand01);
}
