-- breaker: put_target's rate_limit, disable_target / enable_target, the
-- sweep of held targets' expired rows, and what target_stats shows.
\i sql/include/error_of.sql
SELECT eventbus.put_rule('rl-rule', '{"source": ["rl.test"]}');

-- rate_limit: NULL (the default) is no limit; otherwise 1 request a second and up
SELECT pg_temp.error_of($$SELECT eventbus.put_target('rl-rule', 'rl', 'http://127.0.0.1:9/rl', rate_limit => 0)$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('rl-rule', 'rl', 'http://127.0.0.1:9/rl', rate_limit => -5)$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('rl-rule', 'rl', 'http://127.0.0.1:9/rl', rate_limit => 'many')$$);
SELECT eventbus.put_target('rl-rule', 'rl', 'http://127.0.0.1:9/rl');
SELECT target_id, rate_limit, enabled FROM eventbus.targets WHERE target_id = 'rl';
SELECT eventbus.put_target('rl-rule', 'rl', 'http://127.0.0.1:9/rl', rate_limit => 1);
SELECT eventbus.put_target('rl-rule', 'fast', 'http://127.0.0.1:9/fast', rate_limit => 2147483647);
SELECT eventbus.put_target('rl-rule', 'none', 'http://127.0.0.1:9/none', rate_limit => NULL);
SELECT target_id, rate_limit, enabled FROM eventbus.targets WHERE rule = 'rl-rule' ORDER BY target_id;

-- disable_target / enable_target: unknown bus, rule or target is 42704
SELECT pg_temp.error_of($$SELECT eventbus.disable_target('rl-rule', 'nope')$$);
SELECT pg_temp.error_of($$SELECT eventbus.enable_target('rl-rule', 'nope')$$);
SELECT pg_temp.error_of($$SELECT eventbus.disable_target('no-rule', 'rl')$$);
SELECT pg_temp.error_of($$SELECT eventbus.enable_target('rl-rule', 'rl', bus => 'no-bus')$$);
SELECT eventbus.disable_target('rl-rule', 'rl');
SELECT eventbus.disable_target('rl-rule', 'rl');	-- again: still disabled, no error
SELECT target_id, enabled FROM eventbus.targets WHERE rule = 'rl-rule' ORDER BY target_id;
-- put_target replaces the settings, not the operator's hold
SELECT eventbus.put_target('rl-rule', 'rl', 'http://127.0.0.1:9/rl2', rate_limit => 5);
SELECT target_id, endpoint, rate_limit, enabled FROM eventbus.targets WHERE target_id = 'rl';
SELECT t.target_id, eventbus.target_suspended(t) AS suspended, eventbus.target_held(t) AS held
FROM eventbus.targets t WHERE t.rule = 'rl-rule' ORDER BY t.target_id;
SELECT target_id, enabled, rate_limit, breaker_state, consecutive_failures,
	breaker_opened_at, next_probe_at, rate_limited
FROM eventbus.target_stats WHERE rule = 'rl-rule' ORDER BY target_id;

-- max_event_age holds for held targets: the sweep dead-letters their rows
-- older than it (no worker serves this database: nothing is sent)
SELECT eventbus.put_event('rl.test', 'T', '{"n": 1}') IS NOT NULL AS published;
SELECT target_id, attempts FROM eventbus.deliveries ORDER BY target_id;
SELECT eventbus.expire_held_deliveries() AS expired_while_young;
UPDATE eventbus.deliveries SET event_published_at = event_published_at - interval '25 hours';
SELECT eventbus.expire_held_deliveries() AS expired;
SELECT target_id FROM eventbus.deliveries ORDER BY target_id;
SELECT target_id, error_code, exhausted_condition, attempts, http_status,
	error_message, event ? 'id' AS has_event_id
FROM eventbus.dead_letters WHERE rule = 'rl-rule';
SELECT eventbus.enable_target('rl-rule', 'rl');
SELECT target_id, enabled FROM eventbus.targets WHERE target_id = 'rl';
SELECT eventbus.expire_held_deliveries() AS expired_after_enable;

-- the functions are the owner's: a role with no grant may not call them
CREATE ROLE regress_eventbus_breaker_nobody;
GRANT USAGE ON SCHEMA eventbus TO regress_eventbus_breaker_nobody;
SET ROLE regress_eventbus_breaker_nobody;
SELECT pg_temp.error_of($$SELECT eventbus.disable_target('rl-rule', 'rl')$$);
SELECT pg_temp.error_of($$SELECT eventbus.enable_target('rl-rule', 'rl')$$);
SELECT pg_temp.error_of($$SELECT eventbus.expire_held_deliveries()$$);
RESET ROLE;
REVOKE USAGE ON SCHEMA eventbus FROM regress_eventbus_breaker_nobody;
DROP ROLE regress_eventbus_breaker_nobody;

-- rules as code carries rate_limit
SELECT t->>'target_id' AS target_id, t->'rate_limit' AS rate_limit
FROM jsonb_array_elements(eventbus.export()->'buses') b,
	jsonb_array_elements(b->'rules') r, jsonb_array_elements(r->'targets') t
WHERE r->>'name' = 'rl-rule' ORDER BY 1;

SELECT eventbus.delete_rule('rl-rule');
DELETE FROM eventbus.dead_letters WHERE rule = 'rl-rule';
DELETE FROM eventbus.events WHERE source = 'rl.test';
