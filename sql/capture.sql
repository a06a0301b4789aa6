-- eventbus.capture(): the outbox for existing tables
\i sql/include/error_of.sql
CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric);
CREATE TRIGGER orders_events AFTER INSERT OR UPDATE OR DELETE ON orders
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('com.example.orders');

SELECT eventbus.put_rule('order-changes', '{"source": ["com.example.orders"], "detail-type": [{"prefix": "public.orders "}]}');
SELECT eventbus.put_target('order-changes', 'crm', 'http://127.0.0.1:9/crm');
SELECT eventbus.put_rule('big-updates', '{"detail": {"operation": ["UPDATE"], "new": {"total": [{"numeric": [">", 100]}]}}}');
SELECT eventbus.put_target('big-updates', 'alerts', 'http://127.0.0.1:9/alerts');

INSERT INTO orders VALUES (1, 'ada', 50), (2, 'bob', 80);
UPDATE orders SET total = 150 WHERE id = 1;
DELETE FROM orders WHERE id = 2;
-- a rolled-back change publishes nothing
BEGIN;
INSERT INTO orders VALUES (3, 'eve', 1);
ROLLBACK;
-- a savepoint rolled back drops its event, the rest stays
BEGIN;
INSERT INTO orders VALUES (4, 'fay', 10);
SAVEPOINT s;
INSERT INTO orders VALUES (5, 'gus', 20);
ROLLBACK TO SAVEPOINT s;
COMMIT;

SELECT source, detail_type, detail FROM eventbus.events ORDER BY published_at, id;
SELECT e.detail_type, d.rule, d.target_id
FROM eventbus.events e JOIN eventbus.deliveries d ON d.event_id = e.id
ORDER BY e.published_at, e.id, d.rule;

-- a second argument names the bus
SELECT eventbus.create_event_bus('crm');
CREATE TABLE customers (id int PRIMARY KEY, name text);
CREATE TRIGGER customers_events AFTER INSERT ON customers
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('com.example.crm', 'crm');
INSERT INTO customers VALUES (1, 'ada');
SELECT bus, source, detail_type, detail -> 'new' AS new FROM eventbus.events WHERE source = 'com.example.crm';

-- misuse
CREATE TABLE t_noarg (id int);
CREATE TRIGGER t_noarg_events AFTER INSERT ON t_noarg
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture();
SELECT pg_temp.error_of($$INSERT INTO t_noarg VALUES (1)$$);
CREATE TABLE t_stmt (id int);
CREATE TRIGGER t_stmt_events AFTER INSERT ON t_stmt
	FOR EACH STATEMENT EXECUTE FUNCTION eventbus.capture('x');
SELECT pg_temp.error_of($$INSERT INTO t_stmt VALUES (1)$$);
CREATE TABLE t_nobus (id int);
CREATE TRIGGER t_nobus_events AFTER INSERT ON t_nobus
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('x', 'no-such-bus');
SELECT pg_temp.error_of($$INSERT INTO t_nobus VALUES (1)$$);

CREATE TABLE t_before (id int);
CREATE TRIGGER t_before_events BEFORE INSERT ON t_before
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('x');
SELECT pg_temp.error_of($$INSERT INTO t_before VALUES (1)$$);
CREATE TABLE t_badargs (id int PRIMARY KEY);
CREATE TRIGGER t_badargs_events AFTER INSERT ON t_badargs
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('', 'rows=new');
SELECT pg_temp.error_of($$INSERT INTO t_badargs VALUES (1)$$);
DROP TRIGGER t_badargs_events ON t_badargs;
CREATE TRIGGER t_badargs_events AFTER INSERT ON t_badargs
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('x', 'rows=all');
SELECT pg_temp.error_of($$INSERT INTO t_badargs VALUES (1)$$);
DROP TRIGGER t_badargs_events ON t_badargs;
CREATE TRIGGER t_badargs_events AFTER INSERT ON t_badargs
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('x', 'rows=new', 'colour=red');
SELECT pg_temp.error_of($$INSERT INTO t_badargs VALUES (1)$$);
DROP TRIGGER t_badargs_events ON t_badargs;
CREATE TRIGGER t_badargs_events AFTER INSERT ON t_badargs
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('x', 'rows=new', 'crm');
SELECT pg_temp.error_of($$INSERT INTO t_badargs VALUES (1)$$);
DROP TRIGGER t_badargs_events ON t_badargs;
CREATE TRIGGER t_badargs_events AFTER INSERT ON t_badargs
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('x', 'detail_type=');
SELECT pg_temp.error_of($$INSERT INTO t_badargs VALUES (1)$$);
SELECT pg_temp.error_of($$SELECT eventbus.capture()$$);

-- rows=new: the new row whole, the old row's key; rows=keys: keys only;
-- options may come without the bus; detail_type=... replaces "<schema>.<table>"
DELETE FROM eventbus.deliveries;
DELETE FROM eventbus.events;
CREATE TABLE items (sku text, shop int, name text, price numeric, PRIMARY KEY (shop, sku));
CREATE TRIGGER items_new AFTER INSERT OR UPDATE OR DELETE ON items
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('com.example.items', 'rows=new');
CREATE TRIGGER items_keys AFTER INSERT OR UPDATE OR DELETE ON items
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('com.example.item-keys', 'crm', 'detail_type=Item', 'rows=keys');
INSERT INTO items VALUES ('a-1', 7, 'anvil', 10);
UPDATE items SET price = 12;
DELETE FROM items;
SELECT bus, source, detail_type, detail FROM eventbus.events ORDER BY published_at, source;
-- the key is the replica identity's
CREATE UNIQUE INDEX items_name ON items (name);
ALTER TABLE items ALTER name SET NOT NULL, REPLICA IDENTITY USING INDEX items_name;
INSERT INTO items VALUES ('b-2', 7, 'bellows', 20);
SELECT detail -> 'new' AS new FROM eventbus.events WHERE source = 'com.example.item-keys' AND detail_type = 'Item INSERT';

-- a table without a key: rows=new and rows=keys fail at its first change
CREATE TABLE t_nokey (id int);
CREATE TRIGGER t_nokey_events AFTER INSERT OR UPDATE ON t_nokey
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('x', 'rows=new');
SELECT pg_temp.error_of($$INSERT INTO t_nokey VALUES (1)$$);

-- the limits: put_event's checks, with a context that names the trigger and
-- the argument that avoids the error
CREATE TABLE docs (id int PRIMARY KEY, body text);
CREATE TRIGGER docs_events AFTER INSERT OR UPDATE ON docs
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('com.example.docs');
INSERT INTO docs VALUES (1, repeat('x', 140000));
UPDATE docs SET body = body || 'y';
DROP TRIGGER docs_events ON docs;
CREATE TRIGGER docs_events AFTER INSERT OR UPDATE ON docs
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('com.example.docs', 'rows=new');
UPDATE docs SET body = body || 'y';
SELECT detail_type, detail -> 'old' AS old, length(detail -> 'new' ->> 'body') AS body_length
FROM eventbus.events WHERE source = 'com.example.docs';
CREATE SCHEMA a_schema_whose_name_is_quite_long_as_some_are_in_real_databases;
CREATE TABLE a_schema_whose_name_is_quite_long_as_some_are_in_real_databases.and_a_table_whose_name_is_as_long_as_that_making_a_long_event (id int);
CREATE TRIGGER long_events AFTER INSERT
	ON a_schema_whose_name_is_quite_long_as_some_are_in_real_databases.and_a_table_whose_name_is_as_long_as_that_making_a_long_event
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('com.example.long');
INSERT INTO a_schema_whose_name_is_quite_long_as_some_are_in_real_databases.and_a_table_whose_name_is_as_long_as_that_making_a_long_event VALUES (1);
-- an error caught in a subtransaction leaves the caller's role and path
DO $$
BEGIN
	INSERT INTO a_schema_whose_name_is_quite_long_as_some_are_in_real_databases.and_a_table_whose_name_is_as_long_as_that_making_a_long_event VALUES (1);
EXCEPTION WHEN invalid_parameter_value THEN
	RAISE NOTICE 'caught; search_path is %, current_user is the session user: %',
		current_setting('search_path'), current_user = session_user;
END
$$;
DROP TRIGGER long_events
	ON a_schema_whose_name_is_quite_long_as_some_are_in_real_databases.and_a_table_whose_name_is_as_long_as_that_making_a_long_event;
CREATE TRIGGER long_events AFTER INSERT
	ON a_schema_whose_name_is_quite_long_as_some_are_in_real_databases.and_a_table_whose_name_is_as_long_as_that_making_a_long_event
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('com.example.long', 'detail_type=long');
INSERT INTO a_schema_whose_name_is_quite_long_as_some_are_in_real_databases.and_a_table_whose_name_is_as_long_as_that_making_a_long_event VALUES (2);
SELECT detail_type, detail -> 'schema' AS schema FROM eventbus.events WHERE source = 'com.example.long';
-- the caller's search_path and role are back after the trigger
SHOW search_path;
SELECT current_user = session_user AS same_user;

DROP SCHEMA a_schema_whose_name_is_quite_long_as_some_are_in_real_databases CASCADE;
DROP TABLE orders, customers, t_noarg, t_stmt, t_nobus, t_before, t_badargs, items, t_nokey, docs;
DELETE FROM eventbus.deliveries;
DELETE FROM eventbus.events;
SELECT eventbus.delete_rule('order-changes');
SELECT eventbus.delete_rule('big-updates');
SELECT eventbus.delete_event_bus('crm');
