/*-------------------------------------------------------------------------
 *
 * connection.c
 *	  Connections (EventBridge's API destinations' auth) in the delivery
 *	  worker: the auth header, header, query-string and body parameters a
 *	  target's connection adds to its requests, and the OAuth
 *	  client-credentials tokens the workers fetch and share.
 *
 * The claim returns each delivery's connection as a jsonb object (name,
 * auth_type, auth, http_parameters, and for OAuth the cached token and its
 * serial); eb_connection_prepare() turns it into header lines, a query
 * string and body parameters, which request.c puts on the request.  The
 * token cache is the table eventbus.connection_secrets, shared by every
 * worker: eb_connection_tick() leases one connection whose token is
 * missing or due for refresh (eventbus.connection_token_begin), fetches a
 * token from its authorization endpoint with a bounded, blocking libcurl
 * request, and stores the token or the failure
 * (eventbus.connection_token_end, which owns the refresh margin, the
 * backoff and the number of failures that deauthorize).  The SQL side
 * decides; this file only talks HTTP.
 *
 * No secret is logged or put into an error message: failures name the
 * connection and the endpoint's status, with an excerpt of its answer from
 * which the client secret is blotted out.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/base64.h"
#include "common/jsonapi.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "connection.h"
#include "policy.h"
#include "saved_plan.h"
#include "settings.h"

/* How often the loop looks for tokens to fetch, at most. */
#define EB_TOKEN_TICK_MS 200
/* A token fetch ends after this long, however the endpoint behaves. */
#define EB_TOKEN_TIMEOUT_MS 5000
#define EB_TOKEN_CONNECT_TIMEOUT_MS 3000
/* Of the endpoint's answer, at most this much is read. */
#define EB_TOKEN_MAX_ANSWER 16384
/* A token longer than this is refused (it goes into every request). */
#define EB_TOKEN_MAX_LEN 4096
/* Lifetime of a token whose answer gives no expires_in. */
#define EB_TOKEN_DEFAULT_LIFETIME 3600.0
/* The longest lifetime believed. */
#define EB_TOKEN_MAX_LIFETIME (366.0 * 86400)

static SPIPlanPtr rejected_plan = NULL;
static SPIPlanPtr begin_plan = NULL;
static SPIPlanPtr end_plan = NULL;

/* ------------------------------------------------------------------------
 * Reading the claim's jsonb
 * ------------------------------------------------------------------------
 */

/* The value at `key` of an object container, or NULL. */
static JsonbValue *
jget(JsonbContainer *c, const char *key)
{
	if (c == NULL || !JsonContainerIsObject(c))
		return NULL;
	return getKeyJsonValueFromContainer(c, key, strlen(key), NULL);
}

/* The string at `key`, palloc'd, or NULL when absent or not a string. */
static char *
jtext(JsonbContainer *c, const char *key)
{
	JsonbValue *v = jget(c, key);

	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* The object or array at `key`, or NULL. */
static JsonbContainer *
jcontainer(JsonbContainer *c, const char *key)
{
	JsonbValue *v = jget(c, key);

	if (v == NULL || v->type != jbvBinary)
		return NULL;
	return v->val.binary.data;
}

/* Appends `str` percent-encoded (RFC 3986: all but the unreserved). */
static void
append_escaped(StringInfo s, const char *str)
{
	for (const unsigned char *p = (const unsigned char *) str; *p; p++)
	{
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			(*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
			*p == '_' || *p == '~')
			appendStringInfoChar(s, (char) *p);
		else
			appendStringInfo(s, "%%%02X", *p);
	}
}

/* Appends "Name: value" (or "Name;" for an empty value, libcurl's way). */
static void
append_header(StringInfo s, const char *name, const char *value)
{
	if (s->len > 0)
		appendStringInfoChar(s, '\n');
	if (value == NULL || value[0] == '\0')
		appendStringInfo(s, "%s;", name);
	else
		appendStringInfo(s, "%s: %s", name, value);
}

/* Appends "Authorization: Basic base64(user:password)" (RFC 7617). */
static void
append_basic(StringInfo s, const char *user, const char *password)
{
	char	   *plain = psprintf("%s:%s", user ? user : "", password ? password : "");
	int			len = strlen(plain);
	char	   *b64 = palloc(pg_b64_enc_len(len) + 1);
	int			n = pg_b64_encode(plain, len, b64, pg_b64_enc_len(len));

	b64[n < 0 ? 0 : n] = '\0';
	if (s->len > 0)
		appendStringInfoChar(s, '\n');
	appendStringInfo(s, "Authorization: Basic %s", b64);
	memset(plain, 0, len);
	pfree(plain);
	pfree(b64);
}

/*
 * Calls fn(key, value) for each {"key", "value"} of the list `name` of a
 * parameter document (http_parameters, oauth_http_parameters).
 */
static void
foreach_param(JsonbContainer *params, const char *name,
			  void (*fn) (StringInfo s, const char *key, const char *value),
			  StringInfo s)
{
	JsonbContainer *list = jcontainer(params, name);

	if (list == NULL || !JsonContainerIsArray(list))
		return;
	for (uint32 i = 0; i < JsonContainerSize(list); i++)
	{
		JsonbValue *item = getIthJsonbValueFromContainer(list, i);
		char	   *key;
		char	   *value;

		if (item == NULL || item->type != jbvBinary)
			continue;
		key = jtext(item->val.binary.data, "key");
		value = jtext(item->val.binary.data, "value");
		if (key != NULL)
			fn(s, key, value ? value : "");
	}
}

static void
param_header(StringInfo s, const char *key, const char *value)
{
	append_header(s, key, value);
}

static void
param_query(StringInfo s, const char *key, const char *value)
{
	if (s->len > 0)
		appendStringInfoChar(s, '&');
	append_escaped(s, key);
	appendStringInfoChar(s, '=');
	append_escaped(s, value);
}

/* Body parameters: collected as "key\0value\0" pairs, then made jsonb. */
static void
param_pair(StringInfo s, const char *key, const char *value)
{
	appendBinaryStringInfo(s, key, strlen(key) + 1);
	appendBinaryStringInfo(s, value, strlen(value) + 1);
}

/* A jsonb object of the body parameters collected by param_pair. */
static Datum
pairs_to_jsonb(StringInfo pairs)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;
	const char *p = pairs->data;
	const char *end = pairs->data + pairs->len;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	while (p < end)
	{
		JsonbValue	k,
					v;

		k.type = jbvString;
		k.val.string.val = (char *) p;
		k.val.string.len = strlen(p);
		p += k.val.string.len + 1;
		v.type = jbvString;
		v.val.string.val = (char *) p;
		v.val.string.len = strlen(p);
		p += v.val.string.len + 1;
		pushJsonbValue(&state, WJB_KEY, &k);
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbPGetDatum(JsonbValueToJsonb(res));
}

/*
 * Reads the claim's connection column into what the request needs: the
 * auth header (API key, Basic, or the cached OAuth token as Bearer), the
 * header parameters, the query string and the body parameters.
 */
void
eb_connection_prepare(Datum connection, EbConnectionWire *w)
{
	Jsonb	   *j = DatumGetJsonbP(connection);
	JsonbContainer *c = &j->root;
	JsonbContainer *auth = jcontainer(c, "auth");
	JsonbContainer *params = jcontainer(c, "http_parameters");
	char	   *type = jtext(c, "auth_type");
	StringInfoData h,
				q,
				b;

	memset(w, 0, sizeof(*w));
	w->name = jtext(c, "name");
	w->token_serial = -1;
	initStringInfo(&h);
	if (type == NULL)
		type = "NONE";
	if (strcmp(type, "API_KEY") == 0)
	{
		char	   *name = jtext(auth, "api_key_name");

		if (name != NULL)
			append_header(&h, name, jtext(auth, "api_key_value"));
	}
	else if (strcmp(type, "BASIC") == 0)
		append_basic(&h, jtext(auth, "username"), jtext(auth, "password"));
	else if (strcmp(type, "OAUTH_CLIENT_CREDENTIALS") == 0)
	{
		char	   *token = jtext(c, "token");
		JsonbValue *serial = jget(c, "token_serial");

		w->oauth = true;
		if (serial != NULL && serial->type == jbvNumeric)
			w->token_serial = DatumGetInt64(DirectFunctionCall1(numeric_int8,
																NumericGetDatum(serial->val.numeric)));
		if (token != NULL)
		{
			append_header(&h, "Authorization", psprintf("Bearer %s", token));
		}
	}
	foreach_param(params, "header_parameters", param_header, &h);
	w->headers = h.len > 0 ? h.data : NULL;

	initStringInfo(&q);
	foreach_param(params, "query_string_parameters", param_query, &q);
	w->query = q.len > 0 ? q.data : NULL;

	initStringInfo(&b);
	foreach_param(params, "body_parameters", param_pair, &b);
	w->body_params = b.len > 0 ? pairs_to_jsonb(&b) : (Datum) 0;
}

/* Whether the connection sets the header that `line` ("Name: v") sets. */
bool
eb_connection_sets_header(const EbConnectionWire *w, const char *line)
{
	size_t		namelen = strcspn(line, ":;");
	const char *p = w->headers;

	while (p != NULL && *p != '\0')
	{
		if (pg_strncasecmp(p, line, namelen) == 0 &&
			(p[namelen] == ':' || p[namelen] == ';'))
			return true;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

/*
 * The endpoint with `query` appended: after its own query string with
 * "&", or with "?", and before any fragment.
 */
char *
eb_connection_url(const char *endpoint, const char *query)
{
	size_t		base = strcspn(endpoint, "#");
	bool		has_query = memchr(endpoint, '?', base) != NULL;

	return psprintf("%.*s%c%s%s", (int) base, endpoint, has_query ? '&' : '?',
					query, endpoint + base);
}

/*
 * The body with the body parameters added to its top-level object (a key
 * the body has is replaced), as EventBridge merges them; a body that is
 * not a JSON object (plain text, an array, a string) is sent as it is.
 */
char *
eb_connection_merge_body(const EbConnectionWire *w, char *body, int *body_len,
						 bool plain_text)
{
	const char *p = body;
	Datum		merged;

	if (w->body_params == (Datum) 0 || plain_text || body == NULL)
		return body;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p != '{')
		return body;
	merged = DirectFunctionCall2(jsonb_concat,
								 DirectFunctionCall1(jsonb_in, CStringGetDatum(body)),
								 w->body_params);
	body = JsonbToCString(NULL, &DatumGetJsonbP(merged)->root, *body_len);
	*body_len = strlen(body);
	return body;
}

/* ------------------------------------------------------------------------
 * Settle: a target refused the token
 * ------------------------------------------------------------------------
 */

/*
 * A target refused the token (401 or 407): the token is refreshed once
 * (the statement acts only while the refused token is the current one, so
 * many refusals of it cost one fetch).  Runs inside the settle's
 * transaction.
 */
void
eb_connection_token_refused(const char *name, int64 token_serial)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		args[2];

	args[0] = CStringGetTextDatum(name);
	args[1] = Int64GetDatum(token_serial);
	if (SPI_execute_plan(eb_saved_plan(&rejected_plan,
									   "SELECT eventbus.connection_token_rejected($1, $2)",
									   2, types),
						 args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "pg_eventbus: could not record a refused token");
}

/* ------------------------------------------------------------------------
 * Fetching tokens
 * ------------------------------------------------------------------------
 */

/* The endpoint's answer, read up to EB_TOKEN_MAX_ANSWER bytes. */
typedef struct TokenAnswer
{
	StringInfoData body;
	bool		cut;
} TokenAnswer;

static size_t
token_write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	TokenAnswer *a = (TokenAnswer *) userp;
	size_t		n = size * nmemb;

	if (a->body.len + n > EB_TOKEN_MAX_ANSWER)
	{
		a->cut = true;
		return 0;				/* stops the transfer */
	}
	appendBinaryStringInfo(&a->body, data, n);
	return n;
}

/* What the token answer's top-level object holds, read by a JSON parser. */
typedef struct TokenFields
{
	int			depth;
	bool		object;			/* the top level is an object */
	const char *field;			/* the top-level field being read */
	char	   *access_token;
	char	   *expires_in;
	bool		expires_bad;	/* expires_in is neither number nor string */
} TokenFields;

static void
tf_object_start(void *state)
{
	TokenFields *tf = state;

	if (tf->depth == 0)
		tf->object = true;
	tf->depth++;
}

static void
tf_nest_end(void *state)
{
	((TokenFields *) state)->depth--;
}

static void
tf_array_start(void *state)
{
	((TokenFields *) state)->depth++;
}

static void
tf_field_start(void *state, char *fname, bool isnull)
{
	TokenFields *tf = state;

	if (tf->depth == 1)
		tf->field = fname;
}

static void
tf_scalar(void *state, char *token, JsonTokenType type)
{
	TokenFields *tf = state;

	if (tf->depth != 1 || tf->field == NULL)
		return;
	if (strcmp(tf->field, "access_token") == 0)
		tf->access_token = type == JSON_TOKEN_STRING ? token : NULL;
	else if (strcmp(tf->field, "expires_in") == 0)
	{
		tf->expires_in = (type == JSON_TOKEN_STRING || type == JSON_TOKEN_NUMBER) ? token : NULL;
		tf->expires_bad = (tf->expires_in == NULL && type != JSON_TOKEN_NULL);
	}
	tf->field = NULL;
}

/* An excerpt of an answer for a reason: printable ASCII, the secret blotted out. */
static char *
answer_excerpt(const char *data, int len, const char *secret)
{
	char	   *s = pnstrdup(data, Min(len, 200));
	size_t		slen = secret ? strlen(secret) : 0;

	if (slen > 0)
	{
		char	   *hit;

		while ((hit = strstr(s, secret)) != NULL)
			memset(hit, '*', slen);
	}
	for (char *p = s; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	return s;
}

/*
 * Fetches a token with the client-credentials grant (RFC 6749, 4.4): the
 * client id and secret as HTTP Basic authentication, grant_type and the
 * body parameters form-encoded (in the query string for GET), the header
 * and query-string parameters added.  Blocks at most EB_TOKEN_TIMEOUT_MS.
 * Returns NULL and sets *token and *lifetime, or returns the reason of
 * the failure (no secret in it).
 */
static char *
fetch_token(JsonbContainer *auth, char **token, double *lifetime)
{
	char	   *endpoint = jtext(auth, "authorization_endpoint");
	char	   *method = jtext(auth, "http_method");
	JsonbContainer *client = jcontainer(auth, "client_parameters");
	JsonbContainer *params = jcontainer(auth, "oauth_http_parameters");
	char	   *secret = jtext(client, "client_secret");
	StringInfoData headers,
				form,
				query;
	struct curl_slist *list = NULL;
	char	   *url;
	CURL	   *easy;
	CURLcode	rc;
	long		status = 0;
	char		error[CURL_ERROR_SIZE] = "";
	TokenAnswer answer;
	TokenFields tf;
	JsonSemAction sem;
	JsonLexContext *lex;
	char	   *reason = NULL;

	if (endpoint == NULL)
		return pstrdup("the connection has no authorization endpoint");
	if (method == NULL)
		method = "POST";

	initStringInfo(&headers);
	append_basic(&headers, jtext(client, "client_id"), secret);
	append_header(&headers, "Accept", "application/json");
	foreach_param(params, "header_parameters", param_header, &headers);

	initStringInfo(&form);
	appendStringInfoString(&form, "grant_type=client_credentials");
	foreach_param(params, "body_parameters", param_query, &form);
	initStringInfo(&query);
	foreach_param(params, "query_string_parameters", param_query, &query);
	if (strcmp(method, "GET") == 0)
	{
		if (query.len > 0)
			appendStringInfoChar(&query, '&');
		appendStringInfoString(&query, form.data);
	}
	else
		append_header(&headers, "Content-Type", "application/x-www-form-urlencoded");
	url = query.len > 0 ? eb_connection_url(endpoint, query.data) : endpoint;

	for (char *line = headers.data, *next; line != NULL; line = next)
	{
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		list = curl_slist_append(list, line);
	}

	initStringInfo(&answer.body);
	answer.cut = false;
	easy = curl_easy_init();
	if (easy == NULL)
	{
		curl_slist_free_all(list);
		return pstrdup("could not start a request to the authorization endpoint");
	}
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) EB_TOKEN_TIMEOUT_MS);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long) EB_TOKEN_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, token_write_cb);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, &answer);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "pg_eventbus");
	if (strcmp(method, "GET") != 0)
	{
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long) form.len);
		curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, form.data);
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
	}
	rc = curl_easy_perform(easy);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(easy);
	curl_slist_free_all(list);
	memset(headers.data, 0, headers.len);
	memset(form.data, 0, form.len);

	if (answer.cut)
		return psprintf("the authorization endpoint's answer is longer than %d bytes",
						EB_TOKEN_MAX_ANSWER);
	if (rc != CURLE_OK)
		return psprintf("could not get an answer from the authorization endpoint: %s",
						error[0] ? error : curl_easy_strerror(rc));
	if (status < 200 || status > 299)
		return psprintf("the authorization endpoint answered HTTP %ld: %s", status,
						answer_excerpt(answer.body.data, answer.body.len, secret));

	/* the top level's access_token and expires_in, without throwing */
	memset(&tf, 0, sizeof(tf));
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &tf;
	sem.object_start = tf_object_start;
	sem.object_end = tf_nest_end;
	sem.array_start = tf_array_start;
	sem.array_end = tf_nest_end;
	sem.object_field_start = tf_field_start;
	sem.scalar = tf_scalar;
	if (!pg_verifymbstr(answer.body.data, answer.body.len, true))
		return pstrdup("the authorization endpoint's answer is not valid text");
	lex = makeJsonLexContextCstringLen(answer.body.data, answer.body.len,
									   GetDatabaseEncoding(), true);
	if (pg_parse_json(lex, &sem) != JSON_SUCCESS || !tf.object)
		return psprintf("the authorization endpoint's answer is not a JSON object: %s",
						answer_excerpt(answer.body.data, answer.body.len, secret));
	if (tf.access_token == NULL || tf.access_token[0] == '\0')
		return pstrdup("the authorization endpoint's answer has no access_token string");
	if (strlen(tf.access_token) > EB_TOKEN_MAX_LEN)
		return psprintf("the access_token is longer than %d bytes", EB_TOKEN_MAX_LEN);
	{
		size_t		at;

		/* it goes into a header: the rules of every header sent */
		if (eb_header_check("Authorization", 13, tf.access_token,
							strlen(tf.access_token), false, &at) != EB_HEADER_OK)
			return pstrdup("the access_token may not be sent in a header (a control character)");
	}
	*lifetime = EB_TOKEN_DEFAULT_LIFETIME;
	if (tf.expires_bad)
		return pstrdup("the answer's expires_in is not a number");
	if (tf.expires_in != NULL)
	{
		char	   *end;
		double		v = strtod(tf.expires_in, &end);

		if (end == tf.expires_in || *end != '\0' || !(v >= 1.0))
			return pstrdup("the answer's expires_in is not a number of seconds of at least 1");
		*lifetime = Min(v, EB_TOKEN_MAX_LIFETIME);
	}
	*token = tf.access_token;
	return reason;
}

/*
 * Once per EB_TOKEN_TICK_MS at most: fetches one token that is missing or
 * due.  Returns true when a token was stored, so the loop claims again at
 * once.  (Deliveries that waited for a blocked connection past their
 * max_event_age are dead-lettered with those of other held targets: see
 * eb_limits_expire_held().)
 */
bool
eb_connection_tick(void)
{
	static TimestampTz last_tick = 0;
	static MemoryContext tick_ctx = NULL;
	TimestampTz now = GetCurrentTimestamp();
	MemoryContext old;
	char	   *name = NULL;
	int64		revision = 0;
	Jsonb	   *auth = NULL;
	char	   *token = NULL;
	double		lifetime = 0;
	char	   *failure;
	Oid			end_types[5] = {TEXTOID, INT8OID, TEXTOID, FLOAT8OID, TEXTOID};
	Datum		args[5];
	bool		nulls[5] = {false, false, false, false, false};
	char		nullchars[6] = "     ";

	if (last_tick != 0 && !TimestampDifferenceExceeds(last_tick, now, EB_TOKEN_TICK_MS))
		return false;
	last_tick = now;
	if (tick_ctx == NULL)
		tick_ctx = AllocSetContextCreate(TopMemoryContext, "pg_eventbus connections",
										 ALLOCSET_SMALL_SIZES);
	MemoryContextReset(tick_ctx);

	eb_xact_begin("pg_eventbus: connections");
	if (!OidIsValid(get_extension_oid("pg_eventbus", true)))
	{
		eb_xact_commit();
		return false;
	}
	if (SPI_execute_plan(eb_saved_plan(&begin_plan,
									   "SELECT b.name, b.revision, b.auth"
									   " FROM eventbus.connection_token_begin() b",
									   0, NULL),
						 NULL, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "pg_eventbus: could not look for tokens to fetch");
	if (SPI_processed > 0)
	{
		HeapTuple	tuple = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		old = MemoryContextSwitchTo(tick_ctx);
		name = TextDatumGetCString(SPI_getbinval(tuple, desc, 1, &isnull));
		revision = DatumGetInt64(SPI_getbinval(tuple, desc, 2, &isnull));
		auth = DatumGetJsonbPCopy(SPI_getbinval(tuple, desc, 3, &isnull));
		MemoryContextSwitchTo(old);
	}
	eb_xact_commit();
	if (name == NULL)
		return false;

	/* outside any transaction: at most EB_TOKEN_TIMEOUT_MS */
	pgstat_report_activity(STATE_RUNNING, "pg_eventbus: fetching an OAuth token");
	old = MemoryContextSwitchTo(tick_ctx);
	failure = fetch_token(&auth->root, &token, &lifetime);
	MemoryContextSwitchTo(old);
	CHECK_FOR_INTERRUPTS();

	eb_xact_begin("pg_eventbus: storing an OAuth token");
	args[0] = CStringGetTextDatum(name);
	args[1] = Int64GetDatum(revision);
	args[2] = token ? CStringGetTextDatum(token) : (Datum) 0;
	nulls[2] = (token == NULL);
	args[3] = Float8GetDatum(lifetime);
	nulls[3] = (token == NULL);
	args[4] = failure ? CStringGetTextDatum(failure) : (Datum) 0;
	nulls[4] = (failure == NULL);
	for (int i = 0; i < 5; i++)
		nullchars[i] = nulls[i] ? 'n' : ' ';
	if (SPI_execute_plan(eb_saved_plan(&end_plan,
									   "SELECT eventbus.connection_token_end($1, $2, $3, $4, $5)",
									   5, end_types),
						 args, nullchars, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "pg_eventbus: could not store a token");
	eb_xact_commit();
	if (token != NULL)
		memset(token, 0, strlen(token));
	if (failure != NULL)
		ereport(LOG,
				(errmsg("pg_eventbus: could not fetch an OAuth token for connection \"%s\"", name),
				 errdetail("%s", failure)));
	MemoryContextReset(tick_ctx);
	return failure == NULL;
}
