/*-------------------------------------------------------------------------
 *
 * connection.h
 *	  Connections (EventBridge's API destinations' auth): what a target's
 *	  connection adds to its requests, and the OAuth token cache the
 *	  delivery workers share.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_CONNECTION_H
#define EB_CONNECTION_H

/* What a connection adds to one request, in the claim's memory. */
typedef struct EbConnectionWire
{
	const char *name;
	bool		oauth;			/* OAUTH_CLIENT_CREDENTIALS */
	int64		token_serial;	/* the token sent (OAuth), else -1 */
	char	   *headers;		/* "Name: value" lines, auth first, or NULL */
	char	   *query;			/* "k=v&..." percent-encoded, or NULL */
	Datum		body_params;	/* jsonb object of body parameters, or 0 */
} EbConnectionWire;

/* Reads the claim's connection column (jsonb) into *wire. */
extern void eb_connection_prepare(Datum connection, EbConnectionWire *wire);

/* Whether the connection sets the header that starts `line` ("Name: ..."). */
extern bool eb_connection_sets_header(const EbConnectionWire *wire,
									  const char *line);

/* The endpoint with the connection's query string appended (palloc'd). */
extern char *eb_connection_url(const char *endpoint, const char *query);

/*
 * The body with the connection's body parameters merged in, when it is a
 * JSON object (plain_text false); otherwise the body as it is.
 */
extern char *eb_connection_merge_body(const EbConnectionWire *wire, char *body,
									  int *body_len, bool plain_text);

/*
 * Inside the settle's transaction: a target answered 401 or 407 to the
 * OAuth token `token_serial` of connection `name`; the token becomes
 * unusable and due for refresh, once per token.
 */
extern void eb_connection_token_refused(const char *name, int64 token_serial);

/*
 * Outside any transaction, once per turn of the worker's loop: fetches at
 * most one OAuth token that is missing or due for refresh.  Returns true
 * when a token was stored (claim again).
 */
extern bool eb_connection_tick(void);

#endif							/* EB_CONNECTION_H */
