-- explain_match and explain_event: why an event did not match
\i sql/include/error_of.sql
CREATE TEMP TABLE ev AS SELECT '{
	"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
	"detail-type": "Order Placed", "source": "com.example.orders",
	"account": "111122223333", "time": "2026-11-27T10:00:00Z", "region": "eu-west-1",
	"resources": ["arn:aws:ec2:eu-west-1:111122223333:instance/i-1"],
	"detail": {
		"state": "running", "total": 120, "vip": false, "coupon": null,
		"email": "Ada@Example.COM", "ip": "10.0.0.17", "file": "reports/q3.pdf",
		"items": [{"sku": "A", "discount": 5}, {"sku": "B"}],
		"tags": ["red", "blue"]
	}
}'::jsonb AS e;

-- one pattern per operator, and a match; the verdict is test_event_pattern's
SELECT p AS pattern, x.matched, x.matched = eventbus.test_event_pattern(p::jsonb, e) AS agrees,
	x.field, x.operator, x.expected, x.actual, x.reason
FROM ev, (VALUES
	('{"source": ["com.example.orders"]}'),
	('{"source": ["com.example.billing", "com.example.shipping"]}'),
	('{"detail": {"total": [{"numeric": [">=", 1000]}]}}'),
	('{"detail": {"total": [{"numeric": [">", 0, "<=", 99.5]}]}}'),
	('{"detail": {"missing": ["x"]}}'),
	('{"detail": {"coupon": [{"exists": false}]}}'),
	('{"detail": {"vip": [true]}}'),
	('{"detail": {"state": [{"anything-but": ["running", "stopped"]}]}}'),
	('{"detail": {"state": [{"anything-but": {"prefix": "run"}}]}}'),
	('{"detail": {"state": [{"prefix": "stop"}]}}'),
	('{"detail": {"file": [{"suffix": ".PDF"}]}}'),
	('{"detail": {"email": [{"equals-ignore-case": "bob@example.com"}]}}'),
	('{"detail": {"file": [{"wildcard": "reports/*.csv"}]}}'),
	('{"detail": {"ip": [{"cidr": "10.0.1.0/24"}]}}'),
	('{"detail": {"tags": ["green"]}}'),
	('{"detail": {"state": ["stopped", {"prefix": "halt"}]}}'),
	('{"detail": {"items": {"sku": ["A"], "discount": [{"exists": false}]}}}'),
	('{"detail": {"items": {"sku": ["B"], "discount": [5]}}}'),
	('{"detail": {"items": {"sku": ["B"], "discount": [{"exists": false}]}}}'),
	('{"$or": [{"source": ["x"]}, {"detail": {"state": ["running"], "total": [5]}}]}'),
	('{"source": ["com.example.orders"], "$or": [{"detail": {"vip": [true]}}, {"detail": {"total": [{"numeric": [">", 100]}]}}]}')
) AS t(p), LATERAL eventbus.explain_match(p::jsonb, e) x;

-- NULL arguments give a NULL row; errors as test_event_pattern's
SELECT * FROM eventbus.explain_match(NULL, '{}');
SELECT pg_temp.error_of($$SELECT * FROM eventbus.explain_match('{"source": [{"numeric": [">", "ten"]}]}', '{}')$$);
SELECT pg_temp.error_of($$SELECT * FROM eventbus.explain_match('{"source": ["a"]}', '[1, 2]')$$);

-- explain_event: every rule of a bus, enabled first, then disabled
SELECT eventbus.create_event_bus('explained');
SELECT eventbus.put_rule('orders', '{"source": ["com.example.orders"], "detail-type": ["Order Placed"]}', bus => 'explained');
SELECT eventbus.put_rule('big-orders', '{"source": ["com.example.orders"], "detail": {"total": [{"numeric": [">=", 1000]}]}}', bus => 'explained');
SELECT eventbus.put_rule('vip', '{"detail": {"vip": [true]}}', bus => 'explained');
SELECT eventbus.put_rule('old', '{"source": ["com.example.orders"]}', bus => 'explained', state => 'DISABLED');
SELECT x.* FROM ev, LATERAL eventbus.explain_event(e, 'explained') x;
-- the bus defaults to 'default': one row per rule there
SELECT count(*) = (SELECT count(*) FROM eventbus.rules WHERE bus = 'default') AS every_rule
FROM ev, LATERAL eventbus.explain_event(e);
SELECT pg_temp.error_of($$SELECT * FROM eventbus.explain_event('{}', 'no-such-bus')$$);
SELECT pg_temp.error_of($$SELECT * FROM eventbus.explain_event(NULL, 'explained')$$);

-- explain_event agrees with what publishing delivers: a rule gets a
-- delivery exactly when explain_event says it matches
SELECT eventbus.put_target(r, 't', 'http://127.0.0.1:9/x', bus => 'explained')
FROM unnest(ARRAY['orders', 'big-orders', 'vip']) r;
BEGIN;
SELECT eventbus.put_event('com.example.orders', 'Order Placed', '{"total": 2500, "vip": false}', bus => 'explained') AS id \gset
SELECT x.rule, x.matched, d.rule IS NOT NULL AS delivered
FROM eventbus.events ev2
CROSS JOIN LATERAL eventbus.explain_event(eventbus.envelope(ev2), 'explained') x
LEFT JOIN eventbus.deliveries d ON d.event_id = ev2.id AND d.rule = x.rule
WHERE ev2.id = :'id' AND x.state = 'ENABLED'
ORDER BY x.rule;
ROLLBACK;
SELECT eventbus.delete_rule(r, 'explained')
FROM unnest(ARRAY['orders', 'big-orders', 'vip', 'old']) r;
SELECT eventbus.delete_event_bus('explained');

-- privileges: explain_match is PUBLIC, explain_event is not
CREATE ROLE explain_nobody;
GRANT USAGE ON SCHEMA eventbus TO explain_nobody;
SET ROLE explain_nobody;
SELECT matched, field FROM eventbus.explain_match('{"source": ["a"]}', '{"source": "b"}');
SELECT pg_temp.error_of($$SELECT * FROM eventbus.explain_event('{}')$$);
RESET ROLE;
REVOKE USAGE ON SCHEMA eventbus FROM explain_nobody;
DROP ROLE explain_nobody;

-- bounded and cancellable: the match_limits event (10 arrays of 20,000
-- objects, 1,024 alternatives) is stopped by a statement timeout
CREATE TEMP TABLE big_event AS
SELECT jsonb_build_object('detail', jsonb_object_agg(k,
	(SELECT jsonb_agg('{"s": "X", "t": "X"}'::jsonb) FROM generate_series(1, 20000))))
	AS e
FROM unnest(ARRAY['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']) k;
CREATE TEMP TABLE big_pattern AS
SELECT jsonb_build_object('detail', jsonb_object_agg(k,
	'{"$or": [{"s": ["X"]}, {"t": ["X"]}]}'::jsonb)) AS p
FROM unnest(ARRAY['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']) k;
CREATE TEMP TABLE timing (cancelled boolean, seconds float8);
SET statement_timeout = '200ms';
DO $$
DECLARE
	t0 timestamptz := clock_timestamp();
BEGIN
	BEGIN
		PERFORM x.* FROM big_event, big_pattern,
			LATERAL eventbus.explain_match(p, e) x;
		INSERT INTO timing VALUES (false, extract(epoch FROM clock_timestamp() - t0));
	EXCEPTION WHEN query_canceled THEN
		INSERT INTO timing VALUES (true, extract(epoch FROM clock_timestamp() - t0));
	END;
END $$;
RESET statement_timeout;
SELECT cancelled, seconds < 1 AS within_a_second FROM timing;

-- a large event that does not match: 20,000 items that all have a
-- discount, explained quickly, with the first values only
CREATE TEMP TABLE items_event AS
SELECT jsonb_build_object('detail', jsonb_build_object(
	'items', (SELECT jsonb_agg(jsonb_build_object('sku', 'X', 'discount', i)) FROM generate_series(1, 20000) i),
	'tags', (SELECT jsonb_agg('t'::text) FROM generate_series(1, 20000)))) AS e;
SELECT x.field, x.actual, x.reason
FROM items_event,
	LATERAL eventbus.explain_match('{"detail": {"items": {"sku": ["X"], "discount": [{"exists": false}]}, "tags": ["t"]}}', e) x;
