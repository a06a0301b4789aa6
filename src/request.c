/*-------------------------------------------------------------------------
 *
 * request.c
 *	  A claimed row becomes an HTTP request: the envelope as the body, the
 *	  target's method and headers, webhook-id and webhook-timestamp.
 *
 * The deliveries live in their own memory context from the claim until
 * they are settled, and stay on a list meanwhile, so that a worker that
 * stops can hand them back to the queue.  Nothing here talks to the
 * database or drives libcurl: the queue fills in an EbClaimedRow, the loop
 * sends what comes out.  A batch target's rows share one request, which
 * batch.c builds from the same pieces (body, delivery, headers).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "utils/memutils.h"
#include "utils/uuid.h"

#include "request.h"
#include "signature.h"
#include "transform.h"

#define EB_USER_AGENT "User-Agent: pg_eventbus/" EB_VERSION

/* Deliveries, freed one by one; and every one not yet freed. */
static MemoryContext request_ctx = NULL;
static dlist_head live_deliveries = DLIST_STATIC_INIT(live_deliveries);

/* Creates the deliveries' memory; once per worker. */
void
eb_request_init(void)
{
	request_ctx = AllocSetContextCreate(TopMemoryContext, "pg_eventbus requests",
										ALLOCSET_DEFAULT_SIZES);
}

/* Adds "Name: value" unless the target's own headers set that name. */
static void
add_default_header(EbDelivery *d, const char *line, const char *target_headers)
{
	const char *colon = strchr(line, ':');
	size_t		namelen = colon - line;
	const char *p = target_headers;

	while (p != NULL && *p != '\0')
	{
		if (pg_strncasecmp(p, line, namelen) == 0 &&
			(p[namelen] == ':' || p[namelen] == ';'))
			return;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	eb_http_add_header(&d->http, line);
}

/*
 * The body a claimed row's target receives -- the event's envelope, the
 * envelope the row carries (a redriven dead letter whose event has left
 * the archive), or its transformation -- palloc'd in the current memory
 * context; NULL when there is nothing to send (target or event gone, or
 * the transformation failed: `err` says why, or is left empty).  Sets
 * *plain_text when a transformation made text that is not JSON.
 */
char *
eb_request_body(const EbClaimedRow *row, int *body_len, bool *plain_text,
				char *err, size_t errlen)
{
	char	   *body = NULL;

	*body_len = 0;
	*plain_text = false;
	if (!row->target_gone && row->envelope != NULL)
	{
		/* a redriven dead letter whose event has left the archive */
		body = pstrdup(row->envelope);
		*body_len = strlen(body);
	}
	else if (!row->target_gone && !row->event_null[EB_EV_ID])
		body = eb_envelope_text(row->event, row->event_null, body_len);
	/* what the target receives: the envelope, or its transformation */
	if (body != NULL && !row->transform_null)
		body = eb_transform_delivery(row->transform, body, row->bus, row->rule,
									 row->published_at, body_len, plain_text,
									 err, errlen);
	return body;
}

/*
 * A new delivery for a claimed row, in the deliveries' memory and on the
 * list of live ones, not yet to send: the caller gives it a body with
 * eb_request_set_body() or a reason in http.error.  `wire` is what the
 * target's connection adds (zeroed: none): the URL gets its query string.
 */
EbDelivery *
eb_request_new(const EbClaimedRow *row, const EbConnectionWire *wire)
{
	MemoryContext old = MemoryContextSwitchTo(request_ctx);
	EbDelivery *d = palloc0(sizeof(EbDelivery));

	d->http.owner = d;
	dlist_push_tail(&live_deliveries, &d->live_node);
	d->id = row->id;
	ItemPointerCopy(&row->tid, &d->tid);
	d->lease = row->lease;
	d->attempts = row->attempts;
	d->target_gone = row->target_gone;
	d->target_key = pstrdup(row->target_key);
	d->max_retry_attempts = row->max_retry_attempts;
	d->max_event_age_ms = row->max_event_age_ms;
	d->published_at = row->published_at;
	d->has_event = row->has_published_at;
	d->endpoint = row->endpoint ? pstrdup(row->endpoint) : NULL;
	/* a function target: its function stands for the endpoint (dead letters) */
	if (row->function != NULL)
		d->function = d->endpoint = pstrdup(row->function);
	d->url = (d->endpoint && wire->query) ? eb_connection_url(d->endpoint, wire->query) : NULL;
	d->http.url = d->url ? d->url : d->endpoint;
	d->connection = wire->name ? pstrdup(wire->name) : NULL;
	d->token_serial = wire->oauth ? wire->token_serial : -1;
	d->http.method = row->method ? pstrdup(row->method) : NULL;
	d->http.timeout_ms = row->timeout_ms;
	d->event_id = *DatumGetUUIDP(row->event_id);	/* the row's, event or not */
	MemoryContextSwitchTo(old);
	return d;
}

/*
 * What the target's connection adds to its requests (connection.c), in
 * the current memory; zeroed when it has none or is gone.
 */
void
eb_request_wire(const EbClaimedRow *row, EbConnectionWire *wire)
{
	if (!row->connection_null && !row->target_gone)
		eb_connection_prepare(row->connection, wire);
	else
		memset(wire, 0, sizeof(*wire));
}

/*
 * Makes `d` ready to send `body` to the target of `row` under `webhook_id`:
 * the content type (JSON, or text for a transformation that made plain
 * text) and User-Agent unless the connection sets them, the target's
 * headers (the connection's win over those of the same name), the
 * connection's, webhook-id, webhook-timestamp and the signature over the
 * very id, timestamp and body sent.
 */
void
eb_request_set_body(EbDelivery *d, const EbClaimedRow *row, const char *body,
					int body_len, bool plain_text, const char *webhook_id,
					const EbConnectionWire *wire)
{
	MemoryContext old = MemoryContextSwitchTo(request_ctx);
	char		line[128];
	char		timestamp[32];

	d->to_send = true;
	d->http.body = pnstrdup(body, body_len);
	d->http.body_len = body_len;
	if (!eb_connection_sets_header(wire, "Content-Type:"))
		add_default_header(d, plain_text ? "Content-Type: text/plain; charset=utf-8" :
						   "Content-Type: application/json", row->headers);
	if (!eb_connection_sets_header(wire, EB_USER_AGENT))
		add_default_header(d, EB_USER_AGENT, row->headers);
	eb_http_add_header(&d->http, "Expect:");	/* no 100-continue round trip */
	if (row->headers != NULL)
	{
		char	   *headers = pstrdup(row->headers);
		char	   *save;

		for (char *h = strtok_r(headers, "\n", &save); h; h = strtok_r(NULL, "\n", &save))
			if (!eb_connection_sets_header(wire, h))	/* the connection's wins */
				eb_http_add_header(&d->http, h);
		pfree(headers);
	}
	if (wire->headers != NULL)
	{
		char	   *headers = pstrdup(wire->headers);
		char	   *save;

		for (char *h = strtok_r(headers, "\n", &save); h; h = strtok_r(NULL, "\n", &save))
			eb_http_add_header(&d->http, h);
		memset(headers, 0, strlen(wire->headers));
		pfree(headers);
	}
	snprintf(line, sizeof(line), "webhook-id: %s", webhook_id);
	eb_http_add_header(&d->http, line);
	snprintf(timestamp, sizeof(timestamp), "%lld", (long long) time(NULL));
	snprintf(line, sizeof(line), "webhook-timestamp: %s", timestamp);
	eb_http_add_header(&d->http, line);

	/* signed over the very id, timestamp and body sent (signature.c) */
	if (!row->signing_keys_null)
	{
		char	   *signature = eb_signature_header(row->signing_keys, webhook_id,
													timestamp, d->http.body,
													d->http.body_len);

		if (signature != NULL)
			eb_http_add_header(&d->http, signature);
	}
	MemoryContextSwitchTo(old);
}

/*
 * Builds the delivery of a claimed row: its request, ready to send (its
 * body the event's envelope, or the envelope the row carries), a call of
 * a function target's function (function_target.c), or -- when the
 * target or the event is gone -- a delivery finished already, with the
 * reason in http.error, for settle to dead-letter.
 */
EbDelivery *
eb_request_build(const EbClaimedRow *row)
{
	EbDelivery *d;
	char	   *body;
	int			body_len;
	char		webhook_id[EB_WEBHOOK_ID_LEN];
	bool		plain_text;
	char		transform_error[256] = "";
	EbConnectionWire wire;

	/*
	 * The body and the webhook-id first, in the caller's (the claim's)
	 * memory: printing jsonb leaves litter behind, and the request keeps
	 * only the text.  The connection's body parameters go into it.
	 */
	eb_request_wire(row, &wire);
	body = eb_request_body(row, &body_len, &plain_text, transform_error,
						   sizeof(transform_error));
	body = eb_connection_merge_body(&wire, body, &body_len, plain_text);
	if (body != NULL)
		eb_webhook_id(webhook_id, DatumGetUUIDP(row->event_id),
					  row->bus, row->rule, row->target_id);

	d = eb_request_new(row, &wire);
	if (row->target_gone)
	{
		d->http.transport = EB_TRANSPORT_INTERNAL;
		d->http.status = row->last_status_null ? 0 : row->last_status;
		snprintf(d->http.error, sizeof(d->http.error),
				 "target %s of rule %s on bus %s no longer exists",
				 row->target_id, row->rule, row->bus);
		return d;
	}
	if (body == NULL)
	{
		d->http.transport = EB_TRANSPORT_INTERNAL;
		strlcpy(d->http.error, transform_error[0] ? transform_error :
				"the event no longer exists in eventbus.events",
				sizeof(d->http.error));
		return d;
	}
	if (d->function != NULL)
	{
		/* not a request: the loop calls the function (function_target.c) */
		MemoryContext old = MemoryContextSwitchTo(request_ctx);

		d->to_send = true;
		d->http.body = pnstrdup(body, body_len);
		d->http.body_len = body_len;
		d->plain_text = plain_text;
		MemoryContextSwitchTo(old);
		pfree(body);
		return d;
	}

	eb_request_set_body(d, row, body, body_len, plain_text, webhook_id, &wire);
	pfree(body);
	return d;
}

/* Frees a delivery and what its request holds. */
void
eb_request_free(EbDelivery *d)
{
	dlist_delete(&d->live_node);
	eb_http_release(&d->http);
	if (d->endpoint)
		pfree(d->endpoint);		/* d->function, when it is one */
	if (d->function_error)
		pfree(d->function_error);
	if (d->url)
		pfree(d->url);
	if (d->connection)
		pfree(d->connection);
	if (d->target_key)
		pfree(d->target_key);
	if (d->http.method)
		pfree((char *) d->http.method);
	if (d->http.body)
		pfree((char *) d->http.body);
	if (d->http.body_keep)
		pfree(d->http.body_keep);
	pfree(d);
}

/* Calls fn on every delivery not yet freed (in flight or to settle). */
void
eb_request_foreach_live(void (*fn) (EbDelivery *d, void *arg), void *arg)
{
	dlist_iter	iter;

	dlist_foreach(iter, &live_deliveries)
		fn(dlist_container(EbDelivery, live_node, iter.cur), arg);
}
