# Archives and replay: an archive keeps the events of its bus that match its
# pattern; start_replay() publishes the archived events of a window again,
# in the background (the maintenance process), with replay-name set, to the
# given rules only, in the order they were published; replayed events are
# not archived again; replays end COMPLETED, CANCELLED or FAILED and show
# their progress in eventbus.replays.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use EventbusTest;

my $sink = start_sink();
my $node = new_node('replay', conf => "eventbus.maintenance_interval = '1s'\n");

ok(wait_for_value($node,
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_eventbus maintenance'", '1'),
	'the maintenance process runs');

# two rules with the same pattern, each with a target
add_target($node, 'r1', 'test.replay', 't1', $sink->url('/r1'));
add_target($node, 'r2', 'test.replay', 't2', $sink->url('/r2'));

# one event before the archive exists: not archived
publish($node, 'test.replay', 1);
my $start = $node->safe_psql('postgres', 'SELECT now()');
$node->safe_psql('postgres',
	q{SELECT eventbus.create_archive('arch', 'default', '{"detail": {"keep": [true]}}')});
is($node->safe_psql('postgres', 'SELECT name, bus, state FROM eventbus.archives'),
	'arch|default|ENABLED', 'the archive is listed');

# six events, each in its own transaction: i = 1..6, keep for odd i
for my $i (1 .. 6)
{
	my $keep = $i % 2 ? 'true' : 'false';
	$node->safe_psql('postgres',
		"SELECT eventbus.put_event('test.replay', 'Replay Me', '{\"i\": $i, \"keep\": $keep}')");
}
is($sink->wait_count('/r1', 7), 7, 'r1 received every event');
is($sink->wait_count('/r2', 7), 7, 'r2 received every event');
my $end = $node->safe_psql('postgres', 'SELECT now()');

# errors
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT eventbus.start_replay('x', 'nope', '$start', '$end')");
like($stderr, qr/archive "nope" does not exist/, 'unknown archive');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT eventbus.start_replay('x', 'arch', '$start', now() + interval '1 hour')");
like($stderr, qr/end_time of replay "x" is in the future/, 'a window in the future');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT eventbus.start_replay('x', 'arch', '$end', '$start')");
like($stderr, qr/start_time of replay "x" must be before its end_time/, 'an empty window');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT eventbus.start_replay('x', 'arch', '$start', '$end', rules => '{r1,nope}')");
like($stderr, qr/rule\(s\) "nope" do not exist on event bus "default"/, 'an unknown rule');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT eventbus.start_replay('bad name', 'arch', '$start', '$end')");
like($stderr, qr/invalid replay name "bad name"/, 'a bad name');

# the replay: to r1 only
$node->safe_psql('postgres',
	"SELECT eventbus.start_replay('rp1', 'arch', '$start', '$end', rules => '{r1}')");
ok(wait_for_value($node, "SELECT state, events_replayed FROM eventbus.replays WHERE name = 'rp1'",
		'COMPLETED|3'),
	'the replay completes, with 3 events replayed');
is($node->safe_psql('postgres',
		"SELECT event_last_replayed_time = '$end'::timestamptz, replay_end_time IS NOT NULL FROM eventbus.replays WHERE name = 'rp1'"),
	't|t', 'its progress reached the end of the window');
is($sink->wait_count('/r1', 10), 10, 'r1 received the 3 archived events again');
usleep(1_000_000);
is($sink->count('/r2'), 7, 'r2, not named by the replay, received nothing more');

# what r1 received: replay-name set, the archived events only, the same
# detail, a new id
my @replayed = grep { $_->{replay} } map {
	my $b = decode_json($_->{body});
	{ replay => $b->{'replay-name'}, i => $b->{detail}{i}, keep => $b->{detail}{keep}, id => $b->{id} }
} @{ $sink->received('/r1') };
is(scalar(@replayed), 3, 'three requests carry a replay-name');
is(join(',', map { $_->{replay} } @replayed), 'rp1,rp1,rp1', 'replay-name is the replay\'s name');
is(join(',', sort map { $_->{i} } @replayed), '1,3,5', 'the events of the archive\'s pattern');
# published again in the order they were first published
is($node->safe_psql('postgres',
		"SELECT string_agg(detail ->> 'i', ',' ORDER BY published_at) FROM eventbus.events WHERE replay_name = 'rp1'"),
	'1,3,5', 'published again in publish order');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM eventbus.events r JOIN eventbus.events o ON o.id = r.id WHERE r.replay_name = 'rp1' AND o.replay_name IS NULL"),
	'0', 'with new ids');

# replayed events are not archived again: a replay over a window that holds
# rp1's events replays the same three
my $end2 = $node->safe_psql('postgres', 'SELECT now()');
$node->safe_psql('postgres',
	"SELECT eventbus.start_replay('rp2', 'arch', '$start', '$end2', rules => '{r2}')");
ok(wait_for_value($node, "SELECT state, events_replayed FROM eventbus.replays WHERE name = 'rp2'",
		'COMPLETED|3'),
	'a replay over replayed events replays the archived ones only');
is($sink->wait_count('/r2', 10), 10, 'r2 received them');

# a duplicate name
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT eventbus.start_replay('rp1', 'arch', '$start', '$end')");
like($stderr, qr/replay "rp1" already exists/, 'replay names are not reused');

# cancelled before it started: nothing is replayed
$node->safe_psql('postgres', qq{
BEGIN;
SELECT eventbus.start_replay('rp3', 'arch', '$start', '$end');
SELECT eventbus.cancel_replay('rp3');
COMMIT;
});
usleep(2_000_000);
is($node->safe_psql('postgres', "SELECT state, events_replayed FROM eventbus.replays WHERE name = 'rp3'"),
	'CANCELLED|0', 'a cancelled replay replays nothing');
($ret, $stdout, $stderr) = $node->psql('postgres', "SELECT eventbus.cancel_replay('rp1')");
like($stderr, qr/replay "rp1" is COMPLETED/, 'a completed replay cannot be cancelled');
($ret, $stdout, $stderr) = $node->psql('postgres', "SELECT eventbus.cancel_replay('nope')");
like($stderr, qr/replay "nope" does not exist/, 'an unknown replay');

# a replay whose destination bus disappears fails, saying why
$node->safe_psql('postgres', qq{
BEGIN;
SELECT eventbus.create_event_bus('gone');
SELECT eventbus.start_replay('rp4', 'arch', '$start', '$end', destination_bus => 'gone');
SELECT eventbus.delete_event_bus('gone');
COMMIT;
});
ok(wait_for_value($node, "SELECT state, state_reason FROM eventbus.replays WHERE name = 'rp4'",
		'FAILED|event bus "gone" was deleted'),
	'a replay whose bus was deleted fails');

is($sink->count('/r1') + $sink->count('/r2'), 20, 'no other request was sent');

$node->stop;
done_testing();
