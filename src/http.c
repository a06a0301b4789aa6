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

#include "portability/instr_time.h"

#include "http.h"

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

/* Keeps the first EB_HTTP_EXCERPT_MAX bytes of the response body. */
static size_t
write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	EbHttpRequest *req = (EbHttpRequest *) userp;
	size_t		len = size * nmemb;
	size_t		room = EB_HTTP_EXCERPT_MAX - req->excerpt_len;

	if (room > 0)
	{
		size_t		n = len < room ? len : room;

		memcpy(req->excerpt + req->excerpt_len, data, n);
		req->excerpt_len += n;
		req->excerpt[req->excerpt_len] = '\0';
	}
	return len;
}

/* Picks the Retry-After header out of the response headers. */
static size_t
header_cb(char *data, size_t size, size_t nitems, void *userp)
{
	EbHttpRequest *req = (EbHttpRequest *) userp;
	size_t		len = size * nitems;
	static const char name[] = "retry-after:";

	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0)
		req->retry_after[0] = '\0'; /* a new response (after a 1xx) */
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

/* Adds one "Name: value" line to a request's headers. */
void
eb_http_add_header(EbHttpRequest *req, const char *line)
{
	struct curl_slist *l = curl_slist_append((struct curl_slist *) req->headers, line);

	if (l == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	req->headers = l;
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

/* Maps libcurl's result to the policy's transport outcome. */
static EbTransport
transport_of(CURLcode rc)
{
	switch (rc)
	{
		case CURLE_OK:
			return EB_TRANSPORT_OK;
		case CURLE_OPERATION_TIMEDOUT:
			return EB_TRANSPORT_TIMEOUT;
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
			return EB_TRANSPORT_DNS;
		case CURLE_URL_MALFORMAT:
		case CURLE_UNSUPPORTED_PROTOCOL:
			return EB_TRANSPORT_BAD_URL;
		default:
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
	req->error[0] = '\0';
	req->excerpt[0] = '\0';
	req->excerpt_len = 0;
	req->retry_after[0] = '\0';
	req->seconds = 0;

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

		req->transport = transport_of(msg->data.result);
		if (msg->data.result == CURLE_OK)
			curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &req->status);
		else if (req->error[0] == '\0')
			strlcpy(req->error, curl_easy_strerror(msg->data.result),
					sizeof(req->error));
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
