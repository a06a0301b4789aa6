/*-------------------------------------------------------------------------
 *
 * slots.c
 *	  Request slots per target: a target may have in flight at most
 *
 *		min(eventbus.max_concurrent_per_target,
 *			its fair share: max_concurrent_requests / (busy targets + 1),
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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/hsearch.h"

#include "request.h"
#include "settings.h"
#include "slots.h"

/* Slots a target has before it answered anything. */
#define EB_SLOTS_START 4

/* Targets remembered while idle, before forgetting what they earned. */
#define EB_SLOTS_IDLE_MAX 4096

typedef struct TargetSlots
{
	char		key[EB_TARGET_KEY_LEN];
	int			in_flight;
	int			earned;
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

/* The most requests the target may have in flight now. */
static int
limit_of(const TargetSlots *t)
{
	int			share = eb_settings->max_concurrent_requests / (busy_targets + 1);

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
		if (t->in_flight == 0)
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
	}
	return t;
}

/* Takes a slot for a request to the target, if it is under its limit. */
bool
eb_slots_take(const char *target_key)
{
	TargetSlots *t;

	forget_idle_targets();
	t = lookup(target_key);
	if (t->in_flight >= limit_of(t))
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
		t->earned = Min(t->earned + 1, eb_settings->max_concurrent_per_target);
	else
		t->earned = Max(EB_SLOTS_START, t->earned / 2);
	if (t->in_flight > 0 && --t->in_flight == 0)
		busy_targets--;
}

/*
 * The keys of the targets at their limit, for the claim to skip their rows
 * (palloc'd in the current memory context), and how many.
 */
char	  **
eb_slots_full_targets(int *count)
{
	HASH_SEQ_STATUS seq;
	TargetSlots *t;
	int			n = 0;
	char	  **keys = palloc(sizeof(char *) * (hash_get_num_entries(targets) + 1));

	hash_seq_init(&seq, targets);
	while ((t = hash_seq_search(&seq)) != NULL)
		if (t->in_flight > 0 && t->in_flight >= limit_of(t))
			keys[n++] = t->key;
	*count = n;
	return keys;
}
