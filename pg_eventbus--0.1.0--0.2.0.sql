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
 * The one definition of a dead-letter row, eventbus.dead_letter(), is in
 * the section "Archive, retention and replay" below, after the columns of
 * eventbus.deliveries it reads; the trigger below calls it at run time.
 */

/*
 * Targets deleted while rows of theirs may still come to the queue: rows a
 * worker held when the target was deleted come back if their request
 * fails, and a transaction that matched the target before the deletion
 * committed may queue rows after it.  The worker's claim dead-letters such
 * rows (TargetDeleted) by probing the queue for these targets only, and
 * forgets a target once it has no row left and no transaction older than
 * its deletion runs (src/queue.c, forget_sql).  Without this list the
 * worker would have to walk the queue's index to find targets that no
 * longer exist, and under a long transaction that index keeps an entry for
 * every row delivered meanwhile.
 */
CREATE TABLE eventbus.deleted_targets (
	bus text NOT NULL,
	rule text NOT NULL,
	target_id text NOT NULL,
	deleted_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	PRIMARY KEY (bus, rule, target_id)
);
COMMENT ON TABLE eventbus.deleted_targets IS 'Deleted targets whose rows may still reach the queue; the worker dead-letters them (TargetDeleted) and forgets the target when none can.';
REVOKE ALL ON eventbus.deleted_targets FROM PUBLIC;

-- Rows queued for a target that no longer exists, from a 0.1.0 database.
INSERT INTO eventbus.deleted_targets (bus, rule, target_id)
SELECT DISTINCT d.bus, d.rule, d.target_id FROM eventbus.deliveries d
WHERE NOT EXISTS (SELECT FROM eventbus.targets t
				  WHERE t.bus = d.bus AND t.rule = d.rule AND t.target_id = d.target_id);

/*
 * Deleting a target moves its pending deliveries to the dead-letter table,
 * except those a worker has in flight (leased): their answer decides.  A
 * delivered event stays delivered; one that fails is dead-lettered by the
 * worker (TargetDeleted once the row comes back to the claim).  The target
 * is remembered in eventbus.deleted_targets until no row of it can appear.
 */
CREATE OR REPLACE FUNCTION eventbus.dead_letter_deleted_target()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	m eventbus.deliveries;
BEGIN
	INSERT INTO eventbus.deleted_targets AS g (bus, rule, target_id)
	VALUES (OLD.bus, OLD.rule, OLD.target_id)
	ON CONFLICT ON CONSTRAINT deleted_targets_pkey
		DO UPDATE SET deleted_at = pg_catalog.clock_timestamp();
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
 * And the only index of the queue by next_attempt_at: with an index on
 * next_attempt_at alone, the planner may take it for a target's probe
 * whenever the statistics say every row belongs to the target it asks
 * about (the queue analyzed while one target's backlog filled it), and
 * then the probe walks the due rows of every other target, filtering them
 * out one by one -- a paused target's backlog read again on each claim.
 * With this index gone there is no such plan to pick.
 */
DROP INDEX eventbus.deliveries_next_attempt_at_idx;

/*
 * A target created again under the name of a deleted one takes over the
 * rows still queued under that name, as in 0.1.0: they are its rows now.
 */
CREATE FUNCTION eventbus.forget_deleted_target()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM eventbus.deleted_targets g
	WHERE g.bus OPERATOR(pg_catalog.=) NEW.bus
	  AND g.rule OPERATOR(pg_catalog.=) NEW.rule
	  AND g.target_id OPERATOR(pg_catalog.=) NEW.target_id;
	RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.forget_deleted_target() FROM PUBLIC;
CREATE TRIGGER targets_forget_deleted AFTER INSERT ON eventbus.targets
	FOR EACH ROW EXECUTE FUNCTION eventbus.forget_deleted_target();

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

-- put_target calls it: see the section "Input transformation", which defines
-- put_target once for 0.2.0.

-- (end of targets)


------------------------------------------------------------------------------
-- Matching
------------------------------------------------------------------------------

-- (end of matching)


------------------------------------------------------------------------------
-- Statistics and metrics
------------------------------------------------------------------------------

/*
 * The counters in shared memory (src/stats.c) and the views over them.
 * Counters are keyed by name, as CloudWatch keys metrics by dimension: a
 * deleted rule or target keeps its counters until eventbus.stats_reset(),
 * and one created again with the same name continues them.  Nothing here
 * is granted to PUBLIC; pg_monitor may read the views and metrics() (see
 * the README, "Statistics and metrics").
 */
CREATE FUNCTION eventbus.stats_entries(
	OUT kind text, OUT bus text, OUT rule text, OUT target_id text,
	OUT put_events bigint, OUT put_event_bytes bigint, OUT matched_events bigint,
	OUT invocations bigint, OUT invocation_attempts bigint,
	OUT successful_invocation_attempts bigint, OUT retry_invocation_attempts bigint,
	OUT throttled_invocation_attempts bigint, OUT timed_out_invocation_attempts bigint,
	OUT failed_invocations bigint, OUT dead_letter_invocations bigint,
	OUT start_latency_buckets bigint[], OUT start_latency_sum double precision,
	OUT start_latency_count bigint,
	OUT success_latency_buckets bigint[], OUT success_latency_sum double precision,
	OUT success_latency_count bigint,
	OUT stats_reset timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'eventbus_stats_entries'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION eventbus.stats_entries() IS 'Every entry of the shared-memory counters (for the *_stats views).';

CREATE FUNCTION eventbus.stats_overview(OUT entries bigint, OUT max_entries bigint,
										OUT overflowed bigint, OUT stats_reset timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'eventbus_stats_overview'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION eventbus.stats_overview() IS 'Entries of the counters in use, their capacity, counts that went to "(other)", the last reset of everything.';

CREATE FUNCTION eventbus.worker_status(OUT worker integer, OUT pid integer, OUT state text,
									   OUT in_flight integer, OUT last_claim timestamptz,
									   OUT claimed bigint, OUT started_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'eventbus_worker_status'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION eventbus.worker_status() IS 'One row per running delivery worker: its state, requests in flight (the leases it holds), last claim.';

CREATE FUNCTION eventbus.latency_bucket_bounds()
RETURNS double precision[]
AS 'MODULE_PATHNAME', 'eventbus_latency_bucket_bounds'
LANGUAGE C IMMUTABLE STRICT;
COMMENT ON FUNCTION eventbus.latency_bucket_bounds() IS 'Upper bounds, in seconds, of the latency histograms'' buckets (then +Inf).';

CREATE FUNCTION eventbus.stats_reset(bus text DEFAULT NULL, rule text DEFAULT NULL,
									 target_id text DEFAULT NULL)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'eventbus_stats_reset'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION eventbus.stats_reset(text, text, text) IS 'Zeroes the counters of the given bus, rule and target (NULL: any); with no argument, all of them.  Returns the reset time.';

-- The queue per target, as the views see it (one scan of deliveries).
CREATE VIEW eventbus.queue_by_target AS
SELECT d.bus, d.rule, d.target_id,
	pg_catalog.count(*) AS backlog,
	pg_catalog.count(*) FILTER (WHERE d.next_attempt_at <= pg_catalog.now()) AS due,
	pg_catalog.count(*) FILTER (WHERE d.leased_until IS NULL AND d.next_attempt_at > pg_catalog.now()) AS waiting_on_backoff,
	pg_catalog.count(*) FILTER (WHERE d.leased_until IS NOT NULL AND d.next_attempt_at > pg_catalog.now()) AS in_flight,
	pg_catalog.now() - pg_catalog.min(d.next_attempt_at) FILTER (WHERE d.next_attempt_at <= pg_catalog.now()) AS oldest_due_age,
	pg_catalog.now() - pg_catalog.min(d.created_at) FILTER (WHERE d.leased_until IS NULL AND d.next_attempt_at > pg_catalog.now()) AS oldest_backoff_age
FROM eventbus.deliveries d
GROUP BY d.bus, d.rule, d.target_id;
COMMENT ON VIEW eventbus.queue_by_target IS 'Pending deliveries per target: backlog, due, waiting on backoff, in flight, and the ages of the oldest.';

CREATE VIEW eventbus.bus_stats AS
SELECT coalesce(b.name, s.bus) AS bus,
	coalesce(s.put_events, 0) AS put_events,
	coalesce(s.put_event_bytes, 0) AS put_event_bytes,
	coalesce(s.matched_events, 0) AS matched_events,
	coalesce(s.stats_reset, (SELECT o.stats_reset FROM eventbus.stats_overview() o)) AS stats_reset
FROM eventbus.buses b
FULL JOIN (SELECT * FROM eventbus.stats_entries() e WHERE e.kind = 'bus') s ON s.bus = b.name;
COMMENT ON VIEW eventbus.bus_stats IS 'Per bus: events put (PutEvents entries), their bytes, events that matched at least one rule (MatchedEvents).';

CREATE VIEW eventbus.rule_stats AS
SELECT coalesce(r.bus, s.bus) AS bus, coalesce(r.name, s.rule) AS rule,
	coalesce(s.matched_events, 0) AS matched_events,
	coalesce(s.stats_reset, (SELECT o.stats_reset FROM eventbus.stats_overview() o)) AS stats_reset
FROM eventbus.rules r
FULL JOIN (SELECT * FROM eventbus.stats_entries() e WHERE e.kind = 'rule') s
	ON s.bus = r.bus AND s.rule = r.name;
COMMENT ON VIEW eventbus.rule_stats IS 'Per rule: events it matched (CloudWatch''s TriggeredRules).';

-- eventbus.target_stats is defined once, in the section "Rate limits and
-- circuit breakers", after the columns of eventbus.targets it shows.

CREATE VIEW eventbus.status AS
SELECT
	(SELECT pg_catalog.count(*) FROM eventbus.worker_status()) AS workers_running,
	(SELECT pg_catalog.string_agg(pg_catalog.format('#%s pid %s %s, %s in flight, last claim %s',
								  w.worker, w.pid, w.state, w.in_flight,
								  coalesce(pg_catalog.to_char(w.last_claim, 'YYYY-MM-DD HH24:MI:SS.MS TZ'), 'never')),
						 '; ' ORDER BY w.worker)
	 FROM eventbus.worker_status() w) AS workers,
	coalesce(pg_catalog.sum(q.backlog), 0)::bigint AS backlog,
	coalesce(pg_catalog.sum(q.due), 0)::bigint AS due,
	coalesce(pg_catalog.sum(q.waiting_on_backoff), 0)::bigint AS waiting_on_backoff,
	coalesce(pg_catalog.sum(q.in_flight), 0)::bigint AS leases_held,
	pg_catalog.max(q.oldest_due_age) AS oldest_due_age,
	pg_catalog.max(q.oldest_backoff_age) AS oldest_backoff_age,
	(SELECT pg_catalog.count(*) FROM eventbus.dead_letters l
	 WHERE l.failed_at > pg_catalog.now() - interval '1 hour') AS dead_letters_last_hour,
	(SELECT pg_catalog.count(*) FROM eventbus.dead_letters) AS dead_letters,
	(SELECT o.entries FROM eventbus.stats_overview() o) AS stats_entries,
	(SELECT o.max_entries FROM eventbus.stats_overview() o) AS stats_max_entries,
	(SELECT o.overflowed FROM eventbus.stats_overview() o) AS stats_overflowed,
	(SELECT o.stats_reset FROM eventbus.stats_overview() o) AS stats_reset
FROM eventbus.queue_by_target q;
COMMENT ON VIEW eventbus.status IS 'The bus at a glance (one row; use \x): workers, the queue, dead letters, the counters'' table.';

-- A Prometheus label value: backslash, double quote and newline escaped.
CREATE FUNCTION eventbus.metrics_label(value text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
SELECT pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(value, E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n')
$$;

-- eventbus.metrics() is defined once, in the section "Rate limits and
-- circuit breakers", with the gauges of the breakers.

REVOKE ALL ON eventbus.bus_stats, eventbus.rule_stats, eventbus.status,
	eventbus.queue_by_target FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION eventbus.stats_entries(), eventbus.stats_overview(),
	eventbus.worker_status(), eventbus.latency_bucket_bounds(),
	eventbus.stats_reset(text, text, text), eventbus.metrics_label(text) FROM PUBLIC;
-- monitoring: pg_monitor reads the views and metrics(); resetting stays with the owner
GRANT USAGE ON SCHEMA eventbus TO pg_monitor;
GRANT SELECT ON eventbus.bus_stats, eventbus.rule_stats, eventbus.status TO pg_monitor;
GRANT EXECUTE ON FUNCTION eventbus.stats_entries(), eventbus.stats_overview(),
	eventbus.worker_status(), eventbus.latency_bucket_bounds() TO pg_monitor;
-- (target_stats and metrics(): see the section "Rate limits and circuit breakers")


-- (end of statistics)


------------------------------------------------------------------------------
-- Signed requests
------------------------------------------------------------------------------

/*
 * The signing secrets of targets (Standard Webhooks), one row per secret:
 * the current one (expires_at NULL) and the previous ones still in their
 * grace period.  The key is the secret's random bytes; src/signature.c
 * owns its formats (the "whsec_" text, the fingerprint).  Nobody but the
 * extension's owner may read this table: no grant, no view or function
 * returns a key, and no constraint on the key whose failure would print
 * the row.  The secrets go with their target.
 */
CREATE TABLE eventbus.signing_keys (
	bus			text NOT NULL,
	rule		text NOT NULL,
	target_id	text NOT NULL,
	id			bigint GENERATED ALWAYS AS IDENTITY,
	key			bytea NOT NULL,
	fingerprint text NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now(),
	expires_at	timestamptz,
	PRIMARY KEY (bus, rule, target_id, id),
	FOREIGN KEY (bus, rule, target_id) REFERENCES eventbus.targets (bus, rule, target_id)
		ON DELETE CASCADE
);
COMMENT ON TABLE eventbus.signing_keys IS 'Signing secrets of targets. Readable by the extension''s owner only; see the view eventbus.signing_secrets.';
REVOKE ALL ON eventbus.signing_keys FROM PUBLIC;

-- What may be shown of the secrets that sign now: never the key.
CREATE VIEW eventbus.signing_secrets AS
	SELECT k.bus, k.rule, k.target_id, k.fingerprint, k.created_at, k.expires_at
	FROM eventbus.signing_keys k
	WHERE k.expires_at IS NULL OR k.expires_at OPERATOR(pg_catalog.>) pg_catalog.now();
COMMENT ON VIEW eventbus.signing_secrets IS 'The secrets that sign each target''s requests now: fingerprint (first 8 hex digits of the SHA-256 of the secret), created, expires (NULL: the current one). Never the secret.';
REVOKE ALL ON eventbus.signing_secrets FROM PUBLIC;

/*
 * A fresh key, its secret text ("whsec_" and base64), its fingerprint, and
 * how many secrets a target keeps at most (src/signature.c).
 */
CREATE FUNCTION eventbus.new_signing_secret(OUT key bytea, OUT secret text,
											OUT fingerprint text,
											OUT max_secrets integer)
RETURNS record
AS 'MODULE_PATHNAME', 'eventbus_new_signing_secret'
LANGUAGE C VOLATILE;
REVOKE EXECUTE ON FUNCTION eventbus.new_signing_secret() FROM PUBLIC;

-- Raises the error for a missing bus, rule or target; locks the target.
CREATE FUNCTION eventbus.require_target(rule text, target_id text, bus text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM eventbus.require_rule(rule, bus);
	PERFORM 1 FROM eventbus.targets t
	WHERE t.bus = require_target.bus AND t.rule = require_target.rule
	  AND t.target_id = require_target.target_id
	FOR UPDATE;
	IF NOT FOUND THEN
		PERFORM eventbus.raise_error('42704',
			format('target "%s" does not exist on rule "%s"', target_id, rule),
			format('Event bus "%s" has no target "%s" on rule "%s".', bus, target_id, rule),
			'List the targets with: SELECT bus, rule, target_id FROM eventbus.targets;');
	END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.require_target(text, text, text) FROM PUBLIC;

/*
 * Gives the target a new signing secret and returns it (the only time it
 * is shown).  It signs from now on; the previous ones keep signing until
 * `grace` has passed (or their own earlier end), then stop; of the secrets
 * that sign, the oldest are dropped so that at most max_secrets remain.
 * grace => '0' stops the previous ones at once (after a leak).
 */
CREATE FUNCTION eventbus.rotate_signing_secret(rule text, target_id text,
											   bus text DEFAULT 'default',
											   grace interval DEFAULT '24 hours')
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_new record;
BEGIN
	PERFORM eventbus.require_target(rule, target_id, bus);
	IF grace IS NULL OR grace < interval '0' OR grace > interval '7 days' THEN
		PERFORM eventbus.raise_error('22023',
			'grace must be between 0 and 7 days',
			format('The value given is %s.', coalesce(grace::text, 'NULL')),
			'The grace is how long the previous secrets keep signing next to the new one; give ''0'' to stop them at once, for example ''24 hours'' to leave receivers a day.');
	END IF;
	SELECT s.key, s.secret, s.fingerprint, s.max_secrets INTO v_new
	FROM eventbus.new_signing_secret() s;
	UPDATE eventbus.signing_keys k
	SET expires_at = LEAST(k.expires_at, now() + grace)
	WHERE k.bus = rotate_signing_secret.bus AND k.rule = rotate_signing_secret.rule
	  AND k.target_id = rotate_signing_secret.target_id;
	INSERT INTO eventbus.signing_keys (bus, rule, target_id, key, fingerprint)
	VALUES (bus, rule, target_id, v_new.key, v_new.fingerprint);
	-- expired secrets, and the oldest beyond max_secrets, are gone
	DELETE FROM eventbus.signing_keys k
	WHERE k.bus = rotate_signing_secret.bus AND k.rule = rotate_signing_secret.rule
	  AND k.target_id = rotate_signing_secret.target_id
	  AND (k.expires_at <= now()
		   OR k.id < (SELECT min(n.id) FROM (
						SELECT k2.id FROM eventbus.signing_keys k2
						WHERE k2.bus = rotate_signing_secret.bus
						  AND k2.rule = rotate_signing_secret.rule
						  AND k2.target_id = rotate_signing_secret.target_id
						  AND (k2.expires_at IS NULL OR k2.expires_at > now())
						ORDER BY k2.id DESC
						LIMIT v_new.max_secrets) n));
	RETURN v_new.secret;
END
$$;
COMMENT ON FUNCTION eventbus.rotate_signing_secret(text, text, text, interval) IS 'Gives a target a new signing secret and returns it, once; the previous ones keep signing for the grace period.';
REVOKE EXECUTE ON FUNCTION eventbus.rotate_signing_secret(text, text, text, interval) FROM PUBLIC;

-- Stops signing a target's requests: removes its secrets; returns how many.
CREATE FUNCTION eventbus.delete_signing_secrets(rule text, target_id text,
												bus text DEFAULT 'default')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_count bigint;
BEGIN
	PERFORM eventbus.require_target(rule, target_id, bus);
	DELETE FROM eventbus.signing_keys k
	WHERE k.bus = delete_signing_secrets.bus AND k.rule = delete_signing_secrets.rule
	  AND k.target_id = delete_signing_secrets.target_id;
	GET DIAGNOSTICS v_count = ROW_COUNT;
	RETURN v_count;
END
$$;
COMMENT ON FUNCTION eventbus.delete_signing_secrets(text, text, text) IS 'Removes a target''s signing secrets: its requests go out unsigned from the next attempt on.';
REVOKE EXECUTE ON FUNCTION eventbus.delete_signing_secrets(text, text, text) FROM PUBLIC;

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


------------------------------------------------------------------------------
-- Archive, retention and replay
------------------------------------------------------------------------------

/*
 * Retention.  Events are kept for eventbus.event_retention, or for their
 * bus's own retention, and removed by dropping whole partitions of
 * eventbus.events (no DELETE, no bloat): eventbus.maintenance() below, run
 * by the maintenance process (src/maintenance.c) or by an operator.
 */

-- eventbus.event_retention as an interval, NULL for 0 (keep forever).
CREATE FUNCTION eventbus.event_retention_setting()
RETURNS interval
AS 'MODULE_PATHNAME', 'eventbus_event_retention_setting'
LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION eventbus.event_retention_setting() FROM PUBLIC;

-- A new event id, as put_event makes them (UUIDv7), for replayed events.
CREATE FUNCTION eventbus.new_event_id()
RETURNS uuid
AS 'MODULE_PATHNAME', 'eventbus_new_event_id'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION eventbus.new_event_id() FROM PUBLIC;

/*
 * The one check of a retention given to create_event_bus, alter_event_bus
 * and create_archive: from a minute (the narrowest partition) to 100 years.
 * `what` names the thing it is the retention of.
 */
CREATE FUNCTION eventbus.check_retention(what text, retention interval)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF retention IS NOT NULL AND (retention OPERATOR(pg_catalog.<) interval '1 minute'
			OR retention OPERATOR(pg_catalog.>) interval '100 years') THEN
		PERFORM eventbus.raise_error('22023',
			pg_catalog.format('retention of %s must be between 1 minute and 100 years', what),
			pg_catalog.format('The value given is %s.', retention),
			'Pass an interval such as ''7 days'', or NULL.');
	END IF;
END
$$;
REVOKE ALL ON FUNCTION eventbus.check_retention(text, interval) FROM PUBLIC;

-- A bus's own retention; NULL: eventbus.event_retention.
ALTER TABLE eventbus.buses ADD COLUMN retention interval;

DROP FUNCTION eventbus.create_event_bus(text);
CREATE FUNCTION eventbus.create_event_bus(name text, retention interval DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF name IS NULL OR name !~ '^[A-Za-z0-9._/-]+$' OR pg_catalog.length(name) > 256 THEN
		PERFORM eventbus.raise_error('22023',
			pg_catalog.format('invalid event bus name "%s"', name),
			'A bus name is 1 to 256 characters from A-Z, a-z, 0-9, ".", "_", "-" and "/".',
			'Choose a name such as ''orders''.');
	END IF;
	IF EXISTS (SELECT 1 FROM eventbus.buses b WHERE b.name OPERATOR(pg_catalog.=) create_event_bus.name) THEN
		PERFORM eventbus.raise_error('42710',
			pg_catalog.format('event bus "%s" already exists', name),
			NULL,
			'Use the existing bus, or delete it first with eventbus.delete_event_bus().');
	END IF;
	PERFORM eventbus.check_retention(pg_catalog.format('event bus "%s"', name), retention);
	INSERT INTO eventbus.buses (name, retention)
	VALUES (create_event_bus.name, create_event_bus.retention);
END
$$;
REVOKE ALL ON FUNCTION eventbus.create_event_bus(text, interval) FROM PUBLIC;
COMMENT ON FUNCTION eventbus.create_event_bus(text, interval) IS 'Creates an event bus; retention overrides eventbus.event_retention for its events.';

CREATE FUNCTION eventbus.alter_event_bus(name text, retention interval)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM eventbus.check_retention(pg_catalog.format('event bus "%s"', name), retention);
	UPDATE eventbus.buses b SET retention = alter_event_bus.retention
	WHERE b.name OPERATOR(pg_catalog.=) alter_event_bus.name;
	IF NOT FOUND THEN
		PERFORM eventbus.raise_error('42704',
			pg_catalog.format('event bus "%s" does not exist', name),
			NULL,
			'List the buses with: SELECT name FROM eventbus.buses;');
	END IF;
END
$$;
REVOKE ALL ON FUNCTION eventbus.alter_event_bus(text, interval) FROM PUBLIC;
COMMENT ON FUNCTION eventbus.alter_event_bus(text, interval) IS 'Sets a bus''s retention (NULL: eventbus.event_retention).';

/*
 * A delivery names its event's partition (event_published_at: the claim's
 * and dead_letter()'s probe is one index probe in one partition) and, when
 * its event is no longer in the archive (a dead letter redriven after its
 * event expired), the envelope to send instead.  A 0.1.0 delivery whose
 * event is missing gets '-infinity', which no partition's probe finds.
 */
ALTER TABLE eventbus.deliveries ADD COLUMN event_published_at timestamptz;
ALTER TABLE eventbus.deliveries ADD COLUMN envelope jsonb;
UPDATE eventbus.deliveries d
SET event_published_at = coalesce((SELECT e.published_at FROM eventbus.events e
								   WHERE e.id OPERATOR(pg_catalog.=) d.event_id),
								  '-infinity');
ALTER TABLE eventbus.deliveries ALTER COLUMN event_published_at SET NOT NULL;

/*
 * eventbus.events becomes partitioned by published_at, with every row
 * kept.  The row type changes, so envelope() and the view over it are
 * made again, as the publishing section defines them.  0.1.0's rows go
 * into one partition of their own, which expires as a whole; the default
 * partition takes what no partition covers (maintenance not run yet, or a
 * server without the maintenance process): rows that land there are
 * deleted when they expire.
 */
DROP VIEW eventbus.event_envelopes;
DROP FUNCTION eventbus.envelope(eventbus.events);
ALTER TABLE eventbus.events RENAME TO events_0_1_0;
ALTER INDEX eventbus.events_pkey RENAME TO events_0_1_0_pkey;

CREATE TABLE eventbus.events (
	id			uuid NOT NULL,
	bus			text NOT NULL,
	source		text NOT NULL,
	detail_type text NOT NULL,
	resources	text[] NOT NULL DEFAULT '{}',
	detail		jsonb NOT NULL,
	"time"		timestamptz NOT NULL,
	account		text NOT NULL,
	region		text NOT NULL,
	published_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	replay_name text,
	PRIMARY KEY (id, published_at)
) PARTITION BY RANGE (published_at);
COMMENT ON TABLE eventbus.events IS 'Every published event (the archive), partitioned by published_at; expired partitions are dropped by eventbus.maintenance(). eventbus.envelope(e) is the JSON a target receives.';
CREATE TABLE eventbus.events_default PARTITION OF eventbus.events DEFAULT;
-- Replays and maintenance read ranges of published_at; a BRIN index costs
-- a publish almost nothing, and rows arrive in published_at order.
CREATE INDEX events_published_at_idx ON eventbus.events USING brin (published_at);

DO $$
DECLARE
	v_lo timestamptz;
	v_hi timestamptz;
	v_name text;
BEGIN
	SELECT pg_catalog.min(e.published_at), pg_catalog.max(e.published_at)
	INTO v_lo, v_hi FROM eventbus.events_0_1_0 e;
	IF v_lo IS NOT NULL THEN
		v_hi := greatest(v_hi OPERATOR(pg_catalog.+) interval '1 microsecond',
									pg_catalog.now());
		v_name := 'events_p' OPERATOR(pg_catalog.||)
			pg_catalog.to_char(v_lo AT TIME ZONE 'UTC', 'YYYYMMDD"_"HH24MISS');
		EXECUTE pg_catalog.format('CREATE TABLE eventbus.%I PARTITION OF eventbus.events FOR VALUES FROM (%L) TO (%L)',
								  v_name, v_lo, v_hi);
		-- like every time partition, not a member: maintenance drops it
		EXECUTE pg_catalog.format('ALTER EXTENSION pg_eventbus DROP TABLE eventbus.%I', v_name);
	END IF;
END
$$;
INSERT INTO eventbus.events SELECT * FROM eventbus.events_0_1_0;
DROP TABLE eventbus.events_0_1_0;

CREATE TRIGGER events_match
	AFTER INSERT ON eventbus.events
	FOR EACH ROW EXECUTE FUNCTION eventbus.match_event_trigger();

CREATE FUNCTION eventbus.envelope(e eventbus.events)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'eventbus_envelope'
LANGUAGE C STABLE PARALLEL SAFE;
GRANT EXECUTE ON FUNCTION eventbus.envelope(eventbus.events) TO PUBLIC;

CREATE VIEW eventbus.event_envelopes AS
	SELECT e.id, e.bus, e.published_at, eventbus.envelope(e) AS envelope
	FROM eventbus.events e;
COMMENT ON VIEW eventbus.event_envelopes IS 'Each event with the JSON envelope its targets receive.';

/*
 * The time partitions of eventbus.events and their ranges, read from the
 * catalog (the one place they are written down).
 */
CREATE VIEW eventbus.event_partitions AS
	SELECT c.relname::text AS name,
		   (b.m)[1]::timestamptz AS range_start,
		   (b.m)[2]::timestamptz AS range_end
	FROM pg_catalog.pg_inherits i
	JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid
	CROSS JOIN LATERAL (SELECT pg_catalog.regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid),
													   'FROM \(''([^'']*)''\) TO \(''([^'']*)''\)') AS m) b
	WHERE i.inhparent OPERATOR(pg_catalog.=) 'eventbus.events'::regclass
	  AND b.m IS NOT NULL;
COMMENT ON VIEW eventbus.event_partitions IS 'The time partitions of eventbus.events and their published_at ranges.';

/*
 * Archives: the events of a bus that match a pattern (all of them when
 * NULL), published from the archive's creation on, kept for its retention
 * (NULL: forever).  They are not copied: an archive keeps the partitions
 * that hold its events from being dropped.  Replayed events are not
 * archived again.
 */
CREATE TABLE eventbus.archive_definitions (
	name		text PRIMARY KEY,
	bus			text NOT NULL,
	event_pattern jsonb,
	retention	interval,
	description text,
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE eventbus.archive_definitions IS 'Archives: see the view eventbus.archives.';

CREATE VIEW eventbus.archives AS
	SELECT a.name, a.bus, a.event_pattern, a.retention, a.description,
		   'ENABLED'::text AS state, a.created_at
	FROM eventbus.archive_definitions a;
COMMENT ON VIEW eventbus.archives IS 'Archives (DescribeArchive): which events of which bus are kept, and for how long (retention NULL: forever).';

CREATE FUNCTION eventbus.create_archive(name text, bus text,
										event_pattern jsonb DEFAULT NULL,
										retention interval DEFAULT NULL,
										description text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF name IS NULL OR name !~ '^[A-Za-z0-9._-]{1,48}$' THEN
		PERFORM eventbus.raise_error('22023',
			pg_catalog.format('invalid archive name "%s"', name),
			'An archive name is 1 to 48 characters from A-Z, a-z, 0-9, ".", "_" and "-".',
			'Choose a name such as ''orders-archive''.');
	END IF;
	IF NOT EXISTS (SELECT 1 FROM eventbus.buses b WHERE b.name OPERATOR(pg_catalog.=) create_archive.bus) THEN
		PERFORM eventbus.raise_error('42704',
			pg_catalog.format('event bus "%s" does not exist', bus),
			NULL,
			'Create it with eventbus.create_event_bus(), or archive ''default''.');
	END IF;
	IF event_pattern IS NOT NULL THEN
		PERFORM eventbus.validate_event_pattern(event_pattern);
	END IF;
	PERFORM eventbus.check_retention(pg_catalog.format('archive "%s"', name), retention);
	IF EXISTS (SELECT 1 FROM eventbus.archive_definitions a WHERE a.name OPERATOR(pg_catalog.=) create_archive.name) THEN
		PERFORM eventbus.raise_error('42710',
			pg_catalog.format('archive "%s" already exists', name),
			NULL,
			'Use the existing archive, or delete it first with eventbus.delete_archive().');
	END IF;
	INSERT INTO eventbus.archive_definitions (name, bus, event_pattern, retention, description)
	VALUES (create_archive.name, create_archive.bus, create_archive.event_pattern,
			create_archive.retention, create_archive.description);
END
$$;
REVOKE ALL ON FUNCTION eventbus.create_archive(text, text, jsonb, interval, text) FROM PUBLIC;
COMMENT ON FUNCTION eventbus.create_archive(text, text, jsonb, interval, text) IS 'CreateArchive: keeps the matching events of a bus for the retention given (NULL: forever).';

CREATE FUNCTION eventbus.delete_archive(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM eventbus.archive_definitions a WHERE a.name OPERATOR(pg_catalog.=) delete_archive.name;
	IF NOT FOUND THEN
		PERFORM eventbus.raise_error('42704',
			pg_catalog.format('archive "%s" does not exist', name),
			NULL,
			'List the archives with: SELECT name FROM eventbus.archives;');
	END IF;
END
$$;
REVOKE ALL ON FUNCTION eventbus.delete_archive(text) FROM PUBLIC;
COMMENT ON FUNCTION eventbus.delete_archive(text) IS 'DeleteArchive: its events are then kept only for their bus''s retention.';

/*
 * Replays: the archived events published in [event_start_time,
 * event_end_time), published again to destination_bus with replay-name
 * set, to the given rules only (NULL: every rule of that bus), in the
 * order they were published.  The maintenance process carries a replay on
 * with eventbus.replay_step(), one time slice per transaction; `position`
 * is where the next slice starts, `slice` its width (it adapts so that a
 * slice holds a few hundred events).
 */
CREATE TABLE eventbus.replay_runs (
	name		text PRIMARY KEY,
	archive		text NOT NULL,
	destination_bus text NOT NULL,
	rules		text[],
	event_start_time timestamptz NOT NULL,
	event_end_time timestamptz NOT NULL,
	state		text NOT NULL DEFAULT 'STARTING',
	state_reason text,
	position	timestamptz NOT NULL,
	slice		interval NOT NULL DEFAULT '1 second',
	events_replayed bigint NOT NULL DEFAULT 0,
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	ended_at	timestamptz,
	CONSTRAINT replay_runs_state_valid CHECK (state IN
		('STARTING', 'RUNNING', 'COMPLETED', 'CANCELLED', 'FAILED'))
);
COMMENT ON TABLE eventbus.replay_runs IS 'Replays: see the view eventbus.replays.';

CREATE VIEW eventbus.replays AS
	SELECT r.name, r.archive, r.destination_bus, r.rules, r.event_start_time,
		   r.event_end_time, r.state, r.state_reason, r.events_replayed,
		   r.position AS event_last_replayed_time,
		   r.created_at AS replay_start_time, r.ended_at AS replay_end_time
	FROM eventbus.replay_runs r;
COMMENT ON VIEW eventbus.replays IS 'Replays (DescribeReplay): state and progress; event_last_replayed_time is how far through the window it is.';

CREATE FUNCTION eventbus.start_replay(name text, archive text,
									  start_time timestamptz, end_time timestamptz,
									  destination_bus text DEFAULT NULL,
									  rules text[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_archive eventbus.archive_definitions;
	v_missing text;
BEGIN
	IF name IS NULL OR name !~ '^[A-Za-z0-9._-]{1,64}$' THEN
		PERFORM eventbus.raise_error('22023',
			pg_catalog.format('invalid replay name "%s"', name),
			'A replay name is 1 to 64 characters from A-Z, a-z, 0-9, ".", "_" and "-".',
			'Choose a name such as ''orders-2026-12-01''.');
	END IF;
	SELECT * INTO v_archive FROM eventbus.archive_definitions a
	WHERE a.name OPERATOR(pg_catalog.=) start_replay.archive;
	IF NOT FOUND THEN
		PERFORM eventbus.raise_error('42704',
			pg_catalog.format('archive "%s" does not exist', archive),
			NULL,
			'List the archives with: SELECT name FROM eventbus.archives;');
	END IF;
	IF start_time IS NULL OR end_time IS NULL THEN
		PERFORM eventbus.raise_error('22004',
			pg_catalog.format('start_time and end_time of replay "%s" must not be null', name),
			NULL,
			'Pass the window of publish times to replay, such as now() - interval ''1 hour'' and now().');
	END IF;
	IF NOT (start_time OPERATOR(pg_catalog.<) end_time) THEN
		PERFORM eventbus.raise_error('22023',
			pg_catalog.format('start_time of replay "%s" must be before its end_time', name),
			pg_catalog.format('start_time is %s, end_time %s.', start_time, end_time),
			NULL);
	END IF;
	IF end_time OPERATOR(pg_catalog.>) pg_catalog.now() THEN
		PERFORM eventbus.raise_error('22023',
			pg_catalog.format('end_time of replay "%s" is in the future', name),
			pg_catalog.format('end_time is %s; it is now %s.', end_time, pg_catalog.now()),
			'A replay sends events already published: end the window at now() or earlier.');
	END IF;
	destination_bus := coalesce(destination_bus, v_archive.bus);
	IF NOT EXISTS (SELECT 1 FROM eventbus.buses b WHERE b.name OPERATOR(pg_catalog.=) start_replay.destination_bus) THEN
		PERFORM eventbus.raise_error('42704',
			pg_catalog.format('event bus "%s" does not exist', destination_bus),
			NULL,
			'Replay to an existing bus, or leave destination_bus NULL for the archive''s bus.');
	END IF;
	IF rules IS NOT NULL THEN
		IF pg_catalog.cardinality(rules) OPERATOR(pg_catalog.=) 0 THEN
			PERFORM eventbus.raise_error('22023',
				pg_catalog.format('replay "%s" names no rule', name),
				NULL,
				'Pass NULL for every rule of the destination bus, or the rules to send to.');
		END IF;
		SELECT pg_catalog.string_agg(pg_catalog.format('"%s"', u.r), ', ') INTO v_missing
		FROM pg_catalog.unnest(rules) AS u(r)
		WHERE NOT EXISTS (SELECT 1 FROM eventbus.rules r
						  WHERE r.bus OPERATOR(pg_catalog.=) start_replay.destination_bus
							AND r.name OPERATOR(pg_catalog.=) u.r);
		IF v_missing IS NOT NULL THEN
			PERFORM eventbus.raise_error('42704',
				pg_catalog.format('rule(s) %s do not exist on event bus "%s"', v_missing, destination_bus),
				NULL,
				'List the rules with: SELECT name FROM eventbus.rules WHERE bus = ''' OPERATOR(pg_catalog.||) destination_bus OPERATOR(pg_catalog.||) ''';');
		END IF;
	END IF;
	IF EXISTS (SELECT 1 FROM eventbus.replay_runs r WHERE r.name OPERATOR(pg_catalog.=) start_replay.name) THEN
		PERFORM eventbus.raise_error('42710',
			pg_catalog.format('replay "%s" already exists', name),
			NULL,
			'Replay names are never reused: choose another.');
	END IF;
	INSERT INTO eventbus.replay_runs (name, archive, destination_bus, rules,
									  event_start_time, event_end_time, position)
	VALUES (start_replay.name, start_replay.archive, start_replay.destination_bus,
			start_replay.rules, start_replay.start_time, start_replay.end_time,
			greatest(start_replay.start_time, v_archive.created_at));
END
$$;
REVOKE ALL ON FUNCTION eventbus.start_replay(text, text, timestamptz, timestamptz, text, text[]) FROM PUBLIC;
COMMENT ON FUNCTION eventbus.start_replay(text, text, timestamptz, timestamptz, text, text[]) IS 'StartReplay: publishes an archive''s events of a window again, in publish order, in the background.';

CREATE FUNCTION eventbus.cancel_replay(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_state text;
BEGIN
	-- waits for a slice in progress: what it published stays published
	SELECT r.state INTO v_state FROM eventbus.replay_runs r
	WHERE r.name OPERATOR(pg_catalog.=) cancel_replay.name FOR UPDATE;
	IF NOT FOUND THEN
		PERFORM eventbus.raise_error('42704',
			pg_catalog.format('replay "%s" does not exist', name),
			NULL,
			'List the replays with: SELECT name, state FROM eventbus.replays;');
	END IF;
	IF v_state NOT IN ('STARTING', 'RUNNING') THEN
		PERFORM eventbus.raise_error('55000',
			pg_catalog.format('replay "%s" is %s', name, v_state),
			'Only a STARTING or RUNNING replay can be cancelled.',
			NULL);
	END IF;
	UPDATE eventbus.replay_runs r
	SET state = 'CANCELLED', state_reason = 'cancelled by cancel_replay()', ended_at = pg_catalog.now()
	WHERE r.name OPERATOR(pg_catalog.=) cancel_replay.name;
END
$$;
REVOKE ALL ON FUNCTION eventbus.cancel_replay(text) FROM PUBLIC;
COMMENT ON FUNCTION eventbus.cancel_replay(text) IS 'CancelReplay: stops a replay after the slice in progress.';

/*
 * Carries the oldest running replay on by one time slice: publishes its
 * archive's events with published_at in [position, position + slice),
 * ordered by (published_at, id), and moves position on.  Returns whether
 * there was a replay to work on.  A replay whose archive or destination
 * bus is gone ends FAILED.  From the maintenance process.
 */
CREATE FUNCTION eventbus.replay_step()
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r eventbus.replay_runs;
	a eventbus.archive_definitions;
	e eventbus.events;
	v_from timestamptz;
	v_to timestamptz;
	v_seen bigint := 0;
	v_sent bigint := 0;
BEGIN
	SELECT * INTO r FROM eventbus.replay_runs rr
	WHERE rr.state IN ('STARTING', 'RUNNING')
	ORDER BY rr.created_at, rr.name
	LIMIT 1 FOR UPDATE SKIP LOCKED;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	SELECT * INTO a FROM eventbus.archive_definitions ad WHERE ad.name OPERATOR(pg_catalog.=) r.archive;
	IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM eventbus.buses b
								WHERE b.name OPERATOR(pg_catalog.=) r.destination_bus) THEN
		UPDATE eventbus.replay_runs rr
		SET state = 'FAILED', ended_at = pg_catalog.now(),
			state_reason = CASE WHEN a.name IS NULL
				THEN pg_catalog.format('archive "%s" was deleted', r.archive)
				ELSE pg_catalog.format('event bus "%s" was deleted', r.destination_bus) END
		WHERE rr.name OPERATOR(pg_catalog.=) r.name;
		RETURN true;
	END IF;
	IF r.state OPERATOR(pg_catalog.=) 'STARTING' THEN
		-- the match trigger sends replayed events only while RUNNING
		UPDATE eventbus.replay_runs rr SET state = 'RUNNING'
		WHERE rr.name OPERATOR(pg_catalog.=) r.name;
	END IF;

	-- the archive holds events within its retention only
	v_from := r.position;
	IF a.retention IS NOT NULL THEN
		v_from := greatest(v_from, pg_catalog.now() OPERATOR(pg_catalog.-) a.retention);
	END IF;
	v_to := least(r.event_end_time, v_from OPERATOR(pg_catalog.+) r.slice);
	FOR e IN
		SELECT ev.* FROM eventbus.events ev
		WHERE ev.published_at OPERATOR(pg_catalog.>=) v_from
		  AND ev.published_at OPERATOR(pg_catalog.<) v_to
		  AND ev.bus OPERATOR(pg_catalog.=) a.bus
		  AND ev.replay_name IS NULL
		ORDER BY ev.published_at, ev.id
	LOOP
		v_seen := v_seen OPERATOR(pg_catalog.+) 1;
		IF a.event_pattern IS NULL
		   OR eventbus.test_event_pattern(a.event_pattern, eventbus.envelope(e)) THEN
			INSERT INTO eventbus.events (id, bus, source, detail_type, resources, detail,
										 "time", account, region, replay_name)
			VALUES (eventbus.new_event_id(), r.destination_bus, e.source, e.detail_type,
					e.resources, e.detail, e."time", e.account, e.region, r.name);
			v_sent := v_sent OPERATOR(pg_catalog.+) 1;
		END IF;
	END LOOP;

	UPDATE eventbus.replay_runs rr
	SET position = v_to,
		events_replayed = rr.events_replayed OPERATOR(pg_catalog.+) v_sent,
		slice = CASE WHEN v_seen OPERATOR(pg_catalog.<) 100
						THEN least(rr.slice OPERATOR(pg_catalog.*) 4, interval '1 day')
					 WHEN v_seen OPERATOR(pg_catalog.>) 1000
						THEN greatest(rr.slice OPERATOR(pg_catalog./) 4, interval '1 millisecond')
					 ELSE rr.slice END,
		state = CASE WHEN v_to OPERATOR(pg_catalog.>=) rr.event_end_time THEN 'COMPLETED' ELSE 'RUNNING' END,
		ended_at = CASE WHEN v_to OPERATOR(pg_catalog.>=) rr.event_end_time THEN pg_catalog.now() END
	WHERE rr.name OPERATOR(pg_catalog.=) r.name;
	IF v_sent OPERATOR(pg_catalog.>) 0 THEN
		PERFORM eventbus.wake_workers();
	END IF;
	RETURN true;
END
$$;
REVOKE ALL ON FUNCTION eventbus.replay_step() FROM PUBLIC;

-- The start of the slot of width `width` (from the Unix epoch) holding `t`.
CREATE FUNCTION eventbus.partition_floor(t timestamptz, width interval)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.to_timestamp(pg_catalog.floor(pg_catalog.date_part('epoch', t)
		OPERATOR(pg_catalog./) pg_catalog.date_part('epoch', width))
		OPERATOR(pg_catalog.*) pg_catalog.date_part('epoch', width))
$$;
REVOKE ALL ON FUNCTION eventbus.partition_floor(timestamptz, interval) FROM PUBLIC;

/*
 * Retention's work, as of `as_of`: creates the partitions of
 * eventbus.events up to three partition widths ahead (making again the
 * empty future ones that are wider than the width now), drops the partitions
 * whose every event has expired (for every bus and archive) and no pending
 * delivery of which remains, and deletes expired rows from the default
 * partition.  Returns one row per thing it did.  Takes the lock on
 * eventbus.events that dropping a partition needs only briefly
 * (lock_timeout); a partition it could not lock is "busy" and dropped at
 * a later run.
 */
CREATE FUNCTION eventbus.maintenance(as_of timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE (action text, partition_name text, range_start timestamptz,
			   range_end timestamptz, detail text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '200ms'
AS $$
DECLARE
	v_default interval := eventbus.event_retention_setting();
	v_forever boolean;
	v_keep interval;
	v_shortest interval;
	v_width interval;
	v_lo timestamptz;
	v_hi timestamptz;
	v_top timestamptz;
	v_pending bigint;
	v_deleted bigint;
	v_empty boolean;
	p record;
BEGIN
	IF as_of IS NULL OR NOT pg_catalog.isfinite(as_of) THEN
		PERFORM eventbus.raise_error('22023',
			'as_of of eventbus.maintenance() must be a finite time',
			pg_catalog.format('The value given is %s.', coalesce(as_of::text, 'NULL')),
			'Call eventbus.maintenance() for now, or pass the time to act as of.');
	END IF;

	-- one run at a time (the maintenance process, an operator, a test):
	-- two would make the same partitions
	IF NOT pg_catalog.pg_try_advisory_xact_lock(7306086738536604531) THEN
		action := 'busy';
		detail := 'another eventbus.maintenance() is running; the next run does the work';
		RETURN NEXT;
		RETURN;
	END IF;

	-- the longest retention of a bus or an archive (NULL: forever) keeps a
	-- partition; the shortest sets the partitions' width
	SELECT pg_catalog.bool_or(s.r IS NULL), pg_catalog.max(s.r), pg_catalog.min(s.r)
	INTO v_forever, v_keep, v_shortest
	FROM (SELECT coalesce(b.retention, v_default) AS r FROM eventbus.buses b
		  UNION ALL
		  SELECT ad.retention FROM eventbus.archive_definitions ad) s;
	SELECT pg_catalog.max(w.w) INTO v_width
	FROM pg_catalog.unnest('{1 minute, 5 minutes, 15 minutes, 1 hour, 6 hours, 1 day, 7 days}'::interval[]) AS w(w)
	WHERE v_shortest IS NULL OR (w.w OPERATOR(pg_catalog.*) 4) OPERATOR(pg_catalog.<=) v_shortest;
	v_width := coalesce(v_width, interval '1 minute');

	-- partitions made ahead with a wider width (the retention was
	-- shortened) are made again at the new width while they are empty
	FOR p IN
		SELECT ep.name, ep.range_start, ep.range_end FROM eventbus.event_partitions ep
		WHERE ep.range_start OPERATOR(pg_catalog.>) pg_catalog.now()
		  AND (ep.range_end OPERATOR(pg_catalog.-) ep.range_start) OPERATOR(pg_catalog.>) v_width
		ORDER BY ep.range_start DESC
	LOOP
		partition_name := p.name;
		range_start := p.range_start;
		range_end := p.range_end;
		BEGIN
			LOCK TABLE ONLY eventbus.events IN ACCESS EXCLUSIVE MODE;
			EXECUTE pg_catalog.format('SELECT NOT EXISTS (SELECT FROM eventbus.%I)', p.name) INTO v_empty;
			IF NOT v_empty THEN
				EXIT;
			END IF;
			EXECUTE pg_catalog.format('DROP TABLE eventbus.%I', p.name);
			action := 'reshaped';
			detail := pg_catalog.format('empty and wider than %s: made again', v_width);
		EXCEPTION WHEN lock_not_available THEN
			action := 'busy';
			detail := 'eventbus.events is locked; a later run reshapes it';
		END;
		RETURN NEXT;
		EXIT WHEN action OPERATOR(pg_catalog.=) 'busy';
	END LOOP;

	-- ahead: contiguous from the last partition, or from now
	SELECT pg_catalog.max(ep.range_end) INTO v_top FROM eventbus.event_partitions ep;
	v_lo := greatest(v_top,
		eventbus.partition_floor(least(as_of, pg_catalog.now()), v_width));
	-- nor partitions that would be expired already (a far as_of)
	IF NOT v_forever THEN
		v_lo := greatest(v_lo, eventbus.partition_floor(as_of OPERATOR(pg_catalog.-) v_keep, v_width));
	END IF;
	-- rows the default partition took must stay where they are
	SELECT pg_catalog.max(d.published_at) OPERATOR(pg_catalog.+) interval '1 microsecond'
	INTO v_hi
	FROM eventbus.events_default d WHERE d.published_at OPERATOR(pg_catalog.>=) v_lo;
	v_lo := greatest(v_lo, v_hi);
	WHILE v_lo OPERATOR(pg_catalog.<) (as_of OPERATOR(pg_catalog.+) (v_width OPERATOR(pg_catalog.*) 3)) LOOP
		v_hi := eventbus.partition_floor(v_lo, v_width) OPERATOR(pg_catalog.+) v_width;
		partition_name := 'events_p' OPERATOR(pg_catalog.||)
			pg_catalog.to_char(v_lo AT TIME ZONE 'UTC', 'YYYYMMDD"_"HH24MISS');
		BEGIN
			EXECUTE pg_catalog.format('CREATE TABLE eventbus.%I PARTITION OF eventbus.events FOR VALUES FROM (%L) TO (%L)',
									  partition_name, v_lo, v_hi);
			action := 'created';
			detail := pg_catalog.format('width %s', v_width);
		EXCEPTION
			WHEN lock_not_available THEN
				action := 'busy';
				detail := 'eventbus.events is locked; the next run creates it';
			WHEN duplicate_table THEN
				action := 'busy';
				detail := 'a partition of that name exists already; the next run starts after it';
			WHEN check_violation THEN
				-- an event went to the default partition meanwhile
				action := 'busy';
				detail := 'the default partition holds events of this range; the next run starts after them';
		END;
		range_start := v_lo;
		range_end := v_hi;
		RETURN NEXT;
		EXIT WHEN action OPERATOR(pg_catalog.=) 'busy';
		v_lo := v_hi;
	END LOOP;

	IF v_forever THEN
		RETURN;
	END IF;
	FOR p IN
		SELECT ep.name, ep.range_start, ep.range_end FROM eventbus.event_partitions ep
		WHERE ep.range_end OPERATOR(pg_catalog.<=) (as_of OPERATOR(pg_catalog.-) v_keep)
		ORDER BY ep.range_start
	LOOP
		partition_name := p.name;
		range_start := p.range_start;
		range_end := p.range_end;
		BEGIN
			-- the lock first: then no delivery of these events can appear
			LOCK TABLE ONLY eventbus.events IN ACCESS EXCLUSIVE MODE;
			SELECT pg_catalog.count(*) INTO v_pending FROM eventbus.deliveries d
			WHERE d.event_published_at OPERATOR(pg_catalog.>=) p.range_start
			  AND d.event_published_at OPERATOR(pg_catalog.<) p.range_end;
			IF v_pending OPERATOR(pg_catalog.>) 0 THEN
				action := 'kept';
				detail := pg_catalog.format('%s deliveries of its events are pending', v_pending);
			ELSE
				EXECUTE pg_catalog.format('DROP TABLE eventbus.%I', p.name);
				action := 'dropped';
				detail := pg_catalog.format('expired: retention %s', v_keep);
			END IF;
		EXCEPTION WHEN lock_not_available THEN
			action := 'busy';
			detail := 'eventbus.events is locked; a later run drops it';
		END;
		RETURN NEXT;
	END LOOP;

	-- rows in the default partition expire one by one
	DELETE FROM eventbus.events_default d
	WHERE d.published_at OPERATOR(pg_catalog.<) (as_of OPERATOR(pg_catalog.-) v_keep)
	  AND NOT EXISTS (SELECT 1 FROM eventbus.deliveries q
					  WHERE q.event_id OPERATOR(pg_catalog.=) d.id
						AND q.event_published_at OPERATOR(pg_catalog.=) d.published_at);
	GET DIAGNOSTICS v_deleted = ROW_COUNT;
	IF v_deleted OPERATOR(pg_catalog.>) 0 THEN
		action := 'deleted';
		partition_name := 'events_default';
		range_start := NULL;
		range_end := as_of OPERATOR(pg_catalog.-) v_keep;
		detail := pg_catalog.format('%s expired events', v_deleted);
		RETURN NEXT;
	END IF;
END
$$;
REVOKE ALL ON FUNCTION eventbus.maintenance(timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION eventbus.maintenance(timestamptz) IS 'Creates the partitions of eventbus.events ahead and drops the expired ones, as of the time given; returns what it did.';

/*
 * The one definition of a dead-letter row: the delivery `moved` (already
 * deleted from the queue by the caller) goes to eventbus.dead_letters with
 * the envelope it carries (a redriven dead letter whose event expired),
 * else its event's envelope (one index probe in the event's partition),
 * else only the event id (the event is no longer in the archive), and the
 * reason.  Used by the worker's settle and by the TargetDeleted trigger.
 * Not SECURITY DEFINER: its callers are the worker (superuser) and a
 * SECURITY DEFINER trigger; EXECUTE is revoked from PUBLIC, so no one else
 * can write dead letters with it.
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
		   coalesce($1.envelope,
					(SELECT eventbus.envelope(e) FROM eventbus.events e
					 WHERE e.id OPERATOR(pg_catalog.=) $1.event_id
					   AND e.published_at OPERATOR(pg_catalog.=) $1.event_published_at),
					pg_catalog.jsonb_build_object('id', $1.event_id)),
		   $1.bus, $1.rule, $1.target_id, $2, $3, $4, $5, $6, $1.attempts,
		   $7, $1.first_attempt_at
$$;
REVOKE ALL ON FUNCTION eventbus.dead_letter(eventbus.deliveries, text, text, text,
	integer, text, text) FROM PUBLIC;

/*
 * Redrive with the partitioned archive: a dead letter whose event is still
 * archived is queued against it; one whose event expired is queued with
 * its envelope, which the worker then sends.  A dead letter that holds no
 * envelope (only the event id: its event was gone when it failed) stays,
 * as one whose target no longer exists does.
 */
CREATE OR REPLACE FUNCTION eventbus.redrive_dead_letters(ids bigint[] DEFAULT NULL,
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
		WHERE (ids IS NULL OR dl.id OPERATOR(pg_catalog.=) ANY (ids))
		  AND (redrive_dead_letters.rule IS NULL OR dl.rule OPERATOR(pg_catalog.=) redrive_dead_letters.rule)
		  AND (redrive_dead_letters.target_id IS NULL OR dl.target_id OPERATOR(pg_catalog.=) redrive_dead_letters.target_id)
		  AND (redrive_dead_letters.error_code IS NULL OR dl.error_code OPERATOR(pg_catalog.=) redrive_dead_letters.error_code)
		  AND (since IS NULL OR dl.failed_at OPERATOR(pg_catalog.>=) since)
		  AND (redrive_dead_letters.bus IS NULL OR dl.bus OPERATOR(pg_catalog.=) redrive_dead_letters.bus)
		  AND EXISTS (SELECT 1 FROM eventbus.targets t
					  WHERE t.bus OPERATOR(pg_catalog.=) dl.bus AND t.rule OPERATOR(pg_catalog.=) dl.rule
						AND t.target_id OPERATOR(pg_catalog.=) dl.target_id)
		  AND (dl.event OPERATOR(pg_catalog.?) 'detail-type'
			   OR EXISTS (SELECT 1 FROM eventbus.events e WHERE e.id OPERATOR(pg_catalog.=) dl.event_id))
		RETURNING dl.event_id, dl.event, dl.bus, dl.rule, dl.target_id
	), queued AS (
		INSERT INTO eventbus.deliveries (event_id, event_published_at, envelope, bus, rule, target_id)
		SELECT p.event_id, coalesce(e.published_at, '-infinity'),
			   CASE WHEN e.published_at IS NULL THEN p.event END,
			   p.bus, p.rule, p.target_id
		FROM picked p
		LEFT JOIN LATERAL (SELECT ev.published_at FROM eventbus.events ev
						   WHERE ev.id OPERATOR(pg_catalog.=) p.event_id
						   LIMIT 1) e ON true
		RETURNING 1
	)
	SELECT pg_catalog.count(*) INTO v_count FROM queued;
	IF v_count OPERATOR(pg_catalog.>) 0 THEN
		PERFORM eventbus.wake_workers();
	END IF;
	RETURN v_count;
END
$$;

-- (end of archive, retention and replay)


------------------------------------------------------------------------------
-- Input transformation
------------------------------------------------------------------------------

/*
 * What a target receives instead of the envelope (src/transform.c):
 * input, a constant JSON body; input_path, a JSONPath whose value in the
 * envelope is the body; input_transformer, EventBridge's InputPathsMap and
 * InputTemplate (and our MissingPath).  At most one is set.
 */
ALTER TABLE eventbus.targets
	ADD COLUMN input jsonb,
	ADD COLUMN input_path text,
	ADD COLUMN input_transformer jsonb;

/*
 * put_target's check of the three, in C so that put_target and the worker
 * read them with the very same code.  Raises 22023 naming the target.
 */
CREATE FUNCTION eventbus.check_target_input(target_id text, input jsonb,
											input_path text,
											input_transformer jsonb)
RETURNS void
AS 'MODULE_PATHNAME', 'eventbus_check_target_input'
LANGUAGE C STABLE;
REVOKE EXECUTE ON FUNCTION eventbus.check_target_input(text, jsonb, text, jsonb) FROM PUBLIC;

/*
 * The text a target with this input_transformer would receive for this
 * event (the console's sandbox); open to everyone, like test_event_pattern.
 */
CREATE FUNCTION eventbus.test_transform(event jsonb, input_transformer jsonb,
										rule text DEFAULT 'test-rule',
										bus text DEFAULT 'default')
RETURNS text
AS 'MODULE_PATHNAME', 'eventbus_test_transform'
LANGUAGE C STABLE;
COMMENT ON FUNCTION eventbus.test_transform(jsonb, jsonb, text, text) IS 'The text a target with this input_transformer would receive for this event; raises an error for an invalid transformer.';
GRANT EXECUTE ON FUNCTION eventbus.test_transform(jsonb, jsonb, text, text) TO PUBLIC;

-- put_target takes input, input_path and input_transformer, checked by
-- check_target_input: see the section "put_target" at the end, which
-- defines it once for 0.2.0.

-- (end of input transformation)


------------------------------------------------------------------------------
-- Rules as code
------------------------------------------------------------------------------

/*
 * Rules as code: eventbus.export() writes the buses, rules and targets as
 * one versioned JSON document, and eventbus.apply() makes a database match
 * such a document, changing exactly what differs (see the README, "Rules as
 * code").  Both go through the API's own functions (put_rule, put_target,
 * remove_target, ...), which stay the one owner of every check, default
 * and normalisation; nothing here repeats them.
 */

/*
 * The settings of a rule or a target that the document carries: the
 * arguments of put_rule (put_target) that are also columns of rules
 * (targets), but not the keys that name the thing, in the order of the
 * arguments.  This is the one list: a new setting -- a column and a put_*
 * argument of the same name -- is exported and applied with no change to
 * export() or apply().  json_type is the JSON type the document must use
 * for it ('any' for json and jsonb columns: put_* checks those).
 */
CREATE FUNCTION eventbus.code_settings(kind text, OUT name text, OUT type text,
									   OUT json_type text, OUT ord integer)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH k(kind, fn, tbl, keys) AS (VALUES
		('rule', 'put_rule', 'eventbus.rules'::pg_catalog.regclass, ARRAY['name', 'bus']),
		('target', 'put_target', 'eventbus.targets'::pg_catalog.regclass, ARRAY['rule', 'target_id', 'bus'])),
	p AS (
		SELECT p.proargnames, p.proargtypes, k.tbl, k.keys
		FROM k JOIN pg_catalog.pg_proc p
			ON p.proname = k.fn
		   AND p.pronamespace = 'eventbus'::pg_catalog.regnamespace
		WHERE k.kind = code_settings.kind
		ORDER BY p.pronargs DESC
		LIMIT 1)
	SELECT a.attname::text, pg_catalog.format_type(a.atttypid, NULL),
		CASE WHEN a.atttypid = ANY (ARRAY['json'::pg_catalog.regtype, 'jsonb'::pg_catalog.regtype]::pg_catalog.oid[]) THEN 'any'
			 WHEN a.atttypid = ANY (ARRAY['int2'::pg_catalog.regtype, 'int4'::pg_catalog.regtype,
				'int8'::pg_catalog.regtype, 'numeric'::pg_catalog.regtype, 'float4'::pg_catalog.regtype,
				'float8'::pg_catalog.regtype]::pg_catalog.oid[]) THEN 'number'
			 WHEN a.atttypid = 'bool'::pg_catalog.regtype THEN 'boolean'
			 ELSE 'string' END,
		arg.n::integer
	FROM p
	CROSS JOIN LATERAL pg_catalog.unnest(p.proargnames) WITH ORDINALITY AS arg(name, n)
	JOIN pg_catalog.pg_attribute a
		ON a.attrelid = p.tbl
	   AND a.attname = arg.name
	   AND a.attnum > 0 AND NOT a.attisdropped
	   AND a.atttypid = p.proargtypes[arg.n - 1]
	WHERE NOT arg.name = ANY (p.keys)
	ORDER BY arg.n
$$;
REVOKE EXECUTE ON FUNCTION eventbus.code_settings(text) FROM PUBLIC;

-- The settings (code_settings) of one row of rules or targets, as JSON.
CREATE FUNCTION eventbus.code_settings_of(kind text, entry jsonb)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce(pg_catalog.jsonb_object_agg(s.name, entry -> s.name), '{}')
	FROM eventbus.code_settings(kind) s
$$;
REVOKE EXECUTE ON FUNCTION eventbus.code_settings_of(text, jsonb) FROM PUBLIC;

-- What export() writes for a header value it does not show.
CREATE FUNCTION eventbus.code_masked()
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '{"masked": true}'::pg_catalog.jsonb $$;
REVOKE EXECUTE ON FUNCTION eventbus.code_masked() FROM PUBLIC;

/*
 * One target as the document holds it: its id, its settings (header values
 * masked unless header_values) and whether it signs, with the fingerprints
 * of its secrets -- never a secret.
 */
CREATE FUNCTION eventbus.code_export_target(t eventbus.targets, header_values boolean)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.jsonb_build_object('target_id', t.target_id)
		|| eventbus.code_settings_of('target', pg_catalog.to_jsonb(t)
			|| CASE WHEN header_values THEN '{}'::pg_catalog.jsonb
				ELSE pg_catalog.jsonb_build_object('headers',
					(SELECT coalesce(pg_catalog.jsonb_object_agg(h.key, eventbus.code_masked()), '{}')
					 FROM pg_catalog.jsonb_each(t.headers) h)) END)
		|| pg_catalog.jsonb_build_object('signing',
			(SELECT pg_catalog.jsonb_build_object(
						'signed', pg_catalog.count(*) > 0,
						'fingerprints', coalesce(pg_catalog.jsonb_agg(s.fingerprint ORDER BY s.created_at, s.fingerprint), '[]'))
			 FROM eventbus.signing_secrets s
			 WHERE s.bus = t.bus AND s.rule = t.rule
			   AND s.target_id = t.target_id))
$$;
REVOKE EXECUTE ON FUNCTION eventbus.code_export_target(eventbus.targets, boolean) FROM PUBLIC;

-- One rule as the document holds it: name, settings, targets by id.
CREATE FUNCTION eventbus.code_export_rule(r eventbus.rules, header_values boolean)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.jsonb_build_object('name', r.name)
		|| eventbus.code_settings_of('rule', pg_catalog.to_jsonb(r))
		|| pg_catalog.jsonb_build_object('targets',
			(SELECT coalesce(pg_catalog.jsonb_agg(eventbus.code_export_target(t, header_values)
												  ORDER BY t.target_id COLLATE "C"), '[]')
			 FROM eventbus.targets t
			 WHERE t.bus = r.bus AND t.rule = r.name))
$$;
REVOKE EXECUTE ON FUNCTION eventbus.code_export_rule(eventbus.rules, boolean) FROM PUBLIC;

/*
 * The buses (all, or the one named), their rules and their targets as a
 * document apply() takes.  Header values are masked unless header_values;
 * signing secrets are never written, only whether a target signs and the
 * fingerprints of its secrets.  Sorted by name, and intervals in ISO 8601
 * whatever the session's IntervalStyle, so the same bus always gives the
 * same document.
 */
CREATE FUNCTION eventbus.export(bus text DEFAULT NULL, header_values boolean DEFAULT false)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET intervalstyle = 'iso_8601'
AS $$
BEGIN
	IF export.bus IS NOT NULL
	   AND NOT EXISTS (SELECT 1 FROM eventbus.buses b WHERE b.name = export.bus) THEN
		PERFORM eventbus.raise_error('42704',
			pg_catalog.format('event bus "%s" does not exist', export.bus),
			NULL,
			'List the buses with: SELECT name FROM eventbus.buses; or export them all with eventbus.export().');
	END IF;
	IF header_values IS NULL THEN
		PERFORM eventbus.raise_error('22004', 'header_values must not be null', NULL,
			'Pass true to write header values into the document, false to mask them.');
	END IF;
	RETURN pg_catalog.jsonb_build_object(
		'version', 1,
		-- every connection, its secrets masked
		'connections', eventbus.code_export_connections(),
		'buses', (
			SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
				'name', b.name,
				'retention', b.retention,
				'rules', (SELECT coalesce(pg_catalog.jsonb_agg(eventbus.code_export_rule(r, header_values)
															   ORDER BY r.name COLLATE "C"), '[]')
						  FROM eventbus.rules r WHERE r.bus = b.name))
				ORDER BY b.name COLLATE "C"), '[]')
			FROM eventbus.buses b
			WHERE export.bus IS NULL OR b.name = export.bus));
END
$$;
COMMENT ON FUNCTION eventbus.export(text, boolean) IS 'Rules as code: the connections (secrets masked), buses, rules and targets as a document for eventbus.apply(); header values masked unless asked, signing secrets never.';
REVOKE EXECUTE ON FUNCTION eventbus.export(text, boolean) FROM PUBLIC;

-- Raises 22023 for the document at `path` (a JSONPath such as $.buses[0].name).
CREATE FUNCTION eventbus.code_error(path text, message text, detail text DEFAULT NULL,
								   hint text DEFAULT NULL)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT eventbus.raise_error('22023', message,
		'At ' || path || '.'
		|| coalesce(' ' || detail, ''),
		hint)
$$;
REVOKE EXECUTE ON FUNCTION eventbus.code_error(text, text, text, text) FROM PUBLIC;

/*
 * Checks that `obj` at `path` is an object whose keys are among `allowed`
 * and hold `required`, with the JSON types `types` gives (key -> type;
 * 'any' for any), and that each string of a setting whose column is not
 * text converts to its type.  Raises 22023 naming the path.
 */
CREATE FUNCTION eventbus.code_check_object(obj jsonb, path text, what text,
										   required text[], types jsonb,
										   settings_kind text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_key text;
	v_value jsonb;
	v_want text;
	v_type text;
BEGIN
	IF pg_catalog.jsonb_typeof(obj) IS DISTINCT FROM 'object' THEN
		PERFORM eventbus.code_error(path, pg_catalog.format('%s must be a JSON object', what),
			pg_catalog.format('The document has %s.', coalesce(pg_catalog.jsonb_typeof(obj), 'nothing')),
			'See the README, "Rules as code", for the document''s format.');
	END IF;
	FOREACH v_key IN ARRAY required LOOP
		IF NOT obj ? v_key THEN
			PERFORM eventbus.code_error(path, pg_catalog.format('%s has no "%s"', what, v_key), NULL,
				pg_catalog.format('Add the key "%s".', v_key));
		END IF;
	END LOOP;
	FOR v_key, v_value IN SELECT e.key, e.value FROM pg_catalog.jsonb_each(obj) e ORDER BY e.key LOOP
		IF NOT types ? v_key THEN
			PERFORM eventbus.code_error(path || '.' || v_key,
				pg_catalog.format('unknown key "%s" in %s', v_key, what), NULL,
				pg_catalog.format('The keys of %s are: %s.', what,
					(SELECT pg_catalog.string_agg(k, ', ' ORDER BY k) FROM pg_catalog.jsonb_object_keys(types) k)));
		END IF;
		v_want := types ->> v_key;
		-- null only for a setting: put_* says whether it takes NULL
		IF v_want <> 'any' AND pg_catalog.jsonb_typeof(v_value) <> v_want
		   AND NOT (pg_catalog.jsonb_typeof(v_value) = 'null'
					AND EXISTS (SELECT 1 FROM eventbus.code_settings(settings_kind) s WHERE s.name = v_key)) THEN
			PERFORM eventbus.code_error(path || '.' || v_key,
				pg_catalog.format('"%s" of %s must be a JSON %s', v_key, what, v_want),
				pg_catalog.format('The document has %s.', pg_catalog.left(v_value::text, 100)), NULL);
		END IF;
		-- a setting given as a string converts to its column's type
		SELECT s.type INTO v_type FROM eventbus.code_settings(settings_kind) s
		WHERE s.name = v_key AND s.json_type = 'string'
		  AND s.type <> 'text';
		IF FOUND AND pg_catalog.jsonb_typeof(v_value) = 'string' THEN
			BEGIN
				EXECUTE pg_catalog.format('SELECT $1::%s', v_type) USING v_value #>> '{}';
			EXCEPTION WHEN data_exception THEN
				PERFORM eventbus.code_error(path || '.' || v_key,
					pg_catalog.format('"%s" of %s is not a valid %s', v_key, what, v_type),
					pg_catalog.format('The document has %s.', pg_catalog.left(v_value::text, 100)), NULL);
			END;
		END IF;
	END LOOP;
END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.code_check_object(jsonb, text, text, text[], jsonb, text) FROM PUBLIC;

/*
 * Checks a whole document before apply() changes anything: its shape,
 * every key and JSON type, names given once, and every event pattern.
 * What only the database can judge (a name's syntax, a setting's range)
 * put_rule and put_target check as apply() calls them, and their errors
 * then carry the path too.
 */
CREATE FUNCTION eventbus.code_check(document jsonb)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_rule_types jsonb := pg_catalog.jsonb_build_object('name', 'string', 'targets', 'array')
		|| (SELECT coalesce(pg_catalog.jsonb_object_agg(s.name, s.json_type), '{}')
								 FROM eventbus.code_settings('rule') s);
	v_target_types jsonb := pg_catalog.jsonb_build_object('target_id', 'string', 'signing', 'object')
		|| (SELECT coalesce(pg_catalog.jsonb_object_agg(s.name, s.json_type), '{}')
								 FROM eventbus.code_settings('target') s);
	b record;
	r record;
	t record;
	v_bpath text;
	v_rpath text;
	v_tpath text;
	v_state text;
	v_msg text;
	v_detail text;
	v_dup record;
BEGIN
	IF document IS NULL THEN
		PERFORM eventbus.raise_error('22004', 'document must not be null', NULL,
			'Pass a document such as eventbus.export() writes.');
	END IF;
	PERFORM eventbus.code_check_object(document, '$', 'the document', ARRAY['version', 'buses'],
		'{"version": "number", "buses": "array", "connections": "array"}');
	IF document -> 'version' IS DISTINCT FROM '1'::pg_catalog.jsonb THEN
		PERFORM eventbus.code_error('$.version', 'unsupported document version',
			pg_catalog.format('The document has version %s.', document -> 'version'),
			'This version of pg_eventbus reads version 1.');
	END IF;
	FOR b IN SELECT e.value AS v, e.n - 1 AS i
			 FROM pg_catalog.jsonb_array_elements(document -> 'buses') WITH ORDINALITY e(value, n) LOOP
		v_bpath := pg_catalog.format('$.buses[%s]', b.i);
		PERFORM eventbus.code_check_object(b.v, v_bpath, 'a bus', ARRAY['name'],
			'{"name": "string", "retention": "any", "rules": "array"}');
		IF pg_catalog.jsonb_typeof(b.v -> 'name') <> 'string' THEN
			PERFORM eventbus.code_error(v_bpath || '.name', 'the name of a bus must be a JSON string');
		END IF;
		FOR r IN SELECT e.value AS v, e.n - 1 AS i
				 FROM pg_catalog.jsonb_array_elements(coalesce(b.v -> 'rules', '[]')) WITH ORDINALITY e(value, n) LOOP
			v_rpath := pg_catalog.format('%s.rules[%s]', v_bpath, r.i);
			PERFORM eventbus.code_check_object(r.v, v_rpath, 'a rule', ARRAY['name'],
				v_rule_types, 'rule');
			IF pg_catalog.jsonb_typeof(r.v -> 'name') <> 'string' THEN
				PERFORM eventbus.code_error(v_rpath || '.name', 'the name of a rule must be a JSON string');
			END IF;
			BEGIN
				-- null: a rule with a schedule only (put_rule says if it has one)
				IF pg_catalog.jsonb_typeof(r.v -> 'event_pattern') <> 'null' THEN
					PERFORM eventbus.validate_event_pattern(r.v -> 'event_pattern');
				END IF;
			EXCEPTION WHEN invalid_parameter_value OR null_value_not_allowed THEN
				GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
				PERFORM eventbus.code_error(v_rpath || '.event_pattern',
					v_msg, NULLIF(v_detail, ''),
					'Event patterns follow Amazon EventBridge''s syntax; see the README''s operator table.');
			END;
			FOR t IN SELECT e.value AS v, e.n - 1 AS i
					 FROM pg_catalog.jsonb_array_elements(coalesce(r.v -> 'targets', '[]')) WITH ORDINALITY e(value, n) LOOP
				v_tpath := pg_catalog.format('%s.targets[%s]', v_rpath, t.i);
				PERFORM eventbus.code_check_object(t.v, v_tpath, 'a target', ARRAY['target_id'],
					v_target_types, 'target');
				IF pg_catalog.jsonb_typeof(t.v -> 'target_id') <> 'string' THEN
					PERFORM eventbus.code_error(v_tpath || '.target_id', 'the target_id of a target must be a JSON string');
				END IF;
				IF t.v ? 'signing' THEN
					PERFORM eventbus.code_check_object(t.v -> 'signing', v_tpath || '.signing',
						'signing', ARRAY[]::text[], '{"signed": "boolean", "fingerprints": "array"}');
				END IF;
			END LOOP;
		END LOOP;
	END LOOP;
	-- each bus once, each rule once in its bus, each target once in its rule
	-- (one sort of the document, not a comparison of every pair)
	SELECT d.kind, d.bus, d.rule, d.target_id, d.paths[2] AS path INTO v_dup
	FROM (SELECT i.kind, i.bus, i.rule, i.target_id,
				 pg_catalog.array_agg(i.path ORDER BY i.n) AS paths, pg_catalog.min(i.n) AS first
		  FROM eventbus.code_items(document) WITH ORDINALITY AS i(kind, path, bus, rule, target_id, item, n)
		  GROUP BY i.kind, i.bus, i.rule, i.target_id
		  HAVING pg_catalog.count(*) > 1) d
	ORDER BY CASE d.kind WHEN 'bus' THEN 1 WHEN 'rule' THEN 2 ELSE 3 END, d.first
	LIMIT 1;
	IF FOUND THEN
		PERFORM eventbus.code_error(v_dup.path || CASE v_dup.kind WHEN 'target' THEN '.target_id' ELSE '.name' END,
			CASE v_dup.kind
				WHEN 'bus' THEN pg_catalog.format('event bus "%s" is in the document twice', v_dup.bus)
				WHEN 'rule' THEN pg_catalog.format('rule "%s" is in bus "%s" twice', v_dup.rule, v_dup.bus)
				ELSE pg_catalog.format('target "%s" is in rule "%s" twice', v_dup.target_id, v_dup.rule) END,
			NULL, CASE v_dup.kind WHEN 'bus' THEN 'Name each bus once.'
					  WHEN 'rule' THEN 'Name each rule of a bus once.'
					  ELSE 'Name each target of a rule once.' END);
	END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.code_check(jsonb) FROM PUBLIC;

/*
 * The rules and targets a document names, with the JSONPath of each: one
 * row per bus, rule and target, in document order.
 */
CREATE FUNCTION eventbus.code_items(document jsonb, OUT kind text, OUT path text,
									OUT bus text, OUT rule text, OUT target_id text,
									OUT item jsonb)
RETURNS SETOF record
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT 'bus', pg_catalog.format('$.buses[%s]', b.n - 1),
		   b.v ->> 'name', NULL, NULL, b.v
	FROM pg_catalog.jsonb_array_elements(document -> 'buses') WITH ORDINALITY b(v, n)
	UNION ALL
	SELECT 'rule', pg_catalog.format('$.buses[%s].rules[%s]', b.n - 1, r.n - 1),
		   b.v ->> 'name', r.v ->> 'name', NULL, r.v
	FROM pg_catalog.jsonb_array_elements(document -> 'buses') WITH ORDINALITY b(v, n)
	CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(coalesce(b.v -> 'rules', '[]')) WITH ORDINALITY r(v, n)
	UNION ALL
	SELECT 'target', pg_catalog.format('$.buses[%s].rules[%s].targets[%s]', b.n - 1,
									   r.n - 1, t.n - 1),
		   b.v ->> 'name', r.v ->> 'name',
		   t.v ->> 'target_id', t.v
	FROM pg_catalog.jsonb_array_elements(document -> 'buses') WITH ORDINALITY b(v, n)
	CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(coalesce(b.v -> 'rules', '[]')) WITH ORDINALITY r(v, n)
	CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(coalesce(r.v -> 'targets', '[]')) WITH ORDINALITY t(v, n)
$$;
REVOKE EXECUTE ON FUNCTION eventbus.code_items(jsonb) FROM PUBLIC;

-- The settings (code_settings) a rule or target has now, or NULL.
CREATE FUNCTION eventbus.code_current(kind text, bus text, rule text, target_id text)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE kind
		WHEN 'rule' THEN (SELECT eventbus.code_settings_of(kind, pg_catalog.to_jsonb(x)) FROM eventbus.rules x
						  WHERE x.bus = code_current.bus
							AND x.name = code_current.rule)
		ELSE (SELECT eventbus.code_settings_of(kind, pg_catalog.to_jsonb(x)) FROM eventbus.targets x
			  WHERE x.bus = code_current.bus AND x.rule = code_current.rule
				AND x.target_id = code_current.target_id) END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.code_current(text, text, text, text) FROM PUBLIC;

/*
 * Calls put_rule or put_target with the document's settings of one rule or
 * target, as named arguments generated from code_settings (a setting the
 * document leaves out gets put_*'s default), so that put_* checks and
 * normalises them as it always does.  Returns {"action": "create"}, or
 * {"action": "update", "changes": [the settings that changed]}, or NULL
 * when nothing changed: then the call is undone, so the row, its
 * updated_at and the rule caches stay as they were.
 */
CREATE FUNCTION eventbus.code_put(kind text, bus text, rule text, target_id text, settings jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_sql text;
	v_old jsonb := eventbus.code_current(kind, bus, rule, target_id);
	v_changed jsonb;
BEGIN
	SELECT pg_catalog.format(
		'SELECT eventbus.%s(%s%s) FROM pg_catalog.jsonb_populate_record(NULL::%s, $4) AS r',
		CASE kind WHEN 'rule' THEN 'put_rule' ELSE 'put_target' END,
		CASE kind WHEN 'rule' THEN 'name => $2, bus => $1' ELSE 'rule => $2, target_id => $3, bus => $1' END,
		coalesce(pg_catalog.string_agg(pg_catalog.format(', %I => r.%I::%s', s.name, s.name, s.type), '' ORDER BY s.ord), ''),
		CASE kind WHEN 'rule' THEN 'eventbus.rules' ELSE 'eventbus.targets' END)
	INTO v_sql
	FROM eventbus.code_settings(kind) s WHERE settings ? s.name;
	BEGIN
		EXECUTE v_sql USING bus, rule, target_id, settings;
		SELECT coalesce(pg_catalog.jsonb_agg(n.k ORDER BY n.k), '[]') INTO v_changed
		FROM pg_catalog.jsonb_each(eventbus.code_current(kind, bus, rule, target_id)) n(k, v)
		WHERE v_old -> n.k IS DISTINCT FROM n.v;
		IF v_old IS NOT NULL AND v_changed = '[]' THEN
			RAISE EXCEPTION USING ERRCODE = 'EB002';	-- undo: nothing changed
		END IF;
	EXCEPTION WHEN SQLSTATE 'EB002' THEN
		RETURN NULL;
	END;
	IF v_old IS NULL THEN
		RETURN '{"action": "create"}';
	END IF;
	RETURN pg_catalog.jsonb_build_object('action', 'update', 'changes', v_changed);
END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.code_put(text, text, text, text, jsonb) FROM PUBLIC;

/*
 * A target's settings from the document with each masked header value
 * ({"masked": true}, as export() writes it) replaced by the value the
 * target has in this database; a masked header it does not have is an
 * error (22023).
 */
CREATE FUNCTION eventbus.code_unmask(bus text, rule text, target_id text, settings jsonb, path text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_key text;
	v_value jsonb;
BEGIN
	IF pg_catalog.jsonb_typeof(settings -> 'headers') IS DISTINCT FROM 'object' THEN
		RETURN settings;
	END IF;
	FOR v_key IN SELECT h.key FROM pg_catalog.jsonb_each(settings -> 'headers') h
				 WHERE h.value = eventbus.code_masked() ORDER BY h.key LOOP
		SELECT t.headers -> v_key INTO v_value FROM eventbus.targets t
		WHERE t.bus = code_unmask.bus AND t.rule = code_unmask.rule
		  AND t.target_id = code_unmask.target_id;
		IF v_value IS NULL THEN
			PERFORM eventbus.code_error(pg_catalog.format('%s.headers.%s', path, pg_catalog.to_jsonb(v_key)),
				pg_catalog.format('header "%s" of target "%s" is masked in the document, and the target has no value for it here',
					v_key, target_id),
				'A masked value keeps the value the target already has.',
				'Export with eventbus.export(header_values => true), or write the value into the document.');
		END IF;
		settings := pg_catalog.jsonb_set(settings, ARRAY['headers', v_key], v_value);
	END LOOP;
	RETURN settings;
END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.code_unmask(text, text, text, jsonb, text) FROM PUBLIC;

/*
 * The changes of apply(), made: deletions first (with prune: the targets,
 * then the rules, then the buses the document does not name), then
 * creations and updates (buses, then rules, then targets).  An error of
 * the function called gets the path of the part of the document it came
 * from in its DETAIL.
 */
CREATE FUNCTION eventbus.code_apply(document jsonb, prune boolean)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_changes jsonb := '[]';
	x record;
	v_before bigint;
	v_after bigint;
	v_change jsonb;
	v_retention interval;
	v_state text;
	v_msg text;
	v_detail text;
	v_hint text;
BEGIN
	IF prune THEN
		FOR x IN SELECT t.bus, t.rule, t.target_id FROM eventbus.targets t
				 WHERE (t.bus, t.rule, t.target_id) NOT IN (
					SELECT i.bus, i.rule, i.target_id FROM eventbus.code_items(document) i
					WHERE i.kind = 'target'
					  AND i.bus IS NOT NULL AND i.rule IS NOT NULL AND i.target_id IS NOT NULL)
				 ORDER BY t.bus COLLATE "C", t.rule COLLATE "C", t.target_id COLLATE "C" LOOP
			-- remove_target's trigger dead-letters the pending deliveries
			-- (not those in flight): count what it moved
			SELECT pg_catalog.count(*) INTO v_before FROM eventbus.deliveries q
			WHERE q.bus = x.bus AND q.rule = x.rule
			  AND q.target_id = x.target_id;
			PERFORM eventbus.remove_target(x.rule, x.target_id, x.bus);
			SELECT pg_catalog.count(*) INTO v_after FROM eventbus.deliveries q
			WHERE q.bus = x.bus AND q.rule = x.rule
			  AND q.target_id = x.target_id;
			v_changes := v_changes || pg_catalog.jsonb_build_object(
				'action', 'delete', 'kind', 'target', 'bus', x.bus, 'rule', x.rule,
				'name', x.target_id, 'dead_lettered', v_before - v_after);
		END LOOP;
		FOR x IN SELECT r.bus, r.name FROM eventbus.rules r
				 WHERE (r.bus, r.name) NOT IN (
					SELECT i.bus, i.rule FROM eventbus.code_items(document) i
					WHERE i.kind = 'rule' AND i.bus IS NOT NULL AND i.rule IS NOT NULL)
				 ORDER BY r.bus COLLATE "C", r.name COLLATE "C" LOOP
			PERFORM eventbus.delete_rule(x.name, x.bus);
			v_changes := v_changes || pg_catalog.jsonb_build_object(
				'action', 'delete', 'kind', 'rule', 'bus', x.bus, 'name', x.name);
		END LOOP;
		FOR x IN SELECT b.name FROM eventbus.buses b
				 WHERE b.name <> 'default'
				   AND b.name NOT IN (SELECT i.bus FROM eventbus.code_items(document) i
									  WHERE i.kind = 'bus' AND i.bus IS NOT NULL)
				 ORDER BY b.name COLLATE "C" LOOP
			PERFORM eventbus.delete_event_bus(x.name);
			v_changes := v_changes || pg_catalog.jsonb_build_object(
				'action', 'delete', 'kind', 'bus', 'name', x.name);
		END LOOP;
	END IF;

	FOR x IN SELECT i.* FROM eventbus.code_items(document) WITH ORDINALITY AS i(kind, path, bus, rule, target_id, item, n)
			 ORDER BY CASE i.kind WHEN 'bus' THEN 1 WHEN 'rule' THEN 2 ELSE 3 END, i.n LOOP
		BEGIN
			IF x.kind = 'bus' THEN
				-- a bus's retention: its own, or NULL (the setting's); a
				-- document without the key leaves it as it is
				v_change := NULL;
				v_retention := (x.item ->> 'retention')::interval;
				IF NOT EXISTS (SELECT 1 FROM eventbus.buses b WHERE b.name = x.bus) THEN
					PERFORM eventbus.create_event_bus(x.bus, v_retention);
					v_change := '{"action": "create"}';
				ELSIF x.item ? 'retention'
					  AND (SELECT b.retention FROM eventbus.buses b WHERE b.name = x.bus)
						  IS DISTINCT FROM v_retention THEN
					PERFORM eventbus.alter_event_bus(x.bus, v_retention);
					v_change := '{"action": "update", "changes": ["retention"]}';
				END IF;
			ELSIF x.kind = 'rule' THEN
				v_change := eventbus.code_put('rule', x.bus, x.rule, NULL, x.item);
			ELSE
				v_change := eventbus.code_put('target', x.bus, x.rule, x.target_id,
					eventbus.code_unmask(x.bus, x.rule, x.target_id, x.item, x.path));
				IF (x.item #> '{signing,signed}') = 'true'
				   AND NOT EXISTS (SELECT 1 FROM eventbus.signing_secrets s
								   WHERE s.bus = x.bus AND s.rule = x.rule
									 AND s.target_id = x.target_id) THEN
					RAISE NOTICE 'target "%" of rule "%" on event bus "%" is signed in the document but has no signing secret here',
						x.target_id, x.rule, x.bus
						USING HINT = 'apply() never creates secrets: make one with eventbus.rotate_signing_secret() and give it to the receiver.';
				END IF;
			END IF;
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT,
				v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
			-- the path of the part of the document, unless the error has a closer one
			PERFORM eventbus.raise_error(v_state, v_msg,
				CASE WHEN v_detail LIKE 'At $%' THEN v_detail
					 ELSE 'At ' || x.path || '.' || coalesce(' ' || NULLIF(v_detail, ''), '') END,
				NULLIF(v_hint, ''));
		END;
		IF v_change IS NOT NULL THEN
			v_changes := v_changes || (v_change
				|| pg_catalog.jsonb_build_object('kind', x.kind)
				|| CASE x.kind
					WHEN 'bus' THEN pg_catalog.jsonb_build_object('name', x.bus)
					WHEN 'rule' THEN pg_catalog.jsonb_build_object('bus', x.bus, 'name', x.rule)
					ELSE pg_catalog.jsonb_build_object('bus', x.bus, 'rule', x.rule, 'name', x.target_id) END);
		END IF;
	END LOOP;
	RETURN v_changes;
END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.code_apply(jsonb, boolean) FROM PUBLIC;

/*
 * Makes the buses, rules and targets match the document (as export()
 * writes it): checks the whole document first, then creates or updates
 * exactly what differs, in the caller's transaction; with prune also
 * deletes what the document does not name (not the bus "default").
 * Returns the changes; dry_run makes them and undoes them, so it returns
 * the very list a real run would and changes nothing.
 */
CREATE FUNCTION eventbus.apply(document jsonb, prune boolean DEFAULT false,
							   dry_run boolean DEFAULT false)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_changes jsonb;
	v_state text;
	v_msg text;
	v_detail text;
	v_hint text;
BEGIN
	IF prune IS NULL OR dry_run IS NULL THEN
		PERFORM eventbus.raise_error('22004',
			pg_catalog.format('%s must not be null', CASE WHEN prune IS NULL THEN 'prune' ELSE 'dry_run' END),
			NULL, 'Pass true or false.');
	END IF;
	BEGIN
		PERFORM eventbus.code_check(document OPERATOR(pg_catalog.-) 'connections');
		PERFORM eventbus.code_check_connections(document);
		v_changes := eventbus.code_apply_connections(document)
			OPERATOR(pg_catalog.||) eventbus.code_apply(document OPERATOR(pg_catalog.-) 'connections', prune);
		IF dry_run THEN
			RAISE EXCEPTION USING ERRCODE = 'EB001';	-- undo everything
		END IF;
	EXCEPTION
		WHEN SQLSTATE 'EB001' THEN
			NULL;
		WHEN OTHERS THEN
			-- the error as the function that raised it said it, without
			-- the CONTEXT lines of the helpers in between
			GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT,
				v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
			PERFORM eventbus.raise_error(v_state, v_msg, NULLIF(v_detail, ''), NULLIF(v_hint, ''));
	END;
	RETURN v_changes;
END
$$;
COMMENT ON FUNCTION eventbus.apply(jsonb, boolean, boolean) IS 'Rules as code: makes the connections, buses, rules and targets match a document of eventbus.export(); returns what it changed (dry_run: what it would change).';
REVOKE EXECUTE ON FUNCTION eventbus.apply(jsonb, boolean, boolean) FROM PUBLIC;


-- (end of rules as code)


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

------------------------------------------------------------------------------
-- Connections
------------------------------------------------------------------------------

/*
 * Connections (EventBridge's API destinations' connections): how the
 * worker authenticates to a target -- an API key header, HTTP Basic, or
 * an OAuth client-credentials token it fetches and caches -- and the
 * header, query-string and body parameters it adds to every request.
 *
 * Everything about a connection, secrets and the cached OAuth token
 * included, lives in eventbus.connection_secrets alone, on which nothing
 * is granted: only the extension's owner (and the worker) read it.  The
 * view eventbus.connections shows the rest, every secret masked.  No
 * column but the name has a constraint whose failure would print the row.
 * The cache is this table, shared by every worker and kept across
 * restarts: the worker fetches a token once per connection (the row is
 * leased while one worker fetches), uses it until shortly before it
 * expires, and fetches again once when a target answers 401 or 407 to it.
 *
 * States: AUTHORIZED (requests go out), AUTHORIZING (OAuth: no usable
 * token yet), DEAUTHORIZED (deauthorize_connection(), or the token
 * endpoint failed connection_token_end()'s number of times in a row).
 * put_connection() authorizes anew.  A target whose connection is not
 * AUTHORIZED with a usable token gets no room in the claim
 * (connection_blocks()): its deliveries wait and burn no attempts, until
 * expire_blocked_deliveries() dead-letters those past max_event_age.
 */
CREATE TABLE eventbus.connection_secrets (
	name		text PRIMARY KEY,
	auth_type	text,
	auth		jsonb,
	http_parameters jsonb,
	state		text,
	state_reason text,
	state_changed_at timestamptz,
	created_at	timestamptz DEFAULT now(),
	updated_at	timestamptz DEFAULT now(),
	revision	bigint DEFAULT 1,		/* bumped by every put and deauthorize */
	access_token text,				/* OAuth: the cached token */
	token_serial bigint DEFAULT 0,	/* which token the worker sent */
	token_expires_at timestamptz,	/* unusable from then on */
	token_refresh_at timestamptz,	/* fetch a new one from then on */
	token_fetching_until timestamptz,	/* a worker is fetching one */
	token_failures integer DEFAULT 0	/* token fetches failed in a row */
);
COMMENT ON TABLE eventbus.connection_secrets IS 'Connections with their secrets and cached OAuth tokens. Readable by the extension''s owner only; see the view eventbus.connections.';
REVOKE ALL ON eventbus.connection_secrets FROM PUBLIC;

-- A target's connection: put_target(..., connection => 'name').
ALTER TABLE eventbus.targets
	ADD COLUMN connection text REFERENCES eventbus.connection_secrets (name);
CREATE INDEX targets_connection_idx ON eventbus.targets (connection)
	WHERE connection IS NOT NULL;

/*
 * Whether a string is an absolute http:// or https:// URL with a host and
 * no spaces: the rule for a target's endpoint and a connection's
 * authorization endpoint.
 */
CREATE FUNCTION eventbus.is_http_url(url text)
RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT url IS NOT NULL
		AND url OPERATOR(pg_catalog.~*) '^https?://[^/?#@[:space:]]+'
		AND url OPERATOR(pg_catalog.!~) '[[:space:]]'
$$;
REVOKE EXECUTE ON FUNCTION eventbus.is_http_url(text) FROM PUBLIC;

/*
 * A parameter list with every secret value replaced by {"masked": true}
 * (eventbus.code_masked(), the mark export() and apply() know): what the
 * view and export() show of http_parameters.  SECURITY DEFINER only to
 * call code_masked(); they compute from their arguments alone.
 */
CREATE FUNCTION eventbus.mask_connection_parameters(params jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce(pg_catalog.jsonb_object_agg(k.key,
		(SELECT coalesce(pg_catalog.jsonb_agg(
				CASE WHEN (e.value OPERATOR(pg_catalog.->>) 'is_value_secret')::boolean
					THEN e.value OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('value', eventbus.code_masked())
					ELSE e.value END ORDER BY e.ord), '[]'::pg_catalog.jsonb)
		 FROM pg_catalog.jsonb_array_elements(k.value) WITH ORDINALITY e(value, ord))),
		'{}'::pg_catalog.jsonb)
	FROM pg_catalog.jsonb_each(params) k
$$;
-- functions of their arguments alone, called by the view with its
-- reader's rights: they show nothing the caller does not pass them
GRANT EXECUTE ON FUNCTION eventbus.mask_connection_parameters(jsonb) TO PUBLIC;

-- A connection's auth with its secrets masked (the API key's value, the
-- password, the client secret, secret OAuth parameters).
CREATE FUNCTION eventbus.mask_connection_auth(auth_type text, auth jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE auth_type
		WHEN 'API_KEY' THEN auth OPERATOR(pg_catalog.||)
			pg_catalog.jsonb_build_object('api_key_value', eventbus.code_masked())
		WHEN 'BASIC' THEN auth OPERATOR(pg_catalog.||)
			pg_catalog.jsonb_build_object('password', eventbus.code_masked())
		WHEN 'OAUTH_CLIENT_CREDENTIALS' THEN auth
			OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('client_parameters',
				(auth OPERATOR(pg_catalog.->) 'client_parameters') OPERATOR(pg_catalog.||)
				pg_catalog.jsonb_build_object('client_secret', eventbus.code_masked()))
			OPERATOR(pg_catalog.||) CASE WHEN auth OPERATOR(pg_catalog.?) 'oauth_http_parameters'
				THEN pg_catalog.jsonb_build_object('oauth_http_parameters',
					eventbus.mask_connection_parameters(auth OPERATOR(pg_catalog.->) 'oauth_http_parameters'))
				ELSE '{}'::pg_catalog.jsonb END
		ELSE auth END
$$;
GRANT EXECUTE ON FUNCTION eventbus.mask_connection_auth(text, jsonb) TO PUBLIC;

-- What may be shown of a connection: everything but its secrets and token.
CREATE VIEW eventbus.connections AS
	SELECT c.name, c.auth_type,
		   eventbus.mask_connection_auth(c.auth_type, c.auth) AS auth,
		   eventbus.mask_connection_parameters(c.http_parameters) AS http_parameters,
		   c.state, c.state_reason, c.state_changed_at,
		   c.token_expires_at, c.created_at, c.updated_at
	FROM eventbus.connection_secrets c;
COMMENT ON VIEW eventbus.connections IS 'Connections: auth type, parameters with every secret masked, state, the reason and time of its last change, when the cached OAuth token expires. Never a secret or a token.';
REVOKE ALL ON eventbus.connections FROM PUBLIC;

-- Raises 22023 for a connection's bad document, naming the connection and
-- the place; never echoes a value (it may be a secret).
CREATE FUNCTION eventbus.connection_error(name text, what text, detail text,
										  hint text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM eventbus.raise_error('22023',
		pg_catalog.format('invalid %s of connection "%s"', what, name), detail, hint);
END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.connection_error(text, text, text, text) FROM PUBLIC;

-- The string at `key` of object `obj` (its place `path`), 1 to max_len
-- characters; NULL when absent and not required.
CREATE FUNCTION eventbus.connection_string(name text, what text, obj jsonb,
										   path text, key text,
										   max_len integer, required boolean)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v jsonb := obj OPERATOR(pg_catalog.->) key;
	v_text text;
BEGIN
	IF v IS NULL THEN
		IF required THEN
			PERFORM eventbus.connection_error(name, what,
				pg_catalog.format('%s.%s is missing.', path, key),
				pg_catalog.format('Give "%s" as a string of 1 to %s characters.', key, max_len));
		END IF;
		RETURN NULL;
	END IF;
	IF pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.<>) 'string' THEN
		PERFORM eventbus.connection_error(name, what,
			pg_catalog.format('%s.%s is a JSON %s, not a string.', path, key, pg_catalog.jsonb_typeof(v)),
			pg_catalog.format('Give "%s" as a string of 1 to %s characters.', key, max_len));
	END IF;
	v_text := obj OPERATOR(pg_catalog.->>) key;
	IF pg_catalog.length(v_text) NOT BETWEEN 1 AND max_len THEN
		PERFORM eventbus.connection_error(name, what,
			pg_catalog.format('%s.%s has %s characters.', path, key, pg_catalog.length(v_text)),
			pg_catalog.format('Give "%s" as a string of 1 to %s characters.', key, max_len));
	END IF;
	RETURN v_text;
END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.connection_string(text, text, jsonb, text, text, integer, boolean) FROM PUBLIC;

-- Refuses keys of `obj` outside `allowed` (a typo would otherwise be ignored).
CREATE FUNCTION eventbus.connection_keys(name text, what text, obj jsonb,
										 path text, allowed text[])
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_key text;
BEGIN
	IF obj IS NULL OR pg_catalog.jsonb_typeof(obj) OPERATOR(pg_catalog.<>) 'object' THEN
		PERFORM eventbus.connection_error(name, what,
			pg_catalog.format('%s is %s, not a JSON object.', path,
				coalesce('a JSON ' OPERATOR(pg_catalog.||) pg_catalog.jsonb_typeof(obj), 'NULL')),
			pg_catalog.format('Give an object with the keys %s.', pg_catalog.array_to_string(allowed, ', ')));
	END IF;
	SELECT k INTO v_key FROM pg_catalog.jsonb_object_keys(obj) k
	WHERE NOT k OPERATOR(pg_catalog.=) ANY (allowed) LIMIT 1;
	IF FOUND THEN
		PERFORM eventbus.connection_error(name, what,
			pg_catalog.format('%s has the unknown key "%s".', path, v_key),
			pg_catalog.format('The keys of %s are %s.', path, pg_catalog.array_to_string(allowed, ', ')));
	END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.connection_keys(text, text, jsonb, text, text[]) FROM PUBLIC;

/*
 * Checks a parameter document ({"header_parameters": [...],
 * "query_string_parameters": [...], "body_parameters": [...]}, each item
 * {"key", "value", "is_value_secret"}): at most 100 items per list, keys
 * 1-512 characters and unique per list, values at most 512 (EventBridge's
 * bounds); headers pass eventbus.check_target_headers, the rules the
 * worker applies to every header it sends.  `reserved`: a header name the
 * connection's auth sets, which a parameter may not set too.
 */
CREATE FUNCTION eventbus.check_connection_parameters(name text, what text,
													 params jsonb, reserved text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_list text;
	v_items jsonb;
	v_item jsonb;
	v_i integer;
	v_key text;
	v_value text;
	v_headers jsonb := '{}';
	v_message text;
	v_detail text;
	v_hint text;
	v_state text;
BEGIN
	PERFORM eventbus.connection_keys(name, what, params, what,
		ARRAY['header_parameters', 'query_string_parameters', 'body_parameters']);
	FOREACH v_list IN ARRAY ARRAY['header_parameters', 'query_string_parameters', 'body_parameters'] LOOP
		v_items := params OPERATOR(pg_catalog.->) v_list;
		CONTINUE WHEN v_items IS NULL;
		IF pg_catalog.jsonb_typeof(v_items) OPERATOR(pg_catalog.<>) 'array'
		   OR pg_catalog.jsonb_array_length(v_items) OPERATOR(pg_catalog.>) 100 THEN
			PERFORM eventbus.connection_error(name, what,
				pg_catalog.format('%s.%s is not an array of at most 100 parameters.', what, v_list),
				'Give [{"key": "...", "value": "...", "is_value_secret": true}, ...].');
		END IF;
		FOR v_i IN 0 .. pg_catalog.jsonb_array_length(v_items) OPERATOR(pg_catalog.-) 1 LOOP
			v_item := v_items OPERATOR(pg_catalog.->) v_i;
			PERFORM eventbus.connection_keys(name, what, v_item,
				pg_catalog.format('%s.%s[%s]', what, v_list, v_i),
				ARRAY['key', 'value', 'is_value_secret']);
			v_key := eventbus.connection_string(name, what, v_item,
				pg_catalog.format('%s.%s[%s]', what, v_list, v_i), 'key', 512, true);
			IF v_item OPERATOR(pg_catalog.?) 'value'
			   AND pg_catalog.jsonb_typeof(v_item OPERATOR(pg_catalog.->) 'value') OPERATOR(pg_catalog.<>) 'string'
			   OR pg_catalog.length(v_item OPERATOR(pg_catalog.->>) 'value') OPERATOR(pg_catalog.>) 512 THEN
				PERFORM eventbus.connection_error(name, what,
					pg_catalog.format('%s.%s[%s].value is not a string of at most 512 characters.', what, v_list, v_i),
					'Give the value as a JSON string.');
			END IF;
			IF v_item OPERATOR(pg_catalog.?) 'is_value_secret'
			   AND pg_catalog.jsonb_typeof(v_item OPERATOR(pg_catalog.->) 'is_value_secret') OPERATOR(pg_catalog.<>) 'boolean' THEN
				PERFORM eventbus.connection_error(name, what,
					pg_catalog.format('%s.%s[%s].is_value_secret is not a boolean.', what, v_list, v_i),
					'Give true (the value is masked in eventbus.connections and export()) or false.');
			END IF;
			IF (SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_array_elements(v_items) e
				WHERE pg_catalog.lower(e OPERATOR(pg_catalog.->>) 'key') OPERATOR(pg_catalog.=) pg_catalog.lower(v_key))
			   OPERATOR(pg_catalog.>) 1 THEN
				PERFORM eventbus.connection_error(name, what,
					pg_catalog.format('%s.%s has the key "%s" more than once.', what, v_list, v_key),
					'Give each parameter once.');
			END IF;
			IF v_list OPERATOR(pg_catalog.=) 'header_parameters' THEN
				IF pg_catalog.lower(v_key) OPERATOR(pg_catalog.=) pg_catalog.lower(reserved) THEN
					PERFORM eventbus.connection_error(name, what,
						pg_catalog.format('%s.header_parameters sets "%s", which the connection''s auth sets.', what, v_key),
						'Leave the header to the auth, or use auth_type NONE.');
				END IF;
				v_headers := v_headers OPERATOR(pg_catalog.||)
					pg_catalog.jsonb_build_object(v_key, coalesce(v_item OPERATOR(pg_catalog.->>) 'value', ''));
			END IF;
		END LOOP;
	END LOOP;
	-- the header rules of put_target and the worker, said of this connection
	BEGIN
		PERFORM eventbus.check_target_headers(name, v_headers);
	EXCEPTION WHEN invalid_parameter_value OR program_limit_exceeded THEN
		GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
			v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
		PERFORM eventbus.raise_error(v_state,
			pg_catalog.format('invalid %s of connection "%s"', what, name),
			pg_catalog.concat_ws(' ', pg_catalog.regexp_replace(v_message, ' for target .*$', ':'), v_detail),
			v_hint);
	END;
END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.check_connection_parameters(text, text, jsonb, text) FROM PUBLIC;

/*
 * put_connection's check of a whole connection, raising 22023 (54000 for
 * oversized headers) with the place and the rule, never a value.
 */
CREATE FUNCTION eventbus.check_connection(name text, auth_type text, auth jsonb,
										  http_parameters jsonb)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_reserved text;
	v_header text;
	v_value text;
	v_method text;
BEGIN
	IF name IS NULL OR name OPERATOR(pg_catalog.!~) '^[A-Za-z0-9._-]{1,64}$' THEN
		PERFORM eventbus.raise_error('22023',
			pg_catalog.format('invalid connection name "%s"', name),
			'A connection name is 1 to 64 characters from A-Z, a-z, 0-9, ".", "_" and "-".',
			'For example ''orders-api''.');
	END IF;
	IF auth_type IS NULL OR auth_type OPERATOR(pg_catalog.<>) ALL
	   (ARRAY['API_KEY', 'BASIC', 'OAUTH_CLIENT_CREDENTIALS', 'NONE']) THEN
		PERFORM eventbus.raise_error('22023',
			pg_catalog.format('invalid auth_type "%s" for connection "%s"', auth_type, name),
			NULL,
			'Use one of API_KEY, BASIC, OAUTH_CLIENT_CREDENTIALS, NONE.');
	END IF;
	IF auth_type OPERATOR(pg_catalog.=) 'API_KEY' THEN
		PERFORM eventbus.connection_keys(name, 'auth', auth, 'auth',
			ARRAY['api_key_name', 'api_key_value']);
		v_header := eventbus.connection_string(name, 'auth', auth, 'auth', 'api_key_name', 512, true);
		v_value := eventbus.connection_string(name, 'auth', auth, 'auth', 'api_key_value', 512, true);
		v_reserved := v_header;
		-- the API key is a header: the header rules, said of this connection
		PERFORM eventbus.check_connection_parameters(name, 'auth',
			pg_catalog.jsonb_build_object('header_parameters', pg_catalog.jsonb_build_array(
				pg_catalog.jsonb_build_object('key', v_header, 'value', v_value))), NULL);
	ELSIF auth_type OPERATOR(pg_catalog.=) 'BASIC' THEN
		PERFORM eventbus.connection_keys(name, 'auth', auth, 'auth', ARRAY['username', 'password']);
		IF eventbus.connection_string(name, 'auth', auth, 'auth', 'username', 512, true)
		   OPERATOR(pg_catalog.~) '[:[:cntrl:]]' THEN
			PERFORM eventbus.connection_error(name, 'auth',
				'auth.username holds a ":" or a control character.',
				'HTTP Basic authentication (RFC 7617) allows neither in a user name.');
		END IF;
		IF eventbus.connection_string(name, 'auth', auth, 'auth', 'password', 512, true)
		   OPERATOR(pg_catalog.~) '[[:cntrl:]]' THEN
			PERFORM eventbus.connection_error(name, 'auth',
				'auth.password holds a control character.',
				'HTTP Basic authentication (RFC 7617) allows none in a password.');
		END IF;
		v_reserved := 'Authorization';
	ELSIF auth_type OPERATOR(pg_catalog.=) 'OAUTH_CLIENT_CREDENTIALS' THEN
		PERFORM eventbus.connection_keys(name, 'auth', auth, 'auth',
			ARRAY['authorization_endpoint', 'http_method', 'client_parameters', 'oauth_http_parameters']);
		IF NOT eventbus.is_http_url(eventbus.connection_string(name, 'auth', auth, 'auth',
				'authorization_endpoint', 2048, true)) THEN
			PERFORM eventbus.connection_error(name, 'auth',
				'auth.authorization_endpoint must be an absolute http:// or https:// URL with a host and no spaces.',
				'For example ''https://login.example.com/oauth2/token''.');
		END IF;
		v_method := eventbus.connection_string(name, 'auth', auth, 'auth', 'http_method', 7, false);
		IF v_method IS NOT NULL AND v_method OPERATOR(pg_catalog.<>) ALL (ARRAY['GET', 'POST', 'PUT']) THEN
			PERFORM eventbus.connection_error(name, 'auth',
				'auth.http_method is not GET, POST or PUT.',
				'Use POST (the default), GET or PUT, as the token endpoint expects.');
		END IF;
		PERFORM eventbus.connection_keys(name, 'auth', auth OPERATOR(pg_catalog.->) 'client_parameters',
			'auth.client_parameters', ARRAY['client_id', 'client_secret']);
		IF eventbus.connection_string(name, 'auth', auth OPERATOR(pg_catalog.->) 'client_parameters',
				'auth.client_parameters', 'client_id', 512, true) OPERATOR(pg_catalog.~) '[:[:cntrl:]]' THEN
			PERFORM eventbus.connection_error(name, 'auth',
				'auth.client_parameters.client_id holds a ":" or a control character.',
				'The client id is sent with HTTP Basic authentication (RFC 6749, 2.3.1), which allows neither.');
		END IF;
		IF eventbus.connection_string(name, 'auth', auth OPERATOR(pg_catalog.->) 'client_parameters',
				'auth.client_parameters', 'client_secret', 512, true) OPERATOR(pg_catalog.~) '[[:cntrl:]]' THEN
			PERFORM eventbus.connection_error(name, 'auth',
				'auth.client_parameters.client_secret holds a control character.',
				'HTTP Basic authentication allows none.');
		END IF;
		IF auth OPERATOR(pg_catalog.?) 'oauth_http_parameters' THEN
			PERFORM eventbus.check_connection_parameters(name, 'auth.oauth_http_parameters',
				auth OPERATOR(pg_catalog.->) 'oauth_http_parameters', 'Authorization');
		END IF;
		v_reserved := 'Authorization';
	ELSE
		IF auth IS NOT NULL AND auth OPERATOR(pg_catalog.<>) '{}'::pg_catalog.jsonb THEN
			PERFORM eventbus.connection_error(name, 'auth',
				'auth_type NONE takes no auth parameters.',
				'Pass ''{}'' (or NULL), and give headers in http_parameters.');
		END IF;
	END IF;
	PERFORM eventbus.check_connection_parameters(name, 'http_parameters',
		coalesce(http_parameters, '{}'), v_reserved);
END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.check_connection(text, text, jsonb, jsonb) FROM PUBLIC;

-- Raises 42704 for a connection that does not exist; locks it.
CREATE FUNCTION eventbus.require_connection(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM 1 FROM eventbus.connection_secrets c
	WHERE c.name OPERATOR(pg_catalog.=) require_connection.name FOR UPDATE;
	IF NOT FOUND THEN
		PERFORM eventbus.raise_error('42704',
			pg_catalog.format('connection "%s" does not exist', name),
			NULL,
			'Create it with eventbus.put_connection(), or list them with: SELECT name, state FROM eventbus.connections;');
	END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.require_connection(text) FROM PUBLIC;

/*
 * Creates or replaces a connection and authorizes it anew: API_KEY, BASIC
 * and NONE are AUTHORIZED at once; OAUTH_CLIENT_CREDENTIALS is AUTHORIZING
 * until a worker has fetched a token.  Any cached token is dropped.
 */
CREATE FUNCTION eventbus.put_connection(name text, auth_type text, auth jsonb,
										http_parameters jsonb DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_state text;
	v_reason text;
BEGIN
	auth_type := pg_catalog.upper(auth_type);
	PERFORM eventbus.check_connection(name, auth_type, auth, http_parameters);
	IF auth_type OPERATOR(pg_catalog.=) 'OAUTH_CLIENT_CREDENTIALS' THEN
		v_state := 'AUTHORIZING';
		v_reason := 'waiting for a token from the authorization endpoint';
	ELSE
		v_state := 'AUTHORIZED';
		v_reason := 'authorized by eventbus.put_connection()';
	END IF;
	INSERT INTO eventbus.connection_secrets AS c
		(name, auth_type, auth, http_parameters, state, state_reason, state_changed_at)
	VALUES (name, auth_type, coalesce(auth, '{}'), coalesce(http_parameters, '{}'),
			v_state, v_reason, pg_catalog.now())
	ON CONFLICT ON CONSTRAINT connection_secrets_pkey DO UPDATE
		SET auth_type = EXCLUDED.auth_type,
			auth = EXCLUDED.auth,
			http_parameters = EXCLUDED.http_parameters,
			state = EXCLUDED.state,
			state_reason = EXCLUDED.state_reason,
			state_changed_at = EXCLUDED.state_changed_at,
			updated_at = pg_catalog.now(),
			revision = c.revision OPERATOR(pg_catalog.+) 1,
			access_token = NULL,
			token_expires_at = NULL,
			token_refresh_at = NULL,
			token_fetching_until = NULL,
			token_failures = 0;
	-- queued deliveries of its targets may go now (or a token be fetched)
	PERFORM eventbus.wake_workers();
END
$$;
COMMENT ON FUNCTION eventbus.put_connection(text, text, jsonb, jsonb) IS 'Creates or replaces a connection (API_KEY, BASIC, OAUTH_CLIENT_CREDENTIALS or NONE) and authorizes it anew.';
REVOKE EXECUTE ON FUNCTION eventbus.put_connection(text, text, jsonb, jsonb) FROM PUBLIC;

-- Deauthorizes a connection: its targets' deliveries wait; the token is dropped.
CREATE FUNCTION eventbus.deauthorize_connection(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM eventbus.require_connection(name);
	UPDATE eventbus.connection_secrets c
	SET state = 'DEAUTHORIZED',
		state_reason = 'deauthorized by eventbus.deauthorize_connection()',
		state_changed_at = pg_catalog.now(),
		revision = c.revision OPERATOR(pg_catalog.+) 1,
		access_token = NULL,
		token_expires_at = NULL,
		token_refresh_at = NULL,
		token_fetching_until = NULL
	WHERE c.name OPERATOR(pg_catalog.=) deauthorize_connection.name;
END
$$;
COMMENT ON FUNCTION eventbus.deauthorize_connection(text) IS 'Deauthorizes a connection: its targets'' deliveries wait (and burn no attempts) until put_connection() authorizes it again or max_event_age dead-letters them.';
REVOKE EXECUTE ON FUNCTION eventbus.deauthorize_connection(text) FROM PUBLIC;

-- Deletes a connection; refuses (2BP01) while targets use it.
CREATE FUNCTION eventbus.delete_connection(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_targets text;
	v_count bigint;
BEGIN
	PERFORM eventbus.require_connection(name);
	SELECT pg_catalog.count(*),
		   pg_catalog.string_agg(pg_catalog.format('%s/%s/%s', t.bus, t.rule, t.target_id), ', ')
			 FILTER (WHERE t.n OPERATOR(pg_catalog.<=) 10)
	INTO v_count, v_targets
	FROM (SELECT t.*, pg_catalog.row_number() OVER (ORDER BY t.bus, t.rule, t.target_id) AS n
		  FROM eventbus.targets t
		  WHERE t.connection OPERATOR(pg_catalog.=) delete_connection.name) t;
	IF v_count OPERATOR(pg_catalog.>) 0 THEN
		PERFORM eventbus.raise_error('2BP01',
			pg_catalog.format('connection "%s" is used by %s target(s)', name, v_count),
			pg_catalog.format('Targets (bus/rule/target_id): %s%s.', v_targets,
				CASE WHEN v_count OPERATOR(pg_catalog.>) 10 THEN ', ...' ELSE '' END),
			'Give those targets another connection with eventbus.put_target(..., connection => ...), or remove them, first.');
	END IF;
	DELETE FROM eventbus.connection_secrets c
	WHERE c.name OPERATOR(pg_catalog.=) delete_connection.name;
END
$$;
COMMENT ON FUNCTION eventbus.delete_connection(text) IS 'Deletes a connection that no target uses.';
REVOKE EXECUTE ON FUNCTION eventbus.delete_connection(text) FROM PUBLIC;

-- put_target's check of its connection parameter: NULL or an existing one.
CREATE FUNCTION eventbus.check_target_connection(target_id text, connection text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF connection IS NOT NULL AND NOT EXISTS (SELECT FROM eventbus.connection_secrets c
			WHERE c.name OPERATOR(pg_catalog.=) check_target_connection.connection) THEN
		PERFORM eventbus.raise_error('42704',
			pg_catalog.format('connection "%s" of target "%s" does not exist', connection, target_id),
			NULL,
			'Create it first with eventbus.put_connection(), or list them with: SELECT name, state FROM eventbus.connections;');
	END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.check_target_connection(text, text) FROM PUBLIC;

/*
 * Whether a target with this connection may not send now: the connection
 * is not AUTHORIZED, or (OAuth) has no token that is still usable.  The
 * claim gives such a target no room; NULL (no connection) never blocks.
 */
CREATE FUNCTION eventbus.connection_blocks(connection text)
RETURNS boolean
LANGUAGE sql STABLE
AS $$
	SELECT EXISTS (SELECT FROM eventbus.connection_secrets c
		WHERE c.name OPERATOR(pg_catalog.=) $1
		  AND (c.state OPERATOR(pg_catalog.<>) 'AUTHORIZED'
			   OR (c.auth_type OPERATOR(pg_catalog.=) 'OAUTH_CLIENT_CREDENTIALS'
				   AND (c.access_token IS NULL
						OR c.token_expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()))))
$$;
REVOKE EXECUTE ON FUNCTION eventbus.connection_blocks(text) FROM PUBLIC;

/*
 * The worker's side of the token cache.  connection_token_begin() leases
 * one OAuth connection whose token must be fetched (none yet, or due for
 * refresh) to this worker for 30 seconds and returns what the fetch needs;
 * connection_token_end() stores the token, or counts a failure: after
 * three failures in a row (1 s, then 2 s apart) the connection is
 * DEAUTHORIZED with the reason.  A result for an older revision (the
 * connection was put again or deauthorized meanwhile) is dropped.
 */
CREATE FUNCTION eventbus.connection_token_begin(OUT name text, OUT revision bigint,
												OUT auth jsonb)
RETURNS SETOF record
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	UPDATE eventbus.connection_secrets c
	SET token_fetching_until = pg_catalog.now() OPERATOR(pg_catalog.+) '30 seconds'::pg_catalog.interval
	FROM (SELECT c2.name FROM eventbus.connection_secrets c2
		  WHERE c2.auth_type OPERATOR(pg_catalog.=) 'OAUTH_CLIENT_CREDENTIALS'
			AND c2.state OPERATOR(pg_catalog.<>) 'DEAUTHORIZED'
			AND (c2.token_refresh_at IS NULL OR c2.token_refresh_at OPERATOR(pg_catalog.<=) pg_catalog.now())
			AND (c2.token_fetching_until IS NULL
				 OR c2.token_fetching_until OPERATOR(pg_catalog.<=) pg_catalog.now())
		  ORDER BY c2.token_refresh_at NULLS FIRST
		  LIMIT 1
		  FOR UPDATE SKIP LOCKED) due
	WHERE c.name OPERATOR(pg_catalog.=) due.name
	RETURNING c.name, c.revision, c.auth
$$;
REVOKE EXECUTE ON FUNCTION eventbus.connection_token_begin() FROM PUBLIC;

CREATE FUNCTION eventbus.connection_token_end(name text, revision bigint,
											  token text, expires_in double precision,
											  failure text)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	UPDATE eventbus.connection_secrets c
	SET access_token = CASE WHEN $5 IS NULL THEN $3
							WHEN c.token_failures OPERATOR(pg_catalog.>=) 2 THEN NULL
							ELSE c.access_token END,
		token_serial = c.token_serial OPERATOR(pg_catalog.+) CASE WHEN $5 IS NULL THEN 1 ELSE 0 END,
		token_expires_at = CASE WHEN $5 IS NULL
			THEN pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $4)
			ELSE c.token_expires_at END,
		-- refresh before expiry: a quarter of the lifetime early, at most a minute
		token_refresh_at = pg_catalog.now() OPERATOR(pg_catalog.+) CASE WHEN $5 IS NULL
			THEN pg_catalog.make_interval(secs => $4 OPERATOR(pg_catalog.-) LEAST($4 OPERATOR(pg_catalog./) 4, 60))
			ELSE pg_catalog.make_interval(secs => pg_catalog.power(2, c.token_failures)) END,
		token_fetching_until = NULL,
		token_failures = CASE WHEN $5 IS NULL THEN 0 ELSE c.token_failures OPERATOR(pg_catalog.+) 1 END,
		state = CASE WHEN $5 IS NULL THEN 'AUTHORIZED'
					 WHEN c.token_failures OPERATOR(pg_catalog.>=) 2 THEN 'DEAUTHORIZED'
					 ELSE c.state END,
		state_reason = CASE WHEN $5 IS NULL THEN 'a token was fetched from the authorization endpoint'
							WHEN c.token_failures OPERATOR(pg_catalog.>=) 2
							THEN 'the authorization endpoint failed 3 times in a row; last: ' OPERATOR(pg_catalog.||) $5
							ELSE c.state_reason END,
		state_changed_at = CASE WHEN ($5 IS NULL AND c.state OPERATOR(pg_catalog.<>) 'AUTHORIZED')
									OR ($5 IS NOT NULL AND c.token_failures OPERATOR(pg_catalog.>=) 2)
								THEN pg_catalog.now() ELSE c.state_changed_at END
	WHERE c.name OPERATOR(pg_catalog.=) $1 AND c.revision OPERATOR(pg_catalog.=) $2
	  AND c.state OPERATOR(pg_catalog.<>) 'DEAUTHORIZED'
$$;
REVOKE EXECUTE ON FUNCTION eventbus.connection_token_end(text, bigint, text, double precision, text) FROM PUBLIC;

-- A target answered 401 or 407 to this token: fetch another, once (the
-- token's serial tells a second answer to the same token from a new one).
CREATE FUNCTION eventbus.connection_token_rejected(name text, token_serial bigint)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	UPDATE eventbus.connection_secrets c
	SET token_expires_at = pg_catalog.now(), token_refresh_at = pg_catalog.now()
	WHERE c.name OPERATOR(pg_catalog.=) $1
	  AND c.token_serial OPERATOR(pg_catalog.=) $2
	  AND c.auth_type OPERATOR(pg_catalog.=) 'OAUTH_CLIENT_CREDENTIALS'
	  AND c.token_expires_at OPERATOR(pg_catalog.>) pg_catalog.now()
$$;
REVOKE EXECUTE ON FUNCTION eventbus.connection_token_rejected(text, bigint) FROM PUBLIC;

/*
 * A connection that blocks holds its targets: eventbus.target_suspended()
 * says so to the claim, and eventbus.expire_held_deliveries() (section
 * "Rate limits and circuit breakers") dead-letters their deliveries past
 * max_event_age (NO_PERMISSIONS, naming the connection and its state).
 */

-- put_target takes connection, checked by check_target_connection: see the
-- section "put_target" at the end.


/*
 * Rules as code and connections: export() writes every connection as the
 * view shows it (secrets masked, no state or token), and apply() creates
 * or updates the connections of a document before its buses, rules and
 * targets (which may name them), through put_connection, so a document
 * is checked by the code that checks a call.  A masked secret keeps the
 * value the connection already has here; one it has not is an error.
 * prune deletes no connection.
 */
CREATE FUNCTION eventbus.code_export_connections()
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
			'name', c.name, 'auth_type', c.auth_type, 'auth', c.auth,
			'http_parameters', c.http_parameters) ORDER BY c.name COLLATE "C"), '[]')
	FROM eventbus.connections c
$$;
REVOKE EXECUTE ON FUNCTION eventbus.code_export_connections() FROM PUBLIC;

-- The shape of $.connections: objects with a name given once, their keys
-- and JSON types (put_connection checks the rest); never echoes a value.
CREATE FUNCTION eventbus.code_check_connections(document jsonb)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c record;
	v_path text;
	v_key text;
	v_types jsonb := '{"name": "string", "auth_type": "string", "auth": "object", "http_parameters": "object"}';
BEGIN
	IF NOT document OPERATOR(pg_catalog.?) 'connections' THEN
		RETURN;
	END IF;
	IF pg_catalog.jsonb_typeof(document OPERATOR(pg_catalog.->) 'connections') OPERATOR(pg_catalog.<>) 'array' THEN
		PERFORM eventbus.code_error('$.connections', '"connections" of the document must be a JSON array');
	END IF;
	FOR c IN SELECT e.value AS v, e.n OPERATOR(pg_catalog.-) 1 AS i
			 FROM pg_catalog.jsonb_array_elements(document OPERATOR(pg_catalog.->) 'connections')
				  WITH ORDINALITY e(value, n) LOOP
		v_path := pg_catalog.format('$.connections[%s]', c.i);
		IF pg_catalog.jsonb_typeof(c.v) OPERATOR(pg_catalog.<>) 'object' THEN
			PERFORM eventbus.code_error(v_path, 'a connection must be a JSON object', NULL,
				'See the README, "Connections", for its keys.');
		END IF;
		FOREACH v_key IN ARRAY ARRAY['name', 'auth_type', 'auth'] LOOP
			IF NOT c.v OPERATOR(pg_catalog.?) v_key THEN
				PERFORM eventbus.code_error(v_path, pg_catalog.format('a connection has no "%s"', v_key), NULL,
					pg_catalog.format('Add the key "%s".', v_key));
			END IF;
		END LOOP;
		FOR v_key IN SELECT k FROM pg_catalog.jsonb_object_keys(c.v) k ORDER BY k LOOP
			IF NOT v_types OPERATOR(pg_catalog.?) v_key THEN
				PERFORM eventbus.code_error(v_path OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) v_key,
					pg_catalog.format('unknown key "%s" in a connection', v_key), NULL,
					'The keys of a connection are: auth, auth_type, http_parameters, name.');
			END IF;
			IF pg_catalog.jsonb_typeof(c.v OPERATOR(pg_catalog.->) v_key) OPERATOR(pg_catalog.<>) (v_types OPERATOR(pg_catalog.->>) v_key) THEN
				PERFORM eventbus.code_error(v_path OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) v_key,
					pg_catalog.format('"%s" of a connection must be a JSON %s', v_key, v_types OPERATOR(pg_catalog.->>) v_key),
					pg_catalog.format('The document has a JSON %s.', pg_catalog.jsonb_typeof(c.v OPERATOR(pg_catalog.->) v_key)));
			END IF;
		END LOOP;
		IF (SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_array_elements(document OPERATOR(pg_catalog.->) 'connections') o
			WHERE (o OPERATOR(pg_catalog.->) 'name') OPERATOR(pg_catalog.=) (c.v OPERATOR(pg_catalog.->) 'name')) OPERATOR(pg_catalog.>) 1 THEN
			PERFORM eventbus.code_error(v_path OPERATOR(pg_catalog.||) '.name',
				pg_catalog.format('connection "%s" is in the document more than once', c.v OPERATOR(pg_catalog.->>) 'name'),
				NULL, 'Give each connection once.');
		END IF;
	END LOOP;
END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.code_check_connections(jsonb) FROM PUBLIC;

/*
 * `value` with each masked value of its parameter lists replaced by the
 * stored one of the same list and key (stored: the connection's own).
 */
CREATE FUNCTION eventbus.code_unmask_parameters(name text, params jsonb, stored jsonb, path text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_list text;
	v_i integer;
	v_key text;
	v_value jsonb;
BEGIN
	IF pg_catalog.jsonb_typeof(params) IS DISTINCT FROM 'object' THEN
		RETURN params;
	END IF;
	FOREACH v_list IN ARRAY ARRAY['header_parameters', 'query_string_parameters', 'body_parameters'] LOOP
		CONTINUE WHEN pg_catalog.jsonb_typeof(params OPERATOR(pg_catalog.->) v_list) IS DISTINCT FROM 'array';
		FOR v_i IN 0 .. pg_catalog.jsonb_array_length(params OPERATOR(pg_catalog.->) v_list) OPERATOR(pg_catalog.-) 1 LOOP
			CONTINUE WHEN (params OPERATOR(pg_catalog.->) v_list OPERATOR(pg_catalog.->) v_i
						   OPERATOR(pg_catalog.->) 'value') IS DISTINCT FROM eventbus.code_masked();
			v_key := params OPERATOR(pg_catalog.->) v_list OPERATOR(pg_catalog.->) v_i OPERATOR(pg_catalog.->>) 'key';
			SELECT e OPERATOR(pg_catalog.->) 'value' INTO v_value
			FROM pg_catalog.jsonb_array_elements(CASE WHEN pg_catalog.jsonb_typeof(stored OPERATOR(pg_catalog.->) v_list) = 'array'
												 THEN stored OPERATOR(pg_catalog.->) v_list ELSE '[]' END) e
			WHERE e OPERATOR(pg_catalog.->>) 'key' OPERATOR(pg_catalog.=) v_key;
			IF v_value IS NULL THEN
				PERFORM eventbus.code_error(pg_catalog.format('%s.%s[%s].value', path, v_list, v_i),
					pg_catalog.format('parameter "%s" of connection "%s" is masked in the document, and the connection has no value for it here',
						v_key, name),
					'A masked value keeps the value the connection already has.',
					'Write the value into the document.');
			END IF;
			params := pg_catalog.jsonb_set(params, ARRAY[v_list, v_i::text, 'value'], v_value);
		END LOOP;
	END LOOP;
	RETURN params;
END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.code_unmask_parameters(text, jsonb, jsonb, text) FROM PUBLIC;

/*
 * Creates or updates the document's connections (put_connection, which
 * authorizes anew) where they differ from the database; returns the
 * changes, as code_apply() does.
 */
CREATE FUNCTION eventbus.code_apply_connections(document jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_changes jsonb := '[]';
	c record;
	s eventbus.connection_secrets;
	v_path text;
	v_name text;
	v_type text;
	v_auth jsonb;
	v_params jsonb;
	v_secret text[];
	v_state text;
	v_msg text;
	v_detail text;
	v_hint text;
BEGIN
	FOR c IN SELECT e.value AS v, e.n OPERATOR(pg_catalog.-) 1 AS i
			 FROM pg_catalog.jsonb_array_elements(coalesce(document OPERATOR(pg_catalog.->) 'connections', '[]'))
				  WITH ORDINALITY e(value, n) LOOP
		v_path := pg_catalog.format('$.connections[%s]', c.i);
		BEGIN
			v_name := c.v OPERATOR(pg_catalog.->>) 'name';
			v_type := pg_catalog.upper(c.v OPERATOR(pg_catalog.->>) 'auth_type');
			v_auth := c.v OPERATOR(pg_catalog.->) 'auth';
			v_params := coalesce(c.v OPERATOR(pg_catalog.->) 'http_parameters', '{}');
			SELECT * INTO s FROM eventbus.connection_secrets x WHERE x.name OPERATOR(pg_catalog.=) v_name;
			-- the secrets masked in the document: the stored ones (of the same auth type)
			FOREACH v_secret SLICE 1 IN ARRAY ARRAY[ARRAY['api_key_value', ''], ARRAY['password', ''],
													ARRAY['client_parameters', 'client_secret']] LOOP
				v_secret := pg_catalog.array_remove(v_secret, '');
				CONTINUE WHEN (v_auth OPERATOR(pg_catalog.#>) v_secret) IS DISTINCT FROM eventbus.code_masked();
				IF s.auth_type IS DISTINCT FROM v_type OR (s.auth OPERATOR(pg_catalog.#>) v_secret) IS NULL THEN
					PERFORM eventbus.code_error(pg_catalog.format('%s.auth.%s', v_path, pg_catalog.array_to_string(v_secret, '.')),
						pg_catalog.format('the secret of connection "%s" is masked in the document, and the connection has none here', v_name),
						'A masked value keeps the value the connection already has.',
						'Write the value into the document.');
				END IF;
				v_auth := pg_catalog.jsonb_set(v_auth, v_secret, s.auth OPERATOR(pg_catalog.#>) v_secret);
			END LOOP;
			IF v_auth OPERATOR(pg_catalog.?) 'oauth_http_parameters' THEN
				v_auth := pg_catalog.jsonb_set(v_auth, '{oauth_http_parameters}',
					eventbus.code_unmask_parameters(v_name, v_auth OPERATOR(pg_catalog.->) 'oauth_http_parameters',
						CASE WHEN s.auth_type OPERATOR(pg_catalog.=) v_type
							 THEN s.auth OPERATOR(pg_catalog.->) 'oauth_http_parameters' END,
						v_path OPERATOR(pg_catalog.||) '.auth.oauth_http_parameters'));
			END IF;
			v_params := eventbus.code_unmask_parameters(v_name, v_params, s.http_parameters,
				v_path OPERATOR(pg_catalog.||) '.http_parameters');
			IF s.name IS NULL OR s.auth_type IS DISTINCT FROM v_type OR s.auth IS DISTINCT FROM v_auth
			   OR s.http_parameters IS DISTINCT FROM v_params THEN
				PERFORM eventbus.put_connection(v_name, v_type, v_auth, v_params);
				v_changes := v_changes OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(
					'action', CASE WHEN s.name IS NULL THEN 'create' ELSE 'update' END,
					'kind', 'connection', 'name', v_name);
			END IF;
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT,
				v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
			PERFORM eventbus.raise_error(v_state, v_msg,
				CASE WHEN v_detail LIKE 'At $%' THEN v_detail
					 ELSE 'At ' || v_path || '.' || coalesce(' ' || NULLIF(v_detail, ''), '') END,
				NULLIF(v_hint, ''));
		END;
	END LOOP;
	RETURN v_changes;
END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.code_apply_connections(jsonb) FROM PUBLIC;



-- (end of connections)

------------------------------------------------------------------------------
-- Rate limits and circuit breakers
------------------------------------------------------------------------------

/*
 * A target's rate limit (requests per second across all workers; NULL:
 * none) and whether an operator holds it (disable_target).  src/limits.c
 * keeps the token buckets and the circuit breakers in shared memory.
 */
ALTER TABLE eventbus.targets
	ADD COLUMN rate_limit integer,
	ADD COLUMN enabled boolean NOT NULL DEFAULT true;

-- put_target's check of rate_limit: NULL (no limit) or at least 1 a second.
CREATE FUNCTION eventbus.check_target_rate_limit(target_id text, rate_limit integer)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF rate_limit IS NOT NULL AND rate_limit < 1 THEN
		PERFORM eventbus.raise_error('22023',
			format('rate_limit of target "%s" must be at least 1 request per second', target_id),
			format('The value given is %s.', rate_limit),
			'Give a number of requests per second from 1 up, or NULL for no limit.');
	END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.check_target_rate_limit(text, integer) FROM PUBLIC;

-- put_target takes rate_limit, checked by check_target_rate_limit: see
-- the section "put_target" at the end.

/*
 * The circuit breakers and token buckets in shared memory (src/limits.c).
 * target_room: how many requests a target may start now (the claim calls
 * it for each target); breaker_open: is a target's breaker open or probing;
 * breaker_reset: closes it; target_limits: the state of every target with
 * a rate limit or a breaker that saw failures.
 */
CREATE FUNCTION eventbus.target_room(bus text, rule text, target_id text, rate_limit integer)
RETURNS integer
AS 'MODULE_PATHNAME', 'eventbus_target_room'
LANGUAGE C VOLATILE;
CREATE FUNCTION eventbus.breaker_open(bus text, rule text, target_id text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'eventbus_breaker_open'
LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION eventbus.breaker_reset(bus text, rule text, target_id text)
RETURNS void
AS 'MODULE_PATHNAME', 'eventbus_breaker_reset'
LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION eventbus.target_limits(OUT bus text, OUT rule text, OUT target_id text,
									   OUT breaker_state text,
									   OUT consecutive_failures integer,
									   OUT breaker_opened_at timestamptz,
									   OUT next_probe_at timestamptz,
									   OUT rate_limited bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'eventbus_target_limits'
LANGUAGE C VOLATILE;

/*
 * The one place that says a target is held by its configuration -- no
 * request goes to it, its rows wait: disabled by an operator, or its
 * connection blocks (section "Connections": deauthorized, or OAuth without
 * a usable token).  The claim gives such a target no room.  No SET clause,
 * so that the claim inlines it: its body qualifies every function (NOT
 * and OR are syntax).
 */
CREATE FUNCTION eventbus.target_suspended(t eventbus.targets)
RETURNS boolean
LANGUAGE sql STABLE
AS $$ SELECT NOT $1.enabled OR eventbus.connection_blocks($1.connection) $$;

-- Held: suspended, or its circuit breaker is open (or probing).
CREATE FUNCTION eventbus.target_held(t eventbus.targets)
RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT eventbus.target_suspended($1)
		OR eventbus.breaker_open($1.bus, $1.rule, $1.target_id) $$;

/*
 * max_event_age holds for held targets too: moves the rows of held
 * targets whose event is older than the target's max_event_age to
 * dead_letters (MaximumEventAgeInSeconds, with the code of the last
 * attempt's error, or TARGET_HELD when none was made).  Rows in flight
 * are left to their answer.  The delivery worker runs it at most every
 * 10 s (src/limits.c paces it); it reaches the rows by probes of deliveries_target_due_idx,
 * one per held target, and looks at each held target's first 10,000 rows
 * in next_attempt_at order only: a held target's rows are not retried, so
 * that order is the order they were queued in, oldest first, and the
 * sweep's cost stays bounded however large the backlog (a row a retry
 * moved further back is found once those before it have gone).  A row
 * leased meanwhile is left to its answer.  Returns how many.
 */
CREATE FUNCTION eventbus.expire_held_deliveries()
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
	v_count bigint := 0;
BEGIN
	FOR r IN
		WITH held AS (
			SELECT t.bus, t.rule, t.target_id, t.endpoint, t.max_event_age,
				   c.name AS connection, c.state, c.state_reason
			FROM eventbus.targets t
			LEFT JOIN eventbus.connection_secrets c
				ON c.name OPERATOR(pg_catalog.=) t.connection
			   AND eventbus.connection_blocks(c.name)
			WHERE eventbus.target_held(t)),
		old AS (
			SELECT d.ctid AS row_ctid, h.endpoint, h.max_event_age, h.connection,
				   h.state, h.state_reason
			FROM held h CROSS JOIN LATERAL (
				SELECT d.ctid, d.leased_until, d.event_published_at
				FROM eventbus.deliveries d
				WHERE d.bus OPERATOR(pg_catalog.=) h.bus
				  AND d.rule OPERATOR(pg_catalog.=) h.rule
				  AND d.target_id OPERATOR(pg_catalog.=) h.target_id
				ORDER BY d.next_attempt_at
				LIMIT 10000) d
			WHERE d.leased_until IS NULL
			  AND d.event_published_at OPERATOR(pg_catalog.<)
				  (pg_catalog.now() OPERATOR(pg_catalog.-) h.max_event_age)),
		gone AS (
			DELETE FROM eventbus.deliveries d
			USING old o
			WHERE d.ctid OPERATOR(pg_catalog.=) o.row_ctid
			  AND d.leased_until IS NULL
			RETURNING d AS moved, o.endpoint, o.max_event_age, o.connection, o.state,
				o.state_reason)
		SELECT * FROM gone
	LOOP
		IF r.connection IS NOT NULL THEN
			-- held by its connection: no permission to send
			PERFORM eventbus.dead_letter(r.moved, r.endpoint, 'NO_PERMISSIONS',
				pg_catalog.format('connection "%s" is %s (%s): the event is older than the target''s max_event_age (%s)',
					r.connection, r.state, coalesce(r.state_reason, 'no token yet'), r.max_event_age),
				(r.moved).last_http_status, NULL, 'MaximumEventAgeInSeconds');
		ELSE
			PERFORM eventbus.dead_letter(r.moved, r.endpoint,
				coalesce(NULLIF(pg_catalog.split_part((r.moved).last_error, ':', 1), ''),
						 'TARGET_HELD'),
				pg_catalog.format('the event is older than the max_event_age (%s) of target %s of rule %s on bus %s, which was held (disabled, or its circuit breaker open)%s',
					r.max_event_age, (r.moved).target_id, (r.moved).rule, (r.moved).bus,
					CASE WHEN (r.moved).last_error IS NULL THEN ''
						 ELSE '; last error: ' OPERATOR(pg_catalog.||) (r.moved).last_error END),
				(r.moved).last_http_status, NULL, 'MaximumEventAgeInSeconds');
		END IF;
		v_count := v_count OPERATOR(pg_catalog.+) 1;
	END LOOP;
	RETURN v_count;
END
$$;

/*
 * An operator holds a target (disable_target: nothing is sent to it, its
 * rows wait, max_event_age still applies) or releases it (enable_target:
 * also closes its circuit breaker, and wakes the workers at commit).
 * Unknown target: 42704.
 */
CREATE FUNCTION eventbus.set_target_enabled(rule text, target_id text, bus text, enabled boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM eventbus.require_rule(rule, bus);
	UPDATE eventbus.targets t
	SET enabled = set_target_enabled.enabled, updated_at = now()
	WHERE t.bus = set_target_enabled.bus AND t.rule = set_target_enabled.rule
	  AND t.target_id = set_target_enabled.target_id;
	IF NOT FOUND THEN
		PERFORM eventbus.raise_error('42704',
			format('target "%s" of rule "%s" on event bus "%s" does not exist', target_id, rule, bus),
			NULL,
			'List the targets with: SELECT bus, rule, target_id FROM eventbus.targets;');
	END IF;
	IF enabled THEN
		PERFORM eventbus.breaker_reset(bus, rule, target_id);
		PERFORM eventbus.wake_workers();
	END IF;
END
$$;

CREATE FUNCTION eventbus.disable_target(rule text, target_id text, bus text DEFAULT 'default')
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT eventbus.set_target_enabled(rule, target_id, bus, false) $$;
COMMENT ON FUNCTION eventbus.disable_target(text, text, text) IS 'Holds a target: nothing is sent to it until enable_target; its deliveries wait (max_event_age still applies).';

CREATE FUNCTION eventbus.enable_target(rule text, target_id text, bus text DEFAULT 'default')
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT eventbus.set_target_enabled(rule, target_id, bus, true) $$;
COMMENT ON FUNCTION eventbus.enable_target(text, text, text) IS 'Releases a target held by disable_target and closes its circuit breaker.';

REVOKE EXECUTE ON FUNCTION eventbus.target_room(text, text, text, integer),
	eventbus.breaker_open(text, text, text), eventbus.breaker_reset(text, text, text),
	eventbus.target_limits(), eventbus.target_suspended(eventbus.targets),
	eventbus.target_held(eventbus.targets), eventbus.expire_held_deliveries(),
	eventbus.set_target_enabled(text, text, text, boolean),
	eventbus.disable_target(text, text, text), eventbus.enable_target(text, text, text)
	FROM PUBLIC;

/*
 * Per target: the counters of the section "Statistics and metrics", the
 * queue at a glance, then its rate limit, whether it is enabled, and its
 * breaker (state, failures in a row, when it opened, the next probe) and
 * the claims its rate limit cut short.  Defined here, once, after the
 * columns and functions it reads.
 */
CREATE VIEW eventbus.target_stats AS
WITH s AS (SELECT * FROM eventbus.stats_entries() e WHERE e.kind = 'target'),
dl AS (
	SELECT l.bus, l.rule, l.target_id,
		pg_catalog.count(*) FILTER (WHERE l.failed_at > pg_catalog.now() - interval '1 hour') AS dead_letters_last_hour
	FROM eventbus.dead_letters l
	GROUP BY l.bus, l.rule, l.target_id),
k AS (
	SELECT t.bus, t.rule, t.target_id FROM eventbus.targets t
	UNION SELECT s.bus, s.rule, s.target_id FROM s
	UNION SELECT q.bus, q.rule, q.target_id FROM eventbus.queue_by_target q)
SELECT k.bus, k.rule, k.target_id,
	coalesce(s.invocations, 0) AS invocations,
	coalesce(s.invocation_attempts, 0) AS invocation_attempts,
	coalesce(s.successful_invocation_attempts, 0) AS successful_invocation_attempts,
	coalesce(s.retry_invocation_attempts, 0) AS retry_invocation_attempts,
	coalesce(s.throttled_invocation_attempts, 0) AS throttled_invocation_attempts,
	coalesce(s.timed_out_invocation_attempts, 0) AS timed_out_invocation_attempts,
	coalesce(s.failed_invocations, 0) AS failed_invocations,
	coalesce(s.dead_letter_invocations, 0) AS dead_letter_invocations,
	coalesce(q.backlog, 0) AS backlog,
	coalesce(q.due, 0) AS due,
	coalesce(q.waiting_on_backoff, 0) AS waiting_on_backoff,
	coalesce(q.in_flight, 0) AS in_flight,
	q.oldest_due_age,
	q.oldest_backoff_age,
	coalesce(dl.dead_letters_last_hour, 0) AS dead_letters_last_hour,
	coalesce(s.start_latency_buckets, pg_catalog.array_fill(0::bigint, ARRAY[pg_catalog.cardinality(eventbus.latency_bucket_bounds())])) AS ingestion_to_invocation_start_latency_buckets,
	coalesce(s.start_latency_sum, 0) AS ingestion_to_invocation_start_latency_sum,
	coalesce(s.start_latency_count, 0) AS ingestion_to_invocation_start_latency_count,
	coalesce(s.success_latency_buckets, pg_catalog.array_fill(0::bigint, ARRAY[pg_catalog.cardinality(eventbus.latency_bucket_bounds())])) AS ingestion_to_invocation_success_latency_buckets,
	coalesce(s.success_latency_sum, 0) AS ingestion_to_invocation_success_latency_sum,
	coalesce(s.success_latency_count, 0) AS ingestion_to_invocation_success_latency_count,
	coalesce(s.stats_reset, (SELECT o.stats_reset FROM eventbus.stats_overview() o)) AS stats_reset,
	tt.enabled,
	tt.rate_limit,
	CASE WHEN tt.target_id IS NOT NULL THEN coalesce(lim.breaker_state, 'closed') END AS breaker_state,
	coalesce(lim.consecutive_failures, 0) AS consecutive_failures,
	lim.breaker_opened_at,
	lim.next_probe_at,
	coalesce(lim.rate_limited, 0) AS rate_limited
FROM k
LEFT JOIN s ON s.bus = k.bus AND s.rule = k.rule AND s.target_id = k.target_id
LEFT JOIN eventbus.queue_by_target q ON q.bus = k.bus AND q.rule = k.rule AND q.target_id = k.target_id
LEFT JOIN dl ON dl.bus = k.bus AND dl.rule = k.rule AND dl.target_id = k.target_id
LEFT JOIN eventbus.targets tt ON tt.bus = k.bus AND tt.rule = k.rule AND tt.target_id = k.target_id
LEFT JOIN eventbus.target_limits() lim ON lim.bus = k.bus AND lim.rule = k.rule AND lim.target_id = k.target_id;
COMMENT ON VIEW eventbus.target_stats IS 'Per target: invocations and attempts by outcome, the queue (backlog, due, backoff, in flight, oldest ages), dead letters in the last hour, latency histograms; enabled, rate limit, circuit breaker.';
REVOKE ALL ON eventbus.target_stats FROM PUBLIC;
GRANT SELECT ON eventbus.target_stats TO pg_monitor;
GRANT EXECUTE ON FUNCTION eventbus.target_limits() TO pg_monitor;

/*
 * The metrics in Prometheus's text exposition format: every family with
 * HELP and TYPE, counters named as CloudWatch names them (snake case,
 * _total), the histograms as _bucket series with le, then _sum and _count.
 * Defined here, once, with the breakers' gauge (family 22), after the
 * functions it reads.
 */
CREATE FUNCTION eventbus.metrics()
RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
WITH families(ord, name, type, help) AS (VALUES
	(1, 'eventbus_put_events_total', 'counter', 'Events put on the bus (put_event, put_events, capture).'),
	(2, 'eventbus_put_event_bytes_total', 'counter', 'Size of the events put, as PutEvents counts it.'),
	(3, 'eventbus_matched_events_total', 'counter', 'Events that matched at least one rule (MatchedEvents).'),
	(4, 'eventbus_triggered_rules_total', 'counter', 'Events each rule matched (TriggeredRules).'),
	(5, 'eventbus_invocations_total', 'counter', 'Deliveries ended after a request: succeeded, or failed for good (Invocations).'),
	(6, 'eventbus_invocation_attempts_total', 'counter', 'Requests sent (InvocationAttempts).'),
	(7, 'eventbus_successful_invocation_attempts_total', 'counter', 'Requests answered 2xx (SuccessfulInvocationAttempts).'),
	(8, 'eventbus_retry_invocation_attempts_total', 'counter', 'Requests that were retries (RetryInvocationAttempts).'),
	(9, 'eventbus_throttled_invocation_attempts_total', 'counter', 'Requests answered 429.'),
	(10, 'eventbus_timed_out_invocation_attempts_total', 'counter', 'Requests that ran past the target''s timeout.'),
	(11, 'eventbus_failed_invocations_total', 'counter', 'Deliveries that failed for good after a request (FailedInvocations).'),
	(12, 'eventbus_dead_letter_invocations_total', 'counter', 'Deliveries the worker moved to eventbus.dead_letters (DeadLetterInvocations).'),
	(13, 'eventbus_backlog', 'gauge', 'Pending deliveries of the target.'),
	(14, 'eventbus_due_deliveries', 'gauge', 'Pending deliveries that are due now.'),
	(15, 'eventbus_in_flight', 'gauge', 'Deliveries leased by a worker (requests in flight).'),
	(16, 'eventbus_oldest_due_age_seconds', 'gauge', 'How long the longest-waiting due delivery has been due (0 when none).'),
	(17, 'eventbus_oldest_backoff_age_seconds', 'gauge', 'Age since publication of the oldest delivery waiting on its backoff (0 when none).'),
	(18, 'eventbus_dead_letters_last_hour', 'gauge', 'Dead letters of the target that failed in the last hour.'),
	(19, 'eventbus_ingestion_to_invocation_start_latency_seconds', 'histogram', 'From the event''s insertion to the start of its first attempt (IngestionToInvocationStartLatency).'),
	(20, 'eventbus_ingestion_to_invocation_success_latency_seconds', 'histogram', 'From the event''s insertion to the end of its successful attempt (IngestionToInvocationSuccessLatency).'),
	(21, 'eventbus_workers', 'gauge', 'Delivery workers running.'),
	(22, 'eventbus_breaker_open', 'gauge', 'Whether the target''s circuit breaker is open or probing (1) or closed (0).')),
b AS (SELECT s.*, pg_catalog.format('bus="%s"', eventbus.metrics_label(s.bus)) AS l
	  FROM eventbus.bus_stats s),
r AS (SELECT s.*, pg_catalog.format('bus="%s",rule="%s"', eventbus.metrics_label(s.bus),
									 eventbus.metrics_label(s.rule)) AS l
	  FROM eventbus.rule_stats s),
t AS (SELECT s.*, pg_catalog.format('bus="%s",rule="%s",target="%s"', eventbus.metrics_label(s.bus),
									 eventbus.metrics_label(s.rule), eventbus.metrics_label(s.target_id)) AS l
	  FROM eventbus.target_stats s),
samples(ord, sort, suffix, labels, value) AS (
	SELECT 1, b.l, '', b.l, b.put_events::text FROM b
	UNION ALL SELECT 2, b.l, '', b.l, b.put_event_bytes::text FROM b
	UNION ALL SELECT 3, b.l, '', b.l, b.matched_events::text FROM b
	UNION ALL SELECT 4, r.l, '', r.l, r.matched_events::text FROM r
	UNION ALL SELECT 5, t.l, '', t.l, t.invocations::text FROM t
	UNION ALL SELECT 6, t.l, '', t.l, t.invocation_attempts::text FROM t
	UNION ALL SELECT 7, t.l, '', t.l, t.successful_invocation_attempts::text FROM t
	UNION ALL SELECT 8, t.l, '', t.l, t.retry_invocation_attempts::text FROM t
	UNION ALL SELECT 9, t.l, '', t.l, t.throttled_invocation_attempts::text FROM t
	UNION ALL SELECT 10, t.l, '', t.l, t.timed_out_invocation_attempts::text FROM t
	UNION ALL SELECT 11, t.l, '', t.l, t.failed_invocations::text FROM t
	UNION ALL SELECT 12, t.l, '', t.l, t.dead_letter_invocations::text FROM t
	UNION ALL SELECT 13, t.l, '', t.l, t.backlog::text FROM t
	UNION ALL SELECT 14, t.l, '', t.l, t.due::text FROM t
	UNION ALL SELECT 15, t.l, '', t.l, t.in_flight::text FROM t
	UNION ALL SELECT 16, t.l, '', t.l, coalesce(pg_catalog.date_part('epoch', t.oldest_due_age), 0)::text FROM t
	UNION ALL SELECT 17, t.l, '', t.l, coalesce(pg_catalog.date_part('epoch', t.oldest_backoff_age), 0)::text FROM t
	UNION ALL SELECT 18, t.l, '', t.l, t.dead_letters_last_hour::text FROM t
	UNION ALL SELECT 22, t.l, '', t.l, (CASE WHEN t.breaker_state IN ('open', 'half_open') THEN 1 ELSE 0 END)::text FROM t
	UNION ALL
	SELECT h.ord, t.l || pg_catalog.to_char(x.i, 'FM000'), '_bucket',
		t.l || pg_catalog.format(',le="%s"', CASE WHEN x.i > pg_catalog.cardinality(x.bounds) THEN '+Inf' ELSE x.bounds[x.i]::text END),
		(CASE WHEN x.i > pg_catalog.cardinality(x.bounds) THEN h.count ELSE h.buckets[x.i] END)::text
	FROM t
	CROSS JOIN LATERAL (VALUES
		(19, t.ingestion_to_invocation_start_latency_buckets, t.ingestion_to_invocation_start_latency_count),
		(20, t.ingestion_to_invocation_success_latency_buckets, t.ingestion_to_invocation_success_latency_count))
		AS h(ord, buckets, count)
	CROSS JOIN LATERAL (SELECT g.i, eventbus.latency_bucket_bounds() AS bounds
						FROM pg_catalog.generate_series(1, pg_catalog.cardinality(eventbus.latency_bucket_bounds()) + 1) AS g(i)) x
	UNION ALL SELECT 19, t.l || 'x1', '_sum', t.l, t.ingestion_to_invocation_start_latency_sum::text FROM t
	UNION ALL SELECT 19, t.l || 'x2', '_count', t.l, t.ingestion_to_invocation_start_latency_count::text FROM t
	UNION ALL SELECT 20, t.l || 'x1', '_sum', t.l, t.ingestion_to_invocation_success_latency_sum::text FROM t
	UNION ALL SELECT 20, t.l || 'x2', '_count', t.l, t.ingestion_to_invocation_success_latency_count::text FROM t
	UNION ALL SELECT 21, '', '', '', (SELECT pg_catalog.count(*) FROM eventbus.worker_status())::text),
lines(ord, sort, line) AS (
	SELECT f.ord, '', pg_catalog.format(E'# HELP %s %s\n# TYPE %s %s', f.name, f.help, f.name, f.type)
	FROM families f
	UNION ALL
	SELECT s.ord, '1' || s.sort,
		f.name || s.suffix || CASE WHEN s.labels = '' THEN '' ELSE '{' || s.labels || '}' END || ' ' || s.value
	FROM samples s JOIN families f ON f.ord = s.ord)
SELECT pg_catalog.string_agg(lines.line, E'\n' ORDER BY lines.ord, lines.sort COLLATE "C") || E'\n'
FROM lines
$$;
COMMENT ON FUNCTION eventbus.metrics() IS 'The bus''s metrics in Prometheus''s text exposition format.';
REVOKE EXECUTE ON FUNCTION eventbus.metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventbus.metrics() TO pg_monitor;


-- (end of rate limits and circuit breakers)

------------------------------------------------------------------------------
-- SQL-function targets
------------------------------------------------------------------------------

/*
 * A target is an HTTP endpoint or a SQL function (src/function_target.c):
 * "function" names schema.fn(jsonb), which the worker calls with the event
 * (or its transformation) in a transaction of its own, as the function's
 * owner.  Kept as text, the canonical schema-qualified signature that
 * check_target_function returns, and resolved again at every call: a
 * column of type regprocedure would hold an OID, which dump and restore
 * do not keep and which makes pg_upgrade refuse the whole cluster.
 */
ALTER TABLE eventbus.targets ALTER COLUMN endpoint DROP NOT NULL;
ALTER TABLE eventbus.targets ADD COLUMN "function" text;
ALTER TABLE eventbus.targets ADD CONSTRAINT targets_endpoint_or_function
	CHECK ((endpoint IS NULL) <> ("function" IS NULL));
COMMENT ON COLUMN eventbus.targets."function" IS 'A SQL-function target''s function, schema.fn(jsonb), called by the worker as its owner; NULL for an HTTP target (then endpoint is set).';

/*
 * put_target's check of endpoint, function and headers together: exactly
 * one of endpoint and function, no headers with a function; the function
 * schema-qualified, taking one jsonb, not owned by a superuser, executable
 * by the role that calls put_target and whose owner's rights that role
 * has.  In C, because that role is the session's current role (SET ROLE),
 * which SECURITY DEFINER hides from SQL.  Returns the function's canonical
 * name, "schema.fn(jsonb)", or NULL for an HTTP target.
 */
CREATE FUNCTION eventbus.check_target_function(target_id text, "function" text,
												endpoint text, headers jsonb)
RETURNS text
AS 'MODULE_PATHNAME', 'eventbus_check_target_function'
LANGUAGE C STABLE;
REVOKE EXECUTE ON FUNCTION eventbus.check_target_function(text, text, text, jsonb) FROM PUBLIC;

-- put_target takes function (endpoint NULL then), checked by
-- check_target_function: see the section "put_target" at the end.


-- (end of sql-function targets)

------------------------------------------------------------------------------
-- Batches
------------------------------------------------------------------------------

/*
 * A batch target receives up to batch_size events in one request (a JSON
 * array), sent when batch_size are due or the oldest due one has waited
 * batch_window.  The defaults send one event per request, as 0.1.0 did.
 */
ALTER TABLE eventbus.targets
	ADD COLUMN batch_size integer NOT NULL DEFAULT 1,
	ADD COLUMN batch_window interval NOT NULL DEFAULT '0';

/*
 * The rows of a batch that failed as a whole carry the id of the batch's
 * first delivery, so that the worker sends them together again, under the
 * same webhook-id; NULL for a row not (or no longer) bound to a batch.
 */
ALTER TABLE eventbus.deliveries
	ADD COLUMN batch_key bigint;

/*
 * put_target's check of batch_size and batch_window: the one place their
 * limits are written.  Raises 22023 naming the target.
 */
CREATE FUNCTION eventbus.check_target_batches(target_id text, batch_size integer,
											  batch_window interval)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF batch_size IS NULL OR batch_size NOT BETWEEN 1 AND 500 THEN
		PERFORM eventbus.raise_error('22023',
			format('invalid batch_size for target "%s"', target_id),
			format('The value given is %s.', coalesce(batch_size::text, 'NULL')),
			'batch_size is between 1 (one event per request) and 500.');
	END IF;
	IF batch_window IS NULL OR batch_window NOT BETWEEN interval '0' AND interval '5 minutes' THEN
		PERFORM eventbus.raise_error('22023',
			format('invalid batch_window for target "%s"', target_id),
			format('The value given is %s.', coalesce(batch_window::text, 'NULL')),
			'batch_window is between ''0'' (send what is due at once) and ''5 minutes''.');
	END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION eventbus.check_target_batches(text, integer, interval) FROM PUBLIC;

-- put_target takes batch_size and batch_window, checked by
-- check_target_batches: see the section "put_target" at the end.

-- (end of batches)

------------------------------------------------------------------------------
-- Schedules
------------------------------------------------------------------------------

/*
 * Scheduled rules (README, "Schedules"): put_rule's schedule, a rate() or
 * cron() expression, and schedule_timezone, the zone of cron's wall-clock
 * times.  A rule has an event pattern, a schedule, or both (as in
 * EventBridge); schedules are on the default bus only.  The parser and the
 * next-time search are C (src/schedule.c).
 */
ALTER TABLE eventbus.rules ALTER COLUMN event_pattern DROP NOT NULL;
ALTER TABLE eventbus.rules ADD COLUMN schedule text;
ALTER TABLE eventbus.rules ADD COLUMN schedule_timezone text NOT NULL DEFAULT 'UTC';
ALTER TABLE eventbus.rules ADD CONSTRAINT rules_pattern_or_schedule
	CHECK (event_pattern IS NOT NULL OR schedule IS NOT NULL);

/*
 * When each scheduled rule fires next (infinity: never again), and the
 * scheduled time it last fired.  A table of its own, so that firing does
 * not touch eventbus.rules (whose changes rebuild every rule cache).
 */
CREATE TABLE eventbus.schedules (
	bus			text NOT NULL,
	rule		text NOT NULL,
	next_run_at timestamptz NOT NULL,
	last_run_at timestamptz,
	PRIMARY KEY (bus, rule),
	FOREIGN KEY (bus, rule) REFERENCES eventbus.rules (bus, name) ON DELETE CASCADE
);
CREATE INDEX schedules_next_run_at_idx ON eventbus.schedules (next_run_at);
COMMENT ON TABLE eventbus.schedules IS 'Scheduled rules: the next time each fires (next_run_at) and the scheduled time it last fired.';

-- Raises 22023 for a bad schedule or zone, or one that never fires (C).
CREATE FUNCTION eventbus.check_schedule(schedule text, timezone text)
RETURNS void
AS 'MODULE_PATHNAME', 'eventbus_check_schedule'
LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION eventbus.check_schedule(text, text) FROM PUBLIC;

/*
 * The next `count` times a schedule fires after `after`; reads nothing but
 * its arguments, so PUBLIC may call it, like test_event_pattern.
 */
CREATE FUNCTION eventbus.next_schedule_times(schedule text,
											 timezone text DEFAULT 'UTC',
											 after timestamptz DEFAULT pg_catalog.now(),
											 count integer DEFAULT 5)
RETURNS SETOF timestamptz
AS 'MODULE_PATHNAME', 'eventbus_next_schedule_times'
LANGUAGE C STABLE ROWS 5;
COMMENT ON FUNCTION eventbus.next_schedule_times(text, text, timestamptz, integer) IS 'The next times a rate() or cron() schedule fires after a time, in a time zone.';
GRANT EXECUTE ON FUNCTION eventbus.next_schedule_times(text, text, timestamptz, integer) TO PUBLIC;

-- The first time of a schedule after `now`, a rate counting from `due` (C).
CREATE FUNCTION eventbus.schedule_next_run(schedule text, timezone text,
										   due timestamptz, now timestamptz)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'eventbus_schedule_next_run'
LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION eventbus.schedule_next_run(text, text, timestamptz, timestamptz) FROM PUBLIC;

-- Publishes a rule's Scheduled Event, to that rule's targets only (C).
CREATE FUNCTION eventbus.publish_scheduled_event(bus text, rule text, scheduled_time timestamptz)
RETURNS uuid
AS 'MODULE_PATHNAME', 'eventbus_publish_scheduled_event'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION eventbus.publish_scheduled_event(text, text, timestamptz) FROM PUBLIC;

/*
 * put_rule's check of its schedule arguments: the expression and zone
 * (check_schedule), and the bus: EventBridge runs scheduled rules on the
 * default bus only.
 */
CREATE FUNCTION eventbus.check_rule_schedule(rule text, bus text, schedule text, schedule_timezone text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF schedule IS NULL THEN
		RETURN;
	END IF;
	IF bus OPERATOR(pg_catalog.<>) 'default' THEN
		PERFORM eventbus.raise_error('22023',
			pg_catalog.format('rule "%s" cannot have a schedule on event bus "%s"', rule, bus),
			'Scheduled rules run on the default event bus only, as in EventBridge.',
			'Put the scheduled rule on bus ''default''.');
	END IF;
	IF schedule_timezone IS NULL THEN
		PERFORM eventbus.raise_error('22004',
			pg_catalog.format('schedule_timezone of rule "%s" must not be null', rule),
			NULL,
			'Pass a time zone such as ''UTC'' or ''Europe/Berlin''.');
	END IF;
	PERFORM eventbus.check_schedule(schedule, schedule_timezone);
END
$$;
REVOKE ALL ON FUNCTION eventbus.check_rule_schedule(text, text, text, text) FROM PUBLIC;

DROP FUNCTION eventbus.put_rule(text, jsonb, text, text, text);
CREATE FUNCTION eventbus.put_rule(name text, event_pattern jsonb DEFAULT NULL,
								  bus text DEFAULT 'default',
								  state text DEFAULT 'ENABLED',
								  description text DEFAULT NULL,
								  schedule text DEFAULT NULL,
								  schedule_timezone text DEFAULT 'UTC')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_old eventbus.rules;
BEGIN
	IF name IS NULL OR name OPERATOR(pg_catalog.!~) '^[A-Za-z0-9._-]{1,64}$' THEN
		PERFORM eventbus.raise_error('22023',
			pg_catalog.format('invalid rule name "%s"', name),
			'A rule name is 1 to 64 characters from A-Z, a-z, 0-9, ".", "_" and "-".',
			'Choose a name such as ''orders-to-billing''.');
	END IF;
	IF pg_catalog.upper(state) IS DISTINCT FROM 'ENABLED' AND pg_catalog.upper(state) IS DISTINCT FROM 'DISABLED' THEN
		PERFORM eventbus.raise_error('22023',
			pg_catalog.format('invalid rule state "%s"', state),
			NULL,
			'The state is ''ENABLED'' or ''DISABLED''.');
	END IF;
	IF event_pattern IS NULL AND schedule IS NULL THEN
		PERFORM eventbus.raise_error('22004',
			pg_catalog.format('event pattern of rule "%s" must not be null', name),
			NULL,
			'Pass a pattern such as ''{"source": ["com.example.orders"]}''.');
	END IF;
	IF NOT EXISTS (SELECT 1 FROM eventbus.buses b WHERE b.name OPERATOR(pg_catalog.=) bus) THEN
		PERFORM eventbus.raise_error('42704',
			pg_catalog.format('event bus "%s" does not exist', bus),
			NULL,
			'Create it with eventbus.create_event_bus().');
	END IF;
	IF event_pattern IS NOT NULL THEN
		PERFORM eventbus.validate_event_pattern(event_pattern);
	END IF;
	PERFORM eventbus.check_rule_schedule(name, bus, schedule, schedule_timezone);
	SELECT * INTO v_old FROM eventbus.rules r
	WHERE r.bus OPERATOR(pg_catalog.=) put_rule.bus AND r.name OPERATOR(pg_catalog.=) put_rule.name;
	INSERT INTO eventbus.rules AS r (bus, name, event_pattern, state, description,
									 schedule, schedule_timezone)
	VALUES (bus, name, event_pattern, pg_catalog.upper(state), description,
			schedule, schedule_timezone)
	ON CONFLICT ON CONSTRAINT rules_pkey DO UPDATE
		SET event_pattern = EXCLUDED.event_pattern,
			state = EXCLUDED.state,
			description = EXCLUDED.description,
			schedule = EXCLUDED.schedule,
			schedule_timezone = EXCLUDED.schedule_timezone,
			updated_at = pg_catalog.now();
	-- a new or changed schedule starts counting now; an unchanged one goes on
	IF schedule IS NULL THEN
		DELETE FROM eventbus.schedules sc
		WHERE sc.bus OPERATOR(pg_catalog.=) put_rule.bus AND sc.rule OPERATOR(pg_catalog.=) put_rule.name;
	ELSIF v_old.schedule IS DISTINCT FROM schedule
		  OR v_old.schedule_timezone IS DISTINCT FROM schedule_timezone THEN
		INSERT INTO eventbus.schedules AS sc (bus, rule, next_run_at)
		VALUES (bus, name, eventbus.schedule_next_run(schedule, schedule_timezone,
													  pg_catalog.now(), pg_catalog.now()))
		ON CONFLICT ON CONSTRAINT schedules_pkey DO UPDATE
			SET next_run_at = EXCLUDED.next_run_at;
	END IF;
END
$$;
REVOKE ALL ON FUNCTION eventbus.put_rule(text, jsonb, text, text, text, text, text) FROM PUBLIC;
COMMENT ON FUNCTION eventbus.put_rule(text, jsonb, text, text, text, text, text) IS 'Creates or replaces a rule: an event pattern, a schedule (rate() or cron(), default bus only), or both; invalid ones are rejected with the reason.';

/*
 * Fires the scheduled rules that are due, at most `max_rules` of them, in
 * one transaction: publishes each enabled rule's Scheduled Event, with
 * its scheduled time, and moves next_run_at to the schedule's first time
 * after now -- once, however many times a stopped server missed.  A
 * disabled rule's due times pass without an event.  Rows another process
 * holds are skipped, so two processes never fire one time twice.
 * Returns how many rules it handled.  From the maintenance process, every
 * second, which keeps its plan for its life: the probe of next_run_at's
 * index is pinned here (as the worker pins its own statements), whatever
 * the statistics said when it was planned.
 */
CREATE FUNCTION eventbus.schedule_step(max_rules integer DEFAULT 100)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off
SET enable_sort = off
SET enable_bitmapscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET jit = off
AS $$
DECLARE
	s record;
	v_n bigint := 0;
BEGIN
	FOR s IN
		SELECT sc.bus, sc.rule, sc.next_run_at, r.schedule, r.schedule_timezone, r.state
		FROM eventbus.schedules sc
		JOIN eventbus.rules r
		  ON r.bus OPERATOR(pg_catalog.=) sc.bus AND r.name OPERATOR(pg_catalog.=) sc.rule
		WHERE sc.next_run_at OPERATOR(pg_catalog.<=) pg_catalog.now()
		ORDER BY sc.next_run_at
		LIMIT max_rules
		FOR UPDATE OF sc SKIP LOCKED
	LOOP
		IF s.state OPERATOR(pg_catalog.=) 'ENABLED' AND s.schedule IS NOT NULL THEN
			PERFORM eventbus.publish_scheduled_event(s.bus, s.rule, s.next_run_at);
		END IF;
		UPDATE eventbus.schedules sc
		SET last_run_at = CASE WHEN s.state OPERATOR(pg_catalog.=) 'ENABLED'
							   THEN s.next_run_at ELSE sc.last_run_at END,
			next_run_at = coalesce(eventbus.schedule_next_run(s.schedule, s.schedule_timezone,
															  s.next_run_at, pg_catalog.now()),
								   'infinity')
		WHERE sc.bus OPERATOR(pg_catalog.=) s.bus AND sc.rule OPERATOR(pg_catalog.=) s.rule;
		v_n := v_n OPERATOR(pg_catalog.+) 1;
	END LOOP;
	RETURN v_n;
END
$$;
REVOKE ALL ON FUNCTION eventbus.schedule_step(integer) FROM PUBLIC;


-- (end of schedules)

------------------------------------------------------------------------------
-- put_target
------------------------------------------------------------------------------

/*
 * put_target, defined once for 0.2.0: 0.1.0's arguments, then what each
 * section above adds, in this order: input, input_path and
 * input_transformer (checked by check_target_input), connection
 * (check_target_connection), function (check_target_function: an SQL
 * function instead of an endpoint), batch_size and batch_window
 * (check_target_batches), rate_limit (check_target_rate_limit).  A target
 * replaced keeps whether it is enabled (disable_target).  Every check is the helper's; this
 * function only calls them and writes the row.
 */
DROP FUNCTION eventbus.put_target(text, text, text, text, text, jsonb, integer, interval, interval);
CREATE FUNCTION eventbus.put_target(rule text, target_id text, endpoint text DEFAULT NULL,
									bus text DEFAULT 'default',
									http_method text DEFAULT 'POST',
									headers jsonb DEFAULT '{}',
									max_retry_attempts integer DEFAULT 185,
									max_event_age interval DEFAULT '24 hours',
									timeout interval DEFAULT '5 seconds',
									input jsonb DEFAULT NULL,
									input_path text DEFAULT NULL,
									input_transformer jsonb DEFAULT NULL,
									connection text DEFAULT NULL,
									"function" text DEFAULT NULL,
									batch_size integer DEFAULT 1,
									batch_window interval DEFAULT '0',
									rate_limit integer DEFAULT NULL)
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
	-- exactly one of endpoint and function; the function's name and rights
	put_target.function := eventbus.check_target_function(target_id, put_target.function, endpoint, headers);
	IF put_target.function IS NULL AND NOT eventbus.is_http_url(endpoint) THEN
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
	-- at most one transformation, checked as the worker will apply it
	PERFORM eventbus.check_target_input(target_id, input, input_path, input_transformer);
	-- an existing connection, or none; a function has no requests to authorize
	PERFORM eventbus.check_target_connection(target_id, connection);
	IF connection IS NOT NULL AND put_target.function IS NOT NULL THEN
		PERFORM eventbus.raise_error('22023',
			format('target "%s" calls a function and cannot have a connection', target_id),
			'A connection authorizes HTTP requests; a function target sends none.',
			'Leave connection NULL, or give an endpoint instead of a function.');
	END IF;
	-- up to batch_size events per request, waiting at most batch_window
	PERFORM eventbus.check_target_batches(target_id, batch_size, batch_window);
	-- requests per second across all workers, or no limit
	PERFORM eventbus.check_target_rate_limit(target_id, rate_limit);
	IF batch_size > 1 AND put_target.function IS NOT NULL THEN
		PERFORM eventbus.raise_error('22023',
			format('target "%s" calls a function and cannot take batches', target_id),
			'A function target is called once per event.',
			'Leave batch_size at 1, or give an endpoint instead of a function.');
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
									   max_retry_attempts, max_event_age, timeout,
									   input, input_path, input_transformer,
									   connection, "function", batch_size, batch_window,
									   rate_limit)
	VALUES (bus, rule, target_id, endpoint, http_method, headers,
			max_retry_attempts, max_event_age, timeout,
			input, input_path, input_transformer,
			connection, put_target.function, batch_size, batch_window,
			rate_limit)
	ON CONFLICT ON CONSTRAINT targets_pkey DO UPDATE
		SET endpoint = EXCLUDED.endpoint,
			http_method = EXCLUDED.http_method,
			headers = EXCLUDED.headers,
			max_retry_attempts = EXCLUDED.max_retry_attempts,
			max_event_age = EXCLUDED.max_event_age,
			timeout = EXCLUDED.timeout,
			input = EXCLUDED.input,
			input_path = EXCLUDED.input_path,
			input_transformer = EXCLUDED.input_transformer,
			connection = EXCLUDED.connection,
			"function" = EXCLUDED."function",
			batch_size = EXCLUDED.batch_size,
			batch_window = EXCLUDED.batch_window,
			rate_limit = EXCLUDED.rate_limit,
			updated_at = now();
END
$$;
COMMENT ON FUNCTION eventbus.put_target IS 'Creates or replaces a target of a rule (at most 5 per rule): an HTTP endpoint (optionally authorized by a connection) or a SQL function, optionally with what it receives instead of the event and how many events one request carries.';
REVOKE EXECUTE ON FUNCTION eventbus.put_target FROM PUBLIC;

-- (end of put_target)
