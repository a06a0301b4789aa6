# A long transaction (a report, pg_dump) holds back vacuum, so the index
# entries of every row delivered meanwhile stay.  The claim must not walk
# them: each target's claim starts at its low mark, after what the worker
# already took, and the lease is a HOT update that adds no index entry.
# With a REPEATABLE READ transaction open, rounds of deliveries go out;
# auto_explain (ANALYZE, BUFFERS) logs every claim, and a claim in the last
# round may not read many more buffers than one in the first.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use EventbusTest;

my $rounds = 5;
my $per_round = 3000;
my $sink = start_sink();
my $node = new_node('longtx', conf => q{
shared_preload_libraries = 'pg_eventbus,auto_explain'
auto_explain.log_min_duration = 0
auto_explain.log_analyze = on
auto_explain.log_buffers = on
auto_explain.log_timing = off
});
add_target($node, 'r', 'test.r', 'r', $sink->url('/r'));

# the long transaction: a snapshot held open in another session
my ($in, $out) = ('', '');
my $h = IPC::Run::start(
	[ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-f', '-' ],
	'<', \$in, '>', \$out, '2>', \$out);
$in .= "BEGIN ISOLATION LEVEL REPEATABLE READ;\nSELECT count(*) FROM eventbus.buses;\n";
$h->pump until $out =~ /^\d+$/m;
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'"), '1',
	'a REPEATABLE READ transaction is open');

# the buffers each claim read, from byte $offset of the log
sub claim_buffers
{
	my ($offset) = @_;
	my @b;
	for my $plan (split /LOG:\s+duration: /, slurp_file($node->logfile, $offset))
	{
		next unless $plan =~ /Query Text: WITH (?:RECURSIVE queued|due AS)/;
		my ($hit, $read) = (0, 0);
		# the statement's own line comes first: the whole claim
		($hit) = $plan =~ /Buffers: shared hit=(\d+)/;
		($read) = $plan =~ /Buffers: shared (?:hit=\d+ )?read=(\d+)/;
		push @b, ($hit // 0) + ($read // 0);
	}
	return sort { $a <=> $b } @b;
}

my @per_round;
for my $round (1 .. $rounds)
{
	my $offset = -s $node->logfile;
	publish($node, 'test.r', $per_round);
	ok(wait_for_value($node, 'SELECT count(*) FROM eventbus.deliveries', '0', 120),
		"round $round: $per_round delivered");
	my @b = claim_buffers($offset);
	my $p90 = $b[ int(0.9 * $#b) ] // 0;
	push @per_round, $p90;
	note("round $round: " . scalar(@b) . " claims, buffers p90 $p90, max $b[-1]");
}
cmp_ok($per_round[-1], "<=", 1.1 * $per_round[0] + 50,
	"claims in round $rounds read about what they read in round 1 ($per_round[0] -> $per_round[-1] buffers, p90)");

$in .= "COMMIT;\n";
$h->finish;
$node->stop;
done_testing();
