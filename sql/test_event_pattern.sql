-- test_event_pattern: TestEventPattern, one example per operator
\i sql/include/error_of.sql
CREATE TEMP TABLE ev AS SELECT '{
	"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
	"detail-type": "Order Placed", "source": "com.example.orders",
	"account": "111122223333", "time": "2026-11-27T10:00:00Z", "region": "eu-west-1",
	"resources": ["arn:aws:ec2:eu-west-1:111122223333:instance/i-1"],
	"detail": {
		"state": "running", "price": 300.0, "quantity": 3e0, "vip": true, "coupon": null,
		"email": "Ada@Example.COM", "ip": "10.0.0.17", "ip6": "2001:db8::ff00:42:8329",
		"file": "reports/2026/q3.pdf", "city": "ÉCOLE", "star": "a*b",
		"items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 5}],
		"tags": ["red", "blue"], "empty": ""
	}
}'::jsonb AS e;

SELECT p AS pattern, eventbus.test_event_pattern(p::jsonb, e) AS matches
FROM ev, (VALUES
	('{"source": ["com.example.orders"]}'),
	('{"source": ["com.example.billing"]}'),
	('{"detail-type": ["Order Placed", "Order Shipped"]}'),
	('{"detail": {"price": [300]}}'),
	('{"detail": {"price": ["300"]}}'),
	('{"detail": {"quantity": [3]}}'),
	('{"detail": {"vip": [true]}}'),
	('{"detail": {"coupon": [null]}}'),
	('{"detail": {"missing": [null]}}'),
	('{"detail": {"tags": ["blue"]}}'),
	('{"detail": {"empty": [""]}}'),
	('{"detail.state": ["running"]}'),
	('{"detail": {"state": [{"prefix": "run"}]}}'),
	('{"detail": {"email": [{"prefix": {"equals-ignore-case": "ada@"}}]}}'),
	('{"detail": {"file": [{"suffix": ".pdf"}]}}'),
	('{"detail": {"file": [{"suffix": {"equals-ignore-case": ".PDF"}}]}}'),
	('{"detail": {"email": [{"equals-ignore-case": "ada@example.com"}]}}'),
	('{"detail": {"city": [{"equals-ignore-case": "école"}]}}'),
	('{"detail": {"state": [{"anything-but": "stopped"}]}}'),
	('{"detail": {"state": [{"anything-but": ["running", "stopped"]}]}}'),
	('{"detail": {"state": [{"anything-but": {"prefix": "run"}}]}}'),
	('{"detail": {"state": [{"anything-but": {"suffix": "ing"}}]}}'),
	('{"detail": {"state": [{"anything-but": {"equals-ignore-case": ["RUNNING"]}}]}}'),
	('{"detail": {"state": [{"anything-but": {"wildcard": "r*g"}}]}}'),
	('{"detail": {"missing": [{"anything-but": "x"}]}}'),
	('{"detail": {"price": [{"numeric": [">", 100, "<=", 300]}]}}'),
	('{"detail": {"price": [{"numeric": ["=", 3.0e2]}]}}'),
	('{"detail": {"price": [{"numeric": ["<", 300]}]}}'),
	('{"detail": {"coupon": [{"exists": true}]}}'),
	('{"detail": {"missing": [{"exists": false}]}}'),
	('{"detail": {"items": [{"exists": true}]}}'),
	('{"detail": {"ip": [{"cidr": "10.0.0.0/24"}]}}'),
	('{"detail": {"ip6": [{"cidr": "2001:db8::/32"}]}}'),
	('{"detail": {"file": [{"wildcard": "reports/*/q?.pdf"}]}}'),
	('{"detail": {"file": [{"wildcard": "reports/*.pdf"}]}}'),
	('{"detail": {"star": [{"wildcard": "a\\*b"}]}}'),
	('{"detail": {"items": {"sku": ["B"], "qty": [5]}}}'),
	('{"detail": {"items": {"sku": ["A"], "qty": [5]}}}'),
	('{"$or": [{"source": ["nope"]}, {"detail": {"vip": [true]}}]}'),
	('{"detail": {"$or": [{"state": ["stopped"]}, {"price": [{"numeric": [">", 1000]}]}]}}'),
	('{"resources": [{"prefix": "arn:aws:ec2:"}], "region": ["eu-west-1"], "account": ["111122223333"]}')
) AS t(p);

-- invalid patterns: 22023, with the reason, the field and the operator
SELECT pg_temp.error_of($$SELECT eventbus.test_event_pattern('{"source": "com.example"}', '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.test_event_pattern('{"source": []}', '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.test_event_pattern('{"detail": {"price": [{"numeric": [">", "ten"]}]}}', '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.test_event_pattern('{"detail": {"price": [{"numeric": [">=", 5, "<=", 5]}]}}', '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.test_event_pattern('{"detail": {"ip": [{"cidr": "10.0.0.0/33"}]}}', '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.test_event_pattern('{"detail": {"x": [{"prefix": 5}]}}', '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.test_event_pattern('{"detail": {"x": [{"unknown-op": 5}]}}', '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.test_event_pattern('{"detail": {"x": [{"wildcard": "a**b"}]}}', '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.test_event_pattern('{"detail": {"x": [{"exists": "yes"}]}}', '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.test_event_pattern('{"detail": {"x": [{"anything-but": {"prefix": ""}}]}}', '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.test_event_pattern('["source"]', '{}')$$);
SELECT pg_temp.error_of($$SELECT eventbus.test_event_pattern('{"source": ["a"]}', '[1]')$$);
SELECT eventbus.validate_event_pattern('{"source": [{"prefix": "com."}]}');
SELECT pg_temp.error_of($$SELECT eventbus.validate_event_pattern('{"source": [{"suffix": []}]}')$$);
SELECT eventbus.test_event_pattern(NULL, '{}') IS NULL AS null_in_null_out;
