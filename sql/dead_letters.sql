-- dead letters: redrive puts them back in the queue
SELECT eventbus.put_rule('dl-rule', '{"source": ["com.example.dl"]}');
SELECT eventbus.put_target('dl-rule', 'a', 'http://127.0.0.1:9/a');
SELECT eventbus.put_target('dl-rule', 'b', 'http://127.0.0.1:9/b');
SELECT eventbus.put_event('com.example.dl', 'x', '{"n": 1}') AS e1 \gset
SELECT eventbus.put_event('com.example.dl', 'x', '{"n": 2}') AS e2 \gset

-- simulate what the worker writes when deliveries fail
WITH failed AS (
	DELETE FROM eventbus.deliveries d RETURNING d.*
)
INSERT INTO eventbus.dead_letters (event_id, event, bus, rule, target_id, endpoint,
								   error_code, error_message, http_status, attempts,
								   exhausted_condition, failed_at)
SELECT f.event_id, eventbus.envelope(e), f.bus, f.rule, f.target_id, t.endpoint,
	   CASE f.target_id WHEN 'a' THEN 'ERROR_FROM_TARGET' ELSE 'CONNECTION_FAILURE' END,
	   'failed', CASE f.target_id WHEN 'a' THEN 500 END, 3,
	   'MaximumRetryAttempts',
	   CASE e.detail ->> 'n' WHEN '1' THEN '2026-01-01' ELSE '2026-06-01' END::timestamptz
FROM failed f JOIN eventbus.events e ON e.id = f.event_id
JOIN eventbus.targets t ON (t.bus, t.rule, t.target_id) = (f.bus, f.rule, f.target_id);
SELECT rule, target_id, error_code, http_status, exhausted_condition, event -> 'detail' AS detail
FROM eventbus.dead_letters ORDER BY id;

-- filters combine; each call returns how many it re-queued
SELECT eventbus.redrive_dead_letters(target_id => 'a', error_code => 'CONNECTION_FAILURE');
SELECT eventbus.redrive_dead_letters(target_id => 'b', since => '2026-03-01');
SELECT target_id, attempts, event_id = :'e2' AS is_e2 FROM eventbus.deliveries;
SELECT eventbus.redrive_dead_letters(ids => ARRAY(SELECT id FROM eventbus.dead_letters WHERE target_id = 'a' ORDER BY id LIMIT 1));
SELECT eventbus.redrive_dead_letters(rule => 'no-such-rule');
SELECT eventbus.redrive_dead_letters(bus => 'default', rule => 'dl-rule');
SELECT count(*) AS pending, sum(attempts) AS attempts FROM eventbus.deliveries;
SELECT count(*) AS dead FROM eventbus.dead_letters;

-- a dead letter whose target is gone stays (redriving it could go nowhere)
SELECT eventbus.remove_target('dl-rule', 'b');
SELECT target_id, exhausted_condition FROM eventbus.dead_letters ORDER BY id;
SELECT eventbus.redrive_dead_letters();
SELECT count(*) AS dead FROM eventbus.dead_letters;

DELETE FROM eventbus.dead_letters;
DELETE FROM eventbus.deliveries;
DELETE FROM eventbus.events;
SELECT eventbus.delete_rule('dl-rule');
