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
-- The attempt log
------------------------------------------------------------------------------

/*
 * One row per HTTP attempt of a delivery, written by the delivery worker in
 * the transaction that settles the attempt (src/attempts.c), as
 * eventbus.attempt_log says: failures only (the default), every attempt, or
 * none.  Rows are never deleted one by one: the table is partitioned by day
 * of started_at (UTC), and eventbus.maintain_attempt_log() drops whole days
 * once they are older than eventbus.attempt_retention.  A row whose day has
 * no partition yet (maintenance lagging) lands in the DEFAULT partition,
 * which the next maintenance empties into the right partitions.
 */
CREATE TABLE eventbus.delivery_attempts (
	delivery_id bigint NOT NULL,
	event_id uuid NOT NULL,
	bus text NOT NULL,
	rule text NOT NULL,
	target_id text NOT NULL,
	attempt integer NOT NULL,
	started_at timestamptz NOT NULL,
	duration interval NOT NULL,
	http_status integer,
	error_code text,
	response_excerpt text
) PARTITION BY RANGE (started_at);
COMMENT ON TABLE eventbus.delivery_attempts IS 'One row per HTTP attempt of a delivery (eventbus.attempt_log), kept for eventbus.attempt_retention in daily partitions.';
CREATE INDEX delivery_attempts_event_id_idx ON eventbus.delivery_attempts (event_id);
CREATE TABLE eventbus.delivery_attempts_default
	PARTITION OF eventbus.delivery_attempts DEFAULT;

-- eventbus.attempt_retention as an interval (its one definition is in C).
CREATE FUNCTION eventbus.attempt_retention()
RETURNS interval
AS 'MODULE_PATHNAME', 'eventbus_attempt_retention_interval'
LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION eventbus.attempt_retention() FROM PUBLIC;

/*
 * Keeps the attempt log's partitions as of `as_of`: one partition per UTC
 * day, for that day and the two after it; the DEFAULT partition emptied
 * into partitions of its rows' days (copied aside, truncated, inserted
 * again: no DELETE); every day that ended at least attempt_retention
 * before `as_of` dropped whole.  Returns one row per thing done.  Called
 * by the delivery worker (once when it starts, then hourly); maintainers
 * wait for each other, and the worker's inserts wait for their DDL.
 */
CREATE FUNCTION eventbus.maintain_attempt_log(as_of timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE (action text, partition_name text, moved_rows bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
SET DateStyle = 'ISO, YMD'
AS $$
DECLARE
	v_cutoff timestamptz;
	v_days date[];
	v_day date;
	v_name text;
	v_moved bigint := 0;
	v_drained boolean := false;
BEGIN
	IF as_of IS NULL OR NOT pg_catalog.isfinite(as_of) THEN
		PERFORM eventbus.raise_error('22023',
			pg_catalog.format('invalid as_of "%s" for eventbus.maintain_attempt_log',
				coalesce(as_of::text, 'NULL')),
			'as_of is the moment the attempt log is kept for; it must be a finite time.',
			'Call it without arguments to keep the log as of now.');
	END IF;
	LOCK TABLE eventbus.delivery_attempts IN SHARE ROW EXCLUSIVE MODE;
	v_cutoff := as_of OPERATOR(pg_catalog.-) eventbus.attempt_retention();
	v_days := ARRAY(SELECT as_of::date OPERATOR(pg_catalog.+) n
					FROM pg_catalog.generate_series(0, 2) n);

	-- rows that found no partition: aside, so that their days can get one
	IF EXISTS (SELECT FROM eventbus.delivery_attempts_default) THEN
		CREATE TEMP TABLE eb_attempts_drained ON COMMIT DROP AS
			SELECT * FROM eventbus.delivery_attempts_default a
			WHERE a.started_at OPERATOR(pg_catalog.>=) v_cutoff;
		GET DIAGNOSTICS v_moved = ROW_COUNT;
		TRUNCATE eventbus.delivery_attempts_default;
		v_days := v_days OPERATOR(pg_catalog.||) ARRAY(
			SELECT DISTINCT a.started_at::date FROM pg_temp.eb_attempts_drained a);
		v_drained := true;
	END IF;

	FOR v_day IN
		SELECT DISTINCT d FROM pg_catalog.unnest(v_days) d
		WHERE (d OPERATOR(pg_catalog.+) 1)::timestamptz OPERATOR(pg_catalog.>) v_cutoff
		ORDER BY d
	LOOP
		v_name := 'delivery_attempts_p' OPERATOR(pg_catalog.||) pg_catalog.to_char(v_day, 'YYYYMMDD');
		IF pg_catalog.to_regclass('eventbus.' OPERATOR(pg_catalog.||) v_name) IS NULL THEN
			EXECUTE pg_catalog.format(
				'CREATE TABLE eventbus.%I PARTITION OF eventbus.delivery_attempts FOR VALUES FROM (%L) TO (%L)',
				v_name, v_day::timestamptz, (v_day OPERATOR(pg_catalog.+) 1)::timestamptz);
			action := 'created';
			partition_name := v_name;
			moved_rows := NULL;
			RETURN NEXT;
		END IF;
	END LOOP;

	IF v_drained THEN
		INSERT INTO eventbus.delivery_attempts SELECT * FROM pg_temp.eb_attempts_drained;
		DROP TABLE pg_temp.eb_attempts_drained;
		action := 'drained';
		partition_name := 'delivery_attempts_default';
		moved_rows := v_moved;
		RETURN NEXT;
	END IF;

	FOR v_name IN
		SELECT c.relname FROM pg_catalog.pg_inherits i
		JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid
		WHERE i.inhparent OPERATOR(pg_catalog.=) 'eventbus.delivery_attempts'::pg_catalog.regclass
		  AND c.relname OPERATOR(pg_catalog.~) '^delivery_attempts_p[0-9]{8}$'
		  AND (pg_catalog.to_date(pg_catalog.substr(c.relname, 20), 'YYYYMMDD')
			   OPERATOR(pg_catalog.+) 1)::timestamptz OPERATOR(pg_catalog.<=) v_cutoff
		ORDER BY c.relname
	LOOP
		EXECUTE pg_catalog.format('DROP TABLE eventbus.%I', v_name);
		action := 'dropped';
		partition_name := v_name;
		moved_rows := NULL;
		RETURN NEXT;
	END LOOP;
END
$$;
REVOKE ALL ON FUNCTION eventbus.maintain_attempt_log(timestamptz) FROM PUBLIC;

-- (end of the attempt log)
