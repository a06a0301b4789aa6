-- envelope: one definition for what a target receives, what the matcher
-- sees and eventbus.envelope(), checked on awkward events
BEGIN;
SELECT count(*) AS rules FROM (
	SELECT eventbus.put_rule(name, pattern::jsonb), eventbus.put_target(name, 't', 'http://127.0.0.1:9/')
	FROM (VALUES
		('time-null', '{"time": [null]}'),
		('time-0044', '{"time": [{"prefix": "0044-"}]}'),
		('time-minus', '{"time": [{"prefix": "-"}]}'),
		('time-12345', '{"time": [{"prefix": "12345-"}]}'),
		('time-string', '{"time": [{"wildcard": "*T*Z"}]}'),
		('res-c', '{"resources": ["c"]}'),
		('res-null', '{"resources": [null]}'),
		('res-empty-string', '{"resources": [""]}'),
		('res-exists', '{"resources": [{"exists": true}]}'),
		('escapes', E'{"detail-type": ["Odd \\"type\\"\\n\\t\u00e9"], "resources": ["x\\\\y"]}'),
		('non-ascii', '{"source": [{"equals-ignore-case": "TEST.ÜNICODE"}]}'),
		('detail', '{"detail": {"n": [{"numeric": ["=", 1.5]}], "s": [{"suffix": "\u0001"}]}}'),
		('replay', '{"replay-name": [{"exists": true}]}'),
		('fixed', '{"version": ["0"], "account": ["123456789012"], "region": ["eu-west-1"]}'),
		('id', '{"id": [{"prefix": "00000000-0000-7000-8000-00000000000"}]}')
	) AS r(name, pattern)) x;

-- stored rows an envelope cannot fully spell, as a database from 0.1.0 may
-- hold (put_event now refuses such times and resources)
INSERT INTO eventbus.events (id, bus, source, detail_type, resources, detail, "time", account, region, replay_name)
SELECT ('00000000-0000-7000-8000-00000000000' || n)::uuid, 'default', source, detail_type, resources::text[],
	   detail::jsonb, t::timestamptz, '123456789012', 'eu-west-1', replay
FROM (VALUES
	(1, 'test.odd', E'Odd "type"\n\t\u00e9', ARRAY['arn:a"b', E'x\\y', 'ü'],
	 E'{"n": 1.50, "big": 12345678901234567890, "s": "a\\"b\\\\c\u00e9\u2028\\u0001", "arr": [1, null, true, {"k": []}], "e": {}}',
	 '0044-03-15 12:00:00+00 BC', NULL),
	(2, 'test.Ünicode', 'Infinite', '{}', '{}', 'infinity', NULL),
	(3, 'test.odd', 'Minus infinite', '{}', '{}', '-infinity', NULL),
	(4, 'test.odd', 'Five-digit year, 2-D resources', '{{a,b},{c,d}}', '{"x": [1.0e3, -0, 2e-7]}',
	 '12345-06-07 08:09:10.999+00', NULL),
	(5, 'test.odd', 'Empty strings', '{"",""}', '{}', '2026-01-02 03:04:05.678+00', 'nightly "replay"'),
	(6, 'test.odd', '3-D resources with a NULL', '{{{a},{b}},{{c},{NULL}}}', '{}', '0001-01-01 00:00:00+00', NULL),
	(7, 'test.odd', 'No resources', '{}', '{}', '9999-12-31 23:59:59.999999+00', NULL)
) AS v(n, source, detail_type, resources, detail, t, replay);

-- the envelopes: times outside years 1-9999 are null, resources are flat
SELECT id, eventbus.envelope(e) - 'id' - 'account' - 'region' - 'version' AS envelope
FROM eventbus.events e ORDER BY id;

-- the trigger queued a rule exactly when test_event_pattern says the
-- envelope matches it
SELECT right(e.id::text, 1) AS event, r.name AS rule,
	   eventbus.test_event_pattern(r.event_pattern, eventbus.envelope(e)) AS test_event_pattern,
	   EXISTS (SELECT 1 FROM eventbus.deliveries d WHERE d.event_id = e.id AND d.rule = r.name) AS queued
FROM eventbus.events e CROSS JOIN eventbus.rules r
WHERE eventbus.test_event_pattern(r.event_pattern, eventbus.envelope(e))
   OR EXISTS (SELECT 1 FROM eventbus.deliveries d WHERE d.event_id = e.id AND d.rule = r.name)
ORDER BY e.id, r.name;
ROLLBACK;

-- a row value without an event is no envelope
SELECT eventbus.envelope(NULL::eventbus.events) IS NULL AS null_row,
	   eventbus.envelope(ROW('00000000-0000-7000-8000-000000000001', 'default', 's', 'x', '{}', '{}',
							 now(), NULL, 'r', now(), NULL)::eventbus.events) IS NULL AS null_account;
-- the view shows the same envelope
SELECT eventbus.put_event('s', 'x', '{"k": "v"}') IS NOT NULL AS published;
SELECT count(*) AS same FROM eventbus.event_envelopes v JOIN eventbus.events e USING (id)
WHERE v.envelope::text = eventbus.envelope(e)::text;
DELETE FROM eventbus.events;
