/*-------------------------------------------------------------------------
 *
 * slots.c
 *	  Request slots per target: a target may have in flight at most
 *
 *		min(eventbus.max_concurrent_per_target,
 *			its fair share: max_concurrent_requests / (other busy targets + 1),
 *			what it has earned by answering)
 *
 * A target starts with EB_SLOTS_START slots and earns one more with every
 * response (any HTTP status: it answered), up to the other two limits; a
 * request that ends without a response (timeout, refused connection)
 * halves what it has earned.  A target that accepts connections and never
 * answers therefore holds EB_SLOTS_START slots however long its backlog,
 * and the "+ 1" of the fair share keeps slots free for a target that has
 * none in flight: a healthy target finds a slot at the next claim, however
 * many others are stuck.
 *
 * A target that does not answer is also paused: after a request ends
 * without a response, no new request goes to it until a backoff has passed
 * (the retry policy's backoff for its number of unanswered rounds in a
 * row: eventbus.retry_base_delay, doubling, up to 5 s or retry_max_delay
 * if shorter).  Its
 * due rows stay in the queue meanwhile -- the claim does not even look at
 * them -- so a backlog larger than one pass is not retried faster than the
 * backoff, and a worker whose only due rows belong to a paused target
 * sleeps until the pause ends.  The first answer ends the pause.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/pg_prng.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/timestamp.h"

#include "limits.h"
#include "policy.h"
#include "request.h"
#include "settings.h"
#include "slots.h"

/* Slots a target has before it answered anything. */
#define EB_SLOTS_START 4

/*
 * Longest pause of a target that does not answer: how soon, at the latest,
 * a target that came back gets requests again.
 */
#define EB_SLOTS_MAX_PAUSE_MS 5000

/* Targets remembered while idle, before forgetting what they earned. */
#define EB_SLOTS_IDLE_MAX 4096

typedef struct TargetSlots
{
	char		key[EB_TARGET_KEY_LEN];
	int			in_flight;
	int			earned;
	int			unanswered;		/* requests in a row that got no response */
	TimestampTz paused_until;	/* no new request before, while unanswered */
	bool		has_low;
	TimestampTz low;			/* no due row left before (queue.c) */
} TargetSlots;

static HTAB *targets = NULL;
static int	busy_targets = 0;	/* targets with a request in flight */

/* Creates the table of targets; once per worker. */
void
eb_slots_init(void)
{
	HASHCTL		ctl;

	ctl.keysize = EB_TARGET_KEY_LEN;
	ctl.entrysize = sizeof(TargetSlots);
	targets = hash_create("pg_eventbus target slots", 64, &ctl,
						  HASH_ELEM | HASH_STRINGS);
}

/*
 * The most requests the target may have in flight now: its fair share
 * counts the other targets with requests in flight, plus one for a target
 * that has none yet.
 */
static int
limit_of(const TargetSlots *t)
{
	int			others = busy_targets - (t->in_flight > 0 ? 1 : 0);
	int			share = eb_settings->max_concurrent_requests / (others + 1);

	return Max(1, Min(Min(eb_settings->max_concurrent_per_target, share),
					  t->earned));
}

/* Forgets idle targets when too many are remembered. */
static void
forget_idle_targets(void)
{
	HASH_SEQ_STATUS seq;
	TargetSlots *t;

	if (hash_get_num_entries(targets) <= EB_SLOTS_IDLE_MAX)
		return;
	hash_seq_init(&seq, targets);
	while ((t = hash_seq_search(&seq)) != NULL)
		if (t->in_flight == 0 && t->unanswered == 0)	/* its low goes too */
			hash_search(targets, t->key, HASH_REMOVE, NULL);
}

/* The entry of a target, created when new. */
static TargetSlots *
lookup(const char *target_key)
{
	char		key[EB_TARGET_KEY_LEN];
	TargetSlots *t;
	bool		found;

	strlcpy(key, target_key, sizeof(key));
	t = hash_search(targets, key, HASH_ENTER, &found);
	if (!found)
	{
		t->in_flight = 0;
		t->earned = EB_SLOTS_START;
		t->unanswered = 0;
		t->paused_until = 0;
		t->has_low = false;
	}
	return t;
}

/* How many more requests the target may start now: 0 while paused. */
static int
room_of(const TargetSlots *t, TimestampTz now)
{
	if (t->unanswered > 0 && t->paused_until > now)
		return 0;
	return Max(0, limit_of(t) - t->in_flight);
}

/*
 * Takes a slot for a request to the target, if it is under its limit and
 * not paused.
 */
bool
eb_slots_take(const char *target_key)
{
	TargetSlots *t;

	forget_idle_targets();
	t = lookup(target_key);
	if (room_of(t, GetCurrentTimestamp()) == 0)
		return false;
	/* a token of its rate limit, or the probe of its open breaker */
	if (!eb_limits_take(target_key))
		return false;
	if (t->in_flight++ == 0)
		busy_targets++;
	return true;
}

/*
 * Gives back the slot of a finished request; `answered` says whether the
 * target sent a response.
 */
void
eb_slots_return(const char *target_key, bool answered)
{
	TargetSlots *t = lookup(target_key);

	if (answered)
	{
		t->earned = Min(t->earned + 1, eb_settings->max_concurrent_per_target);
		t->unanswered = 0;
		t->paused_until = 0;
	}
	else
	{
		int64		pause_ms;

		TimestampTz now = GetCurrentTimestamp();

		t->earned = Max(EB_SLOTS_START, t->earned / 2);

		/* the requests of one round fail together: count the round once */
		if (t->paused_until <= now)
		{
			t->unanswered = Min(t->unanswered + 1, 1000);
			pause_ms = eb_backoff_ms(t->unanswered, eb_settings->retry_base_delay,
									 Min(eb_settings->retry_max_delay, EB_SLOTS_MAX_PAUSE_MS),
									 pg_prng_double(&pg_global_prng_state));
			t->paused_until = TimestampTzPlusMilliseconds(now, pause_ms);
		}
	}
	if (t->in_flight > 0 && --t->in_flight == 0)
		busy_targets--;
}

/* How many requests a target the worker has not seen yet may start. */
int
eb_slots_default_room(void)
{
	TargetSlots fresh = {.in_flight = 0,.earned = EB_SLOTS_START};

	return room_of(&fresh, 0);
}

/*
 * What the claim needs to know of the targets this worker has seen, as a
 * JSON object appended to `buf`: for each target whose room differs from
 * eb_slots_default_room() or that has a low mark, "key": [room, low or
 * null] (low as ISO text: the worker's DateStyle is ISO).  Sets
 * *earliest_unpause to the end of the earliest pause (0 if none) and
 * returns whether some target has no room (at its limit or paused).
 */
bool
eb_slots_claim_state(StringInfo buf, TimestampTz *earliest_unpause)
{
	HASH_SEQ_STATUS seq;
	TargetSlots *t;
	int			fresh = eb_slots_default_room();
	TimestampTz now = GetCurrentTimestamp();
	bool		first = true;
	bool		saturated = false;

	*earliest_unpause = 0;
	appendStringInfoChar(buf, '{');
	hash_seq_init(&seq, targets);
	while ((t = hash_seq_search(&seq)) != NULL)
	{
		int			room = room_of(t, now);

		if (room == 0)
			saturated = true;
		if (room == 0 && t->unanswered > 0 && t->paused_until > now &&
			(*earliest_unpause == 0 || t->paused_until < *earliest_unpause))
			*earliest_unpause = t->paused_until;
		if (room == fresh && !t->has_low)
			continue;
		if (!first)
			appendStringInfoChar(buf, ',');
		first = false;
		escape_json(buf, t->key);
		appendStringInfo(buf, ":[%d,", room);
		if (t->has_low)
			escape_json(buf, timestamptz_to_str(t->low));
		else
			appendStringInfoString(buf, "null");
		appendStringInfoChar(buf, ']');
	}
	appendStringInfoChar(buf, '}');
	return saturated;
}

/* Sets the target's low mark: it has no due row left before `low`. */
void
eb_slots_set_low(const char *target_key, TimestampTz low)
{
	TargetSlots *t = lookup(target_key);

	t->has_low = true;
	t->low = low;
}

/*
 * Forgets the low mark of one target (`target_key`), or of every target
 * (NULL): the next claim looks at their due rows from the start.
 */
void
eb_slots_forget_low(const char *target_key)
{
	HASH_SEQ_STATUS seq;
	TargetSlots *t;

	if (target_key != NULL)
	{
		lookup(target_key)->has_low = false;
		return;
	}
	hash_seq_init(&seq, targets);
	while ((t = hash_seq_search(&seq)) != NULL)
		t->has_low = false;
}
