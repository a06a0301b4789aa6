-- SQL-function targets: put_target's "function" argument, its errors and
-- the rights rules (the worker's calls are tested by TAP 192)
\i sql/include/error_of.sql

CREATE ROLE regress_eventbus_fn_owner;
CREATE ROLE regress_eventbus_fn_member IN ROLE regress_eventbus_fn_owner;
CREATE ROLE regress_eventbus_fn_other;
CREATE ROLE regress_eventbus_fn_noexec;
GRANT USAGE ON SCHEMA eventbus TO regress_eventbus_fn_owner, regress_eventbus_fn_other,
	regress_eventbus_fn_noexec;
-- the README's grant to those who manage targets
GRANT EXECUTE ON FUNCTION eventbus.put_target
	TO regress_eventbus_fn_owner, regress_eventbus_fn_other, regress_eventbus_fn_noexec;
CREATE SCHEMA regress_fn AUTHORIZATION regress_eventbus_fn_owner;
GRANT USAGE ON SCHEMA regress_fn TO regress_eventbus_fn_other, regress_eventbus_fn_noexec;

SET ROLE regress_eventbus_fn_owner;
CREATE TABLE regress_fn.orders (id int PRIMARY KEY, total numeric);
CREATE FUNCTION regress_fn.on_order(event jsonb) RETURNS void LANGUAGE sql
AS $$ INSERT INTO regress_fn.orders VALUES ((event -> 'detail' ->> 'id')::int, 0) $$;
CREATE FUNCTION regress_fn.private_order(event jsonb) RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
REVOKE EXECUTE ON FUNCTION regress_fn.private_order(jsonb) FROM PUBLIC;
CREATE FUNCTION regress_fn."Mixed Case"(event jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT event $$;
CREATE FUNCTION regress_fn.wrong_args(event text) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION regress_fn.many(event jsonb) RETURNS SETOF int LANGUAGE sql AS $$ SELECT 1 $$;
CREATE PROCEDURE regress_fn.proc(event jsonb) LANGUAGE sql AS $$ SELECT $$;
RESET ROLE;
CREATE FUNCTION regress_fn.superuser_owned(event jsonb) RETURNS void LANGUAGE sql AS $$ SELECT $$;

SELECT eventbus.put_rule('fn-rule', '{"source": ["com.example.fn"]}');

-- the owner names its function: endpoint left out (its default is NULL)
SET ROLE regress_eventbus_fn_owner;
SELECT eventbus.put_target('fn-rule', 'read-model', function => 'regress_fn.on_order');
-- the same with the argument list, and with a NULL third argument
SELECT eventbus.put_target('fn-rule', 'read-model-2', NULL, function => 'regress_fn.on_order(jsonb)');
SELECT eventbus.put_target('fn-rule', 'mixed', function => 'regress_fn."Mixed Case"( JSONB )');
-- a function target sends no request: no connection, no batches
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', function => 'regress_fn.on_order', batch_size => 10)$$);
RESET ROLE;
SELECT eventbus.put_connection('regress-fn-conn', 'NONE', '{}');
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', function => 'regress_fn.on_order', connection => 'regress-fn-conn')$$);
SELECT eventbus.delete_connection('regress-fn-conn');
-- stored as the canonical, schema-qualified signature; no endpoint
SELECT target_id, endpoint, "function" FROM eventbus.targets WHERE rule = 'fn-rule' ORDER BY target_id;

-- a member of the owner role may name it too
SET ROLE regress_eventbus_fn_member;
SELECT eventbus.put_target('fn-rule', 'member', function => 'regress_fn.on_order');
RESET ROLE;

-- a role that may execute the function but does not have its owner's
-- rights may not make the worker run it as the owner
SET ROLE regress_eventbus_fn_other;
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', function => 'regress_fn.on_order')$$);
-- nor one it may not execute
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', function => 'regress_fn.private_order')$$);
RESET ROLE;
SET ROLE regress_eventbus_fn_noexec;
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', function => 'regress_fn.private_order')$$);
RESET ROLE;

-- a function owned by a superuser is refused, even to a superuser
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', function => 'regress_fn.superuser_owned')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', function => 'pg_catalog.jsonb_typeof')$$);

-- argument errors (22023, 42883)
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', NULL)$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', 'https://hooks.example.com/', function => 'regress_fn.on_order')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', function => 'regress_fn.on_order', headers => '{"Authorization": "x"}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', function => 'on_order')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', function => 'db.regress_fn.on_order')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', function => '')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', function => 'regress_fn.on_order(jsonb')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', function => 'regress_fn.wrong_args(text)')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', function => 'regress_fn.wrong_args')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', function => 'regress_fn.nope')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', function => 'no_such_schema.on_order')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', function => 'regress_fn.many')$$);
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', function => 'regress_fn.proc')$$);
-- the other checks still apply to a function target
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', function => 'regress_fn.on_order', timeout => '1 hour')$$);
-- an HTTP target still needs a valid endpoint
SELECT pg_temp.error_of($$SELECT eventbus.put_target('fn-rule', 'x', 'ftp://x')$$);

-- the table holds exactly one of endpoint and function
SELECT split_part(pg_temp.error_of($$INSERT INTO eventbus.targets (bus, rule, target_id) VALUES ('default', 'fn-rule', 'y')$$), E'\n', 1) AS error;
SELECT split_part(pg_temp.error_of($$INSERT INTO eventbus.targets (bus, rule, target_id, endpoint, "function") VALUES ('default', 'fn-rule', 'y', 'http://x', 'regress_fn.on_order(jsonb)')$$), E'\n', 1) AS error;

-- an HTTP target becomes a function target and back
SELECT eventbus.put_target('fn-rule', 'switch', 'https://hooks.example.com/a');
SET ROLE regress_eventbus_fn_owner;
SELECT eventbus.put_target('fn-rule', 'switch', function => 'regress_fn.on_order');
RESET ROLE;
SELECT target_id, endpoint, "function" FROM eventbus.targets WHERE target_id = 'switch';
SELECT eventbus.put_target('fn-rule', 'switch', 'https://hooks.example.com/b');
SELECT target_id, endpoint, "function" FROM eventbus.targets WHERE target_id = 'switch';

-- rules as code carry the function; applying the export changes nothing
SELECT t FROM jsonb_path_query(eventbus.export(), '$.buses[*].rules[*] ? (@.name == "fn-rule").targets[*] ? (@.target_id == "read-model")') t;
SELECT eventbus.apply(eventbus.export()) AS changes;

-- publishing queues a delivery for a function target like any other
SELECT eventbus.put_event('com.example.fn', 'Order Placed', '{"id": 1}') IS NOT NULL AS published;
SELECT target_id, attempts FROM eventbus.deliveries WHERE rule = 'fn-rule' ORDER BY target_id;

-- leave the database as the other tests expect it
SELECT eventbus.delete_rule('fn-rule');
DELETE FROM eventbus.dead_letters WHERE rule = 'fn-rule';
DROP SCHEMA regress_fn CASCADE;
REVOKE ALL ON FUNCTION eventbus.put_target
	FROM regress_eventbus_fn_owner, regress_eventbus_fn_other, regress_eventbus_fn_noexec;
REVOKE USAGE ON SCHEMA eventbus FROM regress_eventbus_fn_owner, regress_eventbus_fn_other,
	regress_eventbus_fn_noexec;
DROP ROLE regress_eventbus_fn_member, regress_eventbus_fn_owner, regress_eventbus_fn_other,
	regress_eventbus_fn_noexec;
