/*
 * test_policy.c
 *	  Unit tests of the delivery policy (src/policy.c).
 *
 * Prints one line per failure and a summary "policy: N passed, N failed";
 * exits non-zero when anything failed.
 */
#include "policy.h"

#include <stdio.h>
#include <string.h>

static int	passed;
static int	failed;

#define CHECK(cond) \
	do { \
		if (cond) \
			passed++; \
		else \
		{ \
			failed++; \
			printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		} \
	} while (0)

/* Which outcomes are successes, retryable, or dead-lettered at once. */
static void
test_classify(void)
{
	CHECK(eb_classify(EB_TRANSPORT_OK, 200) == EB_VERDICT_SUCCESS);
	CHECK(eb_classify(EB_TRANSPORT_OK, 204) == EB_VERDICT_SUCCESS);
	CHECK(eb_classify(EB_TRANSPORT_OK, 299) == EB_VERDICT_SUCCESS);
	CHECK(eb_classify(EB_TRANSPORT_OK, 500) == EB_VERDICT_RETRY);
	CHECK(eb_classify(EB_TRANSPORT_OK, 503) == EB_VERDICT_RETRY);
	CHECK(eb_classify(EB_TRANSPORT_OK, 599) == EB_VERDICT_RETRY);
	CHECK(eb_classify(EB_TRANSPORT_OK, 401) == EB_VERDICT_RETRY);
	CHECK(eb_classify(EB_TRANSPORT_OK, 407) == EB_VERDICT_RETRY);
	CHECK(eb_classify(EB_TRANSPORT_OK, 408) == EB_VERDICT_RETRY);
	CHECK(eb_classify(EB_TRANSPORT_OK, 409) == EB_VERDICT_RETRY);
	CHECK(eb_classify(EB_TRANSPORT_OK, 429) == EB_VERDICT_RETRY);
	CHECK(eb_classify(EB_TRANSPORT_OK, 400) == EB_VERDICT_NON_RETRYABLE);
	CHECK(eb_classify(EB_TRANSPORT_OK, 403) == EB_VERDICT_NON_RETRYABLE);
	CHECK(eb_classify(EB_TRANSPORT_OK, 404) == EB_VERDICT_NON_RETRYABLE);
	CHECK(eb_classify(EB_TRANSPORT_OK, 410) == EB_VERDICT_NON_RETRYABLE);
	CHECK(eb_classify(EB_TRANSPORT_OK, 413) == EB_VERDICT_NON_RETRYABLE);
	CHECK(eb_classify(EB_TRANSPORT_OK, 301) == EB_VERDICT_NON_RETRYABLE);
	CHECK(eb_classify(EB_TRANSPORT_OK, 302) == EB_VERDICT_NON_RETRYABLE);
	/* a final status outside 200-599 is a malformed answer: retried */
	CHECK(eb_classify(EB_TRANSPORT_OK, 100) == EB_VERDICT_RETRY);
	CHECK(eb_classify(EB_TRANSPORT_OK, 101) == EB_VERDICT_RETRY);
	CHECK(eb_classify(EB_TRANSPORT_OK, 199) == EB_VERDICT_RETRY);
	CHECK(eb_classify(EB_TRANSPORT_OK, 600) == EB_VERDICT_RETRY);
	CHECK(eb_classify(EB_TRANSPORT_OK, 0) == EB_VERDICT_RETRY);
	CHECK(eb_classify(EB_TRANSPORT_OK, -1) == EB_VERDICT_RETRY);
	CHECK(eb_classify(EB_TRANSPORT_OK, 99999999999L) == EB_VERDICT_RETRY);
	CHECK(!eb_final_status_valid(199) && eb_final_status_valid(200));
	CHECK(eb_final_status_valid(599) && !eb_final_status_valid(600));
	CHECK(eb_classify(EB_TRANSPORT_MALFORMED, 0) == EB_VERDICT_RETRY);
	CHECK(eb_classify(EB_TRANSPORT_MALFORMED, 200) == EB_VERDICT_RETRY);
	CHECK(eb_classify(EB_TRANSPORT_BAD_HEADER, 0) == EB_VERDICT_NON_RETRYABLE);
	CHECK(eb_classify(EB_TRANSPORT_CONNECT, 0) == EB_VERDICT_RETRY);
	CHECK(eb_classify(EB_TRANSPORT_TIMEOUT, 0) == EB_VERDICT_RETRY);
	CHECK(eb_classify(EB_TRANSPORT_DNS, 0) == EB_VERDICT_NON_RETRYABLE);
	CHECK(eb_classify(EB_TRANSPORT_BAD_URL, 0) == EB_VERDICT_NON_RETRYABLE);
	CHECK(eb_classify(EB_TRANSPORT_INTERNAL, 0) == EB_VERDICT_NON_RETRYABLE);
}

/* The error_code mapping is a public contract. */
static void
test_error_code(void)
{
	CHECK(strcmp(eb_error_code(EB_TRANSPORT_CONNECT, 0), "CONNECTION_FAILURE") == 0);
	CHECK(strcmp(eb_error_code(EB_TRANSPORT_TIMEOUT, 0), "TIMEOUT") == 0);
	CHECK(strcmp(eb_error_code(EB_TRANSPORT_DNS, 0), "INVALID_PARAMETER") == 0);
	CHECK(strcmp(eb_error_code(EB_TRANSPORT_BAD_URL, 0), "INVALID_PARAMETER") == 0);
	CHECK(strcmp(eb_error_code(EB_TRANSPORT_INTERNAL, 0), "INTERNAL_FAILURE") == 0);
	CHECK(strcmp(eb_error_code(EB_TRANSPORT_OK, 429), "THROTTLING") == 0);
	CHECK(strcmp(eb_error_code(EB_TRANSPORT_OK, 404), "NO_RESOURCE") == 0);
	CHECK(strcmp(eb_error_code(EB_TRANSPORT_OK, 410), "NO_RESOURCE") == 0);
	CHECK(strcmp(eb_error_code(EB_TRANSPORT_OK, 401), "NO_PERMISSIONS") == 0);
	CHECK(strcmp(eb_error_code(EB_TRANSPORT_OK, 403), "NO_PERMISSIONS") == 0);
	CHECK(strcmp(eb_error_code(EB_TRANSPORT_OK, 407), "NO_PERMISSIONS") == 0);
	CHECK(strcmp(eb_error_code(EB_TRANSPORT_OK, 408), "TIMEOUT") == 0);
	CHECK(strcmp(eb_error_code(EB_TRANSPORT_OK, 400), "ERROR_FROM_TARGET") == 0);
	CHECK(strcmp(eb_error_code(EB_TRANSPORT_OK, 500), "ERROR_FROM_TARGET") == 0);
	CHECK(strcmp(eb_error_code(EB_TRANSPORT_OK, 302), "ERROR_FROM_TARGET") == 0);
	CHECK(strcmp(eb_error_code(EB_TRANSPORT_OK, 600), "ERROR_FROM_TARGET") == 0);
	CHECK(strcmp(eb_error_code(EB_TRANSPORT_MALFORMED, 0), "ERROR_FROM_TARGET") == 0);
	CHECK(strcmp(eb_error_code(EB_TRANSPORT_BAD_HEADER, 0), "INVALID_PARAMETER") == 0);
}

/* Backoff grows, is jittered, and stays within [base, max]. */
static void
test_backoff(void)
{
	int64_t		prev_hi = 0;

	CHECK(eb_backoff_ms(1, 1000, 300000, 0.0) == 1000);
	CHECK(eb_backoff_ms(1, 1000, 300000, 0.999) >= 1990);
	CHECK(eb_backoff_ms(1, 1000, 300000, 0.999) <= 2000);
	CHECK(eb_backoff_ms(2, 1000, 300000, 0.0) == 2000);
	CHECK(eb_backoff_ms(2, 1000, 300000, 0.5) == 3000);
	CHECK(eb_backoff_ms(3, 1000, 300000, 0.0) == 4000);
	CHECK(eb_backoff_ms(30, 1000, 300000, 0.0) == 150000);
	CHECK(eb_backoff_ms(30, 1000, 300000, 0.999) <= 300000);
	CHECK(eb_backoff_ms(185, 1000, 300000, 0.999) <= 300000);
	CHECK(eb_backoff_ms(185, 1000, 300000, 0.999) >= 299000);
	CHECK(eb_backoff_ms(1000000, 1000, 300000, 0.5) <= 300000);
	CHECK(eb_backoff_ms(0, 1000, 300000, 0.0) == 1000);
	/* small settings, as tests use them */
	CHECK(eb_backoff_ms(1, 10, 50, 0.0) == 10);
	CHECK(eb_backoff_ms(5, 10, 50, 0.999) <= 50);
	CHECK(eb_backoff_ms(5, 10, 50, 0.0) >= 25);
	/* max below base: base wins, no overflow or negatives */
	CHECK(eb_backoff_ms(3, 1000, 10, 0.5) == 1000);
	CHECK(eb_backoff_ms(3, 0, 0, 0.5) == 0);
	CHECK(eb_backoff_ms(3, -5, 100, 0.5) >= 0);
	/* the upper bound never shrinks as attempts grow */
	for (int a = 1; a < 200; a++)
	{
		int64_t		hi = eb_backoff_ms(a, 1000, 300000, 0.999999);
		int64_t		lo = eb_backoff_ms(a, 1000, 300000, 0.0);

		CHECK(hi >= prev_hi);
		CHECK(lo >= 1000 && hi <= 300000 && lo <= hi);
		prev_hi = hi;
	}
}

/* Retry-After as seconds and as each HTTP-date form. */
static void
test_retry_after(void)
{
	int64_t		ms = -1;
	time_t		now = 784111777;	/* Sun, 06 Nov 1994 08:49:37 GMT */

	CHECK(eb_parse_retry_after("120", now, &ms) && ms == 120000);
	CHECK(eb_parse_retry_after(" 0 ", now, &ms) && ms == 0);
	CHECK(eb_parse_retry_after("99999999999999999999", now, &ms) && ms > 0);
	CHECK(!eb_parse_retry_after("", now, &ms));
	CHECK(!eb_parse_retry_after(NULL, now, &ms));
	CHECK(!eb_parse_retry_after("-5", now, &ms));
	CHECK(!eb_parse_retry_after("12abc", now, &ms));
	CHECK(!eb_parse_retry_after("soon", now, &ms));
	CHECK(eb_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now, &ms) && ms == 0);
	CHECK(eb_parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now, &ms) && ms == 30000);
	CHECK(eb_parse_retry_after("Sunday, 06-Nov-94 08:50:37 GMT", now, &ms) && ms == 60000);
	CHECK(eb_parse_retry_after("Sun Nov  6 08:49:47 1994", now, &ms) && ms == 10000);
	CHECK(eb_parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now, &ms) && ms == 0);
	CHECK(eb_parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", 0, &ms) && ms == 0);
	CHECK(eb_parse_retry_after("Fri, 27 Nov 2026 10:00:10 GMT", 1795773600, &ms) && ms == 10000);
	CHECK(!eb_parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", now, &ms));
	CHECK(!eb_parse_retry_after("Sun, 06 Nov 1994 25:49:37 GMT", now, &ms));
	CHECK(!eb_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT trailing", now, &ms));

	/* the delay used: Retry-After bounded by the maximum, else backoff */
	CHECK(eb_retry_delay_ms(1, 1000, 300000, 0.0, "5", now) == 5000);
	CHECK(eb_retry_delay_ms(1, 1000, 300000, 0.0, "3600", now) == 300000);
	CHECK(eb_retry_delay_ms(1, 1000, 300000, 0.0, "junk", now) == 1000);
	CHECK(eb_retry_delay_ms(1, 1000, 300000, 0.0, NULL, now) == 1000);
	CHECK(eb_retry_delay_ms(1, 10, 50, 0.0, "2", now) == 50);
}

/*
 * Retry-After never shortens the backoff, whatever its form, and never
 * lengthens a delay past the maximum.
 */
static void
test_retry_after_never_shorter(void)
{
	time_t		now = 784111777;	/* Sun, 06 Nov 1994 08:49:37 GMT */
	static const char *const values[] = {
		"0", " 0 ", "1", "-1", "-999999", "999999999999999999999999",
		"Sun, 06 Nov 1994 08:49:37 GMT", "Sat, 05 Nov 1994 08:49:37 GMT",
		"Thu, 01 Jan 1970 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT",
		"soon", "", "0x10", "1e3", "5 5", "\x01\x7f", NULL
	};

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
	{
		for (int a = 1; a < 40; a++)
		{
			for (int r = 0; r < 4; r++)
			{
				double		rand01 = r / 4.0;
				int64_t		backoff = eb_backoff_ms(a, 1000, 300000, rand01);
				int64_t		d = eb_retry_delay_ms(a, 1000, 300000, rand01,
												  values[i], now);

				CHECK(d >= backoff && d <= 300000);
			}
		}
	}
	/* the case: Retry-After 0 on every attempt keeps the backoff */
	CHECK(eb_retry_delay_ms(1, 1000, 300000, 0.0, "0", now) == 1000);
	CHECK(eb_retry_delay_ms(3, 1000, 300000, 0.0, "0", now) == 4000);
	CHECK(eb_retry_delay_ms(3, 1000, 300000, 0.0, "-5", now) == 4000);
	CHECK(eb_retry_delay_ms(3, 1000, 300000, 0.0, "Sat, 05 Nov 1994 08:49:37 GMT", now) == 4000);
	/* more patience than the backoff is honoured, up to the maximum */
	CHECK(eb_retry_delay_ms(3, 1000, 300000, 0.0, "10", now) == 10000);
	CHECK(eb_retry_delay_ms(3, 1000, 300000, 0.0, "Sun, 06 Nov 1994 08:50:37 GMT", now) == 60000);
	CHECK(eb_retry_delay_ms(3, 1000, 300000, 0.0, "999999999999", now) == 300000);
	CHECK(eb_retry_delay_ms(3, 1000, 300000, 0.0, "Fri, 31 Dec 9999 23:59:59 GMT", now) == 300000);
	/* a maximum below the base: the base, never more, never less */
	CHECK(eb_retry_delay_ms(3, 1000, 10, 0.0, "3600", now) == 1000);
}

/* Header names are tokens, values have no control character but HTAB. */
static void
test_headers(void)
{
	size_t		at = 99;
	char		buf[200];

#define HDR(n, v, r) eb_header_check(n, strlen(n), v, strlen(v), r, &at)
	CHECK(HDR("Authorization", "Bearer s3cret", true) == EB_HEADER_OK);
	CHECK(HDR("X-Empty", "", true) == EB_HEADER_OK);
	CHECK(HDR("X-Tab", "a\tb", true) == EB_HEADER_OK);
	CHECK(HDR("X-Utf8", "caf\xc3\xa9", true) == EB_HEADER_OK);
	CHECK(HDR("!#$%&'*+-.^_`|~09azAZ", "v", true) == EB_HEADER_OK);
	CHECK(HDR("", "v", true) == EB_HEADER_EMPTY_NAME);
	CHECK(HDR("X Y", "v", true) == EB_HEADER_BAD_NAME && at == 1);
	CHECK(HDR("X:Y", "v", true) == EB_HEADER_BAD_NAME && at == 1);
	CHECK(HDR("X;", "v", true) == EB_HEADER_BAD_NAME && at == 1);
	CHECK(HDR("X\x7f", "v", true) == EB_HEADER_BAD_NAME && at == 1);
	CHECK(HDR("\xc3\xa9", "v", true) == EB_HEADER_BAD_NAME && at == 0);
	/* every control character but HTAB, wherever it is */
	for (int c = 1; c < 0x20; c++)
	{
		char		v[4] = {'a', (char) c, 'b', '\0'};

		if (c == '\t')
			CHECK(HDR("X", v, true) == EB_HEADER_OK);
		else
			CHECK(HDR("X", v, true) == EB_HEADER_CONTROL && at == 1);
	}
	CHECK(HDR("X", "ab\x7f", true) == EB_HEADER_CONTROL && at == 2);
	CHECK(eb_header_check("X", 1, "a\0b", 3, true, &at) == EB_HEADER_CONTROL && at == 1);
	CHECK(HDR("X", "a\r\nInjected: 1", true) == EB_HEADER_CONTROL && at == 1);
	/* names the worker sets: refused for targets, allowed on the wire */
	CHECK(HDR("content-length", "1", true) == EB_HEADER_RESERVED);
	CHECK(HDR("HOST", "x", true) == EB_HEADER_RESERVED);
	CHECK(HDR("Transfer-Encoding", "x", true) == EB_HEADER_RESERVED);
	CHECK(HDR("Connection", "x", true) == EB_HEADER_RESERVED);
	CHECK(HDR("Webhook-Id", "x", true) == EB_HEADER_RESERVED);
	CHECK(HDR("webhook-timestamp", "x", true) == EB_HEADER_RESERVED);
	CHECK(HDR("webhook-signature", "x", true) == EB_HEADER_RESERVED);
	CHECK(HDR("webhook-id", "msg_1", false) == EB_HEADER_OK);
	CHECK(HDR("Hostname", "x", true) == EB_HEADER_OK);
	/* a problem is told by position and byte, never with the value */
	CHECK(HDR("X", "s3cret\x0b", true) == EB_HEADER_CONTROL);
	eb_header_problem_text(EB_HEADER_CONTROL, "X", "s3cret\x0b", at, buf, sizeof(buf));
	CHECK(strcmp(buf, "the value has the control character 0x0B at byte 7") == 0);
	CHECK(strstr(buf, "s3cret") == NULL);
	CHECK(HDR("X Y", "v", true) == EB_HEADER_BAD_NAME);
	eb_header_problem_text(EB_HEADER_BAD_NAME, "X Y", "v", at, buf, sizeof(buf));
	CHECK(strstr(buf, "0x20 at byte 2") != NULL);
	CHECK(strlen(eb_header_problem_hint(EB_HEADER_CONTROL)) > 0);
	/* size: name and value together, at most EB_HEADER_MAX_BYTES */
	{
		static char big[EB_HEADER_MAX_BYTES + 2];

		memset(big, 'v', sizeof(big) - 1);
		CHECK(eb_header_check("X", 1, big, EB_HEADER_MAX_BYTES - 1, true, &at) == EB_HEADER_OK);
		CHECK(eb_header_check("X", 1, big, EB_HEADER_MAX_BYTES, true, &at) == EB_HEADER_TOO_LONG);
		CHECK(eb_header_check("X", 1, big, EB_HEADER_MAX_BYTES, false, &at) == EB_HEADER_TOO_LONG);
		eb_header_problem_text(EB_HEADER_TOO_LONG, "X", big, at, buf, sizeof(buf));
		CHECK(strcmp(buf, "its name and value are 8193 bytes, more than 8192") == 0);
		CHECK(strstr(eb_header_problem_hint(EB_HEADER_TOO_LONG), "8192 bytes") != NULL);
		CHECK(strstr(eb_header_problem_hint(EB_HEADER_TOO_LONG), "16384") != NULL);
	}
#undef HDR
}

/* A function target's outcome: which SQLSTATEs are retried, its code. */
static void
test_function_outcome(void)
{
	CHECK(eb_function_transport(NULL) == EB_TRANSPORT_FUNCTION_OK);
	CHECK(eb_function_transport("") == EB_TRANSPORT_FUNCTION_OK);
	CHECK(eb_classify(eb_function_transport(NULL), 0) == EB_VERDICT_SUCCESS);
	CHECK(eb_classify(eb_function_transport("40001"), 0) == EB_VERDICT_RETRY);
	CHECK(eb_classify(eb_function_transport("40P01"), 0) == EB_VERDICT_RETRY);
	CHECK(eb_classify(eb_function_transport("55P03"), 0) == EB_VERDICT_RETRY);
	CHECK(eb_classify(eb_function_transport("53200"), 0) == EB_VERDICT_RETRY);
	CHECK(eb_function_transport("57014") == EB_TRANSPORT_TIMEOUT);
	CHECK(eb_classify(eb_function_transport("57014"), 0) == EB_VERDICT_RETRY);
	CHECK(strcmp(eb_error_code(eb_function_transport("57014"), 0), EB_ERR_TIMEOUT) == 0);
	CHECK(eb_classify(eb_function_transport("42501"), 0) == EB_VERDICT_NON_RETRYABLE);
	CHECK(eb_classify(eb_function_transport("P0001"), 0) == EB_VERDICT_NON_RETRYABLE);
	CHECK(eb_classify(eb_function_transport("40002"), 0) == EB_VERDICT_NON_RETRYABLE);
	CHECK(strcmp(eb_error_code(eb_function_transport("42501"), 0), EB_ERR_FUNCTION_ERROR) == 0);
	CHECK(strcmp(eb_error_code(eb_function_transport("40001"), 0), EB_ERR_FUNCTION_ERROR) == 0);
	CHECK(eb_transport_answered(EB_TRANSPORT_OK));
	CHECK(eb_transport_answered(EB_TRANSPORT_FUNCTION_FAILED));
	CHECK(!eb_transport_answered(EB_TRANSPORT_TIMEOUT));
	CHECK(!eb_transport_answered(EB_TRANSPORT_CONNECT));
}

int
main(void)
{
	test_classify();
	test_error_code();
	test_backoff();
	test_retry_after();
	test_retry_after_never_shorter();
	test_headers();
	test_function_outcome();
	printf("policy: %d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
