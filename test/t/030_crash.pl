# A worker killed with SIGKILL, and a server stopped in immediate mode, while
# thousands of deliveries are in flight: every event is still delivered at
# least once, none is dead-lettered, nothing is left behind.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use EventbusTest;

my $sink = start_sink();
my $node = new_node('crash', conf => "eventbus.max_concurrent_requests = 256\n"
	  . "eventbus.max_concurrent_per_target = 256\nrestart_after_crash = on\n");

# every id in @$ids received at least once on $path
sub all_received
{
	my ($ids, $path) = @_;
	my %seen;
	$seen{ decode_json($_->{body})->{id} }++ for @{ $sink->received($path) };
	return scalar(grep { !$seen{$_} } @$ids);
}

# waits until the queue is empty (tolerating a server that is restarting)
sub queue_drained
{
	my ($rule) = @_;
	return $node->poll_query_until('postgres',
		"SELECT count(*) FROM eventbus.deliveries WHERE rule = '$rule'", '0');
}

add_target($node, 'crash', 'test.crash', 'crash', $sink->url('/delay/300'),
	timeout => '20s');
my $ids = publish($node, 'test.crash', 5000);
is(scalar @$ids, 5000, '5000 events published');

# kill -9 the worker once deliveries are flowing: watched in the queue, not
# in the sink's log, which a loaded machine reads too slowly to catch the
# deliveries still in flight
$node->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM eventbus.deliveries WHERE leased_until IS NOT NULL");
# the worker commits with synchronous_commit = off: let the WAL writer
# flush its leases, or the crash forgets them
usleep(500_000);
my $pid = worker_pid($node);
ok($pid, "worker running (pid $pid)");
my $leased = $node->safe_psql('postgres',
	"SELECT count(*) FROM eventbus.deliveries WHERE leased_until IS NOT NULL");
ok($leased > 0, "deliveries in flight when killed ($leased leased)");
kill 'KILL', $pid;

ok(queue_drained('crash'), 'queue drained after the crash');
is(all_received($ids, '/delay/300'), 0, 'every event delivered at least once');
is($node->safe_psql('postgres', 'SELECT count(*) FROM eventbus.dead_letters'),
	'0', 'nothing dead-lettered');
isnt(worker_pid($node), $pid, 'worker restarted by the postmaster');
ok($node->log_contains('returned \d+ leased deliveries to the queue'),
	'leases left by the crash reconciled');

# immediate stop and start while in flight
add_target($node, 'restart', 'test.restart', 'restart', $sink->url('/delay/50'),
	timeout => '20s');
$ids = publish($node, 'test.restart', 3000);
$sink->wait_count('/delay/50', 300);
$node->stop('immediate');
$node->start;

ok(queue_drained('restart'), 'queue drained after the immediate restart');
is(all_received($ids, '/delay/50'), 0, 'every event delivered at least once');
is($node->safe_psql('postgres', 'SELECT count(*) FROM eventbus.dead_letters'),
	'0', 'nothing dead-lettered');

$node->stop;
done_testing();
