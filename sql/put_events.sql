-- put_events: PutEvents with AWS's keys, each entry on its own
\i sql/include/error_of.sql
SELECT eventbus.create_event_bus('orders');

SELECT jsonb_pretty(jsonb_set(r, '{Entries}',
	(SELECT jsonb_agg(CASE WHEN e ? 'EventId' THEN jsonb_build_object('EventId', 'uuid') ELSE e END)
	 FROM jsonb_array_elements(r -> 'Entries') e))) AS response
FROM eventbus.put_events('[
	{"Source": "com.example.a", "DetailType": "Order Placed", "Detail": "{\"id\": 1}"},
	{"Source": "com.example.b", "DetailType": "Order Placed", "Detail": {"id": 2},
	 "Resources": ["arn:x"], "EventBusName": "orders", "Time": "2026-03-04T05:06:07Z"},
	{"DetailType": "Order Placed", "Detail": "{}"},
	{"Source": "com.example.c", "Detail": "{}"},
	{"Source": "com.example.c", "DetailType": "x"},
	{"Source": "com.example.c", "DetailType": "x", "Detail": "{not json"},
	{"Source": "com.example.c", "DetailType": "x", "Detail": "[1]"},
	{"Source": "com.example.c", "DetailType": "x", "Detail": "{}", "EventBusName": "nope"},
	{"Source": "com.example.c", "DetailType": "x", "Detail": "{}", "Resources": "arn"},
	{"Source": "com.example.d", "DetailType": "x", "Detail": "{}",
	 "EventBusName": "arn:aws:events:eu-west-1:123456789012:event-bus/orders", "Time": 1767225600}
]') AS r;

SELECT bus, source, detail_type, resources, detail,
	   CASE WHEN source = 'com.example.a' THEN 'now'
			ELSE to_char("time" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') END AS utc_time
FROM eventbus.events ORDER BY source;

-- an oversized entry fails alone
SELECT r -> 'FailedEntryCount' AS failed, r -> 'Entries' -> 0 AS first,
	   r -> 'Entries' -> 1 ? 'EventId' AS second_published
FROM eventbus.put_events(jsonb_build_array(
	jsonb_build_object('Source', 'big', 'DetailType', 'x', 'Detail', jsonb_build_object('b', repeat('x', 300000))),
	jsonb_build_object('Source', 'small', 'DetailType', 'x', 'Detail', '{}'))) AS r;
SELECT source FROM eventbus.events WHERE source IN ('big', 'small');

-- failed entries never abort the caller's transaction
BEGIN;
SELECT (eventbus.put_events('[{"Source": "x"}]')) -> 'FailedEntryCount' AS failed;
SELECT 1 AS still_usable;
COMMIT;

-- Time: RFC 3339 or unix seconds, from year 1 to 9999 UTC; anything else
-- is InvalidArgument, never an ERROR
SELECT left(t::text, 24) AS "time", r -> 'Entries' -> 0 ->> 'ErrorCode' AS code,
	   r -> 'Entries' -> 0 ->> 'ErrorMessage' AS message
FROM jsonb_array_elements('[1e20, 1e308, -1e15, 1e-400, -62135596801, 253402300800, 253402300799.9999996,
	"epoch", "now", "today", "infinity", "-infinity", "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z",
	"2026-01-01T00:00:00", "2026-01-01T00:00:00+01", "0000-12-31T23:59:59Z", "0001-01-01T00:30:00+01:00",
	"10000-01-01T00:00:00Z", "2026-01-01T00:00:00.Z", "", true, [], {}]') AS t,
	LATERAL eventbus.put_events(jsonb_build_array(jsonb_build_object(
		'Source', 's', 'DetailType', 'time', 'Detail', '{}', 'Time', t))) AS r;
CREATE TEMP TABLE timed AS
SELECT t, (r -> 'Entries' -> 0 ->> 'EventId')::uuid AS id
FROM jsonb_array_elements('[0, 1e-400, -62135596800, 253402300799.9999994, 1767225600.1234567,
	"0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2024-02-29t12:00:00.5z",
	"2026-01-01 01:30:00+01:30", "2026-06-30T23:59:59-12:00"]') WITH ORDINALITY AS x(t, n),
	LATERAL eventbus.put_events(jsonb_build_array(jsonb_build_object(
		'Source', 's', 'DetailType', 'time ok', 'Detail', '{}', 'Time', t))) AS r
ORDER BY n;
SELECT left(t::text, 32) AS "time", to_char(e."time" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS stored,
	   eventbus.envelope(e) -> 'time' AS envelope_time
FROM timed LEFT JOIN eventbus.events e USING (id);

-- every JSON type in every field is an entry code, and Detail strings that
-- PostgreSQL's parser refuses (escapes, numbers, nesting) are MalformedDetail
SELECT n, coalesce(e ->> 'ErrorCode', 'published') AS code, e ->> 'ErrorMessage' AS message
FROM eventbus.put_events(jsonb_build_array(
	jsonb_build_object('Source', 1, 'DetailType', 'x', 'Detail', '{}'),
	jsonb_build_object('Source', 's', 'DetailType', '{}'::jsonb, 'Detail', '{}'),
	jsonb_build_object('Source', 's', 'DetailType', 'x', 'Detail', 1e308),
	jsonb_build_object('Source', 's', 'DetailType', 'x', 'Detail', '{"a": "\u0000"}'),
	jsonb_build_object('Source', 's', 'DetailType', 'x', 'Detail', '{"a": 1e1000000}'),
	jsonb_build_object('Source', 's', 'DetailType', 'x', 'Detail', repeat('[', 100000)),
	jsonb_build_object('Source', 's', 'DetailType', 'x', 'Detail', '{}', 'Resources', '["a", 1]'::jsonb),
	jsonb_build_object('Source', 's', 'DetailType', 'x', 'Detail', '{}', 'EventBusName', '[]'::jsonb),
	'[]'::jsonb,
	'"entry"'::jsonb)) AS r,
	LATERAL jsonb_array_elements(r -> 'Entries') WITH ORDINALITY AS x(e, n);

-- sizes count the envelope a target receives: empty resources too
SELECT r -> 'Entries' -> 0 AS entry
FROM eventbus.put_events(jsonb_build_array(jsonb_build_object('Source', 's', 'DetailType', 'x',
	'Detail', '{}', 'Resources', (SELECT jsonb_agg(''::text) FROM generate_series(1, 70000))))) AS r;
-- a Detail string over the limit is not even parsed
SELECT r -> 'Entries' -> 0 AS entry
FROM eventbus.put_events(jsonb_build_array(jsonb_build_object('Source', 's', 'DetailType', 'x',
	'Detail', '{"a": "' || repeat('x', 262144) || '"}'))) AS r;

-- wrong bus names cost the session nothing: no cache entry is kept for them
CREATE FUNCTION pg_temp.put_event_to_unknown_buses(n int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
	v_failed int := 0;
BEGIN
	FOR i IN 1..n LOOP
		BEGIN
			PERFORM eventbus.put_event('s', 'x', '{}', bus => 'no-such-bus-' || i);
		EXCEPTION WHEN undefined_object THEN
			v_failed := v_failed + 1;
		END;
	END LOOP;
	RETURN v_failed;
END
$$;
SELECT pg_temp.put_event_to_unknown_buses(100) AS warm_up;
SELECT sum(total_bytes) AS before FROM pg_backend_memory_contexts \gset
SELECT pg_temp.put_event_to_unknown_buses(20000) AS unknown_buses;
SELECT sum(total_bytes) - :before < 2 * 1024 * 1024 AS grew_less_than_2mb FROM pg_backend_memory_contexts;
SELECT sum(total_bytes) AS before FROM pg_backend_memory_contexts \gset
SELECT count(*) FILTER (WHERE e ->> 'ErrorCode' = 'ResourceNotFoundException') AS unknown_buses
FROM generate_series(1, 2000) b,
	LATERAL eventbus.put_events((SELECT jsonb_agg(jsonb_build_object('Source', 's', 'DetailType', 'x',
		'Detail', '{}', 'EventBusName', 'no-such-bus-' || b || '-' || i)) FROM generate_series(1, 10) i)) AS r,
	LATERAL jsonb_array_elements(r -> 'Entries') AS e;
SELECT sum(total_bytes) - :before < 2 * 1024 * 1024 AS grew_less_than_2mb FROM pg_backend_memory_contexts;

-- whole-call errors
SELECT pg_temp.error_of($$SELECT eventbus.put_events('{"Source": "x"}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_events('[]')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_events((SELECT jsonb_agg(jsonb_build_object('Source', 's', 'DetailType', 'x', 'Detail', '{}'))
							FROM generate_series(1, 11)))$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_events(NULL)$$);

DELETE FROM eventbus.events;
SELECT eventbus.delete_event_bus('orders');
