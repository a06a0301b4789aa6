# Publishing and the worker: a commit wakes the worker at once (delivery
# well before the poll interval), a rollback delivers nothing, and an event
# published in a prepared transaction is delivered after COMMIT PREPARED
# (and never after ROLLBACK PREPARED).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use EventbusTest;

my $sink = start_sink();
# a long poll interval: only the commit's wake-up can explain a quick delivery
my $node = new_node('wakeup', conf => qq{
eventbus.poll_interval = '60s'
max_prepared_transactions = 5
});
add_target($node, 'wake', 'com.example.wake', 'sink', $sink->url('/wake'));

# let the worker reach its idle sleep
ok(wait_for_value($node,
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_eventbus delivery worker'", '1'),
	'the worker runs');
usleep(500_000);

my $t0 = time();
publish($node, 'com.example.wake', 1);
is($sink->wait_count('/wake', 1, 30), 1, 'a committed event is delivered');
my $elapsed = time() - $t0;
cmp_ok($elapsed, '<', 10, "the commit woke the worker (delivered after ${elapsed}s, poll interval 60s)");

$node->safe_psql('postgres', q{
	BEGIN;
	SELECT eventbus.put_event('com.example.wake', 'Rolled Back', '{}');
	ROLLBACK;
});

# two-phase commit: prepared, then committed
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT eventbus.put_event('com.example.wake', 'Two Phase', '{"n": 1}');
	PREPARE TRANSACTION 'eventbus_2pc_commit';
});
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT eventbus.put_event('com.example.wake', 'Two Phase Rolled Back', '{"n": 2}');
	PREPARE TRANSACTION 'eventbus_2pc_rollback';
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM eventbus.deliveries'), '0',
	'prepared deliveries are not visible yet');
$node->safe_psql('postgres', "ROLLBACK PREPARED 'eventbus_2pc_rollback'");
$node->safe_psql('postgres', "COMMIT PREPARED 'eventbus_2pc_commit'");
# COMMIT PREPARED runs in a session that did not publish, so it is the
# worker's next look at the queue that finds the delivery; make that soon
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET eventbus.poll_interval = '200ms';
	SELECT pg_reload_conf();
});
is($sink->wait_count('/wake', 2, 30), 2, 'the event of the committed prepared transaction is delivered');

usleep(1_000_000);
my @types = sort map { $_->{body} =~ /"detail-type": "([^"]+)"/ ? $1 : '?' } @{ $sink->received('/wake') };
is_deeply(\@types, [ 'Test Event', 'Two Phase' ],
	'nothing from the rolled-back or the rolled-back prepared transaction');
is($node->safe_psql('postgres',
		'SELECT (SELECT count(*) FROM eventbus.deliveries) + (SELECT count(*) FROM eventbus.dead_letters)'),
	'0', 'nothing pending, nothing dead-lettered');

$sink->stop;
$node->stop;
done_testing();
