# Retention by the maintenance process: with eventbus.event_retention set,
# it creates the partitions of eventbus.events ahead at the width the
# retention calls for, the worker delivers events from them, a partition
# whose events have expired is kept while one of its deliveries is pending
# and dropped once none is, and its events' dead letters keep their
# envelopes.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use EventbusTest;

my $sink = start_sink();
my $node = new_node('retention', conf => qq{
eventbus.event_retention = '1min'
eventbus.maintenance_interval = '1s'
});

ok(wait_for_value($node,
		"SELECT count(*) >= 3, max(range_end - range_start) FROM eventbus.event_partitions",
		't|00:01:00'),
	'the maintenance process creates one-minute partitions ahead');

add_target($node, 'live', 'test.live', 'live', $sink->url('/live'));
add_target($node, 'held', 'test.held', 'held', $sink->url('/held'));

# one event delivered at once, one whose delivery is held back (due in an
# hour, as after a long retry delay), in the same transaction: the same
# partition
my ($live, $held) = split /\n/, $node->safe_psql('postgres', q{
BEGIN;
SELECT eventbus.put_event('test.live', 'Live', '{"n": 1}');
SELECT eventbus.put_event('test.held', 'Held', '{"n": 2}');
UPDATE eventbus.deliveries SET next_attempt_at = now() + interval '1 hour' WHERE target_id = 'held';
COMMIT;
});
is($sink->wait_count('/live', 1), 1, 'an event in a time partition is delivered');
my $partition = $node->safe_psql('postgres',
	"SELECT tableoid::regclass FROM eventbus.events WHERE id = '$live'");
like($partition, qr/^eventbus\.events_p\d{8}_\d{6}$/, 'it lives in a time partition');
my $expires = $node->safe_psql('postgres',
	"SELECT ceil(extract(epoch FROM range_end + interval '1 minute' - now())) FROM eventbus.event_partitions WHERE 'eventbus.' || name = '$partition'");
note("the partition expires in $expires s");

# past its expiry (and a few runs more), the partition is still there: a
# delivery of its events is pending
usleep(($expires + 4) * 1_000_000);
is($node->safe_psql('postgres', "SELECT count(*) FROM eventbus.events WHERE id IN ('$live', '$held')"),
	'2', 'an expired partition with a pending delivery is kept');
ok($node->safe_psql('postgres', "SELECT count(*) FROM eventbus.event_partitions WHERE range_end <= now() - interval '1 minute'") >= 1,
	'while the expired partitions around it are dropped or kept');

# the held delivery is dead-lettered (its target removed): then nothing is
# pending, and the process drops the partition
$node->safe_psql('postgres', "SELECT eventbus.remove_target('held', 'held')");
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.events WHERE id IN ('$live', '$held')", '0', 30),
	'once nothing is pending, the process drops the partition');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_class WHERE oid = to_regclass('$partition')"),
	'0', 'the partition itself is gone');
my $dead = $node->safe_psql('postgres', 'SELECT event FROM eventbus.dead_letters');
my $envelope = decode_json($dead);
is($envelope->{id}, $held, 'the dead letter keeps the expired event\'s envelope');
is($envelope->{'detail-type'}, 'Held', 'with its contents');

# no partition that expired without pending deliveries is left
ok(wait_for_value($node,
		"SELECT count(*) FROM eventbus.event_partitions WHERE range_end < now() - interval '1 minute 5 seconds'",
		'0', 30),
	'every expired partition is dropped');

my @errors = grep { /ERROR/ && !/retention\.pl/ } split /\n/, slurp_file($node->logfile);
is(scalar(@errors), 0, 'no ERROR from the background processes') or diag(join("\n", @errors[0 .. 4]));

$node->stop;
done_testing();
