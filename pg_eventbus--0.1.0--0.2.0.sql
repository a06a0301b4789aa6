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

-- (end of publishing)


------------------------------------------------------------------------------
-- The outbox trigger and the SQL surface's rights
------------------------------------------------------------------------------

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

-- (end of targets)


------------------------------------------------------------------------------
-- Matching
------------------------------------------------------------------------------

-- (end of matching)
