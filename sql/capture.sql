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

DROP TABLE orders, customers, t_noarg, t_stmt, t_nobus;
DELETE FROM eventbus.deliveries;
DELETE FROM eventbus.events;
SELECT eventbus.delete_rule('order-changes');
SELECT eventbus.delete_rule('big-updates');
SELECT eventbus.delete_event_bus('crm');
