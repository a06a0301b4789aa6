/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  Batch targets (put_target's batch_size and batch_window): the rows a
 *	  claim took for one target become requests of up to batch_size events,
 *	  whose body is a JSON array of what each event's request would carry,
 *	  and the answer's batchItemFailures say which of them to retry.
 *
 * The claim (queue.c) decides when a batch target's rows are taken: when
 * batch_size of them are due, or the oldest due one has waited
 * batch_window.  Here they are grouped: rows that failed together as a
 * batch carry its key (deliveries.batch_key) and go out together again;
 * the others are cut into batches in due order.  A batch is one request,
 * that of its first row -- the leader; the other rows hang off it and
 * take its outcome when it is settled (eb_batch_spread), so that settle,
 * the counters and the attempt log see one finished delivery per row.
 *
 * The webhook-id of a batch is derived from its sorted delivery ids: the
 * same rows sent again make the same id, any other set another one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/cryptohash.h"
#include "common/jsonapi.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "batch.h"
#include "saved_plan.h"
#include "stats.h"

/*
 * Nesting a batchItemFailures answer needs (object, array, object, value)
 * with room to spare; a deeper answer is not read as one, and never
 * reaches the recursive parser.
 */
#define EB_BATCH_ANSWER_MAX_DEPTH 16

/* Orders a claim's batch rows: by target, then bound batch, then due. */
static int
row_cmp(const void *a, const void *b)
{
	const EbClaimedRow *x = (const EbClaimedRow *) a;
	const EbClaimedRow *y = (const EbClaimedRow *) b;
	int			c = strcmp(x->target_key, y->target_key);

	if (c != 0)
		return c;
	/* rows bound to a batch first, by batch; then the others */
	if ((x->batch_key == 0) != (y->batch_key == 0))
		return x->batch_key == 0 ? 1 : -1;
	if (x->batch_key != y->batch_key)
		return x->batch_key < y->batch_key ? -1 : 1;
	if (x->due_at != y->due_at)
		return x->due_at < y->due_at ? -1 : 1;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return 0;
}

/* Sorts the rows of batch targets that one claim took, for grouping. */
void
eb_batch_sort(EbClaimedRow *rows, int n)
{
	if (n > 1)
		qsort(rows, n, sizeof(EbClaimedRow), row_cmp);
}

/*
 * Where the batch that starts at rows[start] ends (exclusive): the rows of
 * one target bound to the same batch, or unbound rows in due order, at
 * most batch_size of them.
 */
int
eb_batch_group_end(const EbClaimedRow *rows, int n, int start)
{
	const EbClaimedRow *first = &rows[start];
	int			end = start + 1;

	while (end < n && end - start < first->batch_size &&
		   strcmp(rows[end].target_key, first->target_key) == 0 &&
		   rows[end].batch_key == first->batch_key)
		end++;
	return end;
}

/* Compares two int64, for sorting delivery ids. */
static int
id_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/*
 * The webhook-id of a batch: that of a delivery (envelope.c) whose "event
 * id" is the first 16 bytes of the SHA-256 of the sorted delivery ids.
 */
static void
batch_webhook_id(char *out, int64 *ids, int n, const EbClaimedRow *row)
{
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	pg_uuid_t	key;
	pg_cryptohash_ctx *ctx;
	StringInfoData text;

	qsort(ids, n, sizeof(int64), id_cmp);
	initStringInfo(&text);
	appendStringInfoString(&text, "batch");
	for (int i = 0; i < n; i++)
		appendStringInfo(&text, ",%lld", (long long) ids[i]);
	ctx = pg_cryptohash_create(PG_SHA256);
	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) text.data, text.len) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "pg_eventbus: could not compute a SHA-256 digest: %s",
			 pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	memcpy(key.data, digest, UUID_LEN);
	eb_webhook_id(out, &key, row->bus, row->rule, row->target_id);
	pfree(text.data);
}

/*
 * Builds the request of one batch, rows[0..n-1] (one target, in order):
 * the leader's delivery, to send, with the other rows hanging off it; or
 * NULL when no row has anything to send.  A row with nothing to send (its
 * event gone, its transformation failed) becomes a delivery finished
 * already, appended at *unsent_tail, as it would be alone.  The body is a
 * JSON array of each row's body; one that a transformation made plain
 * text is a JSON string in it.  Runs in the claim's memory.
 */
EbDelivery *
eb_batch_build(const EbClaimedRow *rows, int n, EbDelivery ***unsent_tail)
{
	StringInfoData body;
	int64	   *ids = palloc(sizeof(int64) * n);
	int			count = 0;
	int			leader_row = -1;
	EbDelivery *leader = NULL;
	EbDelivery **members = NULL;
	char		webhook_id[EB_WEBHOOK_ID_LEN];
	EbConnectionWire wire;

	/*
	 * The target's connection (one target, so one for every row): its
	 * headers and query string go on the batch's request; its body
	 * parameters do not, the body being an array.
	 */
	eb_request_wire(&rows[0], &wire);
	initStringInfo(&body);
	appendStringInfoChar(&body, '[');
	for (int i = 0; i < n; i++)
	{
		char		err[256] = "";
		int			len;
		bool		plain_text;
		char	   *b = eb_request_body(&rows[i], &len, &plain_text, err, sizeof(err));
		EbDelivery *d;

		CHECK_FOR_INTERRUPTS();
		if (b == NULL)
		{
			/* finished already: eb_request_build says why, as for one row */
			d = eb_request_build(&rows[i]);
			**unsent_tail = d;
			*unsent_tail = &d->next;
			continue;
		}
		if (count > 0)
			appendStringInfoChar(&body, ',');
		if (plain_text)
			escape_json(&body, b);
		else
			appendBinaryStringInfo(&body, b, len);
		pfree(b);

		d = eb_request_new(&rows[i], &wire);
		ids[count++] = rows[i].id;
		if (leader == NULL)
		{
			leader = d;
			leader_row = i;
			members = &d->batch_rows;
		}
		else
		{
			d->batched = true;
			*members = d;
			members = &d->batch_next;
		}
		d->leader = leader;
	}
	appendStringInfoChar(&body, ']');
	if (leader == NULL)
		return NULL;

	batch_webhook_id(webhook_id, ids, count, &rows[leader_row]);
	eb_request_set_body(leader, &rows[leader_row], body.data, body.len, false,
						webhook_id, &wire);
	/* the answer may list failed items: keep all of it (bounded by http.c) */
	leader->http.body_keep = MemoryContextAlloc(GetMemoryChunkContext(leader),
												EB_HTTP_MAX_BODY_BYTES + 1);
	pfree(body.data);
	pfree(ids);
	return leader;
}

/*
 * Frees a batch's deliveries without sending it: its rows go back to the
 * queue (the caller releases them).
 */
void
eb_batch_discard(EbDelivery *leader)
{
	EbDelivery *m = leader->batch_rows;

	while (m != NULL)
	{
		EbDelivery *next = m->batch_next;

		eb_request_free(m);
		m = next;
	}
	eb_request_free(leader);
}

/*
 * The request of a batch has started: every row's attempt starts with it,
 * and the first attempts of the leader's other rows count as such (the
 * loop counts the leader's).
 */
void
eb_batch_started(EbDelivery *leader)
{
	for (EbDelivery *m = leader->batch_rows; m != NULL; m = m->batch_next)
	{
		m->started_at = leader->started_at;
		if (m->attempts == 1)
			eb_stats_count_first_attempt(m->target_key, m->published_at);
	}
}

/* ------------------------------------------------------------------------
 * The answer's batchItemFailures
 * ------------------------------------------------------------------------
 */

/* What the parse of an answer has seen so far. */
typedef struct FailureScan
{
	int			depth;			/* objects and arrays open */
	bool		top_object;		/* the answer is an object */
	bool		in_failures;	/* inside its "batchItemFailures" */
	bool		in_identifier;	/* at an item's "itemIdentifier" */
	EbDelivery *batch;			/* the leader: its rows are marked */
} FailureScan;

/* An object opens: the answer itself, or something inside it. */
static void
scan_object_start(void *state)
{
	FailureScan *s = (FailureScan *) state;

	if (s->depth == 0)
		s->top_object = true;
	s->depth++;
}

/* An array opens. */
static void
scan_array_start(void *state)
{
	((FailureScan *) state)->depth++;
}

/* An object or an array closes. */
static void
scan_end(void *state)
{
	((FailureScan *) state)->depth--;
}

/*
 * A key: "batchItemFailures" of the answer, or "itemIdentifier" of one of
 * its items (an object in that array).
 */
static void
scan_field_start(void *state, char *fname, bool isnull)
{
	FailureScan *s = (FailureScan *) state;

	if (s->depth == 1 && s->top_object)
		s->in_failures = (fname != NULL && strcmp(fname, "batchItemFailures") == 0);
	else if (s->depth == 3 && s->in_failures)
		s->in_identifier = (fname != NULL && strcmp(fname, "itemIdentifier") == 0);
}

/* A key's value has ended. */
static void
scan_field_end(void *state, char *fname, bool isnull)
{
	FailureScan *s = (FailureScan *) state;

	if (s->depth == 1)
		s->in_failures = false;
	else if (s->depth == 3)
		s->in_identifier = false;
}

/* Reads a uuid written as 32 hex digits, hyphens anywhere, either case. */
static bool
parse_event_id(const char *text, pg_uuid_t *out)
{
	int			digits = 0;

	for (const char *p = text; *p != '\0'; p++)
	{
		int			v;

		if (*p == '-')
			continue;
		if (*p >= '0' && *p <= '9')
			v = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			v = *p - 'a' + 10;
		else if (*p >= 'A' && *p <= 'F')
			v = *p - 'A' + 10;
		else
			return false;
		if (digits >= 2 * UUID_LEN)
			return false;
		if (digits % 2 == 0)
			out->data[digits / 2] = v << 4;
		else
			out->data[digits / 2] |= v;
		digits++;
	}
	return digits == 2 * UUID_LEN;
}

/* An itemIdentifier: marks the batch's row of that event, if there is one. */
static void
scan_scalar(void *state, char *token, JsonTokenType tokentype)
{
	FailureScan *s = (FailureScan *) state;
	pg_uuid_t	id;

	if (s->depth != 3 || !s->in_failures || !s->in_identifier ||
		tokentype != JSON_TOKEN_STRING || token == NULL ||
		!parse_event_id(token, &id))
		return;
	if (memcmp(&s->batch->event_id, &id, sizeof(id)) == 0)
		s->batch->item_failed = true;
	for (EbDelivery *m = s->batch->batch_rows; m != NULL; m = m->batch_next)
		if (memcmp(&m->event_id, &id, sizeof(id)) == 0)
			m->item_failed = true;
}

/*
 * Whether `body` nests no deeper than EB_BATCH_ANSWER_MAX_DEPTH (outside
 * strings): the parser recurses once per level.
 */
static bool
shallow_enough(const char *body, size_t len)
{
	int			depth = 0;
	bool		in_string = false;

	for (size_t i = 0; i < len; i++)
	{
		char		c = body[i];

		if (in_string)
		{
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		}
		else if (c == '"')
			in_string = true;
		else if (c == '{' || c == '[')
		{
			if (++depth > EB_BATCH_ANSWER_MAX_DEPTH)
				return false;
		}
		else if (c == '}' || c == ']')
			depth--;
	}
	return true;
}

/*
 * Marks the rows of a batch whose event ids a 2xx answer lists in
 * {"batchItemFailures": [{"itemIdentifier": "<event id>"}, ...]}.  An
 * answer that is not such JSON marks none; identifiers of no row in the
 * batch are ignored.  The answer is at most EB_HTTP_MAX_BODY_BYTES, read
 * in one linear pass; if any item is marked after a parse error, the marks
 * stand (they were listed).
 */
static void
mark_failed_items(EbDelivery *leader)
{
	EbHttpRequest *req = &leader->http;
	MemoryContext parse_ctx;
	MemoryContext old;
	JsonLexContext *lex;
	JsonSemAction sem;
	FailureScan scan;
	JsonParseErrorType rc;

	if (req->body_keep == NULL || req->body_keep_len == 0 || req->body_cut ||
		!shallow_enough(req->body_keep, req->body_keep_len))
		return;

	/*
	 * Escapes are decoded to the database encoding; outside UTF-8 one
	 * beyond ASCII could raise an error in the worker, so such an answer is
	 * not read.
	 */
	if (GetDatabaseEncoding() != PG_UTF8 &&
		memchr(req->body_keep, '\\', req->body_keep_len) != NULL)
		return;
	if (pg_verifymbstr(req->body_keep, req->body_keep_len, true) == false)
		return;

	parse_ctx = AllocSetContextCreate(CurrentMemoryContext, "pg_eventbus batch answer",
									  ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(parse_ctx);
	memset(&scan, 0, sizeof(scan));
	scan.batch = leader;
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &scan;
	sem.object_start = scan_object_start;
	sem.object_end = scan_end;
	sem.array_start = scan_array_start;
	sem.array_end = scan_end;
	sem.object_field_start = scan_field_start;
	sem.object_field_end = scan_field_end;
	sem.scalar = scan_scalar;
	lex = makeJsonLexContextCstringLen(req->body_keep, (int) req->body_keep_len,
									   GetDatabaseEncoding(), true);
	rc = pg_parse_json(lex, &sem);
	(void) rc;
	MemoryContextSwitchTo(old);
	MemoryContextDelete(parse_ctx);
}

/*
 * Before settling: every finished batch's other rows take its outcome
 * (a 2xx answer's batchItemFailures marking the rows listed) and join the
 * list of finished deliveries right after their leader.  Returns the list.
 */
EbDelivery *
eb_batch_spread(EbDelivery *finished)
{
	for (EbDelivery *d = finished; d != NULL;)
	{
		EbDelivery *next = d->next;
		EbDelivery *last = d;
		EbHttpRequest *req = &d->http;

		if (d->leader != d)
		{
			d = next;
			continue;
		}
		if (req->transport == EB_TRANSPORT_OK && req->status >= 200 && req->status < 300)
			mark_failed_items(d);
		for (EbDelivery *m = d->batch_rows; m != NULL; m = m->batch_next)
		{
			m->http.transport = req->transport;
			m->http.status = req->status;
			memcpy(m->http.error, req->error, sizeof(req->error));
			memcpy(m->http.excerpt, req->excerpt, sizeof(req->excerpt));
			m->http.excerpt_len = req->excerpt_len;
			memcpy(m->http.retry_after, req->retry_after, sizeof(req->retry_after));
			m->http.seconds = req->seconds;
			last->next = m;
			last = m;
		}
		last->next = next;
		d = next;
	}
	return finished;
}

/*
 * When the batch window of a batch target's oldest due row ends, if after
 * now (0: none): the claim takes such a target's rows only from then on,
 * and the worker must wake for it even when no row becomes due then.  One
 * probe of the due index per target with a window.
 */
static const char *const next_window_sql =
"SELECT pg_catalog.min(w.at) FROM eventbus.targets t CROSS JOIN LATERAL ("
"  SELECT d.next_attempt_at OPERATOR(pg_catalog.+) t.batch_window AS at"
"  FROM eventbus.deliveries d"
"  WHERE d.bus OPERATOR(pg_catalog.=) t.bus AND d.rule OPERATOR(pg_catalog.=) t.rule"
"    AND d.target_id OPERATOR(pg_catalog.=) t.target_id"
"    AND d.next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
"    AND (d.leased_until IS NULL OR d.leased_until OPERATOR(pg_catalog.<=) pg_catalog.now())"
"  ORDER BY d.next_attempt_at LIMIT 1) w"
" WHERE t.batch_size OPERATOR(pg_catalog.>) 1"
"   AND t.batch_window OPERATOR(pg_catalog.>) '0'::pg_catalog.interval"
"   AND w.at OPERATOR(pg_catalog.>) pg_catalog.now()";

static SPIPlanPtr next_window_plan = NULL;

/* See next_window_sql; runs in the claim's transaction. */
TimestampTz
eb_batch_next_window(void)
{
	bool		isnull;
	Datum		v;

	if (SPI_execute_plan(eb_saved_plan(&next_window_plan, next_window_sql, 0, NULL),
						 NULL, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "pg_eventbus: could not read when batch windows end");
	if (SPI_processed == 0)
		return 0;
	v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetTimestampTz(v);
}
