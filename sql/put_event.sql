-- put_event: publishing one event, the stored row and its envelope
\i sql/include/error_of.sql
SET eventbus.account = '123456789012';
SET eventbus.region = 'eu-west-1';

SELECT eventbus.put_event('com.example.monolith', 'Customer Notification',
	'{"notification": "unrecognized-login"}', ARRAY['user@example.com']) IS NOT NULL AS published;

SELECT bus, source, detail_type, resources, detail, account, region,
	   "time" <= clock_timestamp() AS time_set, published_at IS NOT NULL AS published_at_set
FROM eventbus.events;

-- the envelope, exactly as a target receives it (id and time vary)
SELECT envelope - 'id' - 'time' AS envelope,
	   envelope ->> 'id' = id::text AS id_matches,
	   envelope ->> 'time' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$' AS time_format
FROM eventbus.event_envelopes;

-- an explicit event time, and named parameters
SELECT eventbus.put_event(source => 'com.example.billing', detail_type => 'Invoice Paid',
	detail => '{"amount": 12.5}', "time" => '2026-01-02 03:04:05.678+00') IS NOT NULL AS published;
SELECT eventbus.envelope(e) -> 'time' AS time, eventbus.envelope(e) -> 'resources' AS resources
FROM eventbus.events e WHERE source = 'com.example.billing';

-- no event, no envelope: the empty side of a LEFT JOIN gives NULL
SELECT eventbus.envelope(NULL::eventbus.events) IS NULL AS null_row,
	   eventbus.envelope(e) IS NULL AS missing_event
FROM (SELECT 1) x LEFT JOIN eventbus.events e ON false;

-- publishing is transactional: a rolled-back event is gone
BEGIN;
SELECT eventbus.put_event('com.example.rollback', 'Gone', '{}') IS NOT NULL AS published;
ROLLBACK;
SELECT count(*) FROM eventbus.events WHERE source = 'com.example.rollback';

-- bad arguments
SELECT pg_temp.error_of($$SELECT eventbus.put_event(NULL, 'x', '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_event('', 'x', '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_event('src', NULL, '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_event('src', '', '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_event('src', 'x', NULL)$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_event('src', 'x', '[1, 2]')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_event('src', 'x', '"text"')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_event(repeat('s', 257), 'x', '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_event('src', repeat('d', 129), '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_event('src', 'x', '{}', ARRAY['a', NULL])$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_event('src', 'x', '{}', bus => 'no-such-bus')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_event('src', 'x', '{}', bus => 'default' || repeat('x', 300))$$) ~ '^42704' AS long_bus_name_unknown;
-- the size limit counts as PutEvents does: 262144 bytes by default
SELECT pg_temp.error_of($$SELECT eventbus.put_event('src', 'x', jsonb_build_object('blob', repeat('x', 262144)))$$);
SELECT eventbus.put_event('s', 'x', jsonb_build_object('b', repeat('x', 262144 - 11))) IS NOT NULL AS at_the_limit;
SELECT pg_temp.error_of($$SELECT eventbus.put_event('s', 'x', jsonb_build_object('b', repeat('x', 262144 - 10)))$$);
-- a superuser may raise the limit
SET eventbus.max_event_size = '512kB';
SELECT eventbus.put_event('src', 'x', jsonb_build_object('blob', repeat('x', 262144))) IS NOT NULL AS published;
RESET eventbus.max_event_size;

SELECT count(*) AS events FROM eventbus.events;
DELETE FROM eventbus.events;
