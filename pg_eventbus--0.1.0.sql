/* pg_eventbus--0.1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION pg_eventbus" to load this file. \quit

/*
 * The API's functions are SECURITY DEFINER with a pinned search_path and
 * schema-qualified references (helpers they call pin it too, or qualify
 * every name), and EXECUTE on everything is revoked from PUBLIC at the end
 * of this script: what a role may do is exactly what it is granted (see the
 * README, "Privileges").
 */

------------------------------------------------------------------------------
-- Catalog: buses, rules, targets
------------------------------------------------------------------------------

CREATE TABLE eventbus.buses (
	name		text PRIMARY KEY,
	created_at	timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT buses_name_valid CHECK (name ~ '^[A-Za-z0-9._/-]+$' AND length(name) <= 256)
);
COMMENT ON TABLE eventbus.buses IS 'Event buses; "default" exists from CREATE EXTENSION on.';

INSERT INTO eventbus.buses (name) VALUES ('default');

CREATE TABLE eventbus.rules (
	bus			text NOT NULL REFERENCES eventbus.buses (name),
	name		text NOT NULL,
	event_pattern jsonb NOT NULL,
	state		text NOT NULL DEFAULT 'ENABLED',
	description text,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (bus, name),
	CONSTRAINT rules_name_valid CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'),
	CONSTRAINT rules_state_valid CHECK (state IN ('ENABLED', 'DISABLED')),
	CONSTRAINT rules_pattern_object CHECK (jsonb_typeof(event_pattern) = 'object')
);
COMMENT ON TABLE eventbus.rules IS 'Rules: an event pattern per rule; matching events go to the rule''s targets.';

CREATE TABLE eventbus.targets (
	bus			text NOT NULL,
	rule		text NOT NULL,
	target_id	text NOT NULL,
	endpoint	text NOT NULL,
	http_method text NOT NULL DEFAULT 'POST',
	headers		jsonb NOT NULL DEFAULT '{}',
	max_retry_attempts integer NOT NULL DEFAULT 185,
	max_event_age interval NOT NULL DEFAULT '24 hours',
	timeout		interval NOT NULL DEFAULT '5 seconds',
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (bus, rule, target_id),
	FOREIGN KEY (bus, rule) REFERENCES eventbus.rules (bus, name) ON DELETE CASCADE,
	CONSTRAINT targets_id_valid CHECK (target_id ~ '^[A-Za-z0-9._-]{1,64}$'),
	CONSTRAINT targets_endpoint_valid CHECK (endpoint ~* '^https?://[^/?#@[:space:]]+'),
	CONSTRAINT targets_method_valid CHECK (http_method IN ('POST', 'PUT', 'PATCH', 'GET', 'DELETE', 'HEAD', 'OPTIONS')),
	CONSTRAINT targets_headers_object CHECK (jsonb_typeof(headers) = 'object'),
	CONSTRAINT targets_retry_range CHECK (max_retry_attempts BETWEEN 0 AND 185),
	CONSTRAINT targets_age_range CHECK (max_event_age BETWEEN interval '60 seconds' AND interval '24 hours'),
	CONSTRAINT targets_timeout_range CHECK (timeout BETWEEN interval '100 milliseconds' AND interval '5 minutes')
);
COMMENT ON TABLE eventbus.targets IS 'HTTP targets of rules, with their retry policy. Headers may hold secrets: publishers cannot read this table.';

------------------------------------------------------------------------------
-- Events (the archive) and the envelope a target receives
------------------------------------------------------------------------------

CREATE TABLE eventbus.events (
	id			uuid PRIMARY KEY,
	bus			text NOT NULL,
	source		text NOT NULL,
	detail_type text NOT NULL,
	resources	text[] NOT NULL DEFAULT '{}',
	detail		jsonb NOT NULL,
	"time"		timestamptz NOT NULL,
	account		text NOT NULL,
	region		text NOT NULL,
	published_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	replay_name text
);
COMMENT ON TABLE eventbus.events IS 'Every published event (the archive). eventbus.envelope(e) is the JSON a target receives.';

/*
 * The EventBridge envelope of an event, exactly as the worker sends it
 * (src/envelope.c writes the same text), or NULL for no event -- the empty
 * side of a LEFT JOIN -- so that callers can fall back on the event id.
 * No SET clause, so that the planner can inline it into the statements
 * that use it; every name in it is schema-qualified instead.
 */
CREATE FUNCTION eventbus.envelope(e eventbus.events)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
	SELECT CASE WHEN e.id IS NULL THEN NULL ELSE
	pg_catalog.jsonb_build_object(
		'version', '0',
		'id', e.id,
		'detail-type', e.detail_type,
		'source', e.source,
		'account', e.account,
		'time', pg_catalog.to_char(e."time" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
		'region', e.region,
		'resources', pg_catalog.to_jsonb(e.resources),
		'detail', e.detail)
	OPERATOR(pg_catalog.||) CASE WHEN e.replay_name IS NULL THEN '{}'::pg_catalog.jsonb
			ELSE pg_catalog.jsonb_build_object('replay-name', e.replay_name) END
	END
$$;

CREATE VIEW eventbus.event_envelopes AS
	SELECT e.id, e.bus, e.published_at, eventbus.envelope(e) AS envelope
	FROM eventbus.events e;
COMMENT ON VIEW eventbus.event_envelopes IS 'Each event with the JSON envelope its targets receive.';

------------------------------------------------------------------------------
-- Delivery queue and dead letters
------------------------------------------------------------------------------

CREATE TABLE eventbus.deliveries (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	event_id	uuid NOT NULL,
	bus			text NOT NULL,
	rule		text NOT NULL,
	target_id	text NOT NULL,
	attempts	integer NOT NULL DEFAULT 0,
	next_attempt_at timestamptz NOT NULL DEFAULT now(),
	first_attempt_at timestamptz,
	leased_until timestamptz,
	last_error	text,
	last_http_status integer,
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deliveries_next_attempt_at_idx ON eventbus.deliveries (next_attempt_at);
-- No index on (bus, rule, target_id): every publish would pay for it, and
-- only deleting a target (rare) looks deliveries up that way.
COMMENT ON TABLE eventbus.deliveries IS 'Pending and in-flight (event, target) deliveries. While a worker holds one, leased_until is set and next_attempt_at is the lease''s end.';

CREATE TABLE eventbus.dead_letters (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	event_id	uuid NOT NULL,
	event		jsonb NOT NULL,
	bus			text NOT NULL,
	rule		text NOT NULL,
	target_id	text NOT NULL,
	endpoint	text,
	error_code	text NOT NULL,
	error_message text,
	http_status integer,
	response_excerpt text,
	attempts	integer NOT NULL,
	exhausted_condition text NOT NULL,
	first_attempt_at timestamptz,
	failed_at	timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT dead_letters_condition_valid CHECK (exhausted_condition IN
		('MaximumRetryAttempts', 'MaximumEventAgeInSeconds', 'NonRetryable', 'TargetDeleted'))
);
CREATE INDEX dead_letters_target_idx ON eventbus.dead_letters (bus, rule, target_id);
COMMENT ON TABLE eventbus.dead_letters IS 'One row per (event, target) that could not be delivered, with the reason. Redrive with eventbus.redrive_dead_letters().';

/*
 * Deleting a target (directly, through remove_target, or by deleting its
 * rule) moves its pending deliveries to the dead-letter table: nothing is
 * dropped silently.
 */
CREATE FUNCTION eventbus.dead_letter_deleted_target()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	WITH moved AS (
		DELETE FROM eventbus.deliveries d
		WHERE d.bus = OLD.bus AND d.rule = OLD.rule AND d.target_id = OLD.target_id
		RETURNING d.*
	)
	INSERT INTO eventbus.dead_letters
		(event_id, event, bus, rule, target_id, endpoint, error_code,
		 error_message, http_status, attempts, exhausted_condition,
		 first_attempt_at)
	SELECT m.event_id,
		   coalesce(eventbus.envelope(e), jsonb_build_object('id', m.event_id)),
		   m.bus, m.rule, m.target_id, OLD.endpoint, 'TARGET_DELETED',
		   format('target %s of rule %s on bus %s was deleted before delivery%s',
				  OLD.target_id, OLD.rule, OLD.bus,
				  CASE WHEN m.last_error IS NULL THEN ''
					   ELSE '; last error: ' || m.last_error END),
		   m.last_http_status, m.attempts, 'TargetDeleted', m.first_attempt_at
	FROM moved m LEFT JOIN eventbus.events e ON e.id = m.event_id;
	RETURN OLD;
END
$$;

CREATE TRIGGER targets_dead_letter_on_delete
	BEFORE DELETE ON eventbus.targets
	FOR EACH ROW EXECUTE FUNCTION eventbus.dead_letter_deleted_target();

------------------------------------------------------------------------------
-- C functions: pattern validation and matching, publish-time trigger
------------------------------------------------------------------------------

CREATE FUNCTION eventbus.test_event_pattern(event_pattern jsonb, event jsonb)
RETURNS boolean
AS 'MODULE_PATHNAME', 'eventbus_test_event_pattern'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION eventbus.test_event_pattern(jsonb, jsonb) IS 'TestEventPattern: does the event match the pattern? Raises an error for an invalid pattern.';

CREATE FUNCTION eventbus.validate_event_pattern(event_pattern jsonb)
RETURNS void
AS 'MODULE_PATHNAME', 'eventbus_validate_event_pattern'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION eventbus.validate_event_pattern(jsonb) IS 'Raises an error saying what is wrong with an invalid event pattern.';

-- Matches each new event against its bus's enabled rules; inserts deliveries.
CREATE FUNCTION eventbus.match_event_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'eventbus_match_event_trigger'
LANGUAGE C;

CREATE TRIGGER events_match
	AFTER INSERT ON eventbus.events
	FOR EACH ROW EXECUTE FUNCTION eventbus.match_event_trigger();

-- Invalidates every backend's compiled rule sets when buses, rules or targets change.
CREATE FUNCTION eventbus.invalidate_rule_cache()
RETURNS trigger
AS 'MODULE_PATHNAME', 'eventbus_invalidate_rule_cache'
LANGUAGE C;

CREATE TRIGGER rules_invalidate_cache
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON eventbus.rules
	FOR EACH STATEMENT EXECUTE FUNCTION eventbus.invalidate_rule_cache();
CREATE TRIGGER targets_invalidate_cache
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON eventbus.targets
	FOR EACH STATEMENT EXECUTE FUNCTION eventbus.invalidate_rule_cache();
CREATE TRIGGER buses_invalidate_cache
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON eventbus.buses
	FOR EACH STATEMENT EXECUTE FUNCTION eventbus.invalidate_rule_cache();

------------------------------------------------------------------------------
-- Publishing
------------------------------------------------------------------------------

/*
 * Validates one entry as PutEvents does.  All fields are NULL when it is
 * valid; otherwise sqlstate, message, detail and hint are put_event's error
 * and error_code and error_message are AWS's, for put_events.
 */
CREATE FUNCTION eventbus.check_entry(source text, detail_type text,
									 detail_size bigint, resources text[],
									 bus text, time_given boolean,
									 OUT sqlstate text, OUT message text,
									 OUT detail text, OUT hint text,
									 OUT error_code text, OUT error_message text)
RETURNS record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_size bigint;
	v_limit bigint := eventbus.max_event_size_setting();
BEGIN
	IF source IS NULL OR source = '' THEN
		sqlstate := CASE WHEN source IS NULL THEN '22004' ELSE '22023' END;
		message := CASE WHEN source IS NULL THEN 'event source must not be null' ELSE 'event source must not be empty' END;
		hint := 'Pass the name of the system that publishes the event, such as ''com.example.orders''.';
		error_code := 'InvalidArgument';
		error_message := 'Parameter Source is not valid. Reason: Source is a required argument.';
	ELSIF detail_type IS NULL OR detail_type = '' THEN
		sqlstate := CASE WHEN detail_type IS NULL THEN '22004' ELSE '22023' END;
		message := CASE WHEN detail_type IS NULL THEN 'event detail-type must not be null' ELSE 'event detail-type must not be empty' END;
		hint := 'Pass what kind of event this is, such as ''Order Placed''.';
		error_code := 'InvalidArgument';
		error_message := 'Parameter DetailType is not valid. Reason: DetailType is a required argument.';
	ELSIF detail_size IS NULL THEN
		sqlstate := '22004';
		message := 'event detail must not be null';
		hint := 'Pass a JSON object; ''{}'' for an event with no detail.';
		error_code := 'InvalidArgument';
		error_message := 'Parameter Detail is not valid. Reason: Detail is a required argument.';
	ELSIF length(source) > 256 THEN
		sqlstate := '22023';
		message := 'event source is longer than 256 characters';
		detail := format('The source has %s characters.', length(source));
		error_code := 'InvalidArgument';
		error_message := 'Parameter Source is not valid. Reason: Source is longer than 256 characters.';
	ELSIF length(detail_type) > 128 THEN
		sqlstate := '22023';
		message := 'event detail-type is longer than 128 characters';
		detail := format('The detail-type has %s characters.', length(detail_type));
		error_code := 'InvalidArgument';
		error_message := 'Parameter DetailType is not valid. Reason: DetailType is longer than 128 characters.';
	ELSIF array_position(resources, NULL) IS NOT NULL THEN
		sqlstate := '22004';
		message := 'event resources must not contain null';
		hint := 'Leave the resource out, or pass an empty array.';
		error_code := 'InvalidArgument';
		error_message := 'Parameter Resources is not valid. Reason: Resources must not contain null.';
	ELSIF NOT EXISTS (SELECT 1 FROM eventbus.buses b WHERE b.name = bus) THEN
		sqlstate := '42704';
		message := format('event bus "%s" does not exist', bus);
		hint := 'Create it with eventbus.create_event_bus(), or publish to ''default''.';
		error_code := 'ResourceNotFoundException';
		error_message := format('Event bus %s does not exist.', bus);
	ELSE
		-- the entry size as AWS counts it: Time (14 bytes when given),
		-- Source, DetailType, Detail and each resource, in UTF-8 bytes
		v_size := CASE WHEN time_given THEN 14 ELSE 0 END
			+ octet_length(source) + octet_length(detail_type) + detail_size
			+ coalesce((SELECT sum(octet_length(r)) FROM unnest(resources) r), 0);
		IF v_size > v_limit THEN
			sqlstate := '54000';
			message := 'event is too large';
			detail := format('The event is %s bytes; the limit is %s bytes.', v_size, v_limit);
			hint := 'Store large payloads elsewhere and publish a reference, or raise eventbus.max_event_size.';
			error_code := 'ValidationException';
			error_message := format('Total size of the entries in the request is over the limit: the entry is %s bytes, the limit %s.', v_size, v_limit);
		END IF;
	END IF;
END
$$;

-- In C (src/publish.c): the hot path of every publishing transaction.
CREATE FUNCTION eventbus.put_event(source text, detail_type text, detail jsonb,
								   resources text[] DEFAULT '{}',
								   bus text DEFAULT 'default',
								   "time" timestamptz DEFAULT NULL)
RETURNS uuid
AS 'MODULE_PATHNAME', 'eventbus_put_event'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION eventbus.put_event(text, text, jsonb, text[], text, timestamptz) IS 'Publishes one event in the caller''s transaction; returns its id.';

/*
 * PutEvents: up to 10 entries with AWS's keys; each is validated alone and
 * the valid ones are published.  Returns AWS's response shape.
 */
CREATE FUNCTION eventbus.put_events(entries jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_entry jsonb;
	v_results jsonb := '[]';
	v_failed integer := 0;
	v_source text;
	v_detail_type text;
	v_detail jsonb;
	v_detail_size bigint;
	v_resources text[];
	v_bus text;
	v_time timestamptz;
	v_code text;
	v_message text;
	v_err record;
	v_id uuid;
BEGIN
	IF entries IS NULL OR jsonb_typeof(entries) <> 'array' THEN
		PERFORM eventbus.raise_error('22023',
			'entries must be a JSON array of PutEvents entries',
			format('The value given is %s.', coalesce('a JSON ' || jsonb_typeof(entries), 'NULL')),
			'Pass ''[{"Source": "...", "DetailType": "...", "Detail": "{...}"}]''.');
	END IF;
	IF jsonb_array_length(entries) = 0 OR jsonb_array_length(entries) > 10 THEN
		PERFORM eventbus.raise_error('22023',
			format('put_events takes 1 to 10 entries, not %s', jsonb_array_length(entries)),
			'PutEvents accepts at most 10 entries per call.',
			CASE WHEN jsonb_array_length(entries) > 10 THEN 'Split the entries into calls of at most 10.' END);
	END IF;

	FOR v_entry IN SELECT x FROM jsonb_array_elements(entries) AS t(x)
	LOOP
		v_code := NULL;
		v_message := NULL;
		v_source := NULL;
		v_detail_type := NULL;
		v_detail := NULL;
		v_detail_size := NULL;
		v_resources := '{}';
		v_bus := 'default';
		v_time := NULL;

		IF jsonb_typeof(v_entry) <> 'object' THEN
			v_code := 'InvalidArgument';
			v_message := 'Entry is not valid. Reason: an entry must be a JSON object.';
		END IF;

		-- Source and DetailType: strings
		IF v_code IS NULL AND v_entry ? 'Source' AND jsonb_typeof(v_entry -> 'Source') <> 'null' THEN
			IF jsonb_typeof(v_entry -> 'Source') <> 'string' THEN
				v_code := 'InvalidArgument';
				v_message := 'Parameter Source is not valid. Reason: Source must be a string.';
			ELSE
				v_source := v_entry ->> 'Source';
			END IF;
		END IF;
		IF v_code IS NULL AND v_entry ? 'DetailType' AND jsonb_typeof(v_entry -> 'DetailType') <> 'null' THEN
			IF jsonb_typeof(v_entry -> 'DetailType') <> 'string' THEN
				v_code := 'InvalidArgument';
				v_message := 'Parameter DetailType is not valid. Reason: DetailType must be a string.';
			ELSE
				v_detail_type := v_entry ->> 'DetailType';
			END IF;
		END IF;

		-- Detail: a JSON object, or a string holding one (as AWS takes it)
		IF v_code IS NULL AND v_entry ? 'Detail' THEN
			CASE jsonb_typeof(v_entry -> 'Detail')
				WHEN 'object' THEN
					v_detail := v_entry -> 'Detail';
					v_detail_size := octet_length(v_detail::text);
				WHEN 'string' THEN
					IF v_entry ->> 'Detail' <> '' THEN
						v_detail_size := octet_length(v_entry ->> 'Detail');
						IF NOT eventbus.is_valid_jsonb(v_entry ->> 'Detail') THEN
							v_code := 'MalformedDetail';
							v_message := 'Detail is malformed.';
						ELSE
							v_detail := (v_entry ->> 'Detail')::jsonb;
							IF jsonb_typeof(v_detail) <> 'object' THEN
								v_code := 'MalformedDetail';
								v_message := 'Detail is malformed.';
							END IF;
						END IF;
					END IF;
				WHEN 'null' THEN
					NULL;
				ELSE
					v_code := 'MalformedDetail';
					v_message := 'Detail is malformed.';
			END CASE;
		END IF;

		-- Resources: an array of strings
		IF v_code IS NULL AND v_entry ? 'Resources' AND jsonb_typeof(v_entry -> 'Resources') <> 'null' THEN
			IF jsonb_typeof(v_entry -> 'Resources') <> 'array'
			   OR EXISTS (SELECT 1 FROM jsonb_array_elements(v_entry -> 'Resources') r
						  WHERE jsonb_typeof(r) <> 'string') THEN
				v_code := 'InvalidArgument';
				v_message := 'Parameter Resources is not valid. Reason: Resources must be an array of strings.';
			ELSE
				v_resources := ARRAY(SELECT jsonb_array_elements_text(v_entry -> 'Resources'));
			END IF;
		END IF;

		-- EventBusName: a name or an event bus ARN
		IF v_code IS NULL AND v_entry ? 'EventBusName' AND jsonb_typeof(v_entry -> 'EventBusName') <> 'null' THEN
			IF jsonb_typeof(v_entry -> 'EventBusName') <> 'string' THEN
				v_code := 'InvalidArgument';
				v_message := 'Parameter EventBusName is not valid. Reason: EventBusName must be a string.';
			ELSE
				v_bus := regexp_replace(v_entry ->> 'EventBusName', '^arn:[^:]*:events:[^:]*:[^:]*:event-bus/', '');
			END IF;
		END IF;

		-- Time: an ISO 8601 string or unix seconds
		IF v_code IS NULL AND v_entry ? 'Time' AND jsonb_typeof(v_entry -> 'Time') <> 'null' THEN
			IF jsonb_typeof(v_entry -> 'Time') = 'number' THEN
				v_time := to_timestamp((v_entry ->> 'Time')::double precision);
			ELSIF jsonb_typeof(v_entry -> 'Time') = 'string'
				  AND eventbus.is_valid_timestamptz(v_entry ->> 'Time') THEN
				v_time := (v_entry ->> 'Time')::timestamptz;
			ELSE
				v_code := 'InvalidArgument';
				v_message := 'Parameter Time is not valid. Reason: Time must be an ISO 8601 timestamp or unix seconds.';
			END IF;
		END IF;

		IF v_code IS NULL THEN
			v_err := eventbus.check_entry(v_source, v_detail_type, v_detail_size,
										  v_resources, v_bus, v_time IS NOT NULL);
			v_code := v_err.error_code;
			v_message := v_err.error_message;
		END IF;

		IF v_code IS NULL THEN
			v_id := gen_random_uuid();
			INSERT INTO eventbus.events (id, bus, source, detail_type, resources,
										 detail, "time", account, region)
			VALUES (v_id, v_bus, v_source, v_detail_type, v_resources, v_detail,
					coalesce(v_time, clock_timestamp()),
					current_setting('eventbus.account'),
					current_setting('eventbus.region'));
			v_results := v_results || jsonb_build_array(jsonb_build_object('EventId', v_id));
		ELSE
			v_failed := v_failed + 1;
			v_results := v_results || jsonb_build_array(
				jsonb_build_object('ErrorCode', v_code, 'ErrorMessage', v_message));
		END IF;
	END LOOP;

	RETURN jsonb_build_object('FailedEntryCount', v_failed, 'Entries', v_results);
END
$$;
COMMENT ON FUNCTION eventbus.put_events(jsonb) IS 'PutEvents: publishes up to 10 entries; invalid ones fail alone.';

/*
 * Input validity tests without subtransactions (PostgreSQL 15 has no
 * pg_input_is_valid()).
 */
-- Also loads the library, so that the eventbus.* settings exist.
CREATE FUNCTION eventbus.max_event_size_setting()
RETURNS bigint
AS 'MODULE_PATHNAME', 'eventbus_max_event_size_setting'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

CREATE FUNCTION eventbus.is_valid_jsonb(value text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'eventbus_input_is_valid_jsonb'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION eventbus.is_valid_timestamptz(value text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'eventbus_input_is_valid_timestamptz'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

/*
 * The outbox for existing tables: attach as
 *   CREATE TRIGGER orders_events AFTER INSERT OR UPDATE OR DELETE ON orders
 *	   FOR EACH ROW EXECUTE FUNCTION eventbus.capture('com.example.orders');
 * Each row change is published in the same transaction: source from the
 * first argument, bus from the optional second, detail-type
 * '<schema>.<table> <INSERT|UPDATE|DELETE>', and a detail holding the
 * operation, the table and the new and old rows as JSON.
 */
CREATE FUNCTION eventbus.capture()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_detail jsonb;
BEGIN
	IF TG_LEVEL <> 'ROW' OR TG_WHEN <> 'AFTER' THEN
		PERFORM eventbus.raise_error('39P01',
			'eventbus.capture() must be an AFTER ... FOR EACH ROW trigger',
			NULL,
			'CREATE TRIGGER ... AFTER INSERT OR UPDATE OR DELETE ON your_table FOR EACH ROW EXECUTE FUNCTION eventbus.capture(''com.example.source'');');
	END IF;
	IF TG_NARGS < 1 OR TG_NARGS > 2 OR TG_ARGV[0] = '' THEN
		PERFORM eventbus.raise_error('39P01',
			'eventbus.capture() takes the event source and, optionally, the bus as trigger arguments',
			format('Trigger %s on %I.%I passes %s argument(s).', TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_NARGS),
			'EXECUTE FUNCTION eventbus.capture(''com.example.orders'') or eventbus.capture(''com.example.orders'', ''orders-bus'').');
	END IF;
	v_detail := jsonb_build_object(
		'operation', TG_OP,
		'schema', TG_TABLE_SCHEMA,
		'table', TG_TABLE_NAME,
		'new', CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END,
		'old', CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END);
	PERFORM eventbus.put_event(
		source => TG_ARGV[0],
		detail_type => format('%s.%s %s', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP),
		detail => v_detail,
		bus => CASE WHEN TG_NARGS = 2 THEN TG_ARGV[1] ELSE 'default' END);
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION eventbus.capture() IS 'Trigger function: publishes each row change of a table as an event (the transactional outbox).';

------------------------------------------------------------------------------
-- Buses
------------------------------------------------------------------------------

CREATE FUNCTION eventbus.create_event_bus(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF name IS NULL OR name !~ '^[A-Za-z0-9._/-]+$' OR length(name) > 256 THEN
		PERFORM eventbus.raise_error('22023',
			format('invalid event bus name "%s"', name),
			'A bus name is 1 to 256 characters from A-Z, a-z, 0-9, ".", "_", "-" and "/".',
			'Choose a name such as ''orders''.');
	END IF;
	IF EXISTS (SELECT 1 FROM eventbus.buses b WHERE b.name = create_event_bus.name) THEN
		PERFORM eventbus.raise_error('42710',
			format('event bus "%s" already exists', name),
			NULL,
			'Use the existing bus, or delete it first with eventbus.delete_event_bus().');
	END IF;
	INSERT INTO eventbus.buses (name) VALUES (create_event_bus.name);
END
$$;

CREATE FUNCTION eventbus.delete_event_bus(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_rules bigint;
BEGIN
	IF name = 'default' THEN
		PERFORM eventbus.raise_error('22023',
			'cannot delete the default event bus',
			NULL,
			'Delete its rules instead.');
	END IF;
	PERFORM 1 FROM eventbus.buses b WHERE b.name = delete_event_bus.name FOR UPDATE;
	IF NOT FOUND THEN
		PERFORM eventbus.raise_error('42704',
			format('event bus "%s" does not exist', name),
			NULL,
			'List the buses with: SELECT name FROM eventbus.buses;');
	END IF;
	SELECT count(*) INTO v_rules FROM eventbus.rules r WHERE r.bus = delete_event_bus.name;
	IF v_rules > 0 THEN
		PERFORM eventbus.raise_error('2BP01',
			format('event bus "%s" still has %s rule(s)', name, v_rules),
			NULL,
			'Delete its rules with eventbus.delete_rule() first.');
	END IF;
	DELETE FROM eventbus.buses b WHERE b.name = delete_event_bus.name;
END
$$;

------------------------------------------------------------------------------
-- Rules
------------------------------------------------------------------------------

-- Raises the error for a missing bus or rule; shared by the rule and target API.
CREATE FUNCTION eventbus.require_rule(rule text, bus text, lock boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM eventbus.buses b WHERE b.name = bus) THEN
		PERFORM eventbus.raise_error('42704',
			format('event bus "%s" does not exist', bus),
			NULL,
			'Create it with eventbus.create_event_bus().');
	END IF;
	IF lock THEN
		PERFORM 1 FROM eventbus.rules r WHERE r.bus = require_rule.bus AND r.name = rule FOR UPDATE;
	ELSE
		PERFORM 1 FROM eventbus.rules r WHERE r.bus = require_rule.bus AND r.name = rule;
	END IF;
	IF NOT FOUND THEN
		PERFORM eventbus.raise_error('42704',
			format('rule "%s" does not exist on event bus "%s"', rule, bus),
			NULL,
			'List the rules with: SELECT bus, name FROM eventbus.rules;');
	END IF;
END
$$;

CREATE FUNCTION eventbus.put_rule(name text, event_pattern jsonb,
								  bus text DEFAULT 'default',
								  state text DEFAULT 'ENABLED',
								  description text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF name IS NULL OR name !~ '^[A-Za-z0-9._-]{1,64}$' THEN
		PERFORM eventbus.raise_error('22023',
			format('invalid rule name "%s"', name),
			'A rule name is 1 to 64 characters from A-Z, a-z, 0-9, ".", "_" and "-".',
			'Choose a name such as ''orders-to-billing''.');
	END IF;
	IF upper(state) IS DISTINCT FROM 'ENABLED' AND upper(state) IS DISTINCT FROM 'DISABLED' THEN
		PERFORM eventbus.raise_error('22023',
			format('invalid rule state "%s"', state),
			NULL,
			'The state is ''ENABLED'' or ''DISABLED''.');
	END IF;
	IF event_pattern IS NULL THEN
		PERFORM eventbus.raise_error('22004',
			format('event pattern of rule "%s" must not be null', name),
			NULL,
			'Pass a pattern such as ''{"source": ["com.example.orders"]}''.');
	END IF;
	IF NOT EXISTS (SELECT 1 FROM eventbus.buses b WHERE b.name = bus) THEN
		PERFORM eventbus.raise_error('42704',
			format('event bus "%s" does not exist', bus),
			NULL,
			'Create it with eventbus.create_event_bus().');
	END IF;
	PERFORM eventbus.validate_event_pattern(event_pattern);
	INSERT INTO eventbus.rules AS r (bus, name, event_pattern, state, description)
	VALUES (bus, name, event_pattern, upper(state), description)
	ON CONFLICT ON CONSTRAINT rules_pkey DO UPDATE
		SET event_pattern = EXCLUDED.event_pattern,
			state = EXCLUDED.state,
			description = EXCLUDED.description,
			updated_at = now();
END
$$;
COMMENT ON FUNCTION eventbus.put_rule(text, jsonb, text, text, text) IS 'Creates or replaces a rule; an invalid pattern is rejected with the reason.';

CREATE FUNCTION eventbus.delete_rule(name text, bus text DEFAULT 'default')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM eventbus.require_rule(name, bus, true);
	-- targets go with the rule; their pending deliveries are dead-lettered
	DELETE FROM eventbus.rules r WHERE r.bus = delete_rule.bus AND r.name = delete_rule.name;
END
$$;

CREATE FUNCTION eventbus.set_rule_state(name text, bus text, state text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM eventbus.require_rule(name, bus, true);
	UPDATE eventbus.rules r SET state = set_rule_state.state, updated_at = now()
	WHERE r.bus = set_rule_state.bus AND r.name = set_rule_state.name
	  AND r.state <> set_rule_state.state;
END
$$;

CREATE FUNCTION eventbus.enable_rule(name text, bus text DEFAULT 'default')
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT eventbus.set_rule_state(name, bus, 'ENABLED') $$;

CREATE FUNCTION eventbus.disable_rule(name text, bus text DEFAULT 'default')
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT eventbus.set_rule_state(name, bus, 'DISABLED') $$;

------------------------------------------------------------------------------
-- Targets
------------------------------------------------------------------------------

CREATE FUNCTION eventbus.put_target(rule text, target_id text, endpoint text,
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
	v_bad text;
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
	IF headers IS NULL OR jsonb_typeof(headers) <> 'object' THEN
		PERFORM eventbus.raise_error('22023',
			format('headers of target "%s" must be a JSON object of strings', target_id),
			NULL,
			'For example ''{"Authorization": "Bearer ..."}''.');
	END IF;
	SELECT string_agg(format('"%s"', k), ', ') INTO v_bad
	FROM jsonb_each(headers) AS h(k, v)
	WHERE jsonb_typeof(v) <> 'string' OR k !~ '^[!#$%&''*+.^_`|~0-9A-Za-z-]+$'
		  OR (v ->> 0) ~ '[\r\n]'
		  OR lower(k) IN ('content-length', 'host', 'transfer-encoding', 'connection',
						  'webhook-id', 'webhook-timestamp', 'webhook-signature');
	IF v_bad IS NOT NULL THEN
		PERFORM eventbus.raise_error('22023',
			format('invalid header(s) %s for target "%s"', v_bad, target_id),
			'Header names must be HTTP tokens and values single-line strings; Content-Length, Host, Transfer-Encoding, Connection and the webhook-* headers are set by the worker.',
			NULL);
	END IF;
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
COMMENT ON FUNCTION eventbus.put_target(text, text, text, text, text, jsonb, integer, interval, interval) IS 'Creates or replaces an HTTP target of a rule (at most 5 per rule).';

CREATE FUNCTION eventbus.remove_target(rule text, target_id text, bus text DEFAULT 'default')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM eventbus.require_rule(rule, bus, true);
	DELETE FROM eventbus.targets t
	WHERE t.bus = remove_target.bus AND t.rule = remove_target.rule
	  AND t.target_id = remove_target.target_id;
	IF NOT FOUND THEN
		PERFORM eventbus.raise_error('42704',
			format('target "%s" does not exist on rule "%s"', target_id, rule),
			NULL,
			'List the targets with: SELECT rule, target_id FROM eventbus.targets;');
	END IF;
END
$$;

------------------------------------------------------------------------------
-- Dead letters
------------------------------------------------------------------------------

/*
 * Puts the dead letters that match every given filter back into the queue
 * (fresh attempt budget, the target's current configuration) and removes
 * them from dead_letters, in one transaction.  Dead letters whose target no
 * longer exists stay where they are.  Returns how many were re-queued.
 */
CREATE FUNCTION eventbus.redrive_dead_letters(ids bigint[] DEFAULT NULL,
											  rule text DEFAULT NULL,
											  target_id text DEFAULT NULL,
											  error_code text DEFAULT NULL,
											  since timestamptz DEFAULT NULL,
											  bus text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_count bigint;
BEGIN
	WITH picked AS (
		DELETE FROM eventbus.dead_letters dl
		WHERE (ids IS NULL OR dl.id = ANY (ids))
		  AND (redrive_dead_letters.rule IS NULL OR dl.rule = redrive_dead_letters.rule)
		  AND (redrive_dead_letters.target_id IS NULL OR dl.target_id = redrive_dead_letters.target_id)
		  AND (redrive_dead_letters.error_code IS NULL OR dl.error_code = redrive_dead_letters.error_code)
		  AND (since IS NULL OR dl.failed_at >= since)
		  AND (redrive_dead_letters.bus IS NULL OR dl.bus = redrive_dead_letters.bus)
		  AND EXISTS (SELECT 1 FROM eventbus.targets t
					  WHERE t.bus = dl.bus AND t.rule = dl.rule AND t.target_id = dl.target_id)
		  AND EXISTS (SELECT 1 FROM eventbus.events e WHERE e.id = dl.event_id)
		RETURNING dl.event_id, dl.bus, dl.rule, dl.target_id
	), queued AS (
		INSERT INTO eventbus.deliveries (event_id, bus, rule, target_id)
		SELECT p.event_id, p.bus, p.rule, p.target_id FROM picked p
		RETURNING 1
	)
	SELECT count(*) INTO v_count FROM queued;
	IF v_count > 0 THEN
		PERFORM eventbus.wake_workers();
	END IF;
	RETURN v_count;
END
$$;
COMMENT ON FUNCTION eventbus.redrive_dead_letters(bigint[], text, text, text, timestamptz, text) IS 'Re-queues the dead letters matching every given filter; returns how many.';

-- Raises an ERROR whose detail and hint are left out when NULL.
CREATE FUNCTION eventbus.raise_error(sqlstate text, message text,
									 detail text DEFAULT NULL,
									 hint text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'eventbus_raise_error'
LANGUAGE C VOLATILE;

-- Asks the delivery workers to look at the queue when this transaction commits.
CREATE FUNCTION eventbus.wake_workers()
RETURNS void
AS 'MODULE_PATHNAME', 'eventbus_wake_workers'
LANGUAGE C VOLATILE;

-- BEGIN worker section

/*
 * The delivery queue churns: every row is inserted, updated when a worker
 * claims it and deleted when settled.  Vacuum it early and at full speed,
 * so that the claim's index scan in next_attempt_at order does not wade
 * through dead entries.
 */
ALTER TABLE eventbus.deliveries SET (
	autovacuum_vacuum_scale_factor = 0.01,
	autovacuum_vacuum_insert_scale_factor = 0.01,
	autovacuum_vacuum_cost_delay = 0
);

-- Delivery workers waiting for this extension start when it commits.
SELECT eventbus.wake_workers();

-- END worker section

------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC; see the README for the grants to give.
------------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA eventbus FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA eventbus FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventbus.test_event_pattern(jsonb, jsonb) TO PUBLIC;
GRANT EXECUTE ON FUNCTION eventbus.validate_event_pattern(jsonb) TO PUBLIC;
GRANT EXECUTE ON FUNCTION eventbus.envelope(eventbus.events) TO PUBLIC;
