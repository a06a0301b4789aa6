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

-- (end of outbox and rights)


------------------------------------------------------------------------------
-- The worker's statements and the dead-letter row
------------------------------------------------------------------------------

-- (end of worker)


------------------------------------------------------------------------------
-- Targets: HTTP checks
------------------------------------------------------------------------------

-- (end of targets)


------------------------------------------------------------------------------
-- Matching
------------------------------------------------------------------------------

-- (end of matching)
