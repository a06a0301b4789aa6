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
-- the size limit counts what a target receives, the whole envelope's text:
-- 262144 bytes by default
SELECT pg_temp.error_of($$SELECT eventbus.put_event('src', 'x', jsonb_build_object('blob', repeat('x', 262144)))$$);
-- the envelope of put_event('s', 'x', {"b": "<n times x>"}) is n + overhead bytes
SELECT eventbus.put_event('s', 'x', '{"b": "x"}') AS id \gset
SELECT octet_length(eventbus.envelope(e)::text) - 1 AS overhead
FROM eventbus.events e WHERE id = :'id' \gset
SELECT eventbus.put_event('s', 'x', jsonb_build_object('b', repeat('x', 262144 - :overhead))) AS id \gset
SELECT octet_length(eventbus.envelope(e)::text) AS at_the_limit FROM eventbus.events e WHERE id = :'id';
SELECT pg_temp.error_of($$SELECT eventbus.put_event('s', 'x', jsonb_build_object('b', repeat('x', 262144 - $$ || :overhead || $$ + 1)))$$);
-- account and region are part of it ('local' is 4 bytes shorter than 'eu-west-1')
SET eventbus.region = 'local';
SELECT eventbus.put_event('s', 'x', jsonb_build_object('b', repeat('x', 262144 - :overhead + 4))) IS NOT NULL AS published;
SET eventbus.region = 'eu-west-1';
SELECT pg_temp.error_of($$SELECT eventbus.put_event('s', 'x', jsonb_build_object('b', repeat('x', 262144 - $$ || :overhead || $$ + 4)))$$);
-- and so is each resource's JSON, empty ones too
SELECT pg_temp.error_of($$SELECT eventbus.put_event('s', 'x', '{}', array_fill(''::text, ARRAY[70000]))$$);
-- a superuser may raise the limit
SET eventbus.max_event_size = '512kB';
SELECT eventbus.put_event('src', 'x', jsonb_build_object('blob', repeat('x', 262144))) IS NOT NULL AS published;
RESET eventbus.max_event_size;

-- the time must be one the envelope can spell: years 1 to 9999, UTC
SELECT pg_temp.error_of($$SELECT eventbus.put_event('s', 'x', '{}', "time" => 'infinity')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_event('s', 'x', '{}', "time" => '-infinity')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_event('s', 'x', '{}', "time" => '0044-03-15 12:00:00+00 BC')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_event('s', 'x', '{}', "time" => '0001-01-01 00:30:00+01')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_event('s', 'x', '{}', "time" => '10000-01-01 00:00:00+00')$$);
SELECT eventbus.put_event('s', 'edge', '{}', "time" => '0001-01-01 00:00:00+00') IS NOT NULL AS published,
	   eventbus.put_event('s', 'edge', '{}', "time" => '9999-12-31 23:59:59.999999+00') IS NOT NULL AS published;
SELECT eventbus.envelope(e) -> 'time' AS time
FROM eventbus.events e WHERE detail_type = 'edge' ORDER BY 1;

-- resources: a one-dimensional array of strings
SELECT pg_temp.error_of($$SELECT eventbus.put_event('s', 'x', '{}', ARRAY[['a', 'b'], ['c', 'd']])$$);
SELECT eventbus.put_event('s', 'x', '{}', '[0:1]={a,b}') AS id \gset
SELECT eventbus.envelope(e) -> 'resources' AS resources
FROM eventbus.events e WHERE id = :'id';

-- event ids are UUID version 7 (RFC 9562): time first, so each new one
-- sorts after the last; the rest random
CREATE TEMP TABLE ids AS
SELECT g, eventbus.put_event('s', 'ids', '{}') AS id FROM generate_series(1, 2000) g;
SELECT count(*) FILTER (WHERE substr(id::text, 15, 1) = '7') AS version_7,
	   count(*) FILTER (WHERE substr(id::text, 20, 1) IN ('8', '9', 'a', 'b')) AS variant_rfc,
	   count(DISTINCT substr(id::text, 25)) AS distinct_random_tails,
	   bool_and(abs(('x' || lpad(replace(substr(id::text, 1, 13), '-', ''), 16, '0'))::bit(64)::bigint
					- extract(epoch FROM clock_timestamp()) * 1000) < 60000) AS unix_ms_prefix
FROM ids;
SELECT count(*) AS out_of_order
FROM (SELECT id, lag(id) OVER (ORDER BY g) AS prev FROM ids) x WHERE id <= prev;

SELECT count(*) AS events FROM eventbus.events;
DELETE FROM eventbus.events;
