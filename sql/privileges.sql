-- privileges: a publisher can publish, but cannot read targets (secrets)
-- or change rules
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

DELETE FROM eventbus.deliveries;
DELETE FROM eventbus.events;
SELECT eventbus.delete_rule('priv-rule');
REVOKE ALL ON SCHEMA eventbus FROM regress_eventbus_app;
REVOKE ALL ON FUNCTION eventbus.put_event(text, text, jsonb, text[], text, timestamptz),
					   eventbus.put_events(jsonb) FROM regress_eventbus_app;
DROP ROLE regress_eventbus_app;
