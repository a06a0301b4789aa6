/*-------------------------------------------------------------------------
 *
 * rule_cache.c
 *	  Binds the rules table to the matcher: a per-backend cache of each
 *	  bus's compiled rule set, rebuilt only after rules or targets change.
 *
 * A statement trigger on eventbus.buses, eventbus.rules and eventbus.targets sends a
 * relcache invalidation for eventbus.rules.  PostgreSQL delivers it
 * transactionally: to this backend at the next command of the same
 * transaction (and again on rollback, to undo), to other backends when the
 * changing transaction commits.  Our relcache callback only marks entries
 * stale; the next publish on the bus rebuilds its rule set.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "jsonb_matcher.h"
#include "rule_cache.h"

PG_FUNCTION_INFO_V1(eventbus_invalidate_rule_cache);

#define BUS_NAME_MAX 257		/* bus names are at most 256 bytes */

typedef struct BusCacheEntry
{
	char		bus[BUS_NAME_MAX];	/* hash key */
	bool		valid;
	BusRuleSet	set;
} BusCacheEntry;

static HTAB *bus_cache = NULL;
static MemoryContext rule_cache_cxt = NULL;
static Oid	rules_relid = InvalidOid;

/* What eb_rule_cache_lookup() returns for a name that is not a bus. */
static BusRuleSet no_such_bus;

/*
 * Relcache callback: marks every bus stale when eventbus.rules is
 * invalidated (or on a full reset).  It must not free anything: a publish
 * may be using a rule set while catalog access delivers the message.
 */
static void
rule_cache_invalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	BusCacheEntry *entry;

	if (bus_cache == NULL)
		return;
	if (relid != InvalidOid && OidIsValid(rules_relid) && relid != rules_relid)
		return;
	/* look the table up again: it may have been dropped and recreated */
	rules_relid = InvalidOid;

	hash_seq_init(&status, bus_cache);
	while ((entry = (BusCacheEntry *) hash_seq_search(&status)) != NULL)
		entry->valid = false;
}

/* Creates the cache and registers its callback, once per backend. */
static void
rule_cache_init(void)
{
	HASHCTL		ctl;

	rule_cache_cxt = AllocSetContextCreate(CacheMemoryContext,
										   "pg_eventbus rule cache",
										   ALLOCSET_DEFAULT_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = BUS_NAME_MAX;
	ctl.entrysize = sizeof(BusCacheEntry);
	ctl.hcxt = rule_cache_cxt;
	bus_cache = hash_create("pg_eventbus buses", 8, &ctl,
							HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	CacheRegisterRelcacheCallback(rule_cache_invalidate, (Datum) 0);
}

/* Frees what a bus's rule set holds, leaving it empty. */
static void
bus_rule_set_release(BusRuleSet *set)
{
	if (set->ruleset != NULL)
		ebm_ruleset_free(set->ruleset);
	if (set->cxt != NULL)
		MemoryContextDelete(set->cxt);
	memset(set, 0, sizeof(*set));
}

/*
 * Reads the bus's enabled rules that have targets and compiles them into one
 * matcher rule set, and notes whether the bus exists at all.  A rule without targets is left out: it would match and
 * record nothing.  A stored pattern that no longer parses (it can only get
 * there by writing the table directly) is skipped with a WARNING rather than
 * stopping every publish on the bus.
 */
static void
bus_rule_set_build(BusRuleSet *set, const char *bus)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	int			ret;
	uint64		i;
	ebm_status	st;
	MemoryContext oldcxt;

	set->cxt = AllocSetContextCreate(rule_cache_cxt, "pg_eventbus bus rules",
									 ALLOCSET_SMALL_SIZES);
	set->ruleset = ebm_ruleset_new();
	if (set->ruleset == NULL)
		eb_matcher_check(EBM_ERR_NOMEM);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	values[0] = CStringGetTextDatum(bus);
	ret = SPI_execute_with_args(
								"SELECT r.name, r.event_pattern,"
								" pg_catalog.array_agg(t.target_id ORDER BY t.target_id)"
								" FROM eventbus.rules r"
								" JOIN eventbus.targets t"
								" ON t.bus OPERATOR(pg_catalog.=) r.bus"
								" AND t.rule OPERATOR(pg_catalog.=) r.name"
								" WHERE r.bus OPERATOR(pg_catalog.=) $1"
								" AND r.state OPERATOR(pg_catalog.=) 'ENABLED'"
								" GROUP BY r.bus, r.name ORDER BY r.name",
								1, argtypes, values, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the rules of event bus \"%s\": %s",
			 bus, SPI_result_code_string(ret));

	oldcxt = MemoryContextSwitchTo(set->cxt);
	set->rules = palloc0(sizeof(CachedRule) * Max(SPI_processed, 1));
	MemoryContextSwitchTo(oldcxt);

	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *name = SPI_getvalue(tup, desc, 1);
		Datum		pattern_datum = SPI_getbinval(tup, desc, 2, &isnull);
		Jsonb	   *pattern = isnull ? NULL : DatumGetJsonbP(pattern_datum);
		ArrayType  *targets = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 3, &isnull));
		ebm_pattern *p = NULL;
		ebm_error	err;
		CachedRule *rule;
		Datum	   *elems;
		int			nelems;
		int			j;

		/* a rule with a schedule and no pattern: its Scheduled Events only */
		if (pattern != NULL)
			p = eb_matcher_try_parse_pattern(pattern, &err);
		if (pattern != NULL && p == NULL)
		{
			ereport(WARNING,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("skipping rule \"%s\" on event bus \"%s\": its stored pattern is invalid: %s",
							name, bus, err.message),
					 errhint("Replace the pattern with eventbus.put_rule().")));
			continue;
		}

		if (p != NULL)
		{
			st = ebm_ruleset_add(set->ruleset, (uint32_t) set->nrules, p);
			ebm_pattern_free(p);
			eb_matcher_check(st);
		}

		oldcxt = MemoryContextSwitchTo(set->cxt);
		rule = &set->rules[set->nrules++];
		rule->name = pstrdup(name);
		deconstruct_array(targets, TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, NULL, &nelems);
		rule->ntargets = nelems;
		rule->target_ids = palloc(sizeof(char *) * nelems);
		for (j = 0; j < nelems; j++)
			rule->target_ids[j] = TextDatumGetCString(elems[j]);
		MemoryContextSwitchTo(oldcxt);
	}

	ret = SPI_execute_with_args("SELECT 1 FROM eventbus.buses WHERE name OPERATOR(pg_catalog.=) $1",
								1, argtypes, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not look up event bus \"%s\": %s",
			 bus, SPI_result_code_string(ret));
	set->bus_exists = SPI_processed > 0;

	SPI_finish();
	eb_matcher_check(ebm_ruleset_compile(set->ruleset));
}

/*
 * Returns the compiled rule set of a bus, rebuilding it when rules or
 * targets changed since it was built.  The result is valid until the next
 * call.  Only buses that exist are cached; for any other name the result
 * is an empty set with bus_exists false.
 */
BusRuleSet *
eb_rule_cache_lookup(const char *bus)
{
	BusCacheEntry *entry;
	bool		found;
	char		key[BUS_NAME_MAX];

	if (bus_cache == NULL)
		rule_cache_init();
	if (!OidIsValid(rules_relid))
	{
		Oid			nsp = get_namespace_oid("eventbus", false);

		rules_relid = get_relname_relid("rules", nsp);
	}

	/* no bus has a longer name; don't let a truncated key alias one */
	if (strlen(bus) >= BUS_NAME_MAX)
		return &no_such_bus;

	memset(key, 0, sizeof(key));
	strlcpy(key, bus, sizeof(key));
	entry = (BusCacheEntry *) hash_search(bus_cache, key, HASH_ENTER, &found);
	if (!found)
	{
		memset(&entry->set, 0, sizeof(entry->set));
		entry->valid = false;
	}

	if (!entry->valid)
	{
		bus_rule_set_release(&entry->set);
		/* set first: an invalidation arriving during the build wins */
		entry->valid = true;
		PG_TRY();
		{
			bus_rule_set_build(&entry->set, bus);
		}
		PG_CATCH();
		{
			bus_rule_set_release(&entry->set);
			entry->valid = false;
			PG_RE_THROW();
		}
		PG_END_TRY();

		/*
		 * Keep nothing for a name that is not a bus: a session trying many
		 * wrong names must not grow by an entry for each.
		 */
		if (!entry->set.bus_exists)
		{
			bus_rule_set_release(&entry->set);
			hash_search(bus_cache, key, HASH_REMOVE, NULL);
			return &no_such_bus;
		}
	}
	return &entry->set;
}

/*
 * Trigger on eventbus.buses, eventbus.rules and eventbus.targets: asks every backend to
 * rebuild its compiled rule sets once this transaction commits, and this
 * backend to do so at its next command.
 */
Datum
eventbus_invalidate_rule_cache(PG_FUNCTION_ARGS)
{
	Oid			nsp;
	Oid			relid;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("eventbus.invalidate_rule_cache() must be called as a trigger")));

	nsp = get_namespace_oid("eventbus", false);
	relid = get_relname_relid("rules", nsp);
	if (OidIsValid(relid))
		CacheInvalidateRelcacheByRelid(relid);
	return PointerGetDatum(NULL);
}
