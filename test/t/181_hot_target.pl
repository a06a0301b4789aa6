# A target at its limit of requests in flight with a large due backlog must
# not make claims for the other targets slower: the claim takes each
# target's rows with its own probe of the target index, up to what that
# target may still start, so the backlog of a target at its limit is never
# read.  auto_explain (with ANALYZE) logs every claim; none may read more
# than a few rows of the queue beyond those it takes, and a healthy target
# is served while the backlog waits.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use EventbusTest;

my $backlog = 20000;
my $sink = start_sink();
my $node = new_node('hot', conf => q{
shared_preload_libraries = 'pg_eventbus,auto_explain'
auto_explain.log_min_duration = 0
auto_explain.log_analyze = on
auto_explain.log_timing = off
auto_explain.log_nested_statements = on
eventbus.max_concurrent_per_target = 4
});

# each request to the slow target takes 3 s: 4 in flight, the rest wait
add_target($node, 'slow', 'test.slow', 'slow', $sink->url('/delay/3000'));
add_target($node, 'fast', 'test.fast', 'fast', $sink->url('/fast'));
publish($node, 'test.slow', $backlog);
sleep(1);
my $offset = -s $node->logfile;

publish($node, 'test.fast', 20) for 1 .. 10;
ok($sink->wait_count('/fast', 200, 30) >= 200,
	"a healthy target is served while another has $backlog due rows at its limit");

# the claims that ran meanwhile, with what their scans read and threw away
my $log = slurp_file($node->logfile, $offset);
my @claims = grep { /Query Text: WITH (?:RECURSIVE )?queued/ } split /LOG:\s+duration: /, $log;
ok(@claims > 0, 'claims were logged');
my $worst = 0;
for my $plan (@claims)
{
	while ($plan =~ /Rows Removed by Filter: (\d+)/g) { $worst = $1 if $1 > $worst }
	while ($plan =~ /on deliveries\w* d\S* \(actual rows=(\d+)/g) { $worst = $1 if $1 > $worst }
}
note("most queue rows read or thrown away by one claim step: $worst");
cmp_ok($worst, '<', 1000, 'no claim reads the backlog of the target at its limit');

$node->stop('immediate');
done_testing();
