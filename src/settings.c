/*-------------------------------------------------------------------------
 *
 * settings.c
 *	  Every eventbus.* setting, in the order of the README's Settings table:
 *	  first what publishing reads, then what the delivery workers read.
 *
 * The envelope's account and region are superuser-only and checked here,
 * so that a publisher can neither forge them nor make every envelope of
 * its events megabytes long (the event size limit does not count them).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "settings.h"

/* The envelope's account: 12 digits, as an AWS account id. */
#define EB_ACCOUNT_LEN 12
/* The envelope's region: 1 to 64 of a-z, 0-9 and '-'. */
#define EB_REGION_MAX_LEN 64

char	   *eventbus_account = NULL;
char	   *eventbus_region = NULL;
int			eventbus_max_event_size = 262144;

static EbWorkerSettings settings = {
	.database = NULL,
	.workers = 1,
	.retry_base_delay = 1000,
	.retry_max_delay = 300000,
	.batch_size = 100,
	.max_concurrent_requests = 256,
	.max_concurrent_per_target = 64,
	.poll_interval = 1000,
	.stats_max_entries = 1000,
};

const EbWorkerSettings *const eb_settings = &settings;

int			eventbus_event_retention = 7 * 24 * 3600;
int			eventbus_maintenance_interval = 60 * 1000;

/* The counters (src/stats.c) */
bool		eventbus_track_stats = true;

/* The attempt log's settings. */
int			eventbus_attempt_log = EB_ATTEMPT_LOG_FAILURES;
int			eventbus_attempt_retention = 7 * 24 * 60;

/* Circuit breakers of targets (src/limits.c). */
int			eventbus_breaker_failures = 5;
int			eventbus_breaker_window = 60 * 1000;
int			eventbus_breaker_cooldown = 5 * 1000;
int			eventbus_breaker_max_cooldown = 5 * 60 * 1000;

static const struct config_enum_entry attempt_log_options[] = {
	{"off", EB_ATTEMPT_LOG_OFF, false},
	{"failures", EB_ATTEMPT_LOG_FAILURES, false},
	{"all", EB_ATTEMPT_LOG_ALL, false},
	{NULL, 0, false}
};

/* eventbus.account must be exactly 12 ASCII digits. */
static bool
check_account(char **newval, void **extra, GucSource source)
{
	const char *v = *newval;

	if (strlen(v) == EB_ACCOUNT_LEN && strspn(v, "0123456789") == EB_ACCOUNT_LEN)
		return true;
	GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
	GUC_check_errdetail("eventbus.account must be %d digits, as an AWS account id; got \"%.40s\"%s.",
						EB_ACCOUNT_LEN, v, strlen(v) > 40 ? "..." : "");
	GUC_check_errhint("Set it to a value such as '123456789012'.");
	return false;
}

/* eventbus.region must be 1 to 64 of a-z, 0-9 and '-'. */
static bool
check_region(char **newval, void **extra, GucSource source)
{
	const char *v = *newval;
	size_t		len = strlen(v);
	bool		ok = (len >= 1 && len <= EB_REGION_MAX_LEN);

	for (size_t i = 0; ok && i < len; i++)
		ok = ((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') ||
			  v[i] == '-');
	if (ok)
		return true;
	GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
	GUC_check_errdetail("eventbus.region must be 1 to %d characters of a-z, 0-9 and '-'; got \"%.70s\"%s.",
						EB_REGION_MAX_LEN, v, len > 70 ? "..." : "");
	GUC_check_errhint("Set it to a value such as 'eu-west-1'.");
	return false;
}

/*
 * eventbus.event_retention is 0 (forever) or at least a minute: the
 * shortest partition of eventbus.events is a minute wide.
 */
static bool
check_event_retention(int *newval, void **extra, GucSource source)
{
	if (*newval == 0 || *newval >= 60)
		return true;
	GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
	GUC_check_errdetail("eventbus.event_retention must be 0 (keep forever) or at least 60 seconds; got %d seconds.",
						*newval);
	GUC_check_errhint("Set it to a value such as '7d' or '1h'.");
	return false;
}

/*
 * Defines every eventbus.* setting; from _PG_init().  Start-up-only
 * settings can be defined as such only while preloading (PostgreSQL ends
 * the session otherwise); when the library is loaded later there are no
 * workers, and those settings merely show their values.
 */
void
eb_define_settings(void)
{
	GucContext	postmaster_context = process_shared_preload_libraries_in_progress
		? PGC_POSTMASTER : PGC_SUSET;

	DefineCustomStringVariable("eventbus.account",
							   "Account id written into every event envelope.",
							   "12 digits; only a superuser can change it.",
							   &eventbus_account,
							   "000000000000",
							   PGC_SUSET,
							   0,
							   check_account, NULL, NULL);
	DefineCustomStringVariable("eventbus.region",
							   "Region written into every event envelope.",
							   "1 to 64 of a-z, 0-9 and '-'; only a superuser can change it.",
							   &eventbus_region,
							   "local",
							   PGC_SUSET,
							   0,
							   check_region, NULL, NULL);
	DefineCustomIntVariable("eventbus.max_event_size",
							"Largest event accepted by put_event and put_events, counted as PutEvents counts it.",
							NULL,
							&eventbus_max_event_size,
							262144,
							1024,
							MaxAllocSize / 2,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	DefineCustomStringVariable("eventbus.database",
							   "Database in which the delivery workers run.",
							   "The extension must be created in that database.",
							   &settings.database,
							   "postgres",
							   postmaster_context, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("eventbus.workers",
							"Number of delivery workers.",
							"They share the queue; each holds its own connections.",
							&settings.workers,
							1, 1, EB_MAX_WORKERS,
							postmaster_context, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("eventbus.retry_base_delay",
							"Delay before the first retry of a failed delivery.",
							"Later retries back off exponentially, with jitter.",
							&settings.retry_base_delay,
							1000, 1, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("eventbus.retry_max_delay",
							"Longest delay between two attempts of a delivery.",
							"Also bounds what a target asks for in Retry-After.",
							&settings.retry_max_delay,
							300 * 1000, 1, 24 * 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("eventbus.batch_size",
							"Most deliveries a worker claims in one transaction.",
							NULL,
							&settings.batch_size,
							100, 1, 10000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("eventbus.max_concurrent_requests",
							"Most HTTP requests a worker has in flight at once.",
							"Also bounds the connections it keeps open.",
							&settings.max_concurrent_requests,
							256, 1, 10000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("eventbus.max_concurrent_per_target",
							"Most HTTP requests a worker has in flight to one target.",
							"A target earns slots up to this limit by answering, within its fair share of max_concurrent_requests.",
							&settings.max_concurrent_per_target,
							64, 1, 10000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("eventbus.poll_interval",
							"Longest sleep of an idle worker between looks at the queue.",
							"Commits that queue deliveries wake the workers at once.",
							&settings.poll_interval,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("eventbus.stats_max_entries",
							"Most buses, rules and targets with counters in shared memory.",
							"Counts of names beyond it go to an \"(other)\" entry per kind.",
							&settings.stats_max_entries,
							1000, 10, 1000000,
							postmaster_context, 0,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("eventbus.track_stats",
							 "Counts events, matches and deliveries in shared memory.",
							 "Off: the counters and latency histograms of eventbus.bus_stats, rule_stats, target_stats and metrics() stop growing; what they hold stays.",
							 &eventbus_track_stats,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	/* retention and the maintenance process */
	DefineCustomIntVariable("eventbus.event_retention",
							"How long published events are kept, unless their bus says otherwise.",
							"0 keeps them forever.  Expired partitions of eventbus.events are dropped by eventbus.maintenance().",
							&eventbus_event_retention,
							7 * 24 * 3600, 0, PG_INT32_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							check_event_retention, NULL, NULL);
	DefineCustomIntVariable("eventbus.maintenance_interval",
							"Time between two runs of eventbus.maintenance() by the maintenance process.",
							"Replays are carried on between runs.",
							&eventbus_maintenance_interval,
							60 * 1000, 1000, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	/* the attempt log */
	DefineCustomEnumVariable("eventbus.attempt_log",
							 "Which HTTP attempts the delivery workers record in eventbus.delivery_attempts.",
							 "failures: attempts that did not deliver; all: every attempt; off: none.",
							 &eventbus_attempt_log,
							 EB_ATTEMPT_LOG_FAILURES,
							 attempt_log_options,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("eventbus.attempt_retention",
							"How long eventbus.delivery_attempts keeps its rows.",
							"Whole days are dropped by eventbus.maintain_attempt_log() once they are older.",
							&eventbus_attempt_retention,
							7 * 24 * 60, 24 * 60, 3650 * 24 * 60,
							PGC_SIGHUP, GUC_UNIT_MIN,
							NULL, NULL, NULL);

	/* circuit breakers of targets */
	DefineCustomIntVariable("eventbus.breaker_failures",
							"Failed requests in a row that open a target's circuit breaker.",
							"No answer, a malformed answer, 5xx or 408 count; 0 turns the breakers off.",
							&eventbus_breaker_failures,
							5, 0, 1000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("eventbus.breaker_window",
							"Time within which a target's failures in a row open its breaker.",
							"A failure after a longer time since the first of the row starts a new row.",
							&eventbus_breaker_window,
							60 * 1000, 1000, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("eventbus.breaker_cooldown",
							"Time an opened breaker waits before its first probe.",
							"Each failed probe doubles it, up to eventbus.breaker_max_cooldown.",
							&eventbus_breaker_cooldown,
							5 * 1000, 100, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("eventbus.breaker_max_cooldown",
							"Longest time an open breaker waits between two probes.",
							NULL,
							&eventbus_breaker_max_cooldown,
							5 * 60 * 1000, 100, 24 * 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("eventbus");
}
