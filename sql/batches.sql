-- batches: put_target's batch_size and batch_window, their checks (22023
-- with the value and the fix), the defaults, and rules as code.
\i sql/include/error_of.sql
\pset format unaligned
SELECT eventbus.put_rule('batch-rule', '{"source": ["batch.test"]}');

-- the defaults: one event per request, no window
SELECT eventbus.put_target('batch-rule', 'single', 'http://127.0.0.1:1/x');
SELECT batch_size, batch_window FROM eventbus.targets WHERE target_id = 'single';

-- a batch target
SELECT eventbus.put_target('batch-rule', 'batched', 'http://127.0.0.1:1/x',
	batch_size => 100, batch_window => '30 seconds');
SELECT batch_size, batch_window FROM eventbus.targets WHERE target_id = 'batched';
-- the limits themselves are accepted
SELECT eventbus.put_target('batch-rule', 'batched', 'http://127.0.0.1:1/x',
	batch_size => 500, batch_window => '5 minutes');
SELECT eventbus.put_target('batch-rule', 'batched', 'http://127.0.0.1:1/x',
	batch_size => 1, batch_window => '0');
SELECT batch_size, batch_window FROM eventbus.targets WHERE target_id = 'batched';

-- bad arguments
SELECT pg_temp.error_of($$SELECT eventbus.put_target('batch-rule', 'bad', 'http://127.0.0.1:1/x', batch_size => 0)$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('batch-rule', 'bad', 'http://127.0.0.1:1/x', batch_size => 501)$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('batch-rule', 'bad', 'http://127.0.0.1:1/x', batch_size => NULL)$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('batch-rule', 'bad', 'http://127.0.0.1:1/x', batch_window => '-1 second')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('batch-rule', 'bad', 'http://127.0.0.1:1/x', batch_window => '5 minutes 1 second')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('batch-rule', 'bad', 'http://127.0.0.1:1/x', batch_window => NULL)$$);
SELECT count(*) AS no_bad_target FROM eventbus.targets WHERE target_id = 'bad';

-- rules as code carries both settings
SELECT eventbus.put_target('batch-rule', 'batched', 'http://127.0.0.1:1/x',
	batch_size => 25, batch_window => '10 seconds');
SELECT DISTINCT t->'batch_size' AS batch_size, t->'batch_window' AS batch_window
FROM jsonb_path_query(eventbus.export(), '$.**.targets[*] ? (@.target_id == "batched")') t;

SELECT eventbus.delete_rule('batch-rule');
