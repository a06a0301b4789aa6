-- publish-time matching: which rules match which events, and the
-- deliveries they queue
SELECT eventbus.create_event_bus('shop');
SELECT eventbus.put_rule('orders', '{"source": ["com.example.orders"]}', bus => 'shop');
SELECT eventbus.put_rule('big-orders', '{"source": ["com.example.orders"], "detail": {"total": [{"numeric": [">=", 100]}]}}', bus => 'shop');
SELECT eventbus.put_rule('eu', '{"detail": {"country": [{"anything-but": ["US", "CA"]}]}}', bus => 'shop');
SELECT eventbus.put_rule('paused', '{"source": ["com.example.orders"]}', bus => 'shop', state => 'DISABLED');
SELECT eventbus.put_rule('no-targets', '{"source": ["com.example.orders"]}', bus => 'shop');
SELECT eventbus.put_rule('default-bus', '{"source": ["com.example.orders"]}');
SELECT eventbus.put_target('orders', 'fulfilment', 'http://127.0.0.1:9/f', bus => 'shop');
SELECT eventbus.put_target('orders', 'analytics', 'http://127.0.0.1:9/a', bus => 'shop');
SELECT eventbus.put_target('big-orders', 'fraud', 'http://127.0.0.1:9/x', bus => 'shop');
SELECT eventbus.put_target('eu', 'vat', 'http://127.0.0.1:9/v', bus => 'shop');
SELECT eventbus.put_target('paused', 'p', 'http://127.0.0.1:9/p', bus => 'shop');
SELECT eventbus.put_target('default-bus', 'd', 'http://127.0.0.1:9/d');

CREATE TEMP TABLE published (label text, id uuid);
INSERT INTO published VALUES
 ('small US order', eventbus.put_event('com.example.orders', 'Order Placed', '{"total": 20, "country": "US"}', bus => 'shop')),
 ('big FR order', eventbus.put_event('com.example.orders', 'Order Placed', '{"total": 250.5, "country": "FR"}', bus => 'shop')),
 ('FR payment', eventbus.put_event('com.example.payments', 'Paid', '{"country": "FR"}', bus => 'shop')),
 ('no country', eventbus.put_event('com.example.payments', 'Paid', '{"total": 1000}', bus => 'shop')),
 ('default bus order', eventbus.put_event('com.example.orders', 'Order Placed', '{"total": 5}'));

SELECT p.label, d.bus, d.rule, d.target_id, d.attempts, d.next_attempt_at <= now() AS due
FROM published p LEFT JOIN eventbus.deliveries d ON d.event_id = p.id
ORDER BY p.label, d.rule, d.target_id;

-- put_events and multi-row inserts take the same path
SELECT (eventbus.put_events('[
	{"Source": "com.example.orders", "DetailType": "Order Placed", "Detail": "{\"total\": 100}", "EventBusName": "shop"},
	{"Source": "com.example.orders", "DetailType": "Order Placed", "Detail": "{\"total\": 99}", "EventBusName": "shop"}
]')) -> 'FailedEntryCount' AS failed;
SELECT e.detail ->> 'total' AS total, d.rule, d.target_id
FROM eventbus.events e JOIN eventbus.deliveries d ON d.event_id = e.id
WHERE e.detail ->> 'total' IN ('99', '100') ORDER BY 1, 2, 3;

-- a rule change is seen by the next publish in the same transaction, and a
-- rolled-back change is not seen afterwards
BEGIN;
SELECT eventbus.disable_rule('orders', 'shop');
SELECT eventbus.put_event('com.example.orders', 'x', '{"total": 1}', bus => 'shop') AS event_id \gset
SELECT count(*) AS deliveries FROM eventbus.deliveries
WHERE event_id = :'event_id';
ROLLBACK;
SELECT eventbus.put_event('com.example.orders', 'x', '{"total": 1}', bus => 'shop') AS event_id \gset
SELECT count(*) AS deliveries FROM eventbus.deliveries
WHERE event_id = :'event_id';
-- adding a target is seen at once, removing it too
SELECT eventbus.put_target('paused', 'p2', 'http://127.0.0.1:9/p2', bus => 'shop');
SELECT eventbus.enable_rule('paused', 'shop');
SELECT eventbus.put_event('com.example.orders', 'x', '{"total": 1}', bus => 'shop') AS event_id \gset
SELECT rule, target_id FROM eventbus.deliveries WHERE event_id = :'event_id' ORDER BY 1, 2;
SELECT eventbus.delete_rule('paused', 'shop');
SELECT eventbus.put_event('com.example.orders', 'x', '{"total": 1}', bus => 'shop') AS event_id \gset
SELECT rule, target_id FROM eventbus.deliveries WHERE event_id = :'event_id' ORDER BY 1, 2;

-- the matcher sees the whole envelope: account, region, resources, time
SELECT eventbus.put_rule('envelope', '{"account": ["000000000000"], "region": ["local"], "resources": [{"prefix": "arn:shop:"}], "version": ["0"], "time": [{"prefix": "20"}], "id": [{"exists": true}]}', bus => 'shop');
SELECT eventbus.put_target('envelope', 'e', 'http://127.0.0.1:9/e', bus => 'shop');
SELECT eventbus.put_event('com.example.x', 'x', '{}', ARRAY['arn:shop:1'], bus => 'shop') AS event_id \gset
SELECT rule, target_id FROM eventbus.deliveries
WHERE event_id = :'event_id' ORDER BY 1;
SELECT eventbus.put_event('com.example.x', 'x', '{}', ARRAY['arn:other:1'], bus => 'shop') AS event_id \gset
SELECT rule, target_id FROM eventbus.deliveries
WHERE event_id = :'event_id' ORDER BY 1;

-- deleting a target dead-letters its pending deliveries (TargetDeleted)
SELECT count(*) AS pending_fraud FROM eventbus.deliveries WHERE target_id = 'fraud';
SELECT eventbus.remove_target('big-orders', 'fraud', 'shop');
SELECT count(*) AS pending_fraud FROM eventbus.deliveries WHERE target_id = 'fraud';
SELECT bus, rule, target_id, endpoint, error_code, exhausted_condition, attempts,
	   event ->> 'source' AS source, event -> 'detail' AS detail
FROM eventbus.dead_letters ORDER BY id;

-- deleting a rule does the same for all its targets
SELECT eventbus.delete_rule('orders', 'shop');
SELECT rule, target_id, count(*) FROM eventbus.dead_letters GROUP BY 1, 2 ORDER BY 1, 2;

-- every matched (event, target) is accounted for
SELECT (SELECT count(*) FROM eventbus.deliveries) AS pending,
	   (SELECT count(*) FROM eventbus.dead_letters) AS dead_lettered;

DELETE FROM eventbus.dead_letters;
DELETE FROM eventbus.deliveries;
DELETE FROM eventbus.events;
SELECT eventbus.delete_rule(name, bus) FROM eventbus.rules ORDER BY bus, name;
SELECT eventbus.delete_event_bus('shop');
