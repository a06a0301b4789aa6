/*-------------------------------------------------------------------------
 *
 * http.h
 *	  Concurrent HTTP requests for the delivery worker (libcurl multi).
 *
 * One multi handle per process keeps the connection cache, so connections
 * to a target are reused across requests and batches.  Its sockets are
 * watched through a single epoll descriptor that the worker adds to its
 * wait set next to its latch: the worker sleeps until a response arrives,
 * a timer of libcurl's fires, or someone wakes it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTBUS_HTTP_H
#define EVENTBUS_HTTP_H

#include "policy.h"

#define EB_HTTP_EXCERPT_MAX 1024

typedef struct EbHttpRequest
{
	/* filled in by the caller; must stay valid until the request is done */
	const char *method;
	const char *url;
	const char *body;
	size_t		body_len;
	long		timeout_ms;
	void	   *headers;		/* struct curl_slist *, see eb_http_add_header */

	/* the outcome, filled in when the request is done */
	EbTransport transport;
	long		status;
	char		error[256];		/* libcurl's message for a transport error */
	char		excerpt[EB_HTTP_EXCERPT_MAX + 1];	/* start of response body */
	size_t		excerpt_len;
	char		retry_after[64];	/* Retry-After header, or "" */
	double		seconds;		/* total time of the request */

	/* private to http.c */
	void	   *easy;
	struct EbHttpRequest *next_done;
	void	   *owner;			/* the caller's own pointer */
} EbHttpRequest;

extern void eb_http_init(int max_in_flight);
extern void eb_http_set_limits(int max_in_flight);
extern int	eb_http_wait_fd(void);
extern long eb_http_timeout_ms(void);
extern void eb_http_add_header(EbHttpRequest *req, const char *line);
extern void eb_http_submit(EbHttpRequest *req);
extern void eb_http_drive(void);
extern EbHttpRequest *eb_http_next_done(void);
extern int	eb_http_in_flight(void);
extern void eb_http_release(EbHttpRequest *req);

#endif							/* EVENTBUS_HTTP_H */
