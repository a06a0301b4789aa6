# ALTER EXTENSION pg_eventbus UPDATE from 0.1.0 with the worker running and
# work in flight: nothing is lost (events, deliveries and dead letters keep
# their ids), pending deliveries go out exactly once afterwards, dead letters
# can be redriven, an outbox trigger created under 0.1.0 keeps working, and
# the upgraded schema is exactly a fresh install's.
use strict;
use warnings;

use Digest::SHA qw(sha256_hex);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use EventbusTest;

# pg_eventbus--0.1.0.sql is released: it runs at every CREATE EXTENSION, and
# servers out there have run it.  Every schema change goes into an upgrade
# script instead.
my $released_0_1_0 =
  '191e1d274d4a301830f948395466d1ed7373b9bda1d8a017b99e30a2476b7591';
open(my $fh, '<:raw', 'pg_eventbus--0.1.0.sql')
  or die "pg_eventbus--0.1.0.sql: $!";
my $script = do { local $/; <$fh> };
close($fh);
is(sha256_hex($script), $released_0_1_0,
	'pg_eventbus--0.1.0.sql is the released script, unchanged');

my $sink = start_sink();
my $node = new_node('upgrade', no_extension => 1);

$node->safe_psql('postgres', "CREATE EXTENSION pg_eventbus VERSION '0.1.0'");
is($node->safe_psql('postgres',
		"SELECT extversion FROM pg_extension WHERE extname = 'pg_eventbus'"),
	'0.1.0', 'installed at 0.1.0');

# Under 0.1.0's schema the 0.2.0 library's worker sends nothing: it waits
# for ALTER EXTENSION UPDATE.  So the database gathers pending deliveries
# (held back an hour, as after a long retry delay, so that the snapshots
# below are stable), dead letters (made by 0.1.0's TargetDeleted trigger)
# and an outbox trigger made with 0.1.0's capture().
add_target($node, 'live', 'up.live', 'live', $sink->url('/live'));
add_target($node, 'later', 'up.later', 'later', $sink->url('/later'));
add_target($node, 'dead', 'up.dead', 'dead', $sink->url('/status/400'),
	max_retry_attempts => 0);
$node->safe_psql(
	'postgres', q{
CREATE TABLE orders (id int PRIMARY KEY, total numeric);
CREATE TRIGGER orders_events AFTER INSERT OR UPDATE OR DELETE ON orders
	FOR EACH ROW EXECUTE FUNCTION eventbus.capture('up.orders');
SELECT eventbus.put_rule('orders', '{"source": ["up.orders"]}');
SELECT eventbus.put_target('orders', 'orders', '} . $sink->url('/orders') . q{');
});
$node->safe_psql(
	'postgres', q{
BEGIN;
INSERT INTO orders VALUES (1, 10);
SELECT eventbus.put_event('up.live', 'Live', jsonb_build_object('i', g)) FROM generate_series(1, 3) g;
SELECT eventbus.put_event('up.later', 'Later', jsonb_build_object('i', g)) FROM generate_series(1, 4) g;
SELECT eventbus.put_event('up.dead', 'Dead', jsonb_build_object('i', g)) FROM generate_series(1, 2) g;
UPDATE eventbus.deliveries SET next_attempt_at = now() + interval '1 hour';
COMMIT;
SELECT eventbus.remove_target('dead', 'dead');
});
ok($node->wait_for_log(qr/waiting for ALTER EXTENSION pg_eventbus UPDATE/),
	'at 0.1.0 the worker waits for the update');
is($node->safe_psql('postgres', "SELECT count(*) FROM eventbus.dead_letters"), '2',
	'before the upgrade: two dead letters');
is($node->safe_psql('postgres', "SELECT count(*) FROM eventbus.events"), '10',
	'before the upgrade: ten events');
is(scalar @{ $sink->received('/live') } + scalar @{ $sink->received('/orders') }, 0,
	'before the upgrade: nothing was sent');

my %snapshot = (
	events => 'SELECT id, bus, source, detail_type, detail, "time", published_at FROM eventbus.events ORDER BY id',
	deliveries => 'SELECT id, event_id, bus, rule, target_id, attempts, next_attempt_at FROM eventbus.deliveries ORDER BY id',
	dead_letters => 'SELECT id, event_id, event, rule, target_id, error_code, attempts FROM eventbus.dead_letters ORDER BY id',
	rules => 'SELECT bus, name, event_pattern, state FROM eventbus.rules ORDER BY bus, name',
	targets => 'SELECT bus, rule, target_id, endpoint, max_retry_attempts FROM eventbus.targets ORDER BY 1, 2, 3',);
my %before = map { $_ => $node->safe_psql('postgres', $snapshot{$_}) } keys %snapshot;
is(scalar(split /\n/, $before{deliveries}), 8, 'eight deliveries pending');

# while the database is at 0.1.0 the worker runs the 0.2.0 library: say
# whether it complained meanwhile
my $log_at_upgrade = -s $node->logfile;
my @errors_before = grep { /ERROR|FATAL/ } split /\n/, slurp_file($node->logfile);
note("ERROR/FATAL lines in the log while at 0.1.0: " . scalar(@errors_before));
note($_) for @errors_before[0 .. ($#errors_before < 4 ? $#errors_before : 4)];

$node->safe_psql('postgres', 'ALTER EXTENSION pg_eventbus UPDATE');
is($node->safe_psql('postgres',
		"SELECT extversion FROM pg_extension WHERE extname = 'pg_eventbus'"),
	'0.2.0', 'upgraded to 0.2.0');

for my $what (sort keys %snapshot)
{
	is($node->safe_psql('postgres', $snapshot{$what}), $before{$what},
		"$what: unchanged by the upgrade");
}
# the archive is partitioned; 0.1.0's events sit in a time partition of
# their own, and each pending delivery names its event's published_at
is($node->safe_psql('postgres', q{
SELECT count(DISTINCT tableoid), bool_and(tableoid::regclass::text LIKE 'eventbus.events_p%')
FROM eventbus.events}),
	'1|t', 'events: in one time partition of their own');
is($node->safe_psql('postgres', q{
SELECT count(*) FROM eventbus.deliveries d
WHERE d.event_published_at IS DISTINCT FROM
	(SELECT e.published_at FROM eventbus.events e WHERE e.id = d.event_id)}),
	'0', 'deliveries: each names its event\'s published_at');

# the held-back deliveries, due now (and the worker told so at commit, as a
# publish would): each delivered exactly once
$node->safe_psql('postgres', q{
BEGIN;
UPDATE eventbus.deliveries SET next_attempt_at = now();
SELECT eventbus.wake_workers();
COMMIT;
});
is($sink->wait_count('/later', 4), 4, 'the pending deliveries go out after the upgrade');
is($sink->wait_count('/live', 3), 3, 'all of them');
is($sink->wait_count('/orders', 1), 1, 'including the one 0.1.0\'s capture() published');
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.deliveries", '0'),
	'and are settled');
sleep 1;
my @sent = (@{ $sink->received('/later') }, @{ $sink->received('/live') });
is(scalar @sent, 7, 'no delivery is sent twice');
my %ids = map { $_->{headers}{'webhook-id'} => 1 } @sent;
is(scalar keys %ids, 7, 'one request per webhook-id');

# the dead letters can be redriven
$node->safe_psql('postgres',
	"SELECT eventbus.put_target('dead', 'dead', '" . $sink->url('/redriven') . "')");
my $dead_ids = $node->safe_psql('postgres',
	"SELECT string_agg(id::text, ',' ORDER BY id) FROM eventbus.dead_letters");
is($node->safe_psql('postgres',
		"SELECT eventbus.redrive_dead_letters(ids => '{$dead_ids}')"),
	'2', 'the dead letters from before the upgrade are redriven');
is($sink->wait_count('/redriven', 2), 2, 'and delivered');

# the trigger made under 0.1.0 now runs the new capture()
$node->safe_psql('postgres', 'UPDATE orders SET total = 20');
is($sink->wait_count('/orders', 2), 2, 'the 0.1.0 outbox trigger still publishes');
is($node->safe_psql('postgres',
		"SELECT detail -> 'new' ->> 'total' FROM eventbus.events WHERE detail_type = 'public.orders UPDATE'"),
	'20', 'with the row as before');
is($node->safe_psql('postgres',
		"SELECT prosecdef FROM pg_proc WHERE oid = 'eventbus.capture()'::regprocedure"),
	'f', 'capture() is no longer SECURITY DEFINER');

my @errors_after = grep { /ERROR|FATAL/ } split /\n/,
  substr(slurp_file($node->logfile), $log_at_upgrade);
is(join("\n", @errors_after), '', 'no ERROR in the server log after the upgrade');

# The schema: an upgraded database against a fresh install.  pg_dump leaves
# an extension's member objects out of a dump unless --binary-upgrade, which
# dumps them all (and the extension's version and configuration tables);
# what is removed below is only what differs between any two databases:
# object OIDs, relfilenodes, attribute LSNs, frozen xids, the identity
# sequences' positions (data, not schema) and the random \restrict key.
$node->safe_psql('postgres', 'DROP TABLE orders');
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION pg_eventbus');

sub schema_dump
{
	my ($db) = @_;
	my ($stdout, $stderr);
	IPC::Run::run(
		[
			$node->installed_command('pg_dump'), '--schema-only',
			'--binary-upgrade', '-n', 'eventbus', '-e', 'pg_eventbus',
			# the time partitions of eventbus.events are data, made by
			# eventbus.maintenance() as time passes: not the schema
			'-T', 'eventbus.events_p*',
			'-d', $node->connstr($db)
		],
		'>', \$stdout, '2>', \$stderr) or die "pg_dump $db: $stderr";
	my @lines = grep {
		!/binary_upgrade_set_next_/
		  && !/^SET relfrozenxid = /
		  && !/^WHERE oid = '\d+';$/
		  && !/^\\(?:un)?restrict /
		  && !/^SELECT pg_catalog\.setval\('eventbus\.\w+', \d+, (?:true|false)\);$/
	} split /\n/, $stdout;
	return join("\n", @lines) . "\n";
}

# the attempt log's daily partitions are not extension members: both
# databases get today's from maintenance before they are compared
$node->safe_psql($_, 'SELECT count(*) FROM eventbus.maintain_attempt_log()')
  for ('postgres', 'fresh');

my $upgraded = schema_dump('postgres');
my $fresh = schema_dump('fresh');
ok($fresh =~ /CREATE TABLE eventbus\.deliveries/
	  && $fresh =~ /CREATE FUNCTION eventbus\.capture\(\) RETURNS trigger/
	  && $fresh =~ /binary_upgrade_create_empty_extension\('pg_eventbus', 'eventbus', false, '0\.2\.0'/
	  && $fresh =~ /REVOKE ALL ON FUNCTION eventbus\.capture\(\) FROM PUBLIC/,
	'the dump holds the extension\'s objects, version and grants');
my $diff = '';
if ($upgraded ne $fresh)
{
	my @u = split /\n/, $upgraded;
	my @f = split /\n/, $fresh;
	for my $i (0 .. ($#u > $#f ? $#u : $#f))
	{
		my ($a, $b) = ($u[$i] // '<none>', $f[$i] // '<none>');
		next if $a eq $b;
		$diff .= "line $i: upgraded '$a' fresh '$b'\n";
		last if length($diff) > 2000;
	}
}
is($diff, '', 'the upgraded schema is exactly a fresh install\'s');

# the comparison sees a difference as small as one function attribute
$node->safe_psql('fresh', 'ALTER FUNCTION eventbus.capture() SECURITY DEFINER');
isnt(schema_dump('fresh'), $upgraded, 'the comparison would notice a difference');

$node->stop;
done_testing();
