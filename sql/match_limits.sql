-- match_limits: matching costs a bounded, proportional amount and can always
-- be cancelled (see "Bounds" in the README).
\i sql/include/error_of.sql

-- Events that made the old matcher search every combination of array
-- elements now match at once.  k arrays of objects, 8 elements each, and a
-- field that must be absent but is present: 8^12 combinations before.
SELECT eventbus.test_event_pattern(
	(SELECT jsonb_build_object('detail', jsonb_object_agg('a' || i, '{"x": [1]}'::jsonb)
			|| '{"gone": [{"exists": false}]}')
	 FROM generate_series(1, 12) i),
	(SELECT jsonb_build_object('detail', jsonb_object_agg('a' || i,
			(SELECT jsonb_agg('{"x": 1}'::jsonb) FROM generate_series(1, 8)))
			|| '{"gone": "here"}')
	 FROM generate_series(1, 12) i)) AS twelve_arrays_gone_present;
SELECT eventbus.test_event_pattern(
	(SELECT jsonb_build_object('detail', jsonb_object_agg('a' || i, '{"x": [1]}'::jsonb)
			|| '{"gone": [{"exists": false}]}')
	 FROM generate_series(1, 12) i),
	(SELECT jsonb_build_object('detail', jsonb_object_agg('a' || i,
			(SELECT jsonb_agg(jsonb_build_object('x', CASE WHEN j = 8 THEN 1 ELSE 2 END))
			 FROM generate_series(1, 8) j)))
	 FROM generate_series(1, 12) i)) AS twelve_arrays_match;

-- An ordinary rule over items[].sku, items[].discount (exists: false) and
-- tags: m^2 n before (800 items and tags took seconds).
CREATE TEMP TABLE items_event AS
SELECT jsonb_build_object('detail', jsonb_build_object(
	'items', (SELECT jsonb_agg(CASE WHEN i = 800 THEN '{"sku": "X"}'::jsonb
								   ELSE '{"sku": "X", "discount": 5}'::jsonb END)
			  FROM generate_series(1, 800) i),
	'tags', (SELECT jsonb_agg('t') FROM generate_series(1, 800)))) AS e;
SET statement_timeout = '5s';
SELECT eventbus.test_event_pattern(
	'{"detail": {"items": {"sku": ["X"], "discount": [{"exists": false}]}, "tags": ["t"]}}', e)
	AS items_match,
	eventbus.test_event_pattern(
	'{"detail": {"items": {"sku": ["X"], "discount": [{"exists": false}]}, "tags": ["u"]}}', e)
	AS items_no_tag
FROM items_event;
RESET statement_timeout;

-- Numbers with huge exponents are not written out digit by digit; they
-- compare as before: by value within the double range, by text beyond it.
SELECT eventbus.test_event_pattern('{"n": [1e131071]}', '{"n": 1e131071}') AS huge_equal,
	   eventbus.test_event_pattern('{"n": [1e131071]}', '{"n": 10e131070}') AS huge_same_value,
	   eventbus.test_event_pattern('{"n": [1e131071]}', '{"n": 1e131070}') AS huge_other,
	   eventbus.test_event_pattern('{"n": [{"numeric": [">", 0]}]}', '{"n": [1e-16383, 5]}') AS tiny_and_five,
	   eventbus.test_event_pattern('{"n": [1e100]}', '{"n": 1.0e100}') AS big_finite,
	   eventbus.test_event_pattern('{"n": [123.4500]}', '{"n": 123.45}') AS plain;
SELECT eventbus.test_event_pattern('{"n": [1]}',
	(SELECT jsonb_build_object('n', jsonb_agg(('1e' || (131071 - i))::numeric))
	 FROM generate_series(1, 3000) i)) AS many_huge_numbers;

-- An event that reaches one path at two places of one object (a dotted
-- key beside the nested one) needs a search; past its budget the match is
-- an error, never a guessed verdict.
SELECT pg_temp.error_of($$
	SELECT eventbus.test_event_pattern(
		(SELECT jsonb_build_object('detail', jsonb_object_agg('a' || i || '.x', '[1]'::jsonb)
				|| '{"gone": [{"exists": false}]}')
		 FROM generate_series(1, 12) i),
		(SELECT jsonb_build_object('detail', jsonb_object_agg('a' || i,
				(SELECT jsonb_agg('{"x": 1}'::jsonb) FROM generate_series(1, 8)))
				|| jsonb_object_agg('a' || i || '.x', '[3]'::jsonb)
				|| '{"gone": "here"}')
		 FROM generate_series(1, 12) i))$$);
-- a small one is decided exactly
SELECT eventbus.test_event_pattern('{"a": {"x": [1]}, "b": {"x": [1]}}',
	'{"a": [{"x": 1}, {"x": 2}], "a.x": [3], "b": [{"x": 1}]}') AS dotted_small;

-- A match that takes long is cancelled by a statement timeout at once.
-- 1,024 $or alternatives, each over ten arrays of 20,000 objects.
CREATE TEMP TABLE big_event AS
SELECT jsonb_build_object('detail', jsonb_object_agg(k,
	(SELECT jsonb_agg('{"s": "X", "t": "X"}'::jsonb) FROM generate_series(1, 20000))))
	AS e
FROM unnest(ARRAY['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']) k;
CREATE TEMP TABLE big_pattern AS
SELECT jsonb_build_object('detail', jsonb_object_agg(k,
	'{"$or": [{"s": ["X"]}, {"t": ["X"]}]}'::jsonb)) AS p
FROM unnest(ARRAY['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']) k;
CREATE TEMP TABLE timing (cancelled boolean, seconds float8);
SET statement_timeout = '200ms';
DO $$
DECLARE
	t0 timestamptz := clock_timestamp();
BEGIN
	BEGIN
		PERFORM eventbus.test_event_pattern(p, e) FROM big_event, big_pattern;
		INSERT INTO timing VALUES (false, extract(epoch FROM clock_timestamp() - t0));
	EXCEPTION WHEN query_canceled THEN
		INSERT INTO timing VALUES (true, extract(epoch FROM clock_timestamp() - t0));
	END;
END $$;
RESET statement_timeout;
SELECT cancelled, seconds < 1 AS within_a_second FROM timing;
-- the session matches normally afterwards
SELECT eventbus.test_event_pattern('{"detail": {"a": {"s": ["X"]}}}', e) AS after_cancel
FROM big_event;
