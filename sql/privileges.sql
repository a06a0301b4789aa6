-- privileges: a publisher can publish, but cannot read targets (secrets)
-- or change rules
\i sql/include/error_of.sql
SELECT eventbus.put_rule('priv-rule', '{"source": ["com.example.app"]}');
SELECT eventbus.put_target('priv-rule', 'secret-hook', 'https://hooks.example.com/x',
						   headers => '{"Authorization": "Bearer s3cret"}');

CREATE ROLE regress_eventbus_app LOGIN;
-- the documented publisher grants (README, "Privileges")
GRANT USAGE ON SCHEMA eventbus TO regress_eventbus_app;
GRANT EXECUTE ON FUNCTION eventbus.put_event(text, text, jsonb, text[], text, timestamptz),
					  eventbus.put_events(jsonb) TO regress_eventbus_app;

SET ROLE regress_eventbus_app;
SELECT eventbus.put_event('com.example.app', 'Signed Up', '{"user": 7}') IS NOT NULL AS published;
SELECT (eventbus.put_events('[{"Source": "com.example.app", "DetailType": "x", "Detail": "{}"}]')) -> 'FailedEntryCount' AS failed;
SELECT eventbus.test_event_pattern('{"source": ["a"]}', '{"source": "a"}') AS anyone_can_test;
-- no secrets, no rule changes, no queue tampering
SELECT headers FROM eventbus.targets;
SELECT * FROM eventbus.rules;
SELECT * FROM eventbus.deliveries;
SELECT * FROM eventbus.dead_letters;
SELECT eventbus.put_rule('evil', '{"source": ["x"]}');
SELECT eventbus.put_target('priv-rule', 'evil', 'https://evil.example.com');
SELECT eventbus.delete_rule('priv-rule');
SELECT eventbus.redrive_dead_letters();
INSERT INTO eventbus.events (id, bus, source, detail_type, detail, "time", account, region)
VALUES (gen_random_uuid(), 'default', 'x', 'y', '{}', now(), 'a', 'r');
RESET ROLE;

-- what the publisher published was matched and queued by the definer
SELECT source, detail_type, detail FROM eventbus.events ORDER BY detail_type;
SELECT rule, target_id, attempts FROM eventbus.deliveries;

-- the outbox trigger: the role that creates it needs EXECUTE on capture()
-- (checked by CREATE TRIGGER); a role that writes to the table needs no
-- grant on eventbus at all
CREATE ROLE regress_eventbus_owner LOGIN;
CREATE ROLE regress_eventbus_writer LOGIN;
GRANT USAGE ON SCHEMA eventbus TO regress_eventbus_owner;
GRANT CREATE ON SCHEMA public TO regress_eventbus_owner;
SET ROLE regress_eventbus_owner;
CREATE TABLE accounts (id int PRIMARY KEY, owner text DEFAULT current_user);
SELECT pg_temp.error_of($$CREATE TRIGGER accounts_events AFTER INSERT ON accounts
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('com.example.app')$$);
RESET ROLE;
GRANT EXECUTE ON FUNCTION eventbus.capture() TO regress_eventbus_owner;
SET ROLE regress_eventbus_owner;
CREATE TRIGGER accounts_events AFTER INSERT ON accounts
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('com.example.app');
GRANT INSERT ON accounts TO regress_eventbus_writer;
SET ROLE regress_eventbus_writer;
INSERT INTO accounts (id) VALUES (1);
SELECT pg_temp.error_of($$SELECT eventbus.put_event('com.example.app', 'x', '{}')$$);
RESET ROLE;
SELECT detail_type, detail -> 'new' AS new FROM eventbus.events
WHERE detail_type = 'public.accounts INSERT';
SELECT rule, target_id FROM eventbus.deliveries d JOIN eventbus.events e ON e.id = d.event_id
WHERE e.detail_type = 'public.accounts INSERT';

-- capture() converts the rows with the rights of the role whose write fires
-- it: a type's cast to json (here an enum in pg_temp, with a cast that
-- tries to make its author superuser) runs as that role, never as the
-- extension owner
SET ROLE regress_eventbus_owner;
CREATE TYPE pg_temp.mood AS ENUM ('calm', 'angry');
CREATE TABLE pg_temp.cast_ran (who text, attempt text);
CREATE FUNCTION pg_temp.mood_to_json(m pg_temp.mood) RETURNS json
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO pg_temp.cast_ran VALUES (current_user, 'cast');
	BEGIN
		ALTER ROLE regress_eventbus_owner SUPERUSER;
		INSERT INTO pg_temp.cast_ran VALUES (current_user, 'became superuser');
	EXCEPTION WHEN insufficient_privilege THEN
		INSERT INTO pg_temp.cast_ran VALUES (current_user, 'refused');
	END;
	RETURN pg_catalog.to_json(m::text);
END
$$;
CREATE CAST (pg_temp.mood AS json) WITH FUNCTION pg_temp.mood_to_json(pg_temp.mood);
CREATE TEMP TABLE moods (id int PRIMARY KEY, m pg_temp.mood);
CREATE TRIGGER moods_events AFTER INSERT OR UPDATE ON moods
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('com.example.app');
INSERT INTO moods VALUES (1, 'angry');
SELECT who, attempt FROM pg_temp.cast_ran;
RESET ROLE;
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_eventbus_owner';
SELECT detail -> 'new' AS new FROM eventbus.events WHERE detail ->> 'table' = 'moods';
DROP TABLE pg_temp.moods, pg_temp.cast_ran;
DROP CAST (pg_temp.mood AS json);
DROP FUNCTION pg_temp.mood_to_json(pg_temp.mood);
DROP TYPE pg_temp.mood;

DROP TABLE accounts;
REVOKE ALL ON FUNCTION eventbus.capture() FROM regress_eventbus_owner;
REVOKE ALL ON SCHEMA eventbus FROM regress_eventbus_owner;
REVOKE ALL ON SCHEMA public FROM regress_eventbus_owner;
DROP ROLE regress_eventbus_owner, regress_eventbus_writer;

DELETE FROM eventbus.deliveries;
DELETE FROM eventbus.events;
SELECT eventbus.delete_rule('priv-rule');
REVOKE ALL ON SCHEMA eventbus FROM regress_eventbus_app;
REVOKE ALL ON FUNCTION eventbus.put_event(text, text, jsonb, text[], text, timestamptz),
					   eventbus.put_events(jsonb) FROM regress_eventbus_app;
DROP ROLE regress_eventbus_app;
