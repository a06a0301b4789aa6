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
#include <strings.h>

/*
 * Whether a status may end an exchange: 200-599.  Anything else in a final
 * response (a 1xx that libcurl did not wait past, 000, 600 and up) means
 * the target does not speak HTTP properly.  http.c turns such an answer
 * into EB_TRANSPORT_MALFORMED, and eb_classify() agrees.
 */
bool
eb_final_status_valid(long http_status)
{
	return http_status >= 200 && http_status <= 599;
}

/*
 * Decides whether an attempt succeeded, may be retried, or must go to the
 * dead-letter table at once.  Retryable are what EventBridge API
 * destinations retry: connection failures, timeouts, 401, 407, 408, 409,
 * 429 and 5xx; and every answer that is not valid HTTP, because that is a
 * fault of the target (a proxy or server in a bad state) that may pass.
 * A name that does not resolve, an endpoint that cannot be requested or a
 * header that may not be sent will not get better by waiting, so those are
 * not retried; neither are redirects, which are never followed.
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
		case EB_TRANSPORT_MALFORMED:
		case EB_TRANSPORT_FUNCTION_RETRYABLE:
			return EB_VERDICT_RETRY;
		case EB_TRANSPORT_DNS:
		case EB_TRANSPORT_BAD_URL:
		case EB_TRANSPORT_INTERNAL:
		case EB_TRANSPORT_BAD_HEADER:
		case EB_TRANSPORT_FUNCTION_FAILED:
			return EB_VERDICT_NON_RETRYABLE;
		case EB_TRANSPORT_FUNCTION_OK:
			return EB_VERDICT_SUCCESS;
	}

	if (!eb_final_status_valid(http_status))
		return EB_VERDICT_RETRY;
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
		case EB_TRANSPORT_BAD_HEADER:
			return EB_ERR_INVALID_PARAMETER;
		case EB_TRANSPORT_INTERNAL:
			return EB_ERR_INTERNAL_FAILURE;
		case EB_TRANSPORT_MALFORMED:
			return EB_ERR_ERROR_FROM_TARGET;
		case EB_TRANSPORT_FUNCTION_OK:
		case EB_TRANSPORT_FUNCTION_RETRYABLE:
		case EB_TRANSPORT_FUNCTION_FAILED:
			return EB_ERR_FUNCTION_ERROR;
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
 * How a function target's call ended, from the SQLSTATE of the error it
 * raised (NULL or "" when it returned).  Retried are the errors that a
 * later call may not meet: serialization failures and deadlocks (40001,
 * 40P01, what a concurrent transaction causes), a lock not available
 * (55P03, the function's own lock_timeout or NOWAIT), a shortage of
 * resources (class 53: disk full, out of memory) and a cancelled call
 * (57014: the target's timeout) -- the last is a timeout, as for a request
 * that got no answer.  Every other error is the function's answer to this
 * event and would be the same next time: the delivery is dead-lettered.
 */
EbTransport
eb_function_transport(const char *sqlstate)
{
	if (sqlstate == NULL || sqlstate[0] == '\0')
		return EB_TRANSPORT_FUNCTION_OK;
	if (strcmp(sqlstate, "57014") == 0)
		return EB_TRANSPORT_TIMEOUT;
	if (strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0 ||
		strcmp(sqlstate, "55P03") == 0 || strncmp(sqlstate, "53", 2) == 0)
		return EB_TRANSPORT_FUNCTION_RETRYABLE;
	return EB_TRANSPORT_FUNCTION_FAILED;
}

/*
 * Whether the target answered: a response arrived, or its function ran to
 * an end (returned or raised an error).  A target that did not answer is
 * paused (slots.c).
 */
bool
eb_transport_answered(EbTransport transport)
{
	return transport == EB_TRANSPORT_OK ||
		transport == EB_TRANSPORT_FUNCTION_OK ||
		transport == EB_TRANSPORT_FUNCTION_RETRYABLE ||
		transport == EB_TRANSPORT_FUNCTION_FAILED;
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
 * The delay before the next attempt: the longer of the backoff and what
 * the target asked for in Retry-After, never more than max_ms.  A target
 * may ask for more patience, never for less: Retry-After 0, a date in the
 * past, a negative or unreadable value all leave the backoff as it is (as
 * EventBridge does), so a target cannot make the worker hammer it.
 */
int64_t
eb_retry_delay_ms(int attempts, int64_t base_ms, int64_t max_ms,
				  double rand01, const char *retry_after, time_t now)
{
	int64_t		delay = eb_backoff_ms(attempts, base_ms, max_ms, rand01);
	int64_t		asked;

	if (eb_parse_retry_after(retry_after, now, &asked) && asked > delay)
	{
		if (max_ms < base_ms)
			max_ms = base_ms;
		delay = asked > max_ms ? max_ms : asked;
	}
	return delay;
}

/*
 * The headers the worker sets itself: a target may not set them, because
 * they frame the request (a second Content-Length or Host would let a
 * target's configuration smuggle another request) or identify the delivery.
 */
static const char *const reserved_headers[] = {
	"Content-Length", "Host", "Transfer-Encoding", "Connection",
	"webhook-id", "webhook-timestamp", "webhook-signature"
};

/* A number macro as a string literal, for messages. */
#define EB_STRINGIFY_(x) #x
#define EB_STRINGIFY(x) EB_STRINGIFY_(x)

/* Whether c may appear in a header name: RFC 9110's tchar. */
static bool
is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		(c >= 'A' && c <= 'Z') ||
		(c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/*
 * Checks one header before it goes on the wire: the name must be a token,
 * the value may hold no control character except HTAB (RFC 9110 field
 * values; CR, LF, NUL, VT, DEL and the rest would let a value end the
 * header early or confuse the receiver), and both together may not pass
 * EB_HEADER_MAX_BYTES.  With check_reserved, also refuses
 * the headers the worker sets itself (put_target's rule).  This is the one
 * place these rules live: put_target calls it through
 * eventbus.check_target_headers(), and the worker calls it for every
 * header it sends.  On a problem, *at is the offending byte's offset in
 * the name or the value (for EB_HEADER_TOO_LONG, the size).
 */
EbHeaderProblem
eb_header_check(const char *name, size_t namelen, const char *value,
				size_t valuelen, bool check_reserved, size_t *at)
{
	*at = 0;
	if (namelen == 0)
		return EB_HEADER_EMPTY_NAME;
	if (namelen + valuelen > EB_HEADER_MAX_BYTES)
	{
		*at = namelen + valuelen;
		return EB_HEADER_TOO_LONG;
	}
	for (size_t i = 0; i < namelen; i++)
	{
		if (!is_tchar((unsigned char) name[i]))
		{
			*at = i;
			return EB_HEADER_BAD_NAME;
		}
	}
	for (size_t i = 0; i < valuelen; i++)
	{
		unsigned char c = (unsigned char) value[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
		{
			*at = i;
			return EB_HEADER_CONTROL;
		}
	}
	if (check_reserved)
	{
		size_t		n = sizeof(reserved_headers) / sizeof(reserved_headers[0]);

		for (size_t i = 0; i < n; i++)
		{
			if (strlen(reserved_headers[i]) == namelen &&
				strncasecmp(reserved_headers[i], name, namelen) == 0)
				return EB_HEADER_RESERVED;
		}
	}
	return EB_HEADER_OK;
}

/*
 * Says in words what eb_header_check() found, for an error's detail or a
 * dead letter's message.  Names the offending byte and its position, never
 * the value itself, which may be a credential.
 */
void
eb_header_problem_text(EbHeaderProblem problem, const char *name,
					   const char *value, size_t at, char *buf, size_t bufsize)
{
	switch (problem)
	{
		case EB_HEADER_OK:
			snprintf(buf, bufsize, "the header is valid");
			break;
		case EB_HEADER_EMPTY_NAME:
			snprintf(buf, bufsize, "the header name is empty");
			break;
		case EB_HEADER_BAD_NAME:
			snprintf(buf, bufsize,
					 "the name has the character 0x%02X at byte %zu, which is not allowed in an HTTP token",
					 (unsigned char) name[at], at + 1);
			break;
		case EB_HEADER_CONTROL:
			snprintf(buf, bufsize,
					 "the value has the control character 0x%02X at byte %zu",
					 (unsigned char) value[at], at + 1);
			break;
		case EB_HEADER_RESERVED:
			snprintf(buf, bufsize, "the worker sets this header itself");
			break;
		case EB_HEADER_TOO_LONG:
			snprintf(buf, bufsize,
					 "its name and value are %zu bytes, more than %d",
					 at, EB_HEADER_MAX_BYTES);
			break;
	}
}

/* How to fix what eb_header_check() found, for an error's hint. */
const char *
eb_header_problem_hint(EbHeaderProblem problem)
{
	switch (problem)
	{
		case EB_HEADER_OK:
			break;
		case EB_HEADER_EMPTY_NAME:
		case EB_HEADER_BAD_NAME:
			return "Header names are HTTP tokens: letters, digits and !#$%&'*+-.^_`|~ (RFC 9110).";
		case EB_HEADER_CONTROL:
			return "Header values may hold no control characters except tab (RFC 9110): no CR, LF, NUL, VT, DEL or other.";
		case EB_HEADER_RESERVED:
			return "Content-Length, Host, Transfer-Encoding, Connection and the webhook-* headers are set by the worker; leave them out.";
		case EB_HEADER_TOO_LONG:
			return "A header's name and value together may take "
				EB_STRINGIFY(EB_HEADER_MAX_BYTES) " bytes, and all of a target's headers "
				EB_STRINGIFY(EB_HEADERS_MAX_TOTAL_BYTES) ".";
	}
	return "";
}
