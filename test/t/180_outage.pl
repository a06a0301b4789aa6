# A target that is down (its port refuses connections) with a backlog larger
# than one pass: the worker must not retry it faster than the backoff --
# a target that answers nothing is paused, doubling from
# eventbus.retry_base_delay up to 5 s, and its due rows wait in the queue --
# must stay nearly idle meanwhile, must keep delivering to other targets,
# and must drain the backlog once the target is back.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use EventbusTest;

my $backlog = 3000;
my $sink = start_sink();
my $node = new_node('outage', conf => q{
eventbus.retry_base_delay = '1s'
eventbus.retry_max_delay = '1min'
});

# a port where nothing listens
my $closed = PostgreSQL::Test::Cluster::get_free_port();
add_target($node, 'down', 'test.down', 'down', "http://127.0.0.1:$closed/");
add_target($node, 'up', 'test.up', 'up', $sink->url('/up'));

publish($node, 'test.down', $backlog);
my $pid = worker_pid($node);
my $ticks = sub {
	open(my $fh, '<', "/proc/$pid/stat") or return 0;
	my @f = split / /, <$fh>;
	return $f[13] + $f[14];
};
my $hz = 100;
usleep(500_000);
my ($c0, $t0) = ($ticks->(), time());
sleep(6);
my ($c1, $t1) = ($ticks->(), time());
my $cpu = ($c1 - $c0) / $hz / ($t1 - $t0);
my $attempts = $node->safe_psql('postgres',
	"SELECT sum(attempts) FROM eventbus.deliveries WHERE target_id = 'down'");
note("down for 6.5 s: $attempts attempts, worker CPU " . sprintf('%.3f', $cpu));
cmp_ok($attempts, '<', 200,
	"a down target with $backlog due rows is not retried faster than the backoff");
cmp_ok($cpu, '<', 0.25, 'the worker is nearly idle while the only due target is down');
is($node->safe_psql('postgres', 'SELECT count(*) FROM eventbus.dead_letters'), '0',
	'nothing dead-lettered');

# other targets go on meanwhile
publish($node, 'test.up', 200);
ok($sink->wait_count('/up', 200, 30) >= 200, 'a healthy target is served while the other is down');

# the target comes back: the same target id, now pointing at the sink
$node->safe_psql('postgres',
	"SELECT eventbus.put_target('down', 'down', '" . $sink->url('/back') . "')");
my $start = time();
ok(wait_for_value($node,
	"SELECT count(*) FROM eventbus.deliveries WHERE target_id = 'down'", '0', 60),
	'the backlog drains once the target is back');
note(sprintf('drained %d in %.1f s after it came back', $backlog, time() - $start));
is($node->safe_psql('postgres', 'SELECT count(*) FROM eventbus.dead_letters'), '0',
	'still nothing dead-lettered');

$node->stop;
done_testing();
