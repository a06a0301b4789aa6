/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  The bus's counters: a fixed-size table in shared memory of one entry
 *	  per bus, per rule and per target (keyed by name, as CloudWatch keys
 *	  its metrics by dimension), latency histograms with fixed buckets, the
 *	  delivery workers' states, and the file that keeps the counters across
 *	  a clean restart.
 *
 * Exactness.  Counters are 64-bit atomics, added to without a lock on the
 * entry; the table's LWLock is taken shared to find an entry and
 * exclusive only to create or reset entries, so concurrent publishers and
 * workers never lose an update and never wait for each other.  A
 * publishing backend counts into its own pending table, tagged with the
 * (sub)transaction nesting level, and adds it to shared memory when the
 * transaction commits or is prepared: a rollback counts nothing, and a
 * rolled-back savepoint drops what it published.
 *
 * Capacity.  eventbus.stats_max_entries entries; three more are reserved
 * for an "(other)" entry per kind, which takes the counts of new names once
 * the table is full (never an error in a user's write).  Entries stay
 * until eventbus.stats_reset() with no arguments removes them all: a
 * deleted rule's counters stay visible, and a rule created again with the
 * same name continues them.
 *
 * Off switch.  eventbus.track_stats = off (superuser) stops the counting
 * of the session or of the workers that see it; what was counted stays.
 *
 * Persistence.  The postmaster writes the table to pg_stat/pg_eventbus.stat
 * at a clean shutdown and reads it at start-up, as pg_stat_statements does;
 * the first delivery worker also writes it every EB_STATS_SAVE_INTERVAL_MS,
 * so a crash loses at most the counts of those last seconds.
 *
 * The SQL functions that read and reset the counters are in stats_sql.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "settings.h"
#include "stats.h"
#include "stats_internal.h"

/* Latency histograms: upper bounds in microseconds, then +Inf. */
const int64 eb_stats_bucket_bounds_us[EB_NBOUNDS] = {
	5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
	2500000, 5000000, 10000000, 30000000, 60000000, 300000000,
	900000000, 3600000000
};

#define EB_STATS_FILE "pg_stat/pg_eventbus.stat"
#define EB_STATS_FILE_MAGIC 0x45425331	/* "EBS1" */
#define EB_STATS_SAVE_INTERVAL_MS 10000

/* A publishing backend's counts, until its transaction ends. */
typedef struct PendingKey
{
	EbStatsKey	key;
	int			nest;
} PendingKey;

typedef struct PendingEntry
{
	PendingKey	pkey;
	int64		counters[3];	/* put, bytes, matched */
	bool		missing;		/* not in shared memory yet (pending_flush) */
	EbStatsEntry *shared;		/* its shared entry, found before, or NULL */
	uint64		generation;		/* eb_stats_shared->generation then */
} PendingEntry;

/*
 * A backend keeps its pending entries from one transaction to the next
 * (their counts zeroed), with the address of their shared entry, so that a
 * publisher whose events match the same rules again finds them without
 * creating them, and adds to shared memory without looking them up; up to
 * this many, beyond which they are all dropped at the end of a transaction.
 */
#define EB_PENDING_KEEP 1024

EbStatsShared *eb_stats_shared = NULL;
HTAB	   *eb_stats_table = NULL;
static HTAB *pending = NULL;
static bool pending_any = false;
static bool xact_callbacks_registered = false;
static int	my_slot = -1;
static TimestampTz last_save = 0;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void stats_save(void);
static void pending_discard(int nest);

/* Whether counts are kept: shared memory is there and track_stats is on. */
static inline bool
counting(void)
{
	return eb_stats_shared != NULL && eventbus_track_stats;
}

/* ------------------------------------------------------------------------
 * Keys
 * ------------------------------------------------------------------------
 */

/* Fills a key; names past their length are cut. */
static void
make_key(EbStatsKey *key, EbStatsKind kind, const char *bus,
		 const char *rule, const char *target)
{
	memset(key, 0, sizeof(EbStatsKey));
	key->kind = kind;
	strlcpy(key->bus, bus ? bus : "", sizeof(key->bus));
	strlcpy(key->rule, rule ? rule : "", sizeof(key->rule));
	strlcpy(key->target, target ? target : "", sizeof(key->target));
}

/* Hashes a key's kind and its names up to their NULs (not the padding). */
static uint32
key_hash(const EbStatsKey *k)
{
	uint32		h = hash_bytes_uint32((uint32) k->kind);

	h = hash_combine(h, hash_bytes((const unsigned char *) k->bus, strlen(k->bus)));
	h = hash_combine(h, hash_bytes((const unsigned char *) k->rule, strlen(k->rule)));
	return hash_combine(h, hash_bytes((const unsigned char *) k->target, strlen(k->target)));
}

static int
key_cmp(const EbStatsKey *a, const EbStatsKey *b)
{
	if (a->kind != b->kind)
		return 1;
	if (strcmp(a->bus, b->bus) != 0 || strcmp(a->rule, b->rule) != 0)
		return 1;
	return strcmp(a->target, b->target);
}

/* dynahash callbacks of the shared table */
static uint32
shared_hash(const void *key, Size keysize)
{
	return key_hash((const EbStatsKey *) key);
}

static int
shared_match(const void *a, const void *b, Size keysize)
{
	return key_cmp((const EbStatsKey *) a, (const EbStatsKey *) b);
}

/* dynahash callbacks of the pending table: the key plus the nesting level */
static uint32
pending_hash(const void *key, Size keysize)
{
	const PendingKey *k = (const PendingKey *) key;

	return hash_combine(key_hash(&k->key), hash_bytes_uint32((uint32) k->nest));
}

static int
pending_match(const void *a, const void *b, Size keysize)
{
	const PendingKey *x = (const PendingKey *) a;
	const PendingKey *y = (const PendingKey *) b;

	return x->nest != y->nest || key_cmp(&x->key, &y->key) != 0;
}

/* Splits the worker's "bus\x1frule\x1ftarget_id" into a target key. */
static void
target_key_from(EbStatsKey *key, const char *target_key)
{
	char		buf[EB_BUS_LEN + EB_RULE_LEN + EB_TARGET_LEN + 3];
	char	   *rule;
	char	   *target = NULL;

	strlcpy(buf, target_key, sizeof(buf));
	rule = strchr(buf, '\x1f');
	if (rule != NULL)
	{
		*rule++ = '\0';
		target = strchr(rule, '\x1f');
		if (target != NULL)
			*target++ = '\0';
	}
	make_key(key, EB_KIND_TARGET, buf, rule, target);
}

/* ------------------------------------------------------------------------
 * Shared memory
 * ------------------------------------------------------------------------
 */

/* Bytes of the shared header, with a slot per delivery worker. */
static Size
shared_size(void)
{
	return add_size(offsetof(EbStatsShared, workers),
					mul_size(eb_settings->workers, sizeof(EbWorkerSlot)));
}

/* Asks for the header, the hash table and the lock (PostgreSQL 15's hook). */
static void
stats_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(shared_size()));
	RequestAddinShmemSpace(hash_estimate_size(eb_settings->stats_max_entries + EB_NKINDS,
											  sizeof(EbStatsEntry)));
	RequestNamedLWLockTranche("pg_eventbus stats", 1);
}

/*
 * Finds the entry of a key, creating it if needed; when the table is full,
 * returns the "(other)" entry of the key's kind.  Takes the lock shared,
 * and exclusive only to create; returns with the lock held shared or
 * exclusive (*exclusive says which).  Never raises an error.
 */
static EbStatsEntry *
find_entry(const EbStatsKey *key, bool *exclusive)
{
	EbStatsEntry *e;
	bool		found;

	*exclusive = false;
	LWLockAcquire(eb_stats_shared->lock, LW_SHARED);
	e = hash_search(eb_stats_table, key, HASH_FIND, NULL);
	if (e != NULL)
		return e;
	LWLockRelease(eb_stats_shared->lock);

	LWLockAcquire(eb_stats_shared->lock, LW_EXCLUSIVE);
	*exclusive = true;
	if (hash_get_num_entries(eb_stats_table) < eb_settings->stats_max_entries + EB_NKINDS)
		e = hash_search(eb_stats_table, key, HASH_ENTER_NULL, &found);
	else
		e = hash_search(eb_stats_table, key, HASH_FIND, &found);
	if (e == NULL)
	{
		EbStatsKey other;

		make_key(&other, key->kind, EB_OTHER_NAME,
				 key->kind >= EB_KIND_RULE ? EB_OTHER_NAME : NULL,
				 key->kind == EB_KIND_TARGET ? EB_OTHER_NAME : NULL);
		pg_atomic_fetch_add_u64(&eb_stats_shared->overflowed, 1);
		return hash_search(eb_stats_table, &other, HASH_FIND, NULL);
	}
	if (!found)
	{
		e->stats_reset = GetCurrentTimestamp();
		for (int i = 0; i < EB_NCOUNTERS; i++)
			pg_atomic_init_u64(&e->counters[i], 0);
		for (int h = 0; h < EB_NHISTOGRAMS; h++)
		{
			for (int b = 0; b < EB_NBUCKETS; b++)
				pg_atomic_init_u64(&e->buckets[h][b], 0);
			pg_atomic_init_u64(&e->sum_us[h], 0);
		}
	}
	return e;
}

/* Zeroes an entry's counters; with the lock held exclusive. */
void
eb_stats_zero_entry(EbStatsEntry *e, TimestampTz now)
{
	e->stats_reset = now;
	for (int i = 0; i < EB_NCOUNTERS; i++)
		pg_atomic_write_u64(&e->counters[i], 0);
	for (int h = 0; h < EB_NHISTOGRAMS; h++)
	{
		for (int b = 0; b < EB_NBUCKETS; b++)
			pg_atomic_write_u64(&e->buckets[h][b], 0);
		pg_atomic_write_u64(&e->sum_us[h], 0);
	}
}

/* Creates the "(other)" entries, which need no room later. */
static void
create_other_entries(void)
{
	for (int k = 0; k < EB_NKINDS; k++)
	{
		EbStatsKey key;
		bool		found;
		EbStatsEntry *e;

		make_key(&key, k, EB_OTHER_NAME,
				 k >= EB_KIND_RULE ? EB_OTHER_NAME : NULL,
				 k == EB_KIND_TARGET ? EB_OTHER_NAME : NULL);
		e = hash_search(eb_stats_table, &key, HASH_ENTER, &found);
		if (!found)
			eb_stats_zero_entry(e, GetCurrentTimestamp());
	}
}

/* Writes the counters at a clean shutdown of the postmaster (not a crash). */
static void
stats_shmem_shutdown(int code, Datum arg)
{
	if (code != 0 || eb_stats_shared == NULL)
		return;
	stats_save();
}

/* Reads the file written at the last save, if any; in the postmaster. */
static void
stats_load(void)
{
	FILE	   *f = AllocateFile(EB_STATS_FILE, PG_BINARY_R);
	uint32		header[3];
	TimestampTz reset;

	if (f == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", EB_STATS_FILE)));
		return;
	}
	if (fread(header, sizeof(header), 1, f) != 1 ||
		header[0] != EB_STATS_FILE_MAGIC ||
		header[1] != sizeof(EbStatsEntry) ||
		fread(&reset, sizeof(reset), 1, f) != 1)
		goto bad;
	eb_stats_shared->stats_reset = reset;
	for (uint32 i = 0; i < header[2]; i++)
	{
		EbStatsEntry buf;
		EbStatsEntry *e;
		bool		found;

		if (fread(&buf, sizeof(buf), 1, f) != 1)
			goto bad;
		if (buf.key.kind < 0 || buf.key.kind >= EB_NKINDS)
			goto bad;
		buf.key.bus[EB_BUS_LEN] = buf.key.rule[EB_RULE_LEN] = buf.key.target[EB_TARGET_LEN] = '\0';
		if (hash_get_num_entries(eb_stats_table) >= eb_settings->stats_max_entries + EB_NKINDS &&
			hash_search(eb_stats_table, &buf.key, HASH_FIND, NULL) == NULL)
			continue;			/* a smaller table now: the rest is lost */
		e = hash_search(eb_stats_table, &buf.key, HASH_ENTER, &found);
		memcpy(e, &buf, sizeof(buf));
	}
	FreeFile(f);
	return;

bad:
	ereport(LOG,
			(errmsg("ignoring the pg_eventbus statistics file \"%s\": it is damaged or from another version",
					EB_STATS_FILE)));
	FreeFile(f);
}

/*
 * Sets up the shared table; in the postmaster at start-up (reading the
 * saved counters) and again after a crash.
 */
static void
stats_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	eb_stats_shared = ShmemInitStruct("pg_eventbus stats", shared_size(), &found);
	if (!found)
	{
		eb_stats_shared->lock = &(GetNamedLWLockTranche("pg_eventbus stats"))->lock;
		eb_stats_shared->stats_reset = GetCurrentTimestamp();
		pg_atomic_init_u64(&eb_stats_shared->overflowed, 0);
		eb_stats_shared->generation = 0;
		SpinLockInit(&eb_stats_shared->mutex);
		eb_stats_shared->nworkers = eb_settings->workers;
		memset(eb_stats_shared->workers, 0, sizeof(EbWorkerSlot) * eb_stats_shared->nworkers);
	}
	info.keysize = sizeof(EbStatsKey);
	info.entrysize = sizeof(EbStatsEntry);
	info.hash = shared_hash;
	info.match = shared_match;
	eb_stats_table = ShmemInitHash("pg_eventbus stats table",
						  eb_settings->stats_max_entries + EB_NKINDS,
						  eb_settings->stats_max_entries + EB_NKINDS,
						  &info, HASH_ELEM | HASH_FUNCTION | HASH_COMPARE);
	if (!found)
	{
		/* the "(other)" entries first: loading never takes their room */
		create_other_entries();
		stats_load();
	}
	LWLockRelease(AddinShmemInitLock);

	if (!IsUnderPostmaster)
		on_shmem_exit(stats_shmem_shutdown, (Datum) 0);
}

/*
 * When preloading, hooks shared memory for the counters (their capacity,
 * eventbus.stats_max_entries, is defined with the other settings).
 */
void
eb_stats_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = stats_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = stats_shmem_startup;
}

/* ------------------------------------------------------------------------
 * Saving to disk
 * ------------------------------------------------------------------------
 */

/*
 * Writes every entry to a temporary file and renames it over the last one,
 * so a crash while writing leaves the previous file.  Failures are logged,
 * never raised: this runs in the postmaster at exit and in the worker's
 * loop.
 */
static void
stats_save(void)
{
	const char *tmp = EB_STATS_FILE ".tmp";
	FILE	   *f;
	uint32		header[3];
	HASH_SEQ_STATUS seq;
	EbStatsEntry *e;
	bool		ok = true;

	f = AllocateFile(tmp, PG_BINARY_W);
	if (f == NULL)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmp)));
		return;
	}
	LWLockAcquire(eb_stats_shared->lock, LW_SHARED);
	header[0] = EB_STATS_FILE_MAGIC;
	header[1] = sizeof(EbStatsEntry);
	header[2] = hash_get_num_entries(eb_stats_table);
	ok = fwrite(header, sizeof(header), 1, f) == 1 &&
		fwrite(&eb_stats_shared->stats_reset, sizeof(TimestampTz), 1, f) == 1;
	hash_seq_init(&seq, eb_stats_table);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (ok && fwrite(e, sizeof(EbStatsEntry), 1, f) != 1)
			ok = false;
	}
	LWLockRelease(eb_stats_shared->lock);
	if (FreeFile(f) != 0)
		ok = false;
	if (!ok)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmp)));
		unlink(tmp);
		return;
	}
	(void) durable_rename(tmp, EB_STATS_FILE, LOG);
}

/*
 * In the first delivery worker's loop: saves the counters when
 * EB_STATS_SAVE_INTERVAL_MS have passed since the last save.
 */
void
eb_stats_save_periodically(void)
{
	TimestampTz now;

	if (eb_stats_shared == NULL || my_slot != 0)
		return;
	now = GetCurrentTimestamp();
	if (TimestampDifferenceExceeds(last_save, now, EB_STATS_SAVE_INTERVAL_MS))
	{
		last_save = now;
		stats_save();
	}
}

/* ------------------------------------------------------------------------
 * Publishing side: pending counts, added at commit
 * ------------------------------------------------------------------------
 */

/* Adds a pending entry's counts to its shared entry. */
static void
pending_add_to(EbStatsEntry *e, const PendingEntry *p)
{
	if (p->counters[0])
		pg_atomic_fetch_add_u64(&e->counters[C_PUT_EVENTS], p->counters[0]);
	if (p->counters[1])
		pg_atomic_fetch_add_u64(&e->counters[C_PUT_BYTES], p->counters[1]);
	if (p->counters[2])
		pg_atomic_fetch_add_u64(&e->counters[C_MATCHED_EVENTS], p->counters[2]);
}

/*
 * Adds every pending count to shared memory; at commit, never errors.  The
 * entries that exist already -- nearly always all of them -- are found
 * under one shared hold of the table's lock, however many rules the
 * transaction's events matched, by the address found before when no entry
 * has gone since (eventbus.stats_reset() with no arguments bumps the
 * generation); the others are created one by one after.
 */
static void
pending_flush(void)
{
	HASH_SEQ_STATUS seq;
	PendingEntry *p;
	bool		any_missing = false;
	uint64		generation;

	LWLockAcquire(eb_stats_shared->lock, LW_SHARED);
	generation = eb_stats_shared->generation;
	hash_seq_init(&seq, pending);
	while ((p = hash_seq_search(&seq)) != NULL)
	{
		EbStatsEntry *e;

		p->missing = false;
		if (p->counters[0] == 0 && p->counters[1] == 0 && p->counters[2] == 0)
			continue;
		if (p->shared != NULL && p->generation == generation)
			e = p->shared;
		else
			e = hash_search(eb_stats_table, &p->pkey.key, HASH_FIND, NULL);
		p->shared = e;
		p->generation = generation;
		if (e != NULL)
			pending_add_to(e, p);
		else
			p->missing = any_missing = true;
	}
	LWLockRelease(eb_stats_shared->lock);
	if (!any_missing)
		return;

	hash_seq_init(&seq, pending);
	while ((p = hash_seq_search(&seq)) != NULL)
	{
		bool		exclusive;
		EbStatsEntry *e;

		if (!p->missing)
			continue;
		e = find_entry(&p->pkey.key, &exclusive);
		if (e != NULL)
			pending_add_to(e, p);
		/* an "(other)" entry stands for many names: not remembered */
		p->shared = (e != NULL && key_cmp(&e->key, &p->pkey.key) == 0) ? e : NULL;
		p->generation = eb_stats_shared->generation;
		LWLockRelease(eb_stats_shared->lock);
	}
}

/*
 * At the end of a transaction: the counts are zeroed, the entries kept
 * (see EB_PENDING_KEEP), unless there are too many.
 */
static void
pending_reset(void)
{
	HASH_SEQ_STATUS seq;
	PendingEntry *p;

	if (hash_get_num_entries(pending) > EB_PENDING_KEEP)
	{
		pending_discard(0);
		return;
	}
	hash_seq_init(&seq, pending);
	while ((p = hash_seq_search(&seq)) != NULL)
		memset(p->counters, 0, sizeof(p->counters));
}

/* Drops the pending counts of nesting level `nest` and deeper, or all. */
static void
pending_discard(int nest)
{
	HASH_SEQ_STATUS seq;
	PendingEntry *p;

	hash_seq_init(&seq, pending);
	while ((p = hash_seq_search(&seq)) != NULL)
	{
		if (p->pkey.nest >= nest)
			hash_search(pending, &p->pkey, HASH_REMOVE, NULL);
	}
}

/* Moves the counts of a committed subtransaction to its parent's level. */
static void
pending_merge_into_parent(int nest)
{
	HASH_SEQ_STATUS seq;
	PendingEntry *p;
	List	   *moved = NIL;
	ListCell   *lc;

	hash_seq_init(&seq, pending);
	while ((p = hash_seq_search(&seq)) != NULL)
	{
		if (p->pkey.nest >= nest)
		{
			PendingEntry *copy = palloc(sizeof(PendingEntry));

			memcpy(copy, p, sizeof(PendingEntry));
			moved = lappend(moved, copy);
			hash_search(pending, &p->pkey, HASH_REMOVE, NULL);
		}
	}
	foreach(lc, moved)
	{
		PendingEntry *m = lfirst(lc);
		PendingEntry *p2;
		bool		found;

		m->pkey.nest = nest - 1;
		p2 = hash_search(pending, &m->pkey, HASH_ENTER, &found);
		if (!found)
		{
			memset(p2->counters, 0, sizeof(p2->counters));
			p2->shared = NULL;
		}
		for (int i = 0; i < 3; i++)
			p2->counters[i] += m->counters[i];
	}
	list_free_deep(moved);
}

/* Adds the pending counts at commit (and prepare); forgets them on abort. */
static void
stats_xact_callback(XactEvent event, void *arg)
{
	if (!pending_any)
		return;
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			pending_flush();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			break;
		default:
			return;
	}
	pending_reset();
	pending_any = false;
}

/* A rolled-back savepoint drops what it published; a released one keeps it. */
static void
stats_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	if (!pending_any)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
		pending_discard(GetCurrentTransactionNestLevel());
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
		pending_merge_into_parent(GetCurrentTransactionNestLevel());
}

/* Adds to a pending count of the current (sub)transaction. */
static void
pending_add(EbStatsKind kind, const char *bus, const char *rule, int counter,
			int64 n)
{
	PendingKey pkey;
	PendingEntry *p;
	bool		found;

	if (!counting())
		return;
	if (pending == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(PendingKey);
		ctl.entrysize = sizeof(PendingEntry);
		ctl.hash = pending_hash;
		ctl.match = pending_match;
		ctl.hcxt = TopMemoryContext;
		pending = hash_create("pg_eventbus pending stats", 16, &ctl,
							  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	}
	if (!xact_callbacks_registered)
	{
		RegisterXactCallback(stats_xact_callback, NULL);
		RegisterSubXactCallback(stats_subxact_callback, NULL);
		xact_callbacks_registered = true;
	}
	make_key(&pkey.key, kind, bus, rule, NULL);
	pkey.nest = GetCurrentTransactionNestLevel();
	p = hash_search(pending, &pkey, HASH_ENTER, &found);
	if (!found)
	{
		memset(p->counters, 0, sizeof(p->counters));
		p->shared = NULL;
	}
	p->counters[counter] += n;
	pending_any = true;
}

/* An event put on `bus`, of `bytes` as PutEvents counts them. */
void
eb_stats_count_put(const char *bus, int64 bytes)
{
	pending_add(EB_KIND_BUS, bus, NULL, 0, 1);
	pending_add(EB_KIND_BUS, bus, NULL, 1, bytes);
}

/* An event on `bus` that matched at least one rule. */
void
eb_stats_count_bus_match(const char *bus)
{
	pending_add(EB_KIND_BUS, bus, NULL, 2, 1);
}

/* An event that `rule` matched. */
void
eb_stats_count_rule_match(const char *bus, const char *rule)
{
	pending_add(EB_KIND_RULE, bus, rule, 2, 1);
}

/* ------------------------------------------------------------------------
 * Worker side: counted at once
 * ------------------------------------------------------------------------
 */

/* Adds one observation to a histogram of an entry. */
static void
observe(EbStatsEntry *e, EbHistogram h, TimestampTz from, TimestampTz to)
{
	int64		us = Max(to - from, 0);
	int			b = 0;

	while (b < EB_NBOUNDS && us > eb_stats_bucket_bounds_us[b])
		b++;
	pg_atomic_fetch_add_u64(&e->buckets[h][b], 1);
	pg_atomic_fetch_add_u64(&e->sum_us[h], (uint64) us);
}

/* Did the worker send a request for this attempt? */
static bool
request_sent(EbTransport transport)
{
	return transport != EB_TRANSPORT_INTERNAL &&
		transport != EB_TRANSPORT_BAD_HEADER;
}

/* The first attempt of a delivery starts: its commit-to-start latency. */
void
eb_stats_count_first_attempt(const char *target_key, TimestampTz published_at)
{
	EbStatsKey key;
	EbStatsEntry *e;
	bool		exclusive;

	if (!counting() || published_at == 0)
		return;
	target_key_from(&key, target_key);
	e = find_entry(&key, &exclusive);
	if (e != NULL)
		observe(e, H_FIRST_ATTEMPT, published_at, GetCurrentTimestamp());
	LWLockRelease(eb_stats_shared->lock);
}

/* A finished attempt, as the worker settles it. */
void
eb_stats_count_attempt(const char *target_key, EbTransport transport,
					   long status, int attempts, bool success,
					   TimestampTz published_at)
{
	EbStatsKey key;
	EbStatsEntry *e;
	bool		exclusive;

	if (!counting() || !request_sent(transport))
		return;
	target_key_from(&key, target_key);
	e = find_entry(&key, &exclusive);
	if (e != NULL)
	{
		pg_atomic_fetch_add_u64(&e->counters[C_ATTEMPTS], 1);
		if (attempts > 1)
			pg_atomic_fetch_add_u64(&e->counters[C_RETRY_ATTEMPTS], 1);
		if (transport == EB_TRANSPORT_OK && status == 429)
			pg_atomic_fetch_add_u64(&e->counters[C_THROTTLED_ATTEMPTS], 1);
		if (transport == EB_TRANSPORT_TIMEOUT)
			pg_atomic_fetch_add_u64(&e->counters[C_TIMED_OUT_ATTEMPTS], 1);
		if (success)
		{
			pg_atomic_fetch_add_u64(&e->counters[C_SUCCESSFUL_ATTEMPTS], 1);
			pg_atomic_fetch_add_u64(&e->counters[C_INVOCATIONS], 1);
			if (published_at != 0)
				observe(e, H_SUCCESS, published_at, GetCurrentTimestamp());
		}
	}
	LWLockRelease(eb_stats_shared->lock);
}

/* A delivery the worker moves to dead_letters. */
void
eb_stats_count_dead_letter(const char *target_key, EbTransport transport)
{
	EbStatsKey key;
	EbStatsEntry *e;
	bool		exclusive;

	if (!counting())
		return;
	target_key_from(&key, target_key);
	e = find_entry(&key, &exclusive);
	if (e != NULL)
	{
		pg_atomic_fetch_add_u64(&e->counters[C_DEAD_LETTER_INVOCATIONS], 1);
		if (request_sent(transport))
		{
			pg_atomic_fetch_add_u64(&e->counters[C_FAILED_INVOCATIONS], 1);
			pg_atomic_fetch_add_u64(&e->counters[C_INVOCATIONS], 1);
		}
	}
	LWLockRelease(eb_stats_shared->lock);
}

/* ------------------------------------------------------------------------
 * The workers' slots
 * ------------------------------------------------------------------------
 */

/* Empties the worker's slot when it exits. */
static void
worker_slot_exit(int code, Datum arg)
{
	SpinLockAcquire(&eb_stats_shared->mutex);
	eb_stats_shared->workers[my_slot].pid = 0;
	eb_stats_shared->workers[my_slot].in_flight = 0;
	SpinLockRelease(&eb_stats_shared->mutex);
}

/* Takes slot `index` for this worker, until it exits. */
void
eb_stats_worker_register(int index)
{
	if (eb_stats_shared == NULL || index < 0 || index >= eb_stats_shared->nworkers)
		return;
	my_slot = index;
	SpinLockAcquire(&eb_stats_shared->mutex);
	eb_stats_shared->workers[index].pid = MyProcPid;
	eb_stats_shared->workers[index].state = EB_WORKER_STARTING;
	eb_stats_shared->workers[index].in_flight = 0;
	eb_stats_shared->workers[index].claimed = 0;
	eb_stats_shared->workers[index].last_claim = 0;
	eb_stats_shared->workers[index].started_at = GetCurrentTimestamp();
	SpinLockRelease(&eb_stats_shared->mutex);
	on_shmem_exit(worker_slot_exit, (Datum) 0);
}

/* What the worker does now, and how many requests it has in flight. */
void
eb_stats_worker_state(EbWorkerState state, int in_flight)
{
	if (my_slot < 0)
		return;
	SpinLockAcquire(&eb_stats_shared->mutex);
	eb_stats_shared->workers[my_slot].state = state;
	eb_stats_shared->workers[my_slot].in_flight = in_flight;
	SpinLockRelease(&eb_stats_shared->mutex);
}

/* The worker claimed `n` deliveries just now. */
void
eb_stats_worker_claimed(int n)
{
	TimestampTz now = GetCurrentTimestamp();

	if (my_slot < 0)
		return;
	SpinLockAcquire(&eb_stats_shared->mutex);
	eb_stats_shared->workers[my_slot].last_claim = now;
	eb_stats_shared->workers[my_slot].claimed += n;
	SpinLockRelease(&eb_stats_shared->mutex);
}
