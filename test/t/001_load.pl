# The extension with and without shared_preload_libraries: publishing and
# matching work either way; without it a WARNING says no worker will send
# the queued deliveries, with it the delivery worker runs.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('load');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION pg_eventbus');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE '%eventbus%'"),
	'0', 'no delivery worker without shared_preload_libraries');

$node->safe_psql('postgres', q{
	SELECT eventbus.put_rule('r', '{"source": ["com.example"]}');
	SELECT eventbus.put_target('r', 't', 'http://127.0.0.1:9/hook');
});

my ($ret, $stdout, $stderr) = $node->psql('postgres',
	q{SELECT eventbus.put_event('com.example', 'Test', '{"n": 1}') IS NOT NULL;
	  SELECT eventbus.put_event('com.example', 'Test', '{"n": 2}') IS NOT NULL;
	  SELECT eventbus.put_event('com.example', 'Test', '{"n": 3}') IS NOT NULL});
is($ret, 0, 'put_event works without shared_preload_libraries');
is($stdout, "t\nt\nt", 'put_event returns the event ids');
like($stderr, qr/WARNING:  pg_eventbus is not in shared_preload_libraries: deliveries are queued but no worker will send them/,
	'a WARNING says no worker will send the deliveries');
like($stderr, qr/HINT:  Add pg_eventbus to shared_preload_libraries/, 'with a hint saying how to fix it');
is(scalar(() = $stderr =~ /WARNING/g), 1, 'the WARNING is given once per session') or diag $stderr;
is($node->safe_psql('postgres', 'SELECT count(*) FROM eventbus.deliveries'), '3',
	'deliveries queue up');

$node->stop;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_eventbus'");
$node->append_conf('postgresql.conf', "eventbus.database = 'postgres'");
$node->start;

ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_eventbus delivery worker'"),
	'the delivery worker runs with shared_preload_libraries');

($ret, $stdout, $stderr) = $node->psql('postgres',
	q{SELECT eventbus.put_event('com.example', 'Test', '{"n": 4}') IS NOT NULL});
is($ret, 0, 'put_event works with shared_preload_libraries');
unlike($stderr, qr/WARNING/, 'no WARNING when the worker is there');

$node->stop;
done_testing();
