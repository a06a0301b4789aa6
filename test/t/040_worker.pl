# The worker's life: waiting for CREATE EXTENSION, several workers sharing
# the queue, a slow target not holding back a fast one, settings reloaded
# on SIGHUP, workers failing on an ERROR or stopped with SIGTERM.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use EventbusTest;

my $sink = start_sink();
my $node = new_node(
	'worker',
	no_extension => 1,
	conf => qq{
eventbus.workers = 2
eventbus.retry_base_delay = '1h'
eventbus.retry_max_delay = '2h'
eventbus.max_concurrent_requests = 16
eventbus.max_concurrent_per_target = 4
});

# waits quietly for the extension, saying so once per worker
ok(wait_for_value($node,
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_eventbus delivery worker'", '2'),
	'two workers running');
sleep 3;
my $log = slurp_file($node->logfile);
my $waiting = () = $log =~ /waiting for CREATE EXTENSION pg_eventbus in database "postgres"/g;
is($waiting, 2, 'each worker says once that it waits for the extension');
unlike($log, qr/ERROR/, 'no errors while waiting');

$node->safe_psql('postgres', 'CREATE EXTENSION pg_eventbus');
add_target($node, 'first', 'test.first', 'first', $sink->url('/first'));
publish($node, 'test.first', 1);
is($sink->wait_count('/first', 1, 15), 1, 'delivered once the extension exists');

# two workers share the queue: 500 events, each delivered once
add_target($node, 'shared', 'test.shared', 'shared', $sink->url('/shared'));
$node->safe_psql('postgres', "SELECT eventbus.put_target('shared', 'shared', '"
	  . $sink->url('/shared') . "')");
my $ids = publish($node, 'test.shared', 500);
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.deliveries WHERE rule = 'shared'", '0'),
	'shared: all settled');
my %seen;
$seen{ decode_json($_->{body})->{id} }++ for @{ $sink->received('/shared') };
is(scalar(grep { ($seen{$_} // 0) != 1 } @$ids), 0, 'shared: each event delivered exactly once');

# a slow target does not hold back a fast one
add_target($node, 'slow', 'test.slow', 'slow', $sink->url('/delay/3000'),
	timeout => '10s');
add_target($node, 'fast', 'test.fast', 'fast', $sink->url('/fast'));
publish($node, 'test.slow', 40);
$sink->wait_count('/delay/3000', 4);
my $t0 = time();
publish($node, 'test.fast', 20);
is($sink->wait_count('/fast', 20, 30), 20, 'fast target: all delivered');
my $last = 0;
$last < $_->{time} and $last = $_->{time} for @{ $sink->received('/fast') };
my $took = $last - $t0;
ok($took < 2.5, "fast target served while the slow one is busy ($took s)");
cmp_ok($node->safe_psql('postgres', "SELECT count(*) FROM eventbus.deliveries WHERE rule = 'slow'"),
	'>', 0, 'slow target still has work queued');
# rows claimed beyond the target's limit went back untouched: at most
# max_concurrent_per_target (4) per worker leased, the others never tried
is($node->safe_psql('postgres', q{
SELECT count(*) FILTER (WHERE leased_until IS NOT NULL) <= 8,
	   count(*) FILTER (WHERE leased_until IS NULL AND attempts = 0
						AND first_attempt_at IS NULL) > 0
FROM eventbus.deliveries WHERE rule = 'slow'}), 't|t',
	'rows over the target limit handed back as never tried');
$node->safe_psql('postgres', "SELECT eventbus.delete_rule('slow')");

# SIGHUP: retry delays reloaded
add_target($node, 'hup', 'test.hup', 'hup', $sink->url('/status/500-then-200'));
publish($node, 'test.hup', 1);
$sink->wait_count('/status/500-then-200', 1);
ok(wait_for_value($node,
	"SELECT next_attempt_at > now() + interval '30 minutes' AND leased_until IS NULL"
	  . " FROM eventbus.deliveries WHERE rule = 'hup'", 't'),
	'retry scheduled an hour ahead (retry_base_delay = 1h)');
$node->append_conf('postgresql.conf',
	"eventbus.retry_base_delay = '20ms'\neventbus.retry_max_delay = '200ms'\n");
$node->reload;
my $deadline = time() + 10;
usleep(100_000) until $node->log_contains('reloaded its settings') || time() > $deadline;
ok($node->log_contains('retry_base_delay=20ms'), 'workers reloaded their settings');
publish($node, 'test.hup', 1);
is($sink->wait_count('/status/500-then-200', 3, 15), 3,
	'new event retried after the reloaded delay');
ok(wait_for_value($node,
	"SELECT count(*) FROM eventbus.deliveries WHERE rule = 'hup' AND next_attempt_at < now() + interval '1 minute'", '0'),
	'second event delivered, first still waits its hour');
is($node->safe_psql('postgres', "SELECT count(*) FROM eventbus.deliveries WHERE rule = 'hup'"),
	'1', 'first event still queued');

# a worker that fails with an ERROR hands its deliveries back before it
# exits: they go out again at once, not when their lease (here 90 s) ends
$node->safe_psql('postgres', q{ALTER TABLE eventbus.deliveries ADD CONSTRAINT test_no_503
	CHECK (last_http_status IS DISTINCT FROM 503)});
add_target($node, 'boom', 'test.boom', 'boom', $sink->url('/status/503-then-200'),
	timeout => '60s');
my $t1 = time();
publish($node, 'test.boom', 1);
is($sink->wait_count('/status/503-then-200', 2, 30), 2,
	'sent again after the worker that sent it failed');
my $again = time() - $t1;
ok($again < 20, "sent again within seconds, not at the end of the lease ($again s)");
ok($node->log_contains('violates check constraint "test_no_503"'),
	'the worker failed on an ERROR (settling the 503)');
ok($node->log_contains('The worker is stopping; they will be sent again.'),
	'it handed its deliveries back');
$node->safe_psql('postgres', 'ALTER TABLE eventbus.deliveries DROP CONSTRAINT test_no_503');
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.deliveries WHERE rule = 'boom'", '0'),
	'then delivered');
ok(wait_for_value($node,
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_eventbus delivery worker'", '2'),
	'the failed worker was started again');

# so do workers stopped with SIGTERM: a request in flight (3 s at the
# target, lease 90 s) is sent again once they are back, 5 s later
add_target($node, 'held', 'test.held', 'held', $sink->url('/delay/3000'),
	timeout => '60s');
publish($node, 'test.held', 1);
ok(wait_for_value($node,
	"SELECT leased_until IS NOT NULL FROM eventbus.deliveries WHERE rule = 'held'", 't'),
	'request in flight');
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'pg_eventbus delivery worker'");
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.deliveries WHERE rule = 'held'", '0', 40),
	'delivered by the restarted workers well before the lease would have ended');

is($node->safe_psql('postgres', "SELECT count(*) FROM eventbus.dead_letters WHERE target_id <> 'slow'"),
	'0', 'no dead letters but those of the deleted slow target')
  or diag($node->safe_psql('postgres', 'SELECT target_id, error_code, exhausted_condition FROM eventbus.dead_letters'));

$node->stop;
done_testing();
