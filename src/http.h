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
#ifndef EB_HTTP_H
#define EB_HTTP_H

#include "policy.h"

#define EB_HTTP_EXCERPT_MAX 1024

/*
 * What one attempt may cost, whatever the target does.  libcurl sends a
 * request again, on another connection, when a kept-alive connection it
 * reused turns out closed before any byte of the answer (the normal race
 * with a server that drops idle connections), and would do so up to five
 * times; an attempt sends at most EB_HTTP_MAX_REQUESTS_PER_ATTEMPT requests.
 * Of an answer the worker reads at most EB_HTTP_MAX_HEADER_BYTES of header
 * section (an endless one is a malformed answer) and
 * EB_HTTP_MAX_BODY_BYTES of body (the rest is not read: the connection is
 * closed, and the status decides).
 */
#define EB_HTTP_MAX_REQUESTS_PER_ATTEMPT 2
#define EB_HTTP_MAX_HEADER_BYTES (64 * 1024)
#define EB_HTTP_MAX_BODY_BYTES (64 * 1024)

typedef struct EbHttpRequest
{
	/* filled in by the caller; must stay valid until the request is done */
	const char *method;
	const char *url;
	const char *body;
	size_t		body_len;
	long		timeout_ms;
	void	   *headers;		/* struct curl_slist *, see eb_http_add_header */
	char	   *body_keep;		/* NULL, or room for EB_HTTP_MAX_BODY_BYTES + 1
								 * bytes: the whole response body is kept */

	/* the outcome, filled in when the request is done */
	EbTransport transport;
	long		status;
	char		error[256];		/* libcurl's message for a transport error */
	char		excerpt[EB_HTTP_EXCERPT_MAX + 1];	/* start of response body */
	size_t		excerpt_len;
	size_t		body_keep_len;	/* bytes of the body in body_keep */
	char		retry_after[64];	/* Retry-After header, or "" */
	double		seconds;		/* total time of the request */

	/* private to http.c */
	bool		bad_header;		/* a header was refused; error says which */
	int			requests_sent;	/* requests libcurl started for this attempt */
	size_t		header_bytes;	/* header bytes read, 1xx answers included */
	size_t		body_bytes;		/* body bytes read */
	bool		answer_started; /* some header byte arrived */
	bool		headers_ended;	/* the last answer's header section ended */
	bool		headers_cut;	/* stopped: header section too long */
	bool		body_cut;		/* stopped: body too long */
	void	   *easy;
	struct EbHttpRequest *next_done;
	void	   *owner;			/* the caller's own pointer */
} EbHttpRequest;

extern void eb_http_init(int max_in_flight);
extern void eb_http_set_limits(int max_in_flight);
extern int	eb_http_wait_fd(void);
extern long eb_http_timeout_ms(void);
extern void eb_http_add_header(EbHttpRequest *req, const char *line);
extern void eb_http_add_target_header(EbHttpRequest *req,
									  const char *name, size_t namelen,
									  const char *value, size_t valuelen);
extern void eb_http_submit(EbHttpRequest *req);
extern void eb_http_drive(void);
extern EbHttpRequest *eb_http_next_done(void);
extern int	eb_http_in_flight(void);
extern void eb_http_release(EbHttpRequest *req);

#endif							/* EB_HTTP_H */
