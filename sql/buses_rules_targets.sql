-- buses, rules and targets: create, replace, list, disable, delete
\i sql/include/error_of.sql
SELECT name FROM eventbus.buses ORDER BY name;
SELECT eventbus.create_event_bus('billing');
SELECT pg_temp.error_of($$SELECT eventbus.create_event_bus('billing')$$);
SELECT pg_temp.error_of($$SELECT eventbus.create_event_bus('bad name!')$$);
SELECT pg_temp.error_of($$SELECT eventbus.create_event_bus(NULL)$$);
SELECT name FROM eventbus.buses ORDER BY name;

-- rules
SELECT eventbus.put_rule('invoices', '{"source": ["com.example.billing"]}', bus => 'billing',
						 description => 'all billing events');
SELECT eventbus.put_rule('paid', '{"detail-type": ["Invoice Paid"]}', 'billing', 'disabled');
SELECT bus, name, event_pattern, state, description FROM eventbus.rules ORDER BY bus, name;
-- put_rule replaces
SELECT eventbus.put_rule('invoices', '{"source": ["com.example.invoices"]}', bus => 'billing');
SELECT name, event_pattern, state, description FROM eventbus.rules WHERE name = 'invoices';
SELECT eventbus.disable_rule('invoices', 'billing');
SELECT eventbus.enable_rule('paid', bus => 'billing');
SELECT name, state FROM eventbus.rules ORDER BY name;
-- bad rules
SELECT pg_temp.error_of($$SELECT eventbus.put_rule('bad name', '{"source": ["x"]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_rule(repeat('r', 65), '{"source": ["x"]}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_rule('r1', '{"source": ["x"]}', state => 'PAUSED')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_rule('r1', NULL)$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_rule('r1', '{"source": ["x"]}', bus => 'nope')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_rule('r1', '["source"]')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_rule('r1', '{"source": "x"}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_rule('r1', '{"detail": {"price": [{"numeric": [">", "ten"]}]}}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.enable_rule('nope')$$);
SELECT pg_temp.error_of($$SELECT eventbus.disable_rule('invoices', 'nope')$$);
SELECT pg_temp.error_of($$SELECT eventbus.delete_rule('nope', 'billing')$$);

-- targets
SELECT eventbus.put_target('invoices', 'ledger', 'https://ledger.example.com/hooks', bus => 'billing');
SELECT eventbus.put_target('invoices', 'audit', 'http://127.0.0.1:9/audit', bus => 'billing',
	http_method => 'put', headers => '{"Authorization": "Bearer s3cret"}',
	max_retry_attempts => 3, max_event_age => '5 minutes', timeout => '2 seconds');
SELECT bus, rule, target_id, endpoint, http_method, headers, max_retry_attempts, max_event_age, timeout
FROM eventbus.targets ORDER BY target_id;
-- put_target replaces
SELECT eventbus.put_target('invoices', 'audit', 'http://127.0.0.1:9/audit2', bus => 'billing');
SELECT target_id, endpoint, http_method, headers, max_retry_attempts FROM eventbus.targets WHERE target_id = 'audit';
-- bad targets: each names the parameter and the allowed range
SELECT pg_temp.error_of($$SELECT eventbus.put_target('invoices', 't', 'ftp://example.com', bus => 'billing')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('invoices', 't', 'example.com/hook', bus => 'billing')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('invoices', 't', 'http://', bus => 'billing')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('invoices', 't', NULL, bus => 'billing')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('invoices', 'bad id', 'http://example.com', bus => 'billing')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('invoices', 't', 'http://example.com', bus => 'billing', http_method => 'TRACE')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('invoices', 't', 'http://example.com', bus => 'billing', headers => '[]')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('invoices', 't', 'http://example.com', bus => 'billing', headers => '{"X-Num": 1}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('invoices', 't', 'http://example.com', bus => 'billing', headers => '{"webhook-id": "x"}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('invoices', 't', 'http://example.com', bus => 'billing', max_retry_attempts => -1)$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('invoices', 't', 'http://example.com', bus => 'billing', max_retry_attempts => 186)$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('invoices', 't', 'http://example.com', bus => 'billing', max_event_age => '59 seconds')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('invoices', 't', 'http://example.com', bus => 'billing', max_event_age => '25 hours')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('invoices', 't', 'http://example.com', bus => 'billing', timeout => '10 milliseconds')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('invoices', 't', 'http://example.com', bus => 'billing', timeout => '6 minutes')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('nope', 't', 'http://example.com', bus => 'billing')$$);
-- at most 5 targets per rule; replacing one of the five is fine
SELECT eventbus.put_target('invoices', 't' || i, 'http://example.com/' || i, bus => 'billing')
FROM generate_series(3, 5) i;
SELECT pg_temp.error_of($$SELECT eventbus.put_target('invoices', 't6', 'http://example.com/6', bus => 'billing')$$);
SELECT eventbus.put_target('invoices', 't5', 'http://example.com/five', bus => 'billing');
SELECT count(*) AS targets FROM eventbus.targets WHERE rule = 'invoices';
SELECT eventbus.remove_target('invoices', 't5', 'billing');
SELECT pg_temp.error_of($$SELECT eventbus.remove_target('invoices', 't5', 'billing')$$);
SELECT count(*) AS targets FROM eventbus.targets WHERE rule = 'invoices';

-- a bus with rules cannot be deleted; default never
SELECT pg_temp.error_of($$SELECT eventbus.delete_event_bus('billing')$$);
SELECT pg_temp.error_of($$SELECT eventbus.delete_event_bus('default')$$);
SELECT pg_temp.error_of($$SELECT eventbus.delete_event_bus('nope')$$);
-- deleting a rule takes its targets with it
SELECT eventbus.delete_rule('invoices', 'billing');
SELECT eventbus.delete_rule('paid', 'billing');
SELECT count(*) AS rules FROM eventbus.rules;
SELECT count(*) AS targets FROM eventbus.targets;
SELECT eventbus.delete_event_bus('billing');
SELECT name FROM eventbus.buses ORDER BY name;
