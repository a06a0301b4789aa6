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

-- whole-call errors
SELECT pg_temp.error_of($$SELECT eventbus.put_events('{"Source": "x"}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_events('[]')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_events((SELECT jsonb_agg(jsonb_build_object('Source', 's', 'DetailType', 'x', 'Detail', '{}'))
							FROM generate_series(1, 11)))$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_events(NULL)$$);

DELETE FROM eventbus.events;
SELECT eventbus.delete_event_bus('orders');
