/*-------------------------------------------------------------------------
 *
 * schedule.c
 *	  Scheduled rules (README, "Schedules").  A rule's schedule is one of
 *	  EventBridge's expressions:
 *
 *		rate(value unit)	unit minute|minutes|hour|hours|day|days
 *		cron(Minutes Hours Day-of-month Month Day-of-week Year)
 *
 *	  with cron's wildcards , - * ? / L W # as EventBridge defines them.
 *	  Cron times are wall-clock times of the rule's time zone (PostgreSQL's
 *	  tz database): a time that a daylight-saving gap skips does not run, a
 *	  time that an overlap repeats runs once, at its first occurrence.  A
 *	  rate counts fixed intervals from its anchor, whatever the zone.
 *
 *	  Here: the parser, the next-time search (bounded: cron's years end in
 *	  2199), the SQL functions that expose them, and the publishing of a
 *	  rule's Scheduled Event, which the match trigger sends to that rule's
 *	  targets only.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "envelope.h"
#include "publish.h"
#include "schedule.h"
#include "settings.h"

PG_FUNCTION_INFO_V1(eventbus_check_schedule);
PG_FUNCTION_INFO_V1(eventbus_next_schedule_times);
PG_FUNCTION_INFO_V1(eventbus_schedule_next_run);
PG_FUNCTION_INFO_V1(eventbus_publish_scheduled_event);

/* cron's Year field, as EventBridge bounds it; also the search's end */
#define EB_CRON_FIRST_YEAR 1970
#define EB_CRON_LAST_YEAR 2199
#define EB_CRON_NYEARS (EB_CRON_LAST_YEAR - EB_CRON_FIRST_YEAR + 1)

/* the longest rate: 100 years of days */
#define EB_RATE_MAX_DAYS 36500

/* most times next_schedule_times() returns */
#define EB_SCHEDULE_MAX_COUNT 1000

/* longest expression we look at */
#define EB_SCHEDULE_MAX_LEN 256

#define EB_SCHEDULE_HINT_CRON "A cron expression is cron(Minutes Hours Day-of-month Month Day-of-week Year) with one of Day-of-month and Day-of-week a ?, such as cron(0 12 * * ? *) or cron(15 10 ? * MON-FRI *)."
#define EB_SCHEDULE_HINT_RATE "A rate expression is rate(value unit) with unit minute, hour or day for 1 and minutes, hours or days for more, such as rate(1 hour) or rate(5 minutes)."

typedef enum DomKind
{
	DOM_NONE,					/* ? */
	DOM_SET,					/* values, ranges, steps, * */
	DOM_LAST,					/* L */
	DOM_LAST_WEEKDAY,			/* LW */
	DOM_NEAREST_WEEKDAY			/* nW */
} DomKind;

typedef enum DowKind
{
	DOW_NONE,					/* ? */
	DOW_SET,					/* values, ranges, steps, *, L (Saturday) */
	DOW_LAST_OF_MONTH,			/* nL: the month's last such weekday */
	DOW_NTH						/* n#k: the month's k-th such weekday */
} DowKind;

/* A parsed schedule expression. */
typedef struct EbSchedule
{
	bool		is_rate;
	int64		rate_usecs;
	uint64		minutes;		/* bit n: minute n */
	uint64		hours;
	uint64		dom;			/* bit n: day n, 1 to 31 */
	uint64		months;			/* bit n: month n, 1 to 12 */
	uint64		dow;			/* bit n: weekday n, 1 (Sunday) to 7 */
	bool		years[EB_CRON_NYEARS];
	DomKind		dom_kind;
	int			dom_n;			/* the day of nW */
	DowKind		dow_kind;
	int			dow_n;			/* the weekday of nL and n#k */
	int			dow_nth;		/* the k of n#k */
} EbSchedule;

/* One cron field: its name, range and the names its values may take. */
typedef struct CronField
{
	const char *name;
	int			lo;
	int			hi;
	const char *const *names;	/* names[i] is value lo + i; or NULL */
} CronField;

static const char *const month_names[] = {
	"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT",
	"NOV", "DEC"
};
static const char *const day_names[] = {
	"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"
};

enum
{
	F_MINUTES, F_HOURS, F_DOM, F_MONTH, F_DOW, F_YEAR, F_COUNT
};

static const CronField cron_fields[F_COUNT] = {
	{"Minutes", 0, 59, NULL},
	{"Hours", 0, 23, NULL},
	{"Day-of-month", 1, 31, NULL},
	{"Month", 1, 12, month_names},
	{"Day-of-week", 1, 7, day_names},
	{"Year", EB_CRON_FIRST_YEAR, EB_CRON_LAST_YEAR, NULL}
};

/* The rule whose Scheduled Event is being published, or NULL. */
static const char *publishing_rule = NULL;

/*
 * Raises the error for a bad schedule expression: 22023 naming the
 * expression, the field and the token; `hint` shows a valid example.
 */
static void pg_attribute_noreturn()
schedule_error(const char *expr, const char *field, const char *token,
			   const char *hint, const char *fmt,...)
pg_attribute_printf(5, 6);

static void
schedule_error(const char *expr, const char *field, const char *token,
			   const char *hint, const char *fmt,...)
{
	char		detail[512];
	va_list		args;

	va_start(args, fmt);
	vsnprintf(detail, sizeof(detail), fmt, args);
	va_end(args);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid schedule expression \"%s\": bad %s \"%s\"",
					expr, field, token),
			 errdetail("%s", detail),
			 errhint("%s", hint)));
}

/*
 * Reads one value of a cron field at *p: a number or, where the field has
 * names, a three-letter name (any case).  Returns false when there is
 * none; advances *p past it.
 */
static bool
read_value(const CronField *f, const char **p, int *value)
{
	const char *s = *p;

	if (isdigit((unsigned char) *s))
	{
		int			v = 0;

		while (isdigit((unsigned char) *s))
		{
			if (v > 100000)
				return false;
			v = v * 10 + (*s - '0');
			s++;
		}
		*value = v;
		*p = s;
		return true;
	}
	if (f->names != NULL)
	{
		for (int i = 0; i <= f->hi - f->lo; i++)
			if (pg_strncasecmp(s, f->names[i], 3) == 0)
			{
				*value = f->lo + i;
				*p = s + 3;
				return true;
			}
	}
	return false;
}

/* Raises the error for a value out of its field's range. */
static void
check_range(const char *expr, const CronField *f, const char *item, int v)
{
	if (v < f->lo || v > f->hi)
		schedule_error(expr, f->name, item, EB_SCHEDULE_HINT_CRON,
					   "%s takes %d to %d; %d is out of range.",
					   f->name, f->lo, f->hi, v);
}

/*
 * Parses one item of a list (a value, a-b, *, with an optional /step) of
 * field f into *bits (a bitmap from bit lo on, or years[] for the Year).
 */
static void
parse_item(const char *expr, int fi, const char *item, uint64 *bits,
		   bool *years)
{
	const CronField *f = &cron_fields[fi];
	const char *p = item;
	int			from,
				to,
				step = 1;

	if (*p == '*')
	{
		from = f->lo;
		to = f->hi;
		p++;
	}
	else
	{
		if (!read_value(f, &p, &from))
			schedule_error(expr, f->name, item, EB_SCHEDULE_HINT_CRON,
						   "%s takes numbers%s, *, ranges a-b, steps /n and lists with \",\".",
						   f->name, f->names ? " or names" : "");
		check_range(expr, f, item, from);
		to = from;
		if (*p == '-')
		{
			p++;
			if (!read_value(f, &p, &to))
				schedule_error(expr, f->name, item, EB_SCHEDULE_HINT_CRON,
							   "A range is two values with \"-\" between them.");
			check_range(expr, f, item, to);
			if (to < from)
				schedule_error(expr, f->name, item, EB_SCHEDULE_HINT_CRON,
							   "A range goes from the lower value to the higher.");
		}
		else if (*p == '/')
			to = f->hi;			/* a/n: from a to the end */
	}
	if (*p == '/')
	{
		p++;
		if (!isdigit((unsigned char) *p))
			schedule_error(expr, f->name, item, EB_SCHEDULE_HINT_CRON,
						   "A step is \"/\" and a number.");
		step = 0;
		while (isdigit((unsigned char) *p))
		{
			if (step > 100000)
				break;
			step = step * 10 + (*p - '0');
			p++;
		}
		if (step < 1 || step > f->hi - f->lo + 1)
			schedule_error(expr, f->name, item, EB_SCHEDULE_HINT_CRON,
						   "A step of %s is 1 to %d.", f->name,
						   f->hi - f->lo + 1);
	}
	if (*p != '\0')
		schedule_error(expr, f->name, item, EB_SCHEDULE_HINT_CRON,
					   "%s takes numbers%s, *, ranges a-b, steps /n and lists with \",\".",
					   f->name, f->names ? " or names" : "");
	for (int v = from; v <= to; v += step)
	{
		if (years != NULL)
			years[v - EB_CRON_FIRST_YEAR] = true;
		else
			*bits |= UINT64CONST(1) << v;
	}
}

/* Reads an unsigned number that is all of `s`; -1 if `s` is not one. */
static int
whole_number(const char *s, size_t len)
{
	int			v = 0;

	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++)
	{
		if (!isdigit((unsigned char) s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/*
 * Parses a Day-of-month or Day-of-week field's L, W and # forms, which
 * stand alone in their field.  Returns false when `tok` is none of them.
 */
static bool
parse_special(const char *expr, int fi, const char *tok, EbSchedule *s)
{
	size_t		len = strlen(tok);
	const CronField *f = &cron_fields[fi];
	bool		special;

	/* no name of a day or month ends in L or holds #; WED holds a W */
	if (fi == F_DOM)
		special = strpbrk(tok, "LlWw") != NULL;
	else
		special = strchr(tok, '#') != NULL ||
			(len > 0 && (tok[len - 1] == 'L' || tok[len - 1] == 'l'));
	if (!special)
		return false;
	if (strchr(tok, ',') != NULL)
		schedule_error(expr, f->name, tok, EB_SCHEDULE_HINT_CRON,
					   "L, W and # stand alone in their field, not in a list.");
	if (fi == F_DOM)
	{
		if (pg_strcasecmp(tok, "L") == 0)
			s->dom_kind = DOM_LAST;
		else if (pg_strcasecmp(tok, "LW") == 0)
			s->dom_kind = DOM_LAST_WEEKDAY;
		else if (len >= 2 && (tok[len - 1] == 'W' || tok[len - 1] == 'w') &&
				 (s->dom_n = whole_number(tok, len - 1)) >= 0)
		{
			check_range(expr, f, tok, s->dom_n);
			s->dom_kind = DOM_NEAREST_WEEKDAY;
		}
		else
			schedule_error(expr, f->name, tok, EB_SCHEDULE_HINT_CRON,
						   "Day-of-month takes L (the last day), LW (the last weekday) or nW (the weekday nearest day n).");
		return true;
	}
	if (fi == F_DOW)
	{
		const char *hash = strchr(tok, '#');
		const char *p = tok;

		if (pg_strcasecmp(tok, "L") == 0)
		{
			/* L alone: the last day of the week, Saturday */
			s->dow_kind = DOW_SET;
			s->dow = UINT64CONST(1) << 7;
			return true;
		}
		if (hash != NULL)
		{
			if (!read_value(f, &p, &s->dow_n) || p != hash)
				schedule_error(expr, f->name, tok, EB_SCHEDULE_HINT_CRON,
							   "n#k is a weekday (1 to 7 or SUN to SAT), \"#\" and k from 1 to 5, such as 2#1 (the first Monday).");
			check_range(expr, f, tok, s->dow_n);
			s->dow_nth = whole_number(hash + 1, strlen(hash + 1));
			if (s->dow_nth < 1 || s->dow_nth > 5)
				schedule_error(expr, f->name, tok, EB_SCHEDULE_HINT_CRON,
							   "The k of n#k is 1 to 5.");
			s->dow_kind = DOW_NTH;
			return true;
		}
		if (len >= 2 && (tok[len - 1] == 'L' || tok[len - 1] == 'l') &&
			read_value(f, &p, &s->dow_n) && p == tok + len - 1)
		{
			check_range(expr, f, tok, s->dow_n);
			s->dow_kind = DOW_LAST_OF_MONTH;
			return true;
		}
		schedule_error(expr, f->name, tok, EB_SCHEDULE_HINT_CRON,
					   "Day-of-week takes L (Saturday), nL (the month's last weekday n) or n#k (its k-th weekday n).");
	}
	schedule_error(expr, f->name, tok, EB_SCHEDULE_HINT_CRON,
				   "L and W belong to Day-of-month, L and # to Day-of-week.");
}

/* Parses the six fields of a cron() expression into *s. */
static void
parse_cron(const char *expr, const char *body, EbSchedule *s)
{
	char	   *copy = pstrdup(body);
	char	   *fields[F_COUNT + 1];
	int			n = 0;
	char	   *save = NULL;
	char	   *dom_text = NULL;
	char	   *dow_text = NULL;

	for (char *tok = strtok_r(copy, " ", &save); tok != NULL;
		 tok = strtok_r(NULL, " ", &save))
	{
		if (n == F_COUNT)
		{
			n++;
			break;
		}
		fields[n++] = tok;
	}
	if (n == F_COUNT)
	{
		/* the fields as given, for the error below (strtok cuts them up) */
		dom_text = pstrdup(fields[F_DOM]);
		dow_text = pstrdup(fields[F_DOW]);
	}
	if (n != F_COUNT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid schedule expression \"%s\": cron() takes six fields", expr),
				 errdetail("The fields are Minutes Hours Day-of-month Month Day-of-week Year; %s %d.",
						   n > F_COUNT ? "there are more than" : "there are", n > F_COUNT ? F_COUNT : n),
				 errhint("%s", EB_SCHEDULE_HINT_CRON)));

	for (int fi = 0; fi < F_COUNT; fi++)
	{
		const CronField *f = &cron_fields[fi];
		char	   *item;
		char	   *isave = NULL;
		uint64	   *bits;

		if (strcmp(fields[fi], "?") == 0)
		{
			if (fi != F_DOM && fi != F_DOW)
				schedule_error(expr, f->name, "?", EB_SCHEDULE_HINT_CRON,
							   "? belongs to Day-of-month or Day-of-week only.");
			continue;			/* the kind stays NONE */
		}
		if (fi == F_DOM || fi == F_DOW)
		{
			if (parse_special(expr, fi, fields[fi], s))
				continue;
			if (fi == F_DOM)
				s->dom_kind = DOM_SET;
			else
				s->dow_kind = DOW_SET;
		}
		bits = fi == F_MINUTES ? &s->minutes : fi == F_HOURS ? &s->hours :
			fi == F_DOM ? &s->dom : fi == F_MONTH ? &s->months :
			fi == F_DOW ? &s->dow : NULL;
		/* strtok would pass over empty items */
		if (fields[fi][0] == ',' || fields[fi][strlen(fields[fi]) - 1] == ',' ||
			strstr(fields[fi], ",,") != NULL)
			schedule_error(expr, f->name, fields[fi], EB_SCHEDULE_HINT_CRON,
						   "A list is values separated by single commas.");
		for (item = strtok_r(fields[fi], ",", &isave); item != NULL;
			 item = strtok_r(NULL, ",", &isave))
			parse_item(expr, fi, item, bits, fi == F_YEAR ? s->years : NULL);
	}
	if ((s->dom_kind == DOM_NONE) == (s->dow_kind == DOW_NONE))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid schedule expression \"%s\": one of Day-of-month and Day-of-week must be ?", expr),
				 errdetail("Day-of-month is \"%s\" and Day-of-week is \"%s\": %s.",
						   dom_text, dow_text,
						   s->dom_kind == DOM_NONE ? "both are ?" : "neither is ?"),
				 errhint("%s", EB_SCHEDULE_HINT_CRON)));
	pfree(copy);
}

/* Parses a rate() expression's "value unit" into *s. */
static void
parse_rate(const char *expr, const char *body, EbSchedule *s)
{
	const char *p = body;
	int64		value = 0;
	const char *unit;
	int64		unit_usecs;
	bool		plural;

	if (!isdigit((unsigned char) *p))
		schedule_error(expr, "rate value", body, EB_SCHEDULE_HINT_RATE,
					   "The value is a whole number of 1 or more.");
	while (isdigit((unsigned char) *p))
	{
		if (value <= INT64CONST(100000000))
			value = value * 10 + (*p - '0');
		p++;
	}
	if (*p != ' ')
		schedule_error(expr, "rate value", body, EB_SCHEDULE_HINT_RATE,
					   "The value is a whole number, then one space and the unit.");
	unit = p + 1;
	if (strcmp(unit, "minute") == 0 || strcmp(unit, "minutes") == 0)
		unit_usecs = USECS_PER_MINUTE;
	else if (strcmp(unit, "hour") == 0 || strcmp(unit, "hours") == 0)
		unit_usecs = USECS_PER_HOUR;
	else if (strcmp(unit, "day") == 0 || strcmp(unit, "days") == 0)
		unit_usecs = USECS_PER_DAY;
	else
		schedule_error(expr, "rate unit", unit, EB_SCHEDULE_HINT_RATE,
					   "The unit is minute, minutes, hour, hours, day or days.");
	if (value < 1)
		schedule_error(expr, "rate value", body, EB_SCHEDULE_HINT_RATE,
					   "The value is a whole number of 1 or more.");
	plural = unit[strlen(unit) - 1] == 's';
	if (plural != (value > 1))
		schedule_error(expr, "rate unit", unit, EB_SCHEDULE_HINT_RATE,
					   "The unit is singular for a value of 1 and plural for more: rate(1 %.*s), rate(%lld %s%s).",
					   (int) (strlen(unit) - (plural ? 1 : 0)), unit,
					   (long long) (value > 1 ? value : 2), unit, plural ? "" : "s");
	if (value > EB_RATE_MAX_DAYS * (USECS_PER_DAY / unit_usecs))
		schedule_error(expr, "rate value", body, EB_SCHEDULE_HINT_RATE,
					   "The longest rate is %d days.", EB_RATE_MAX_DAYS);
	s->is_rate = true;
	s->rate_usecs = value * unit_usecs;
}

/*
 * Parses a schedule expression into *s, or raises 22023 naming the field
 * and the bad token.
 */
static void
parse_schedule(const char *expr, EbSchedule *s)
{
	size_t		len = strlen(expr);
	char	   *body;

	memset(s, 0, sizeof(*s));
	if (len > EB_SCHEDULE_MAX_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("schedule expression is too long"),
				 errdetail("It has %zu bytes; the limit is %d.", len, EB_SCHEDULE_MAX_LEN),
				 errhint("%s", EB_SCHEDULE_HINT_CRON)));
	if (len > 6 && strncmp(expr, "rate(", 5) == 0 && expr[len - 1] == ')')
	{
		body = pnstrdup(expr + 5, len - 6);
		parse_rate(expr, body, s);
	}
	else if (len > 6 && strncmp(expr, "cron(", 5) == 0 && expr[len - 1] == ')')
	{
		body = pnstrdup(expr + 5, len - 6);
		parse_cron(expr, body, s);
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid schedule expression \"%s\"", expr),
				 errdetail("A schedule is rate(value unit) or cron(Minutes Hours Day-of-month Month Day-of-week Year)."),
				 errhint("Write, for example, rate(5 minutes) or cron(0 12 * * ? *).")));
	pfree(body);
}

/*
 * The time zone named `name`, or 22023.  The names are the tz database's
 * (IANA's), as PostgreSQL's TimeZone setting takes them.
 */
static pg_tz *
schedule_zone(const char *name)
{
	pg_tz	   *tz = NULL;
	bool		ok = strlen(name) > 0 && strlen(name) < TZ_STRLEN_MAX &&
		isalpha((unsigned char) name[0]);

	for (const char *p = name; ok && *p; p++)
		ok = isalnum((unsigned char) *p) || strchr("/_+-", *p) != NULL;
	if (ok)
		tz = pg_tzset(name);
	if (tz == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid schedule time zone \"%s\"", name),
				 errdetail("A schedule's time zone is a name of the tz database."),
				 errhint("Pass a name such as 'UTC', 'Europe/Berlin' or 'America/New_York'; SELECT name FROM pg_timezone_names lists them.")));
	return tz;
}

/* Unix seconds of a TimestampTz (rounded down). */
static pg_time_t
unix_seconds(TimestampTz t)
{
	int64		s = t / USECS_PER_SEC;

	if (t < 0 && t % USECS_PER_SEC != 0)
		s--;
	return (pg_time_t) (s + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY);
}

/* The TimestampTz of Unix seconds. */
static TimestampTz
from_unix_seconds(pg_time_t s)
{
	return ((int64) s - (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)
		* USECS_PER_SEC;
}

/* The zone's offset from UTC, in seconds east, at Unix second `t`. */
static long
zone_offset(pg_time_t t, const pg_tz *tz)
{
	struct pg_tm *tm = pg_localtime(&t, tz);

	return tm != NULL ? tm->tm_gmtoff : 0;
}

/*
 * The first instant at which the zone's clocks show `local` (Unix seconds
 * of the wall-clock time, as if it were UTC): false when they never do (a
 * daylight-saving gap).  Of the two instants of an overlap, the first.
 */
static bool
local_to_instant(pg_time_t local, const pg_tz *tz, pg_time_t *instant)
{
	long		offsets[3];
	bool		found = false;

	offsets[0] = zone_offset(local - SECS_PER_DAY, tz);
	offsets[1] = zone_offset(local, tz);
	offsets[2] = zone_offset(local + SECS_PER_DAY, tz);
	for (int i = 0; i < 3; i++)
	{
		pg_time_t	u = local - offsets[i];

		if (zone_offset(u, tz) == offsets[i] && (!found || u < *instant))
		{
			*instant = u;
			found = true;
		}
	}
	return found;
}

/* The number of days of a month. */
static int
days_in_month(int year, int month)
{
	return day_tab[isleap(year)][month - 1];
}

/* The weekday of a date, 1 (Sunday) to 7. */
static int
weekday(int year, int month, int day)
{
	return j2day(date2j(year, month, day)) + 1;
}

/* Does the schedule's Day-of-month or Day-of-week take this date? */
static bool
day_matches(const EbSchedule *s, int y, int m, int d)
{
	int			dim = days_in_month(y, m);
	int			wd;

	switch (s->dom_kind)
	{
		case DOM_SET:
			return (s->dom & (UINT64CONST(1) << d)) != 0;
		case DOM_LAST:
			return d == dim;
		case DOM_LAST_WEEKDAY:
			{
				int			last = dim;

				wd = weekday(y, m, dim);
				if (wd == 1)
					last -= 2;	/* Sunday: Friday */
				else if (wd == 7)
					last -= 1;	/* Saturday: Friday */
				return d == last;
			}
		case DOM_NEAREST_WEEKDAY:
			{
				int			n = s->dom_n;
				int			target = n;

				if (n > dim)
					return false;	/* no such day this month */
				wd = weekday(y, m, n);
				if (wd == 7)	/* Saturday: the Friday, or Monday the 3rd */
					target = n == 1 ? 3 : n - 1;
				else if (wd == 1)	/* Sunday: the Monday, or the Friday */
					target = n == dim ? n - 2 : n + 1;
				return d == target;
			}
		case DOM_NONE:
			break;
	}
	wd = weekday(y, m, d);
	switch (s->dow_kind)
	{
		case DOW_SET:
			return (s->dow & (UINT64CONST(1) << wd)) != 0;
		case DOW_LAST_OF_MONTH:
			return wd == s->dow_n && d + 7 > dim;
		case DOW_NTH:
			return wd == s->dow_n && (d - 1) / 7 + 1 == s->dow_nth;
		case DOW_NONE:
			break;
	}
	return false;
}

/*
 * The first time of the cron schedule strictly after `after`, in zone tz:
 * false when there is none up to the end of 2199.  Walks the calendar of
 * the zone's wall clock day by day (skipping years and months that cannot
 * match), at most about 84,000 days.
 */
static bool
cron_next(const EbSchedule *s, const pg_tz *tz, TimestampTz after,
		  TimestampTz *result)
{
	pg_time_t	after_s = unix_seconds(after);
	struct pg_tm *tm = pg_localtime(&after_s, tz);
	int			y,
				m,
				d,
				start;

	if (tm == NULL)
		return false;
	y = tm->tm_year + 1900;
	m = tm->tm_mon + 1;
	d = tm->tm_mday;
	/* whole minutes only: the first one after the wall-clock time of after */
	start = tm->tm_hour * 60 + tm->tm_min + 1;
	if (y < EB_CRON_FIRST_YEAR)
	{
		y = EB_CRON_FIRST_YEAR;
		m = d = 1;
		start = 0;
	}

	while (y <= EB_CRON_LAST_YEAR)
	{
		CHECK_FOR_INTERRUPTS();
		if (!s->years[y - EB_CRON_FIRST_YEAR])
		{
			y++;
			m = d = 1;
			start = 0;
			continue;
		}
		if (d > days_in_month(y, m) || !(s->months & (UINT64CONST(1) << m)))
		{
			if (++m > 12)
			{
				m = 1;
				y++;
			}
			d = 1;
			start = 0;
			continue;
		}
		if (day_matches(s, y, m, d))
		{
			pg_time_t	day_s = (pg_time_t) (date2j(y, m, d) - UNIX_EPOCH_JDATE) * SECS_PER_DAY;

			for (int h = start / 60; h < 24; h++)
			{
				if (!(s->hours & (UINT64CONST(1) << h)))
					continue;
				for (int mi = h == start / 60 ? start % 60 : 0; mi < 60; mi++)
				{
					pg_time_t	at = 0;

					if (!(s->minutes & (UINT64CONST(1) << mi)))
						continue;
					if (local_to_instant(day_s + h * SECS_PER_HOUR + mi * SECS_PER_MINUTE,
										 tz, &at) && at > after_s)
					{
						*result = from_unix_seconds(at);
						return true;
					}
				}
			}
		}
		d++;
		start = 0;
	}
	return false;
}

/*
 * The first time of the schedule strictly after `after`: rates count whole
 * intervals from `anchor`.  False when there is none (a cron schedule's
 * last year has passed; a time past what a timestamp holds).
 */
static bool
schedule_next(const EbSchedule *s, const pg_tz *tz, TimestampTz anchor,
			  TimestampTz after, TimestampTz *result)
{
	if (TIMESTAMP_NOT_FINITE(after) || TIMESTAMP_NOT_FINITE(anchor))
		return false;
	if (s->is_rate)
	{
		/* an event's time ends with the year 9999 */
		TimestampTz limit = (TimestampTz) (date2j(10000, 1, 1) - POSTGRES_EPOCH_JDATE) * USECS_PER_DAY;
		int64		k = 1;

		if (anchor >= limit)
			return false;
		if (after >= anchor)
			k = (after - anchor) / s->rate_usecs + 1;
		if (k > (limit - anchor) / s->rate_usecs)
			return false;
		*result = anchor + k * s->rate_usecs;
		return *result < limit;
	}
	return cron_next(s, tz, after, result);
}

/*
 * eventbus.check_schedule(schedule text, timezone text) RETURNS void:
 * raises 22023 for a bad expression or zone, or for a schedule that never
 * fires again (such as cron(0 0 31 2 ? *)); put_rule's check.
 */
Datum
eventbus_check_schedule(PG_FUNCTION_ARGS)
{
	char	   *expr;
	char	   *zone;
	EbSchedule	s;
	pg_tz	   *tz;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz next;

	if (PG_ARGISNULL(0))
		PG_RETURN_VOID();
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("schedule time zone must not be null"),
				 errhint("Pass a name such as 'UTC' or 'Europe/Berlin'.")));
	expr = text_to_cstring(PG_GETARG_TEXT_PP(0));
	zone = text_to_cstring(PG_GETARG_TEXT_PP(1));
	parse_schedule(expr, &s);
	tz = schedule_zone(zone);
	if (!schedule_next(&s, tz, now, now, &next))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("schedule expression \"%s\" never fires", expr),
				 errdetail("No time from now to the end of %d matches it in time zone %s.",
						   EB_CRON_LAST_YEAR, zone),
				 errhint("Check the day, month and year fields: cron(0 0 31 2 ? *) asks for February 31st.")));
	PG_RETURN_VOID();
}

/*
 * eventbus.next_schedule_times(schedule text, timezone text, after
 * timestamptz, count int) RETURNS SETOF timestamptz: the next `count`
 * times (1 to 1000) the schedule fires after `after`; a rate counts from
 * `after`.  Fewer when the schedule ends.
 */
Datum
eventbus_next_schedule_times(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	EbSchedule	s;
	pg_tz	   *tz;
	TimestampTz after;
	TimestampTz t;
	int			count;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the arguments of next_schedule_times() must not be null"),
				 errhint("Pass a schedule such as 'rate(5 minutes)', a time zone such as 'UTC', a time and a count.")));
	count = PG_GETARG_INT32(3);
	if (count < 1 || count > EB_SCHEDULE_MAX_COUNT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("count of next_schedule_times() must be between 1 and %d",
						EB_SCHEDULE_MAX_COUNT),
				 errdetail("The count given is %d.", count),
				 errhint("Ask for at most %d times; pass a later \"after\" for more.",
						 EB_SCHEDULE_MAX_COUNT)));
	parse_schedule(text_to_cstring(PG_GETARG_TEXT_PP(0)), &s);
	tz = schedule_zone(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	after = PG_GETARG_TIMESTAMPTZ(2);

	/* a set of a scalar: the tuple descriptor the caller expects */
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	t = after;
	for (int i = 0; i < count; i++)
	{
		Datum		value;
		bool		isnull = false;

		CHECK_FOR_INTERRUPTS();
		if (!schedule_next(&s, tz, after, t, &t))
			break;
		value = TimestampTzGetDatum(t);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	return (Datum) 0;
}

/*
 * eventbus.schedule_next_run(schedule text, timezone text, due
 * timestamptz, now timestamptz) RETURNS timestamptz: the first time of the
 * schedule strictly after `now`, a rate counting from `due` (the time
 * that just fired, or when the schedule was set); NULL when it never
 * fires again.  One time, however many were missed: the maintenance
 * process's step.
 */
Datum
eventbus_schedule_next_run(PG_FUNCTION_ARGS)
{
	EbSchedule	s;
	pg_tz	   *tz;
	TimestampTz next;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		PG_RETURN_NULL();
	parse_schedule(text_to_cstring(PG_GETARG_TEXT_PP(0)), &s);
	tz = schedule_zone(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	if (!schedule_next(&s, tz, PG_GETARG_TIMESTAMPTZ(2),
					   PG_GETARG_TIMESTAMPTZ(3), &next))
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(next);
}

/* See schedule.h. */
const char *
eb_schedule_publishing_rule(void)
{
	return publishing_rule;
}

/*
 * eventbus.publish_scheduled_event(bus text, rule text, scheduled_time
 * timestamptz) RETURNS uuid: publishes the rule's Scheduled Event, as
 * EventBridge makes it (source aws.events, detail-type Scheduled Event,
 * resources the rule's ARN, detail {}, time the scheduled time), through
 * the one publish path; while it is inserted, the match trigger sends it
 * to this rule's targets and to no other rule.
 */
Datum
eventbus_publish_scheduled_event(PG_FUNCTION_ARGS)
{
	EbEvent		ev;
	EbPublishError err;
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));
	char	   *rule;
	StringInfoData arn;
	Datum		arn_datum;
	volatile bool ok = false;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		elog(ERROR, "eventbus.publish_scheduled_event() takes no null");
	ev.bus = text_to_cstring(PG_GETARG_TEXT_PP(0));
	rule = text_to_cstring(PG_GETARG_TEXT_PP(1));
	ev.source = cstring_to_text("aws.events");
	ev.detail_type = cstring_to_text("Scheduled Event");
	ev.detail = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	initStringInfo(&arn);
	eb_rule_arn(&arn, eventbus_region, eventbus_account, ev.bus, rule);
	arn_datum = CStringGetTextDatum(arn.data);
	ev.resources = construct_array(&arn_datum, 1, TEXTOID, -1, false, TYPALIGN_INT);
	ev.time_given = true;
	ev.time = PG_GETARG_TIMESTAMPTZ(2);

	/* the trigger fires within the insert; forget the rule even on error */
	publishing_rule = rule;
	PG_TRY();
	{
		ok = eb_publish(&ev, id, &err);
	}
	PG_FINALLY();
	{
		publishing_rule = NULL;
	}
	PG_END_TRY();
	if (!ok)
		eb_raise_publish_error(&err);
	PG_RETURN_UUID_P(id);
}
