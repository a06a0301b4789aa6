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

-- (end of targets)


------------------------------------------------------------------------------
-- Matching
------------------------------------------------------------------------------

-- (end of matching)
