/*-------------------------------------------------------------------------
 *
 * settings.h
 *	  Every eventbus.* setting, defined in one place (settings.c) in the
 *	  order the README's Settings table lists them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_SETTINGS_H
#define EB_SETTINGS_H

/* Most delivery workers a server can run (eventbus.workers). */
#define EB_MAX_WORKERS 32

/* Publishing: the envelope's account and region, the event size limit. */
extern char *eventbus_account;
extern char *eventbus_region;
extern int	eventbus_max_event_size;

/* The eventbus.* settings of the delivery workers (see the README). */
typedef struct EbWorkerSettings
{
	char	   *database;		/* eventbus.database */
	int			workers;		/* eventbus.workers */
	int			retry_base_delay;	/* ms */
	int			retry_max_delay;	/* ms */
	int			batch_size;
	int			max_concurrent_requests;
	int			max_concurrent_per_target;
	int			poll_interval;	/* ms */
	int			stats_max_entries;	/* eventbus.stats_max_entries */
} EbWorkerSettings;

/* Current values of the workers' settings; only the GUC machinery writes. */
extern const EbWorkerSettings *const eb_settings;

/*
 * Retention and the maintenance process (block added by the storage work;
 * the merger orders it into the README's table).
 */
extern int	eventbus_event_retention;	/* seconds; 0 keeps events forever */
extern int	eventbus_maintenance_interval;	/* ms */

/* Whether the counters of src/stats.c count (eventbus.track_stats). */
extern bool eventbus_track_stats;

extern void eb_define_settings(void);

/* Circuit breakers of targets (src/limits.c). */
extern int	eventbus_breaker_failures;	/* 0: no breaker */
extern int	eventbus_breaker_window;	/* ms */
extern int	eventbus_breaker_cooldown;	/* ms */
extern int	eventbus_breaker_max_cooldown;	/* ms */

/* The attempt log (src/attempts.c): what it records, how long it keeps it. */
typedef enum EbAttemptLogMode
{
	EB_ATTEMPT_LOG_OFF,
	EB_ATTEMPT_LOG_FAILURES,
	EB_ATTEMPT_LOG_ALL
} EbAttemptLogMode;

extern int	eventbus_attempt_log;	/* an EbAttemptLogMode */
extern int	eventbus_attempt_retention; /* minutes */

#endif							/* EB_SETTINGS_H */
