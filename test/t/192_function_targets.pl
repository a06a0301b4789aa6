# SQL-function targets through the worker: a read model updated once per
# event; a function that fails with 40001 twice is retried and delivered; an
# error is dead-lettered with its SQLSTATE and message; the function runs as
# its (unprivileged) owner -- it cannot read a table its owner may not read,
# cannot SET ROLE to a superuser, its deferred triggers fire as the owner,
# and a function whose owner became a superuser after put_target is refused
# at delivery; a follow-up event published by the function goes out with
# the function's transaction, and not when it fails; a function that runs
# past the target's timeout is cancelled and retried, then dead-lettered;
# SIGTERM stops a worker that is inside a long call.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use EventbusTest;

my $sink = start_sink();
my $node = new_node('function_targets');

sub sql
{
	my ($q) = @_;
	return $node->safe_psql('postgres', $q);
}

# as the unprivileged role that owns the functions
sub as_app
{
	my ($q) = @_;
	return $node->safe_psql('postgres', "SET ROLE app;\n$q");
}

# Waits until the target has no delivery left in the queue.
sub drained
{
	my ($target_id, $timeout) = @_;
	return wait_for_value($node,
		"SELECT count(*) FROM eventbus.deliveries WHERE target_id = '$target_id'",
		'0', $timeout);
}

sql(q{
CREATE ROLE app LOGIN;
CREATE SCHEMA app AUTHORIZATION app;
GRANT USAGE ON SCHEMA eventbus TO app;
GRANT EXECUTE ON FUNCTION eventbus.put_rule TO app;
GRANT EXECUTE ON FUNCTION eventbus.put_target TO app;
GRANT EXECUTE ON FUNCTION eventbus.put_event(text, text, jsonb, text[], text, timestamptz) TO app;
CREATE TABLE public.secrets (secret text);
INSERT INTO public.secrets VALUES ('s3cret');
});

# --- a read model: one upsert per event, each event once
as_app(q{
CREATE TABLE app.orders (id int PRIMARY KEY, total numeric, calls int NOT NULL DEFAULT 1);
CREATE FUNCTION app.on_order(event jsonb) RETURNS void LANGUAGE sql AS $$
	INSERT INTO app.orders (id, total)
	VALUES ((event -> 'detail' ->> 'id')::int, (event -> 'detail' ->> 'total')::numeric)
	ON CONFLICT (id) DO UPDATE SET calls = app.orders.calls OPERATOR(pg_catalog.+) 1
$$;
SELECT eventbus.put_rule('orders', '{"source": ["com.example.orders"]}');
SELECT eventbus.put_target('orders', 'read-model', function => 'app.on_order');
});
sql(q{SELECT eventbus.put_event('com.example.orders', 'Order Placed',
	jsonb_build_object('id', g, 'total', g * 10)) FROM generate_series(1, 20) g});
ok(drained('read-model'), 'the read model\'s deliveries are done');
is(sql('SELECT count(*), sum(calls), sum(total) FROM app.orders'), '20|20|2100',
	'each event upserted once into the read model');
is(sql(q{SELECT invocations, successful_invocation_attempts, failed_invocations
	FROM eventbus.target_stats WHERE target_id = 'read-model'}), '20|20|0',
	'the invocations are counted like requests');
is(sql(q{SELECT count(*) FROM eventbus.dead_letters WHERE target_id = 'read-model'}), '0',
	'no dead letter');

# --- 40001 twice, then success: retried, not dead-lettered
as_app(q{
CREATE SEQUENCE app.flaky_calls;
CREATE TABLE app.flaky_done (at_call bigint);
CREATE FUNCTION app.flaky(event jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE v bigint := pg_catalog.nextval('app.flaky_calls');
BEGIN
	IF v OPERATOR(pg_catalog.<) 3 THEN
		RAISE EXCEPTION 'could not serialize (call %)', v USING ERRCODE = 'serialization_failure';
	END IF;
	INSERT INTO app.flaky_done VALUES (v);
END $$;
SELECT eventbus.put_rule('flaky', '{"source": ["com.example.flaky"]}');
SELECT eventbus.put_target('flaky', 'flaky', function => 'app.flaky', max_retry_attempts => 5);
});
sql(q{SELECT eventbus.put_event('com.example.flaky', 'T', '{}')});
ok(drained('flaky'), 'the flaky function\'s delivery is done');
is(sql('SELECT at_call FROM app.flaky_done'), '3', 'delivered by the third call');
is(sql(q{SELECT count(*) FROM eventbus.dead_letters WHERE target_id = 'flaky'}), '0',
	'a serialization failure is retried, not dead-lettered');
is(sql(q{SELECT invocation_attempts, retry_invocation_attempts, successful_invocation_attempts
	FROM eventbus.target_stats WHERE target_id = 'flaky'}), '3|2|1', 'three attempts counted');

# --- an error: dead letter with SQLSTATE and message, no retry
as_app(q{
CREATE FUNCTION app.no_stock(event jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'no stock for order %', event -> 'detail' ->> 'id' USING ERRCODE = 'P0001';
END $$;
SELECT eventbus.put_rule('stock', '{"source": ["com.example.stock"]}');
SELECT eventbus.put_target('stock', 'no-stock', function => 'app.no_stock', max_retry_attempts => 5);
});
sql(q{SELECT eventbus.put_event('com.example.stock', 'T', '{"id": 42}')});
ok(drained('no-stock'), 'the failing delivery is settled');
my $dl = dead_letters($node, q{target_id = 'no-stock'});
is(scalar @$dl, 1, 'one dead letter');
is($dl->[0]{error_code}, 'FUNCTION_ERROR', 'error code FUNCTION_ERROR');
is($dl->[0]{error_message},
	'app.no_stock(jsonb) raised SQLSTATE P0001: no stock for order 42',
	'the SQLSTATE and message of the error');
is($dl->[0]{exhausted_condition}, 'NonRetryable', 'not retried');
is($dl->[0]{attempts}, 1, 'one attempt');
is($dl->[0]{endpoint}, 'app.no_stock(jsonb)', 'the function stands for the endpoint');
is($dl->[0]{http_status}, undef, 'no HTTP status');

# --- the owner's rights, and no more
as_app(q{
CREATE FUNCTION app.peek(event jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN PERFORM * FROM public.secrets; END $$;
CREATE FUNCTION app.become_superuser(event jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN SET ROLE postgres; END $$;
CREATE FUNCTION app.leave_settings(event jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_catalog.set_config('work_mem', '64kB', false); END $$;
CREATE TABLE app.probe (work_mem text);
CREATE FUNCTION app.probe(event jsonb) RETURNS void LANGUAGE sql AS $$
	INSERT INTO app.probe VALUES (pg_catalog.current_setting('work_mem')) $$;
CREATE TABLE app.seen (who text, search_path text, statement_timeout text, source text);
CREATE FUNCTION app.whoami(event jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO app.seen VALUES (current_user, pg_catalog.current_setting('search_path'),
		pg_catalog.current_setting('statement_timeout'), event ->> 'source');
END $$;
CREATE FUNCTION app.deferred_who() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO app.seen VALUES ('deferred:' || current_user, NULL, NULL, NULL); RETURN NULL; END $$;
CREATE TABLE app.later (x int);
CREATE CONSTRAINT TRIGGER later_who AFTER INSERT ON app.later
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION app.deferred_who();
CREATE FUNCTION app.defer(event jsonb) RETURNS void LANGUAGE sql AS $$ INSERT INTO app.later VALUES (1) $$;
CREATE FUNCTION app.defer_now(event jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN SET CONSTRAINTS ALL IMMEDIATE; INSERT INTO app.later VALUES (2); END $$;
CREATE FUNCTION app.soon_superuser(event jsonb) RETURNS void LANGUAGE sql AS $$ SELECT $$;
SELECT eventbus.put_rule('rights', '{"source": ["com.example.rights"]}');
SELECT eventbus.put_target('rights', 'peek', function => 'app.peek');
SELECT eventbus.put_target('rights', 'become', function => 'app.become_superuser');
SELECT eventbus.put_target('rights', 'settings', function => 'app.leave_settings');
SELECT eventbus.put_target('rights', 'whoami', function => 'app.whoami', timeout => '2s');
SELECT eventbus.put_rule('rights2', '{"source": ["com.example.rights"]}');
SELECT eventbus.put_target('rights2', 'soon-superuser', function => 'app.soon_superuser');
SELECT eventbus.put_target('rights2', 'defer', function => 'app.defer');
SELECT eventbus.put_target('rights2', 'defer-now', function => 'app.defer_now');
SELECT eventbus.put_rule('probe', '{"source": ["com.example.probe"]}');
SELECT eventbus.put_target('probe', 'probe', function => 'app.probe');
});
# ownership changes after put_target: checked again at delivery
sql('ALTER FUNCTION app.soon_superuser(jsonb) OWNER TO postgres');
sql(q{SELECT eventbus.put_event('com.example.rights', 'T', '{}')});
ok(wait_for_value($node, q{SELECT count(*) FROM eventbus.deliveries WHERE rule IN ('rights', 'rights2')}, '0'),
	'the rights deliveries are settled');
$dl = dead_letters($node, q{rule IN ('rights', 'rights2')});
my %dl = map { $_->{target_id} => $_ } @$dl;
is_deeply([ sort keys %dl ], [ 'become', 'defer', 'peek', 'soon-superuser' ],
	'dead letters for the functions that reached beyond their owner');
like($dl{peek}{error_message}, qr/raised SQLSTATE 42501: permission denied for table secrets$/,
	'reading a table the owner may not read: 42501');
like($dl{become}{error_message}, qr/raised SQLSTATE 42501: cannot set parameter "role"/,
	'SET ROLE to a superuser: refused');
like($dl{'soon-superuser'}{error_message},
	qr/raised SQLSTATE 42501: function app\.soon_superuser\(jsonb\) of target "soon-superuser" is owned by superuser "postgres"$/,
	'a function owned by a superuser is refused at delivery');
is($dl{$_}{exhausted_condition}, 'NonRetryable', "$_: not retried") for sort keys %dl;
is(sql(q{SELECT who, search_path, statement_timeout, source FROM app.seen WHERE search_path IS NOT NULL}),
	'app|pg_catalog, pg_temp|2s|com.example.rights',
	'runs as its owner, search_path pinned, statement_timeout the target\'s');
like($dl{defer}{error_message},
	qr/raised SQLSTATE 42501: cannot fire deferred trigger within security-restricted operation$/,
	'no trigger deferred to the commit, which runs as the worker');
is(sql(q{SELECT who FROM app.seen WHERE search_path IS NULL}), 'deferred:app',
	'a constraint trigger made immediate fires as the owner');
is(sql(q{SELECT x FROM app.later}), '2', 'only the call that made it immediate was delivered');

# a setting a function changed (even for the session) does not outlive
# its call: a later call sees the server's
sql(q{SELECT eventbus.put_event('com.example.probe', 'T', '{}')});
ok(drained('probe'), 'the probe is delivered');
is(sql('SELECT work_mem FROM app.probe'), '4MB', 'the earlier call\'s SET is undone');

# --- follow-up events: published in the function's transaction
as_app(q{
CREATE FUNCTION app.on_paid(event jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM eventbus.put_event('com.example.shipping', 'Ship Order', event -> 'detail');
	IF (event -> 'detail' ->> 'fail')::boolean THEN
		RAISE EXCEPTION 'payment % rejected', event -> 'detail' ->> 'id';
	END IF;
END $$;
SELECT eventbus.put_rule('paid', '{"source": ["com.example.payments"]}');
SELECT eventbus.put_target('paid', 'on-paid', function => 'app.on_paid');
});
sql("SELECT eventbus.put_rule('shipping', '{\"source\": [\"com.example.shipping\"]}')");
sql("SELECT eventbus.put_target('shipping', 'shipper', '" . $sink->url('/ship') . "')");
sql(q{SELECT eventbus.put_event('com.example.payments', 'Paid', '{"id": 1, "fail": false}');
	  SELECT eventbus.put_event('com.example.payments', 'Paid', '{"id": 2, "fail": true}')});
is($sink->wait_count('/ship', 1), 1, 'the follow-up event reached its HTTP target');
ok(drained('on-paid'), 'the payments are settled');
ok(drained('shipper'), 'the shipping deliveries are done');
my $ship = $sink->received('/ship');
is(scalar @$ship, 1, 'one follow-up request');
like($ship->[0]{body}, qr/"detail": \{"id": 1, "fail": false\}/, 'the follow-up of the payment that succeeded');
is(sql(q{SELECT count(*) FROM eventbus.events WHERE source = 'com.example.shipping'}), '1',
	'the failed call\'s follow-up was rolled back with it');
like(dead_letters($node, q{target_id = 'on-paid'})->[0]{error_message},
	qr/SQLSTATE P0001: payment 2 rejected$/, 'the failed call is dead-lettered');

# --- past its timeout: cancelled, retried, then dead-lettered
as_app(q{
CREATE SEQUENCE app.slow_calls;
CREATE FUNCTION app.slow(event jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_catalog.nextval('app.slow_calls'); PERFORM pg_catalog.pg_sleep(30); END $$;
SELECT eventbus.put_rule('slow', '{"source": ["com.example.slow"]}');
SELECT eventbus.put_target('slow', 'slow', function => 'app.slow', timeout => '300ms',
	max_retry_attempts => 1);
});
my $t0 = time();
sql(q{SELECT eventbus.put_event('com.example.slow', 'T', '{}')});
ok(drained('slow'), 'the slow delivery is settled');
cmp_ok(time() - $t0, '<', 20, 'the calls were cut short');
$dl = dead_letters($node, q{target_id = 'slow'});
is($dl->[0]{error_code}, 'TIMEOUT', 'a call past its timeout is a TIMEOUT');
like($dl->[0]{error_message}, qr/SQLSTATE 57014: canceling statement due to statement timeout$/,
	'cancelled by statement_timeout');
is($dl->[0]{exhausted_condition}, 'MaximumRetryAttempts', 'retried, then dead-lettered');
is(sql('SELECT last_value FROM app.slow_calls'), '2', 'called twice');
is(sql(q{SELECT timed_out_invocation_attempts FROM eventbus.target_stats WHERE target_id = 'slow'}),
	'2', 'counted as timed-out attempts');

# --- SIGTERM stops a worker inside a long call; the delivery is handed back
as_app(q{
CREATE FUNCTION app.sleepy(event jsonb) RETURNS void LANGUAGE sql AS $$ SELECT pg_catalog.pg_sleep(120) $$;
SELECT eventbus.put_rule('sleepy', '{"source": ["com.example.sleepy"]}');
SELECT eventbus.put_target('sleepy', 'sleepy', function => 'app.sleepy', timeout => '5min');
});
my $pid = worker_pid($node);
sql(q{SELECT eventbus.put_event('com.example.sleepy', 'T', '{}')});
ok(wait_for_value($node, "SELECT wait_event FROM pg_stat_activity WHERE pid = $pid", 'PgSleep'),
	'the worker is inside the call');
# the next call returns at once
as_app(q{CREATE OR REPLACE FUNCTION app.sleepy(event jsonb) RETURNS void LANGUAGE sql AS $$ SELECT $$});
$t0 = time();
sql("SELECT pg_terminate_backend($pid)");
ok(wait_for_value($node, "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid", '0', 10),
	'the worker stopped');
cmp_ok(time() - $t0, '<', 5, 'promptly');
ok(drained('sleepy', 60), 'the handed-back delivery is delivered by the restarted worker');
is(sql(q{SELECT count(*) FROM eventbus.dead_letters WHERE target_id = 'sleepy'}), '0',
	'and not dead-lettered');

$node->stop;
done_testing();
