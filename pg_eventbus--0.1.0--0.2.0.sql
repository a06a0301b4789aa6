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

/*
 * The one definition of a dead-letter row: the delivery `moved` (already
 * deleted from the queue by the caller) goes to eventbus.dead_letters with
 * its event's envelope -- or only the event id, when the event is no
 * longer in the archive -- and the reason.  Used by the worker's settle
 * and by the TargetDeleted trigger below.  The event is read by its
 * primary key, one probe per row.  Not SECURITY DEFINER: its callers are
 * the worker (superuser) and a SECURITY DEFINER trigger; EXECUTE is
 * revoked from PUBLIC, so no one else can write dead letters with it.
 */
CREATE FUNCTION eventbus.dead_letter(moved eventbus.deliveries,
									 endpoint text,
									 error_code text,
									 error_message text,
									 http_status integer,
									 response_excerpt text,
									 exhausted_condition text)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	INSERT INTO eventbus.dead_letters
		(event_id, event, bus, rule, target_id, endpoint, error_code,
		 error_message, http_status, response_excerpt, attempts,
		 exhausted_condition, first_attempt_at)
	SELECT $1.event_id,
		   coalesce((SELECT eventbus.envelope(e) FROM eventbus.events e
					 WHERE e.id OPERATOR(pg_catalog.=) $1.event_id),
					pg_catalog.jsonb_build_object('id', $1.event_id)),
		   $1.bus, $1.rule, $1.target_id, $2, $3, $4, $5, $6, $1.attempts,
		   $7, $1.first_attempt_at
$$;
REVOKE ALL ON FUNCTION eventbus.dead_letter(eventbus.deliveries, text, text, text,
	integer, text, text) FROM PUBLIC;

/*
 * Deleting a target moves its pending deliveries to the dead-letter table,
 * except those a worker has in flight (leased): their answer decides.  A
 * delivered event stays delivered; one that fails is dead-lettered by the
 * worker (TargetDeleted once the row comes back to the claim).
 */
CREATE OR REPLACE FUNCTION eventbus.dead_letter_deleted_target()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	m eventbus.deliveries;
BEGIN
	FOR m IN
		DELETE FROM eventbus.deliveries d
		WHERE d.bus OPERATOR(pg_catalog.=) OLD.bus
		  AND d.rule OPERATOR(pg_catalog.=) OLD.rule
		  AND d.target_id OPERATOR(pg_catalog.=) OLD.target_id
		  AND d.leased_until IS NULL
		RETURNING d.*
	LOOP
		PERFORM eventbus.dead_letter(m, OLD.endpoint, 'TARGET_DELETED',
			pg_catalog.format('target %s of rule %s on bus %s was deleted before delivery%s',
				OLD.target_id, OLD.rule, OLD.bus,
				CASE WHEN m.last_error IS NULL THEN ''
					 ELSE '; last error: ' OPERATOR(pg_catalog.||) m.last_error END),
			m.last_http_status, NULL, 'TargetDeleted');
	END LOOP;
	RETURN OLD;
END
$$;

/*
 * The queue by target, in due order: the worker claims each target's due
 * rows with one probe of this index (up to the requests that target may
 * still have in flight), so a claim never walks the backlog of a target at
 * its limit or paused after failures, and keeps each target's rows in
 * next_attempt_at order.  Deleting a target finds its rows here too.
 */
CREATE INDEX deliveries_target_due_idx
	ON eventbus.deliveries (bus, rule, target_id, next_attempt_at);

/*
 * A row is queued at the time it is written (not at its transaction's
 * start), so that a row the worker cannot see yet -- its transaction has
 * not committed -- is never due before that transaction took an id: the
 * worker's claim starts each target after what it has already taken, and
 * relies on this.  The lease changes no indexed column, so with room left
 * on the page it is a HOT update and leaves no index entry behind.
 */
ALTER TABLE eventbus.deliveries ALTER COLUMN next_attempt_at SET DEFAULT pg_catalog.clock_timestamp();
ALTER TABLE eventbus.deliveries SET (fillfactor = 80);
COMMENT ON TABLE eventbus.deliveries IS 'Pending and in-flight (event, target) deliveries. While a worker holds one, leased_until is set.';

-- Delivery workers waiting for this version start when it commits.
SELECT eventbus.wake_workers();

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

-- (end of explaining matches)


------------------------------------------------------------------------------
-- Archive, retention and replay
------------------------------------------------------------------------------

/*
 * The event's published_at, so that the worker reaches the event in one
 * partition of the archive with one index probe; and the envelope to send
 * when the event is no longer in the archive (a redriven dead letter).
 */
ALTER TABLE eventbus.deliveries ADD COLUMN event_published_at timestamptz;
ALTER TABLE eventbus.deliveries ADD COLUMN envelope jsonb;

/*
 * eventbus.dead_letter() (the worker's section above) with the two
 * columns: a delivery that carries an envelope (a redriven dead letter
 * whose event has left the archive) keeps it when it fails again, and the
 * event is read by its primary key and published_at (one partition).
 */
CREATE OR REPLACE FUNCTION eventbus.dead_letter(moved eventbus.deliveries,
												endpoint text,
												error_code text,
												error_message text,
												http_status integer,
												response_excerpt text,
												exhausted_condition text)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	INSERT INTO eventbus.dead_letters
		(event_id, event, bus, rule, target_id, endpoint, error_code,
		 error_message, http_status, response_excerpt, attempts,
		 exhausted_condition, first_attempt_at)
	SELECT $1.event_id,
		   coalesce($1.envelope,
					(SELECT eventbus.envelope(e) FROM eventbus.events e
					 WHERE e.id OPERATOR(pg_catalog.=) $1.event_id
					   AND ($1.event_published_at IS NULL
							OR e.published_at OPERATOR(pg_catalog.=) $1.event_published_at)),
					pg_catalog.jsonb_build_object('id', $1.event_id)),
		   $1.bus, $1.rule, $1.target_id, $2, $3, $4, $5, $6, $1.attempts,
		   $7, $1.first_attempt_at
$$;

-- (end of archive, retention and replay)
