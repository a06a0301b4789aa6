-- put_events_fuzz: thousands of random entries (every JSON type in every
-- field, huge and tiny numbers, nesting, long strings) in one transaction:
-- no ERROR, and every failure is one of AWS's entry codes
SELECT setseed(0.20261203);

-- a random JSON value of any type; depth bounds the nesting it builds
CREATE FUNCTION pg_temp.random_json(depth int) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
	RETURN CASE floor(random() * 32)::int
		WHEN 0 THEN 'null'
		WHEN 1 THEN 'true'
		WHEN 2 THEN 'false'
		WHEN 3 THEN '0'
		WHEN 4 THEN '1e20'
		WHEN 5 THEN '1e308'
		WHEN 6 THEN '-1e15'
		WHEN 7 THEN '1e-400'
		WHEN 8 THEN pg_catalog.to_jsonb(random() * 4e11 - 1e11)
		WHEN 9 THEN ('-' || repeat('9', 1 + floor(random() * 400)::int) || 'e-3')::jsonb
		WHEN 10 THEN '""'
		WHEN 11 THEN '"now"'
		WHEN 12 THEN '"epoch"'
		WHEN 13 THEN '"infinity"'
		WHEN 14 THEN to_jsonb(to_char(timestamptz '0001-01-01 00:00:00+00' + random() * interval '12000 years',
									  'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
		WHEN 15 THEN '"{}"'
		WHEN 16 THEN '"{\"a\": [1, \"\\u00e9\"]}"'
		WHEN 17 THEN '"[1]"'
		WHEN 18 THEN '"{not json"'
		WHEN 19 THEN '"{\"a\": 1e1000000}"'
		WHEN 20 THEN to_jsonb(repeat('{"a":', 1 + floor(random() * 30000)::int))
		WHEN 21 THEN to_jsonb(repeat('x', floor(random() * 300)::int))
		WHEN 22 THEN CASE WHEN random() < 0.3 THEN to_jsonb(repeat('y', floor(random() * 300000)::int))
						  ELSE jsonb_build_object('big', repeat('y', 200000 + floor(random() * 100000)::int)) END
		WHEN 23 THEN to_jsonb('ü€😀' || md5(random()::text))
		WHEN 24 THEN '[]'
		WHEN 25 THEN '{}'
		WHEN 26 THEN (SELECT jsonb_agg(md5(random()::text)) FROM generate_series(1, 1 + floor(random() * 5)::int))
		WHEN 27 THEN CASE WHEN depth > 0 THEN jsonb_build_array(pg_temp.random_json(depth - 1), pg_temp.random_json(depth - 1))
						  ELSE '[[[]]]' END
		WHEN 28 THEN CASE WHEN depth > 0 THEN jsonb_build_object('k', pg_temp.random_json(depth - 1))
						  ELSE '{"a": {"b": {}}}' END
		WHEN 29 THEN '"default"'
		WHEN 30 THEN '"arn:aws:events:eu-west-1:123456789012:event-bus/default"'
		ELSE '"2026-12-03T12:00:00+01:00"'
	END;
END
$$;

-- a random entry: each key absent, valid, or any random value
CREATE FUNCTION pg_temp.random_entry() RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	v_entry jsonb := '{}';
	v_key text;
	v_valid jsonb;
	r float8;
BEGIN
	IF random() < 0.03 THEN
		RETURN pg_temp.random_json(2);
	END IF;
	FOR v_key, v_valid IN SELECT * FROM (VALUES
		('Source', '"com.example.fuzz"'::jsonb), ('DetailType', '"Fuzzed"'),
		('Detail', '"{\"n\": 1}"'), ('Resources', '["arn:x"]'),
		('EventBusName', '"default"'), ('Time', '1767225600')) AS k(key, valid)
	LOOP
		r := random();
		IF r < 0.55 THEN
			v_entry := v_entry || jsonb_build_object(v_key, v_valid);
		ELSIF r < 0.85 THEN
			v_entry := v_entry || jsonb_build_object(v_key, pg_temp.random_json(2));
		END IF;
	END LOOP;
	RETURN v_entry;
END
$$;

BEGIN;
CREATE TEMP TABLE fuzz AS
SELECT b, n, r
FROM generate_series(1, 1000) b,
	LATERAL (SELECT count(*) AS n, jsonb_agg(pg_temp.random_entry()) AS entries
			 FROM generate_series(1, 1 + (b * 7) % 10) WHERE b > 0) x,
	LATERAL eventbus.put_events(x.entries) AS r;
SELECT 1 AS transaction_still_usable;

SELECT sum(n) AS entries,
	   bool_and(jsonb_array_length(r -> 'Entries') = n) AS one_result_per_entry,
	   bool_and((r ->> 'FailedEntryCount')::int =
				(SELECT count(*) FROM jsonb_array_elements(r -> 'Entries') e WHERE e ? 'ErrorCode')) AS failed_count_right
FROM fuzz;
SELECT bool_and(CASE WHEN e ? 'EventId' THEN (e ->> 'EventId') ~ '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'
					 ELSE e ->> 'ErrorCode' IN ('InvalidArgument', 'MalformedDetail', 'ResourceNotFoundException', 'ValidationException')
						  AND length(e ->> 'ErrorMessage') > 0 END) AS every_entry_an_id_or_a_code,
	   count(*) FILTER (WHERE e ? 'EventId') > 100 AS many_published,
	   count(DISTINCT e ->> 'ErrorCode') = 4 AS all_four_codes_seen
FROM fuzz, jsonb_array_elements(r -> 'Entries') e;
-- what was published is a spellable envelope within the size limit
SELECT count(*) > 100 AS published,
	   bool_and(eventbus.envelope(e) ->> 'time' IS NOT NULL) AS every_time_spelt,
	   bool_and(octet_length(eventbus.envelope(e)::text) <= 262144) AS every_envelope_within_limit
FROM eventbus.events e;
ROLLBACK;
