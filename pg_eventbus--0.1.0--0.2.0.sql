/* pg_eventbus--0.1.0--0.2.0.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_eventbus UPDATE TO '0.2.0'" to load this file. \quit

/*
 * 0.1.0 -> 0.2.0.  CREATE EXTENSION runs pg_eventbus--0.1.0.sql and then this
 * script, as contrib does, so a fresh install and an upgraded one end in the
 * same schema.  Every C symbol that pg_eventbus--0.1.0.sql names stays
 * exported by the library, because that script runs at every CREATE
 * EXTENSION.
 *
 * The same rules as the install script hold here: SECURITY DEFINER functions
 * pin search_path = pg_catalog, pg_temp and schema-qualify every name, and
 * nothing new is granted to PUBLIC unless the README says so.
 */

------------------------------------------------------------------------------
-- Publishing: the envelope, the publish checks, put_events
------------------------------------------------------------------------------

/*
 * The EventBridge envelope of an event, exactly the body a target receives
 * and what the matcher sees (src/envelope.c writes all three), or NULL for
 * a NULL row -- the empty side of a LEFT JOIN -- so that callers can fall
 * back on the event id.  A stored time the envelope cannot spell (from
 * before 0.2.0: infinite, BC, after 9999) is "time": null.
 */
CREATE OR REPLACE FUNCTION eventbus.envelope(e eventbus.events)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'eventbus_envelope'
LANGUAGE C STABLE PARALLEL SAFE;

/*
 * PutEvents in C (src/put_events.c): up to 10 entries with AWS's keys;
 * each is checked alone by the same code as put_event, and a bad entry is
 * an entry code, never an ERROR.  Returns AWS's response shape.
 */
CREATE OR REPLACE FUNCTION eventbus.put_events(entries jsonb)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'eventbus_put_events'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

-- The PL/pgSQL checks put_events used; the C symbols stay for 0.1.0's script.
DROP FUNCTION eventbus.check_entry(text, text, bigint, text[], text, boolean);
DROP FUNCTION eventbus.is_valid_jsonb(text);
DROP FUNCTION eventbus.is_valid_timestamptz(text);
DROP FUNCTION eventbus.max_event_size_setting();

-- (end of publishing)


------------------------------------------------------------------------------
-- The outbox trigger and the SQL surface's rights
------------------------------------------------------------------------------

/*
 * capture() in C, without SECURITY DEFINER (src/capture.c): it converts the
 * rows with the rights of the role whose write fires it, and only the
 * finished event is published with the extension owner's rights.  CREATE
 * OR REPLACE keeps the triggers that already use it, and its grants.
 */
CREATE OR REPLACE FUNCTION eventbus.capture()
RETURNS trigger
AS 'MODULE_PATHNAME', 'eventbus_capture'
LANGUAGE C VOLATILE SECURITY INVOKER;
COMMENT ON FUNCTION eventbus.capture() IS 'Trigger function: publishes each row change of a table as an event (the transactional outbox); the rows are converted with the writer''s rights.';

-- (end of outbox and rights)


------------------------------------------------------------------------------
-- The worker's statements and the dead-letter row
------------------------------------------------------------------------------

-- (end of worker)


------------------------------------------------------------------------------
-- Targets: HTTP checks
------------------------------------------------------------------------------

/*
 * put_target's check of header names and values, in C so that put_target and
 * the worker apply the very same rules (src/policy.c, eb_header_check):
 * names are HTTP tokens, values strings with no control character except
 * tab, and none of the headers the worker sets itself.  Raises 22023 naming
 * the first bad header.
 */
CREATE FUNCTION eventbus.check_target_headers(target_id text, headers jsonb)
RETURNS void
AS 'MODULE_PATHNAME', 'eventbus_check_target_headers'
LANGUAGE C STABLE;
REVOKE EXECUTE ON FUNCTION eventbus.check_target_headers(text, jsonb) FROM PUBLIC;

-- put_target as in 0.1.0, with its header check replaced by the one above.
CREATE OR REPLACE FUNCTION eventbus.put_target(rule text, target_id text, endpoint text,
									bus text DEFAULT 'default',
									http_method text DEFAULT 'POST',
									headers jsonb DEFAULT '{}',
									max_retry_attempts integer DEFAULT 185,
									max_event_age interval DEFAULT '24 hours',
									timeout interval DEFAULT '5 seconds')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_count bigint;
BEGIN
	PERFORM eventbus.require_rule(rule, bus, true);
	IF target_id IS NULL OR target_id !~ '^[A-Za-z0-9._-]{1,64}$' THEN
		PERFORM eventbus.raise_error('22023',
			format('invalid target_id "%s"', target_id),
			'A target id is 1 to 64 characters from A-Z, a-z, 0-9, ".", "_" and "-".',
			NULL);
	END IF;
	IF endpoint IS NULL OR endpoint !~* '^https?://[^/?#@[:space:]]+' OR endpoint ~ '[[:space:]]' THEN
		PERFORM eventbus.raise_error('22023',
			format('invalid endpoint "%s" for target "%s"', endpoint, target_id),
			'The endpoint must be an absolute http:// or https:// URL with a host and no spaces.',
			'For example ''https://hooks.example.com/orders''.');
	END IF;
	http_method := upper(http_method);
	IF http_method IS NULL OR http_method NOT IN ('POST', 'PUT', 'PATCH', 'GET', 'DELETE', 'HEAD', 'OPTIONS') THEN
		PERFORM eventbus.raise_error('22023',
			format('invalid http_method "%s" for target "%s"', http_method, target_id),
			NULL,
			'Use one of POST, PUT, PATCH, GET, DELETE, HEAD, OPTIONS.');
	END IF;
	-- names and values: the rules the worker applies to every header it sends
	PERFORM eventbus.check_target_headers(target_id, headers);
	IF max_retry_attempts IS NULL OR max_retry_attempts NOT BETWEEN 0 AND 185 THEN
		PERFORM eventbus.raise_error('22023',
			'max_retry_attempts must be between 0 and 185',
			format('The value given is %s; it counts the retries after the first attempt.', coalesce(max_retry_attempts::text, 'NULL')),
			NULL);
	END IF;
	IF max_event_age IS NULL OR max_event_age NOT BETWEEN interval '60 seconds' AND interval '24 hours' THEN
		PERFORM eventbus.raise_error('22023',
			'max_event_age must be between 60 seconds and 24 hours',
			format('The value given is %s.', coalesce(max_event_age::text, 'NULL')),
			NULL);
	END IF;
	IF timeout IS NULL OR timeout NOT BETWEEN interval '100 milliseconds' AND interval '5 minutes' THEN
		PERFORM eventbus.raise_error('22023',
			'timeout must be between 100 milliseconds and 5 minutes',
			format('The value given is %s.', coalesce(timeout::text, 'NULL')),
			NULL);
	END IF;
	SELECT count(*) INTO v_count FROM eventbus.targets t
	WHERE t.bus = put_target.bus AND t.rule = put_target.rule AND t.target_id <> put_target.target_id;
	IF v_count >= 5 THEN
		PERFORM eventbus.raise_error('54000',
			format('rule "%s" already has 5 targets', rule),
			'A rule has at most 5 targets.',
			'Remove a target with eventbus.remove_target(), or add another rule with the same pattern.');
	END IF;
	INSERT INTO eventbus.targets AS t (bus, rule, target_id, endpoint, http_method, headers,
									   max_retry_attempts, max_event_age, timeout)
	VALUES (bus, rule, target_id, endpoint, http_method, headers,
			max_retry_attempts, max_event_age, timeout)
	ON CONFLICT ON CONSTRAINT targets_pkey DO UPDATE
		SET endpoint = EXCLUDED.endpoint,
			http_method = EXCLUDED.http_method,
			headers = EXCLUDED.headers,
			max_retry_attempts = EXCLUDED.max_retry_attempts,
			max_event_age = EXCLUDED.max_event_age,
			timeout = EXCLUDED.timeout,
			updated_at = now();
END
$$;

-- (end of targets)


------------------------------------------------------------------------------
-- Matching
------------------------------------------------------------------------------

-- (end of matching)


------------------------------------------------------------------------------
-- Statistics and metrics
------------------------------------------------------------------------------

-- (end of statistics)


------------------------------------------------------------------------------
-- Signed requests
------------------------------------------------------------------------------

-- (end of signed requests)


------------------------------------------------------------------------------
-- Explaining matches
------------------------------------------------------------------------------

/*
 * Why an event does not match a pattern (src/explain.c, the matcher's
 * src/matcher/explain.c): one row; matched is test_event_pattern's verdict,
 * and for a non-match the first field that failed (of the closest $or
 * alternative), its operator, what the pattern expects and what the event
 * has (jsonb; actual NULL when the field is missing), and the reason in
 * words.  Like test_event_pattern it reads nothing but its arguments, so
 * PUBLIC may call it.
 */
CREATE FUNCTION eventbus.explain_match(event_pattern jsonb, event jsonb,
									   OUT matched boolean, OUT field text,
									   OUT operator text, OUT expected jsonb,
									   OUT actual jsonb, OUT reason text)
RETURNS record
AS 'MODULE_PATHNAME', 'eventbus_explain_match'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION eventbus.explain_match(jsonb, jsonb) IS 'Does the event match the pattern, and if not, the first field that failed and why.';
GRANT EXECUTE ON FUNCTION eventbus.explain_match(jsonb, jsonb) TO PUBLIC;

/*
 * explain_match for every rule of a bus, enabled ones first, then the
 * disabled ones (state says which; matched is what their pattern says).
 * It reads the bus's rules, so only the roles it is granted to may call it.
 */
CREATE FUNCTION eventbus.explain_event(event jsonb, bus text DEFAULT 'default')
RETURNS TABLE(rule text, state text, matched boolean, field text,
			  operator text, expected jsonb, actual jsonb, reason text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
	IF event IS NULL THEN
		PERFORM eventbus.raise_error('22004',
			'the event to explain must not be null',
			NULL,
			'Pass a whole event envelope, such as eventbus.envelope(e) of a stored event.');
	END IF;
	IF NOT EXISTS (SELECT 1 FROM eventbus.buses b
				   WHERE b.name OPERATOR(pg_catalog.=) explain_event.bus) THEN
		PERFORM eventbus.raise_error('42704',
			pg_catalog.format('event bus "%s" does not exist', explain_event.bus),
			NULL,
			'List the buses with: SELECT name FROM eventbus.buses;');
	END IF;
	RETURN QUERY
		SELECT r.name, r.state, x.matched, x.field, x.operator, x.expected,
			   x.actual, x.reason
		FROM eventbus.rules r
		CROSS JOIN LATERAL eventbus.explain_match(r.event_pattern, explain_event.event) x
		WHERE r.bus OPERATOR(pg_catalog.=) explain_event.bus
		ORDER BY r.state OPERATOR(pg_catalog.=) 'DISABLED', r.name;
END
$$;
COMMENT ON FUNCTION eventbus.explain_event(jsonb, text) IS 'For every rule of the bus: does the event match it, and if not, the first field that failed and why.';
REVOKE EXECUTE ON FUNCTION eventbus.explain_event(jsonb, text) FROM PUBLIC;

-- (end of explaining matches)
