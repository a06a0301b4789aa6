/*-------------------------------------------------------------------------
 *
 * request.h
 *	  A claimed delivery and its HTTP request: what the queue hands the
 *	  loop to send, and what the loop hands back to settle.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_REQUEST_H
#define EB_REQUEST_H

#include "datatype/timestamp.h"
#include "lib/ilist.h"
#include "storage/itemptr.h"
#include "utils/uuid.h"

#include "connection.h"
#include "envelope.h"
#include "http.h"

/* The extension version this library is built for (User-Agent, schema). */
#define EB_VERSION "0.2.0"

/* "bus \x1f rule \x1f target_id": names a target in the worker's memory. */
#define EB_TARGET_KEY_LEN 400

/* One claimed row of eventbus.deliveries, as the claim returned it. */
typedef struct EbClaimedRow
{
	int64		id;
	ItemPointerData tid;		/* where the claimed row version is */
	TimestampTz lease;			/* leased_until: the token settle checks */
	int			attempts;		/* including the one about to start */
	bool		target_gone;	/* its target no longer exists */
	const char *target_key;
	const char *bus;
	const char *rule;
	const char *target_id;
	const char *endpoint;		/* the target's, NULL when gone */
	const char *method;
	const char *headers;		/* "Name: value" lines, or NULL */
	int			max_retry_attempts;
	int64		max_event_age_ms;
	long		timeout_ms;
	bool		last_status_null;
	int			last_status;	/* last_http_status of the row */
	Datum		event_id;		/* the row's event_id (uuid) */
	const char *envelope;		/* the envelope to send instead, or NULL */
	Datum		event[EB_EV_NCOLUMNS];	/* the event, if it still exists */
	bool		event_null[EB_EV_NCOLUMNS];
	bool		has_published_at;	/* the event's, or the row's copy of it */
	TimestampTz published_at;
	Datum		signing_keys;	/* bytea[] of the keys that sign, newest first */
	bool		signing_keys_null;	/* the target signs nothing */
	Datum		transform;		/* jsonb: input, input_path, input_transformer */
	bool		transform_null; /* the target receives the envelope */
	const char *function;		/* a function target's function, or NULL */
	Datum		connection;		/* jsonb: the target's connection (connection.c) */
	bool		connection_null;	/* the target has none */
	int			batch_size;		/* events per request (batch.c); 1: no batch */
	int64		batch_key;		/* batch the row failed with, or 0 (batch.c) */
	TimestampTz due_at;			/* next_attempt_at when claimed */
} EbClaimedRow;

/*
 * One delivery from its claim to its settling.  The HTTP request comes
 * first, so that a finished request leads back to its delivery.
 */
typedef struct EbDelivery
{
	EbHttpRequest http;
	bool		to_send;		/* false: finished already (http.error says why) */
	bool		target_gone;
	int64		id;
	ItemPointerData tid;
	TimestampTz lease;
	int			attempts;
	int			max_retry_attempts;
	int64		max_event_age_ms;
	bool		has_event;		/* published_at is known (max_event_age) */
	TimestampTz published_at;
	char	   *endpoint;
	char	   *url;			/* endpoint with the connection's query string */
	char	   *connection;		/* the target's connection, or NULL */
	int64		token_serial;	/* the OAuth token sent (connection.c), or -1 */
	char	   *target_key;
	pg_uuid_t	event_id;		/* for the attempt log (attempts.c) */
	char	   *function;		/* a function target: "schema.fn(jsonb)" */
	bool		plain_text;		/* its body is text, not JSON */
	char	   *function_error; /* what the function raised, for settle */
	TimestampTz started_at;		/* when the request went to libcurl */

	/*
	 * A batch (batch.c) is one request, that of its first row (the leader,
	 * to_send); the other rows hang off it, batched, and share its outcome.
	 */
	bool		batched;		/* a row of a batch other than its leader */
	bool		item_failed;	/* listed in the answer's batchItemFailures */
	struct EbDelivery *batch_rows;	/* the leader's other rows */
	struct EbDelivery *batch_next;	/* the next of them */
	struct EbDelivery *leader;	/* the batch's leader (itself), or NULL */
	TimestampTz batch_retry_at; /* leader: when the whole batch is retried */
	TimestampTz item_retry_at;	/* leader: when failed items are retried */
	struct EbDelivery *next;	/* in a list of claimed or finished ones */
	dlist_node	live_node;		/* among the live deliveries, until freed */
} EbDelivery;

extern void eb_request_init(void);
extern EbDelivery *eb_request_build(const EbClaimedRow *row);
extern char *eb_request_body(const EbClaimedRow *row, int *body_len,
							 bool *plain_text, char *err, size_t errlen);
extern EbDelivery *eb_request_new(const EbClaimedRow *row,
								  const EbConnectionWire *wire);
extern void eb_request_wire(const EbClaimedRow *row, EbConnectionWire *wire);
extern void eb_request_set_body(EbDelivery *d, const EbClaimedRow *row,
								const char *body, int body_len,
								bool plain_text, const char *webhook_id,
								const EbConnectionWire *wire);
extern void eb_request_free(EbDelivery *d);
extern void eb_request_foreach_live(void (*fn) (EbDelivery *d, void *arg),
									void *arg);

#endif							/* EB_REQUEST_H */
