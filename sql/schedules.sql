-- schedules: EventBridge's rate() and cron() expressions (each field's
-- rules and errors), the next times in a time zone across daylight-saving
-- gaps and overlaps, put_rule's schedule arguments, and one step of the
-- maintenance process's firing (the event, its only rule, missed ticks).
\i sql/include/error_of.sql
\pset format unaligned
SET timezone = 'UTC';

-- the times a schedule gives after a time, shown in its zone
CREATE FUNCTION pg_temp.times(s text, after timestamptz, n int DEFAULT 4, tz text DEFAULT 'UTC')
RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(to_char(t AT TIME ZONE tz, 'Dy YYYY-MM-DD HH24:MI')
					  || CASE WHEN tz <> 'UTC' THEN to_char(t, ' (HH24:MI"Z")') ELSE '' END, ', ')
	FROM eventbus.next_schedule_times(s, tz, after, n) t
$$;

-- rate(): fixed intervals from the time given
SELECT s, pg_temp.times(s, '2026-12-03 10:17:30+00', 3) FROM (VALUES
	('rate(1 minute)'), ('rate(5 minutes)'), ('rate(1 hour)'), ('rate(12 hours)'),
	('rate(1 day)'), ('rate(7 days)'), ('rate(36500 days)')) v(s);

-- cron(): EventBridge's examples, then each wildcard
SELECT s, pg_temp.times(s, '2026-12-03 10:17:30+00') FROM (VALUES
	('cron(0 10 * * ? *)'),				-- 10:00 every day
	('cron(15 12 * * ? *)'),			-- 12:15 every day
	('cron(0 18 ? * MON-FRI *)'),		-- 18:00 Monday to Friday
	('cron(0 8 1 * ? *)'),				-- 8:00 on the first of the month
	('cron(0/15 * * * ? *)'),			-- every 15 minutes
	('cron(0/10 * ? * MON-FRI *)'),		-- every 10 minutes, Monday to Friday
	('cron(0/5 8-17 ? * MON-FRI *)'),	-- every 5 minutes, 8:00 to 17:55, weekdays
	('cron(0 9 ? * 2#1 *)'),			-- 9:00 on the first Monday
	('cron(0 12 ? * 6#5 *)'),			-- the fifth Friday, when there is one
	('cron(30 4 L * ? *)'),				-- the last day of the month
	('cron(30 4 LW * ? *)'),			-- the last weekday of the month
	('cron(0 9 15W * ? *)'),			-- the weekday nearest the 15th
	('cron(0 9 1W * ? *)'),				-- the 1st, or Monday 3rd when the 1st is a Saturday
	('cron(0 9 31W * ? *)'),			-- months with a 31st only
	('cron(0 9 ? * 6L *)'),				-- the last Friday
	('cron(0 9 ? * L *)'),				-- L alone: Saturday, the week's last day
	('cron(0 9 ? * sun,Wed *)'),		-- names, any case
	('cron(0 0 29 FEB ? *)'),			-- leap days
	('cron(0 0 1 JAN-MAR/2 ? 2027,2029)'),	-- months with a step, a list of years
	('cron(5,10-12,50/5 0 ? 12 THU 2026)'),	-- lists, ranges and a step together
	('cron(0 0 1 1 ? 2199)')) v(s);		-- the last year there is

-- no time after the end: fewer rows, or none
SELECT pg_temp.times('cron(0 0 1 1 ? 2027-2028)', '2026-12-03', 5);
SELECT count(*) FROM eventbus.next_schedule_times('cron(0 0 31 2 ? *)', 'UTC', '2026-12-03', 5);

-- daylight saving: Europe/Berlin's gap (2026-03-29 02:00 -> 03:00) and
-- overlap (2026-10-25 03:00 -> 02:00); America/New_York's (2026-03-08,
-- 2026-11-01 02:00 -> 01:00).  A time in the gap is skipped; a time in the
-- overlap runs once, at its first occurrence.
SELECT pg_temp.times('cron(30 2 * * ? *)', '2026-03-27', 4, 'Europe/Berlin') AS berlin_gap;
SELECT pg_temp.times('cron(30 2 * * ? *)', '2026-10-24', 3, 'Europe/Berlin') AS berlin_overlap;
SELECT pg_temp.times('cron(0/20 1-3 25 OCT ? 2026)', '2026-10-24', 9, 'Europe/Berlin') AS berlin_overlap_every_20_min;
SELECT pg_temp.times('cron(30 2 * * ? *)', '2026-03-07', 3, 'America/New_York') AS new_york_gap;
SELECT pg_temp.times('cron(30 1 * * ? *)', '2026-10-31', 3, 'America/New_York') AS new_york_overlap;
SELECT pg_temp.times('cron(0/30 0-2 1 NOV ? 2026)', '2026-11-01 04:00+00', 6, 'America/New_York') AS new_york_overlap_every_30_min;
-- from inside the repeated hour (its second pass): its times are done
SELECT pg_temp.times('cron(0/30 0-2 1 NOV ? 2026)', '2026-11-01 06:10+00', 2, 'America/New_York') AS from_the_second_pass;
-- a rate ignores the zone: fixed intervals across the change
SELECT pg_temp.times('rate(1 hour)', '2026-03-29 00:30+01', 3, 'Europe/Berlin') AS rate_across_gap;

-- bad expressions: 22023 naming the field and the token
SELECT s, pg_temp.error_of(format('SELECT eventbus.next_schedule_times(%L)', s)) FROM (VALUES
	('every 5 minutes'),
	('cron(0 12 * * ?)'),
	('cron(0 12 * * ? * *)'),
	('cron(60 12 * * ? *)'),
	('cron(0 24 * * ? *)'),
	('cron(0 12 0 * ? *)'),
	('cron(0 12 32 * ? *)'),
	('cron(0 12 * 13 ? *)'),
	('cron(0 12 * FOO ? *)'),
	('cron(0 12 ? * 0 *)'),
	('cron(0 12 ? * 8 *)'),
	('cron(0 12 * * ? 1969)'),
	('cron(0 12 * * ? 2200)'),
	('cron(0 12 * * * *)'),
	('cron(0 12 ? * ? *)'),
	('cron(? 12 * * ? *)'),
	('cron(0 12 L * ? L)'),
	('cron(0 12 1,L * ? *)'),
	('cron(0 12 32W * ? *)'),
	('cron(0 12 XW * ? *)'),
	('cron(0 12 ? * 2#6 *)'),
	('cron(0 12 ? * 9#1 *)'),
	('cron(0 12 ? * 8L *)'),
	('cron(0 12 ? * 1#1,2 *)'),
	('cron(5-1 12 * * ? *)'),
	('cron(0/0 12 * * ? *)'),
	('cron(0/61 12 * * ? *)'),
	('cron(0, 12 * * ? *)'),
	('cron(0,,5 12 * * ? *)'),
	('cron(1-x 12 * * ? *)'),
	('rate(1 minutes)'),
	('rate(5 minute)'),
	('rate(0 minutes)'),
	('rate(-5 minutes)'),
	('rate(5 weeks)'),
	('rate(5minutes)'),
	('rate(5  minutes)'),
	('rate(36501 days)'),
	('rate(99999999999999999999 minutes)')) v(s);
SELECT pg_temp.error_of('SELECT eventbus.next_schedule_times(repeat(''*'', 300))');
SELECT pg_temp.error_of($$SELECT eventbus.next_schedule_times('rate(1 hour)', 'Mars/Olympus_Mons')$$);
SELECT pg_temp.error_of($$SELECT eventbus.next_schedule_times('rate(1 hour)', '<+03>-3')$$);
SELECT pg_temp.error_of($$SELECT eventbus.next_schedule_times('rate(1 hour)', count => 0)$$);
SELECT pg_temp.error_of($$SELECT eventbus.next_schedule_times('rate(1 hour)', count => 1001)$$);
SELECT pg_temp.error_of($$SELECT eventbus.next_schedule_times('rate(1 hour)', NULL)$$);
SELECT count(*) FROM eventbus.next_schedule_times('cron(* * * * ? *)', 'UTC', now(), 1000);

-- put_rule: a schedule, a pattern, or both; schedules on the default bus
SELECT eventbus.put_rule('every-minute', schedule => 'rate(1 minute)');
SELECT eventbus.put_rule('noon-berlin', '{"source": ["com.example"]}',
						 schedule => 'cron(0 12 * * ? *)', schedule_timezone => 'Europe/Berlin');
SELECT name, event_pattern, schedule, schedule_timezone FROM eventbus.rules ORDER BY name;
SELECT rule, next_run_at > now() AS ahead, next_run_at <= now() + interval '1 day' AS within_a_day,
	   last_run_at FROM eventbus.schedules ORDER BY rule;
SELECT pg_temp.error_of($$SELECT eventbus.put_rule('neither')$$);
SELECT eventbus.create_event_bus('orders');
SELECT pg_temp.error_of($$SELECT eventbus.put_rule('r', bus => 'orders', schedule => 'rate(1 hour)')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_rule('r', schedule => 'rate(1 hours)')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_rule('r', schedule => 'rate(1 hour)', schedule_timezone => 'Nowhere/Town')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_rule('r', schedule => 'rate(1 hour)', schedule_timezone => NULL)$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_rule('r', schedule => 'cron(0 0 31 2 ? *)')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_rule('r', schedule => 'cron(0 0 1 1 ? 2020)')$$);
SELECT count(*) AS no_rule_r FROM eventbus.rules WHERE name = 'r';
-- an unchanged schedule keeps its next time; a changed one starts again
UPDATE eventbus.schedules SET next_run_at = '2030-01-01' WHERE rule = 'every-minute';
SELECT eventbus.put_rule('every-minute', schedule => 'rate(1 minute)', description => 'same schedule');
SELECT next_run_at FROM eventbus.schedules WHERE rule = 'every-minute';
SELECT eventbus.put_rule('every-minute', schedule => 'rate(2 minutes)');
SELECT next_run_at < '2030-01-01' AS restarted FROM eventbus.schedules WHERE rule = 'every-minute';
-- no schedule any more: no row; deleting the rule deletes its row
SELECT eventbus.put_rule('noon-berlin', '{"source": ["com.example"]}');
SELECT eventbus.delete_rule('every-minute');
SELECT count(*) AS schedules_left FROM eventbus.schedules;
-- rules as code carries the two settings, for a rule with a schedule only too
SELECT name, type FROM eventbus.code_settings('rule') ORDER BY ord;
SELECT eventbus.put_rule('as-code', schedule => 'cron(0 12 * * ? *)', schedule_timezone => 'Europe/Berlin');
SELECT r AS exported FROM jsonb_array_elements(eventbus.export() -> 'buses' -> 0 -> 'rules') r
WHERE r ->> 'name' = 'as-code';
SELECT eventbus.apply(eventbus.export()) AS unchanged;
SELECT eventbus.apply(jsonb_set(d, '{buses,0,rules}',
	(SELECT jsonb_agg(CASE WHEN r ->> 'name' = 'as-code'
						   THEN r || '{"schedule": "rate(5 minutes)", "schedule_timezone": "UTC"}' ELSE r END)
	 FROM jsonb_array_elements(d -> 'buses' -> 0 -> 'rules') r))) AS applied
FROM (SELECT eventbus.export() AS d) x;
SELECT name, event_pattern, schedule, schedule_timezone FROM eventbus.rules WHERE name = 'as-code';
SELECT eventbus.delete_rule('as-code');

-- firing: a due rule publishes one Scheduled Event with the scheduled
-- time, to its own targets only, and its next time is after now however
-- many ticks were missed
SELECT eventbus.put_rule('tick', schedule => 'rate(1 minute)');
SELECT eventbus.put_target('tick', 'tick-target', 'http://127.0.0.1:9/tick');
-- a rule that would match the event if it were matched: gets nothing
SELECT eventbus.put_rule('all-aws', '{"source": ["aws.events"]}');
SELECT eventbus.put_target('all-aws', 'aws-target', 'http://127.0.0.1:9/aws');
-- a disabled scheduled rule: its due time passes without an event
SELECT eventbus.put_rule('off', schedule => 'rate(5 minutes)', state => 'DISABLED');
SELECT eventbus.put_target('off', 'off-target', 'http://127.0.0.1:9/off');
UPDATE eventbus.schedules SET next_run_at = '2026-01-01 00:00:00+00' WHERE rule = 'tick';
UPDATE eventbus.schedules SET next_run_at = now() - interval '1 minute' WHERE rule = 'off';
BEGIN;
SELECT eventbus.schedule_step() AS handled;
SELECT eventbus.schedule_step() AS handled_again;
SELECT rule, next_run_at > now() AS ahead, next_run_at <= now() + interval '5 minutes' AS soon,
	   last_run_at FROM eventbus.schedules ORDER BY rule;
-- (earlier tests may leave events of their own)
SELECT envelope - 'id' AS envelope FROM eventbus.event_envelopes
WHERE envelope ->> 'source' = 'aws.events';
SELECT d.rule, d.target_id FROM eventbus.deliveries d
WHERE d.event_id IN (SELECT e.id FROM eventbus.events e WHERE e.source = 'aws.events') ORDER BY 1, 2;
SELECT e.time = '2026-01-01 00:00:00+00' AS scheduled_time, e.published_at > e.time AS published_late
FROM eventbus.events e WHERE e.source = 'aws.events';
ROLLBACK;

-- the ARN of a rule of another bus names the bus (no schedule there, but
-- the one spelling serves <aws.events.rule-arn> too)
SELECT eventbus.test_transform('{"source": "x", "time": "2026-01-01T00:00:00Z", "region": "local",
	"account": "000000000000", "detail": {}}',
	'{"InputTemplate": "<aws.events.rule-arn>"}', 'r1', 'orders') AS arn;

-- only for its owner: the firing and the publishing functions
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_may
FROM pg_proc p WHERE p.pronamespace = 'eventbus'::regnamespace
  AND p.proname IN ('next_schedule_times', 'check_schedule', 'check_rule_schedule',
					'schedule_next_run', 'schedule_step', 'publish_scheduled_event', 'put_rule')
ORDER BY 1;

SELECT eventbus.delete_rule('tick');
SELECT eventbus.delete_rule('all-aws');
SELECT eventbus.delete_rule('off');
SELECT eventbus.delete_rule('noon-berlin');
SELECT eventbus.delete_event_bus('orders');
