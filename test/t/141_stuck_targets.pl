# Request slots are shared: ten targets that accept connections and never
# answer, each with a backlog, cannot keep a healthy target on the same bus
# waiting.  The healthy target's deliveries keep a p99 under 100 ms from
# publishing, while the stuck targets' requests are still hanging.
use strict;
use warnings;

use IO::Socket::INET;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use EventbusTest;

# a listener that accepts every connection and never reads or answers
my $listener = IO::Socket::INET->new(
	LocalAddr => '127.0.0.1',
	LocalPort => 0,
	Listen => 1024,
	ReuseAddr => 1) or die "listen: $!";
my $stuck_port = $listener->sockport;
my $stuck_pid = fork();
die "fork: $!" unless defined $stuck_pid;
if ($stuck_pid == 0)
{
	my @held;
	while (my $conn = $listener->accept)
	{
		push @held, $conn;
	}
	exit 0;
}
close($listener);

my $sink = start_sink();
my $node = new_node('stuck');

my $stuck_targets = 10;
my $backlog = 100;
for my $i (1 .. $stuck_targets)
{
	add_target($node, "stuck$i", 'test.stuck', "stuck$i",
		"http://127.0.0.1:$stuck_port/never/$i", timeout => '30s');
}
add_target($node, 'healthy', 'test.healthy', 'healthy', $sink->url('/healthy'));

# every stuck target gets a backlog; their requests start and hang
publish($node, 'test.stuck', $backlog);
ok(wait_for_value($node,
	"SELECT count(DISTINCT target_id) FROM eventbus.deliveries WHERE leased_until IS NOT NULL",
	"$stuck_targets"), 'every stuck target has requests in flight');
usleep(500_000);

# healthy events, one transaction each, while the stuck requests hang
my $n = 100;
$node->safe_psql('postgres', join("\n",
	map { "SELECT eventbus.put_event('test.healthy', 'Healthy', '{\"i\": $_}'); SELECT pg_sleep(0.02);" }
	  1 .. $n));
is($sink->wait_count('/healthy', $n, 30), $n, 'every healthy event delivered');

my %published = map { split /\|/ } split /\n/, $node->safe_psql('postgres',
	"SELECT id, extract(epoch FROM published_at) FROM eventbus.events WHERE source = 'test.healthy'");
my @ms = sort { $a <=> $b }
  map { my $id = decode_json($_->{body})->{id}; ($_->{time} - $published{$id}) * 1000 }
  @{ $sink->received('/healthy') };
# a delivery that never arrived counts as infinitely late
push @ms, 9e9 while @ms < $n;
my $p50 = $ms[ int(0.50 * $#ms) ];
my $p99 = $ms[ int(0.99 * $#ms) ];
diag(sprintf('healthy target, from publish to arrival: p50 %.1f ms, p99 %.1f ms, max %.1f ms',
		$p50, $p99, $ms[-1]));
cmp_ok($p99, '<', 100, 'healthy target: p99 under 100 ms');

is($node->safe_psql('postgres',
		"SELECT count(*) FROM eventbus.deliveries WHERE target_id LIKE 'stuck%' AND leased_until IS NULL AND attempts = 0") > 0
	  ? 't' : 'f',
	't', 'the stuck targets still have a backlog that was never tried');
cmp_ok($node->safe_psql('postgres',
		"SELECT max(c) FROM (SELECT count(*) AS c FROM eventbus.deliveries"
		  . " WHERE target_id LIKE 'stuck%' AND leased_until IS NOT NULL GROUP BY target_id) s"),
	'<=', 4, 'a target that never answered holds at most 4 slots');

$node->stop;
kill 'KILL', $stuck_pid;
waitpid($stuck_pid, 0);
$sink->stop;
done_testing();
