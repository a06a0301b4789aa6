/*-------------------------------------------------------------------------
 *
 * http.c
 *	  Concurrent HTTP requests for the delivery worker, on libcurl's multi
 *	  interface driven by socket events.
 *
 * libcurl tells us which sockets it wants watched (socket callback) and
 * when it wants to be called back (timer callback).  The sockets go into
 * one epoll descriptor, which the worker watches together with its latch,
 * so a single WaitEventSetWait() sleeps until a response, a libcurl timer,
 * a wake-up or a signal.  The multi handle lives as long as the process: it
 * holds the connection cache, so keep-alive connections are reused by
 * later requests, and finished easy handles are reset and reused too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <curl/curl.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "http.h"

/* CURLOPT_PREREQFUNCTION bounds the requests of an attempt */
#if LIBCURL_VERSION_NUM < 0x075000
#error "pg_eventbus needs libcurl 7.80.0 or later"
#endif

static CURLM *multi = NULL;
static int	epoll_fd = -1;
static int	in_flight = 0;

/* when libcurl wants CURL_SOCKET_TIMEOUT action; valid if timer_set */
static bool timer_set = false;
static instr_time timer_at;

/* finished requests, oldest first */
static EbHttpRequest *done_head = NULL;
static EbHttpRequest *done_tail = NULL;

/* easy handles ready for reuse */
static CURL **pool = NULL;
static int	pool_len = 0;
static int	pool_cap = 0;

/*
 * libcurl's socket callback: keeps the epoll set in step with the sockets
 * libcurl wants watched.
 */
static int
socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct epoll_event ev;

	if (what == CURL_POLL_REMOVE)
	{
		/* the socket may already be closed; nothing to do then */
		(void) epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, NULL);
		return 0;
	}

	memset(&ev, 0, sizeof(ev));
	ev.data.fd = fd;
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		ev.events |= EPOLLIN;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		ev.events |= EPOLLOUT;

	if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd, &ev) != 0)
	{
		if (errno != ENOENT ||
			epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0)
			elog(WARNING, "pg_eventbus: could not watch socket %d: %m", (int) fd);
	}
	return 0;
}

/* libcurl's timer callback: remembers when libcurl wants to run next. */
static int
timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	if (timeout_ms < 0)
		timer_set = false;
	else
	{
		INSTR_TIME_SET_CURRENT(timer_at);
		timer_at.tv_sec += timeout_ms / 1000;
		timer_at.tv_nsec += (timeout_ms % 1000) * 1000000L;
		if (timer_at.tv_nsec >= 1000000000L)
		{
			timer_at.tv_sec++;
			timer_at.tv_nsec -= 1000000000L;
		}
		timer_set = true;
	}
	return 0;
}

/*
 * Keeps the first EB_HTTP_EXCERPT_MAX bytes of the response body and reads
 * on up to EB_HTTP_MAX_BODY_BYTES, so that a short answer leaves its
 * connection ready for reuse; past that it stops the transfer (libcurl then
 * closes the connection), because a target that sends gigabytes must not
 * cost gigabytes.  The status has arrived by then and decides the outcome.
 */
static size_t
write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	EbHttpRequest *req = (EbHttpRequest *) userp;
	size_t		len = size * nmemb;
	size_t		room = EB_HTTP_EXCERPT_MAX - req->excerpt_len;

	req->body_bytes += len;
	if (req->body_bytes > EB_HTTP_MAX_BODY_BYTES)
	{
		req->body_cut = true;
		return 0;				/* anything but len stops the transfer */
	}
	if (room > 0)
	{
		size_t		n = len < room ? len : room;

		memcpy(req->excerpt + req->excerpt_len, data, n);
		req->excerpt_len += n;
		req->excerpt[req->excerpt_len] = '\0';
	}
	/* a batch's answer may list failed items (batch.c): all of it, bounded */
	if (req->body_keep != NULL)
	{
		memcpy(req->body_keep + req->body_keep_len, data, len);
		req->body_keep_len += len;
		req->body_keep[req->body_keep_len] = '\0';
	}
	return len;
}

/*
 * Sees each header line of the answer: notes that an answer started and
 * whether its header section ended (a blank line), picks out Retry-After,
 * and stops the transfer once the header sections (1xx answers included)
 * pass EB_HTTP_MAX_HEADER_BYTES, so that an endless one costs nothing
 * unbounded.
 */
static size_t
header_cb(char *data, size_t size, size_t nitems, void *userp)
{
	EbHttpRequest *req = (EbHttpRequest *) userp;
	size_t		len = size * nitems;
	static const char name[] = "retry-after:";

	req->answer_started = true;
	req->header_bytes += len;
	if (req->header_bytes > EB_HTTP_MAX_HEADER_BYTES)
	{
		req->headers_cut = true;
		return 0;				/* anything but len stops the transfer */
	}

	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0)
	{
		req->retry_after[0] = '\0'; /* a new answer (after a 1xx) */
		req->headers_ended = false;
	}
	else if ((len == 2 && data[0] == '\r' && data[1] == '\n') ||
			 (len == 1 && data[0] == '\n'))
		req->headers_ended = true;
	else if (len > sizeof(name) - 1 &&
			 pg_strncasecmp(data, name, sizeof(name) - 1) == 0)
	{
		const char *v = data + sizeof(name) - 1;
		size_t		vlen = len - (sizeof(name) - 1);

		while (vlen > 0 && (*v == ' ' || *v == '\t'))
			v++, vlen--;
		while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' ||
							v[vlen - 1] == ' '))
			vlen--;
		if (vlen >= sizeof(req->retry_after))
			vlen = sizeof(req->retry_after) - 1;
		memcpy(req->retry_after, v, vlen);
		req->retry_after[vlen] = '\0';
	}
	return len;
}

/*
 * libcurl's pre-request callback, called each time it is about to send the
 * request, on the first connection and again on each connection it retries
 * on after finding a reused one dead.  Refuses the request past
 * EB_HTTP_MAX_REQUESTS_PER_ATTEMPT, which libcurl has no option for.
 */
static int
prereq_cb(void *userp, char *primary_ip, char *local_ip, int primary_port,
		  int local_port)
{
	EbHttpRequest *req = (EbHttpRequest *) userp;

	if (req->requests_sent >= EB_HTTP_MAX_REQUESTS_PER_ATTEMPT)
		return CURL_PREREQFUNC_ABORT;
	req->requests_sent++;
	return CURL_PREREQFUNC_OK;
}

/*
 * Creates the process's multi handle and epoll descriptor.  Called once,
 * by the worker at start-up.
 */
void
eb_http_init(int max_in_flight)
{
	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("pg_eventbus: could not initialize libcurl")));

	epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (epoll_fd < 0)
		ereport(ERROR,
				(errcode_for_socket_access(),
				 errmsg("pg_eventbus: could not create epoll descriptor: %m")));

	multi = curl_multi_init();
	if (multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("pg_eventbus: could not create libcurl multi handle")));
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	eb_http_set_limits(max_in_flight);
}

/*
 * Bounds the connections the multi handle opens and keeps, so that a
 * server's file descriptor limit is respected.  Called again on reload.
 */
void
eb_http_set_limits(int max_in_flight)
{
	curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) max_in_flight);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) max_in_flight);
}

/* The descriptor that becomes readable when a request has news. */
int
eb_http_wait_fd(void)
{
	return epoll_fd;
}

/* Milliseconds until libcurl wants its timer action; -1 when never. */
long
eb_http_timeout_ms(void)
{
	instr_time	now;
	instr_time	left;
	double		ms;

	if (!timer_set)
		return -1;
	INSTR_TIME_SET_CURRENT(now);
	left = timer_at;
	INSTR_TIME_SUBTRACT(left, now);
	ms = INSTR_TIME_GET_MILLISEC(left);
	if (ms <= 0)
		return 0;
	return (long) ms + 1;
}

/*
 * Marks a request as not to be sent because of one of its headers, with the
 * header's name (control characters shown as '?') and the problem in its
 * error.  Only the first problem is kept.
 */
static void
refuse_header(EbHttpRequest *req, const char *name, size_t namelen,
			  const char *what)
{
	char		shown[65];
	size_t		n = Min(namelen, sizeof(shown) - 1);

	if (req->bad_header)
		return;
	for (size_t i = 0; i < n; i++)
		shown[i] = (name[i] > 0x20 && name[i] < 0x7f) ? name[i] : '?';
	shown[n] = '\0';
	snprintf(req->error, sizeof(req->error),
			 "header \"%s\" of the target was not sent: %s; fix it with eventbus.put_target()",
			 shown, what);
	req->bad_header = true;
}

/*
 * Adds one header line to a request: "Name: value", or "Name;" for an
 * empty value (libcurl's way to send one).  Every line passes
 * eb_header_check() first, so that no control character ever reaches the
 * wire, even from a target stored before put_target checked for them.  A
 * line that fails is not added; the request is then not sent at all but
 * finishes as EB_TRANSPORT_BAD_HEADER, with the header's name and the
 * problem (never the value) in its error.
 */
void
eb_http_add_header(EbHttpRequest *req, const char *line)
{
	struct curl_slist *l;
	const char *colon = strchr(line, ':');
	size_t		namelen;
	const char *value = "";
	EbHeaderProblem problem;
	size_t		at;
	char		what[160];

	if (colon != NULL)
	{
		namelen = colon - line;
		value = colon + 1;
		while (*value == ' ' || *value == '\t')
			value++;
	}
	else
	{
		namelen = strlen(line);
		if (namelen > 0 && line[namelen - 1] == ';')
			namelen--;
	}
	problem = eb_header_check(line, namelen, value, strlen(value), false, &at);
	if (problem != EB_HEADER_OK)
	{
		eb_header_problem_text(problem, line, value, at, what, sizeof(what));
		refuse_header(req, line, namelen, what);
		return;
	}
	if (colon == NULL && line[namelen] != ';')
	{
		refuse_header(req, line, namelen,
					  "the line has no ':' (a value with a line break?)");
		return;
	}

	l = curl_slist_append((struct curl_slist *) req->headers, line);
	if (l == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	req->headers = l;
}

/*
 * Adds one of the target's own headers, given as name and value (as they
 * are stored in eventbus.targets.headers) rather than as a line, so that
 * even a value with a line break cannot become two headers.  The check is
 * put_target's (eb_header_check with the worker's own names refused); a
 * header that fails it keeps the request from being sent, as in
 * eb_http_add_header().
 */
void
eb_http_add_target_header(EbHttpRequest *req, const char *name, size_t namelen,
						  const char *value, size_t valuelen)
{
	EbHeaderProblem problem;
	size_t		at;
	char	   *line;

	problem = eb_header_check(name, namelen, value, valuelen, true, &at);
	if (problem != EB_HEADER_OK)
	{
		char		what[160];

		eb_header_problem_text(problem, name, value, at, what, sizeof(what));
		refuse_header(req, name, namelen, what);
		return;
	}
	if (valuelen == 0)
		line = psprintf("%.*s;", (int) namelen, name);
	else
		line = psprintf("%.*s: %.*s", (int) namelen, name, (int) valuelen, value);
	eb_http_add_header(req, line);
	pfree(line);
}

/* Appends a finished request to the done list. */
static void
finish(EbHttpRequest *req)
{
	req->next_done = NULL;
	if (done_tail)
		done_tail->next_done = req;
	else
		done_head = req;
	done_tail = req;
}

/*
 * Prefixes a request's error with "malformed answer: " (libcurl's own
 * words follow, when it gave some).
 */
static void
set_malformed(EbHttpRequest *req, const char *what)
{
	char		buf[sizeof(req->error)];

	snprintf(buf, sizeof(buf), "malformed answer: %s", what);
	strlcpy(req->error, buf, sizeof(req->error));
}

/*
 * Maps a finished transfer to the policy's transport outcome, filling in
 * the status and the error message.  Every answer that is not valid HTTP
 * -- HTTP/0.9, no status line, a status outside 200-599 in a final answer,
 * a header section that never ends or is cut off, a body cut short, a
 * broken chunked encoding, an answer over our bounds -- becomes
 * EB_TRANSPORT_MALFORMED, which the policy retries: the target is at
 * fault, not the event.  A connection closed or reset before any byte of
 * an answer stays a connection failure.
 */
static EbTransport
outcome(EbHttpRequest *req, CURL *easy, CURLcode rc)
{
	char		what[sizeof(req->error)];

	if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && req->body_cut))
	{
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &req->status);
		req->error[0] = '\0';
		if (!req->headers_ended)
		{
			set_malformed(req, "the connection closed inside the header section");
			return EB_TRANSPORT_MALFORMED;
		}
		if (!eb_final_status_valid(req->status))
		{
			snprintf(what, sizeof(what),
					 "status %03ld is not a final HTTP status (200 to 599)",
					 req->status);
			set_malformed(req, what);
			return EB_TRANSPORT_MALFORMED;
		}
		return EB_TRANSPORT_OK;
	}

	if (req->error[0] == '\0')
		strlcpy(req->error, curl_easy_strerror(rc), sizeof(req->error));

	switch (rc)
	{
		case CURLE_OPERATION_TIMEDOUT:
			return EB_TRANSPORT_TIMEOUT;
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
			return EB_TRANSPORT_DNS;
		case CURLE_URL_MALFORMAT:
			return EB_TRANSPORT_BAD_URL;
		case CURLE_ABORTED_BY_CALLBACK:
			snprintf(req->error, sizeof(req->error),
					 "the connection closed before any answer, on each of %d requests (at most %d requests per attempt)",
					 req->requests_sent, EB_HTTP_MAX_REQUESTS_PER_ATTEMPT);
			return EB_TRANSPORT_CONNECT;
		case CURLE_WRITE_ERROR:
			if (req->headers_cut)
			{
				snprintf(what, sizeof(what),
						 "the header section is longer than %d bytes",
						 EB_HTTP_MAX_HEADER_BYTES);
				set_malformed(req, what);
				return EB_TRANSPORT_MALFORMED;
			}
			return EB_TRANSPORT_INTERNAL;
		case CURLE_UNSUPPORTED_PROTOCOL:
			/* a scheme refused before sending, or HTTP/0.9 or a bad status line */
			if (req->requests_sent == 0)
				return EB_TRANSPORT_BAD_URL;
			set_malformed(req, req->error);
			return EB_TRANSPORT_MALFORMED;
		case CURLE_WEIRD_SERVER_REPLY:
		case CURLE_PARTIAL_FILE:
		case CURLE_BAD_CONTENT_ENCODING:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
			set_malformed(req, req->error);
			return EB_TRANSPORT_MALFORMED;
		default:
			if (rc == CURLE_GOT_NOTHING && req->answer_started)
			{
				set_malformed(req, "the connection closed after an informational (1xx) answer, before the final one");
				return EB_TRANSPORT_MALFORMED;
			}
			if (req->answer_started)
			{
				set_malformed(req, req->error);
				return EB_TRANSPORT_MALFORMED;
			}
			return EB_TRANSPORT_CONNECT;
	}
}

/*
 * Starts a request.  It runs in the background from now on; it is handed
 * back by eb_http_next_done() once finished, whatever the outcome.
 */
void
eb_http_submit(EbHttpRequest *req)
{
	CURL	   *easy;
	CURLMcode	mrc;

	req->transport = EB_TRANSPORT_INTERNAL;
	req->status = 0;
	if (!req->bad_header)
		req->error[0] = '\0';
	req->excerpt[0] = '\0';
	req->excerpt_len = 0;
	req->body_keep_len = 0;
	if (req->body_keep != NULL)
		req->body_keep[0] = '\0';
	req->retry_after[0] = '\0';
	req->seconds = 0;
	req->requests_sent = 0;
	req->header_bytes = 0;
	req->body_bytes = 0;
	req->answer_started = false;
	req->headers_ended = false;
	req->headers_cut = false;
	req->body_cut = false;

	/* a header eb_http_add_header() refused: nothing is sent */
	if (req->bad_header)
	{
		req->transport = EB_TRANSPORT_BAD_HEADER;
		finish(req);
		return;
	}

	/* make room first, so that handing a handle back can never fail */
	if (pool_cap < in_flight + pool_len + 1)
	{
		int			cap = Max(64, (in_flight + pool_len + 1) * 2);
		CURL	  **p = realloc(pool, cap * sizeof(CURL *));

		if (p == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		pool = p;
		pool_cap = cap;
	}

	if (pool_len > 0)
		easy = pool[--pool_len];
	else
		easy = curl_easy_init();
	if (easy == NULL)
	{
		strlcpy(req->error, "could not create a libcurl handle", sizeof(req->error));
		finish(req);
		return;
	}
	req->easy = easy;

	curl_easy_setopt(easy, CURLOPT_PRIVATE, req);
	curl_easy_setopt(easy, CURLOPT_URL, req->url);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, req->timeout_ms);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, req->timeout_ms);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, (struct curl_slist *) req->headers);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, req->error);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, req);
	curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, prereq_cb);
	curl_easy_setopt(easy, CURLOPT_PREREQDATA, req);
	if (strcmp(req->method, "HEAD") == 0)
		curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
	else
	{
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body);
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
	}

	mrc = curl_multi_add_handle(multi, easy);
	if (mrc != CURLM_OK)
	{
		strlcpy(req->error, curl_multi_strerror(mrc), sizeof(req->error));
		curl_easy_reset(easy);
		pool[pool_len++] = easy;
		req->easy = NULL;
		finish(req);
		return;
	}
	in_flight++;
}

/*
 * Lets libcurl make progress on every socket that is ready and on its
 * timer, without blocking, and moves finished requests to the done list.
 */
void
eb_http_drive(void)
{
	struct epoll_event evs[64];
	int			n;
	int			running;
	CURLMsg    *msg;
	int			left;

	do
	{
		n = epoll_wait(epoll_fd, evs, lengthof(evs), 0);
		for (int i = 0; i < n; i++)
		{
			int			flags = 0;

			if (evs[i].events & (EPOLLIN | EPOLLHUP))
				flags |= CURL_CSELECT_IN;
			if (evs[i].events & EPOLLOUT)
				flags |= CURL_CSELECT_OUT;
			if (evs[i].events & EPOLLERR)
				flags |= CURL_CSELECT_ERR;
			curl_multi_socket_action(multi, evs[i].data.fd, flags, &running);
		}
	} while (n == lengthof(evs));

	if (timer_set && eb_http_timeout_ms() == 0)
	{
		timer_set = false;
		curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}

	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
	{
		EbHttpRequest *req;
		CURL	   *easy = msg->easy_handle;
		char	   *priv = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		req = (EbHttpRequest *) priv;

		req->transport = outcome(req, easy, msg->data.result);
		curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME, &req->seconds);

		curl_multi_remove_handle(multi, easy);
		curl_easy_reset(easy);
		pool[pool_len++] = easy;
		req->easy = NULL;
		in_flight--;
		finish(req);
	}
}

/* Hands back the oldest finished request, or NULL. */
EbHttpRequest *
eb_http_next_done(void)
{
	EbHttpRequest *req = done_head;

	if (req)
	{
		done_head = req->next_done;
		if (done_head == NULL)
			done_tail = NULL;
		req->next_done = NULL;
	}
	return req;
}

/* Number of requests submitted and not yet finished. */
int
eb_http_in_flight(void)
{
	return in_flight;
}

/* Frees what a finished request holds on libcurl's side (its headers). */
void
eb_http_release(EbHttpRequest *req)
{
	curl_slist_free_all((struct curl_slist *) req->headers);
	req->headers = NULL;
}

/* A JSON value's type in words, for an error's detail. */
static const char *
jsonb_type_words(const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		case jbvString:
			return "a string";
		default:
			return "an array or an object";
	}
}

/*
 * eventbus.check_target_headers(target_id text, headers jsonb): put_target's
 * check of a target's headers, raising 22023 for the first header the
 * worker would refuse to send (54000 for one over the size bound), and
 * 54000 when all of them pass EB_HEADERS_MAX_TOTAL_BYTES.  The rules are eb_header_check()'s, the same
 * the worker applies to every header it sends, plus the names the worker
 * sets itself; the value is never echoed, since it may be a credential.
 */
PG_FUNCTION_INFO_V1(eventbus_check_target_headers);
Datum
eventbus_check_target_headers(PG_FUNCTION_ARGS)
{
	char	   *target_id = PG_ARGISNULL(0) ? pstrdup("") : text_to_cstring(PG_GETARG_TEXT_PP(0));
	Jsonb	   *headers = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	v;
	char	   *name = NULL;
	size_t		total = 0;

	if (headers == NULL || !JB_ROOT_IS_OBJECT(headers))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("headers of target \"%s\" must be a JSON object of strings",
						target_id),
				 errhint("For example '{\"X-Team\": \"orders\"}'; put credentials in a connection (eventbus.put_connection).")));

	it = JsonbIteratorInit(&headers->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		EbHeaderProblem problem;
		size_t		at;
		char		what[160];

		CHECK_FOR_INTERRUPTS();
		if (tok == WJB_KEY)
		{
			name = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (tok != WJB_VALUE)
			continue;

		if (v.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid header \"%s\" for target \"%s\"", name, target_id),
					 errdetail("Its value is %s, not a string.", jsonb_type_words(&v)),
					 errhint("Give every header value as a JSON string, for example '{\"X-Count\": \"1\"}'.")));

		problem = eb_header_check(name, strlen(name), v.val.string.val,
								  v.val.string.len, true, &at);
		if (problem != EB_HEADER_OK)
		{
			eb_header_problem_text(problem, name, v.val.string.val, at,
								   what, sizeof(what));
			ereport(ERROR,
					(errcode(problem == EB_HEADER_TOO_LONG ?
							 ERRCODE_PROGRAM_LIMIT_EXCEEDED :
							 ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid header \"%s\" for target \"%s\"", name, target_id),
					 errdetail("Header \"%s\": %s.", name, what),
					 errhint("%s", eb_header_problem_hint(problem))));
		}
		total += strlen(name) + v.val.string.len;
		pfree(name);
		name = NULL;
	}
	if (total > EB_HEADERS_MAX_TOTAL_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("headers of target \"%s\" are too large", target_id),
				 errdetail("Their names and values take %zu bytes, more than %d.",
						   total, EB_HEADERS_MAX_TOTAL_BYTES),
				 errhint("%s", eb_header_problem_hint(EB_HEADER_TOO_LONG))));
	PG_RETURN_VOID();
}
