# The worker waits quietly, saying once what it waits for: for the
# extension at the library's version (CREATE EXTENSION VERSION '0.1.0'
# leaves an older schema, which the worker must not run its statements
# against), and for a database named in eventbus.database that does not
# exist (one failed connection, then no FATAL every 5 s).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use EventbusTest;

my $sink = start_sink();

# an older schema: nothing is delivered until ALTER EXTENSION UPDATE
my $node = new_node('version', no_extension => 1);
$node->safe_psql('postgres', "CREATE EXTENSION pg_eventbus VERSION '0.1.0'");
add_target($node, 'r', 'test.version', 't', $sink->url('/version'));
publish($node, 'test.version', 1);
sleep 3;
is($sink->count('/version'), 0, 'nothing delivered from a 0.1.0 schema');
is($node->safe_psql('postgres', 'SELECT count(*) FROM eventbus.deliveries WHERE attempts = 0'),
	'1', 'the delivery waits, untried');
my @said = (slurp_file($node->logfile) =~ /waiting for ALTER EXTENSION pg_eventbus UPDATE/g);
is(scalar @said, 1, 'the worker said once what to run');
$node->safe_psql('postgres', 'ALTER EXTENSION pg_eventbus UPDATE');
is($sink->wait_count('/version', 1, 15), 1, 'delivered after ALTER EXTENSION UPDATE');
$node->stop;

# a database that does not exist yet
my $db = new_node('database', no_extension => 1, conf => "eventbus.database = 'app'\n");
my $offset = -s $db->logfile;
sleep 12;
my $log = substr(slurp_file($db->logfile), $offset);
my @fatal = ($log =~ /FATAL:  database "app" does not exist/g);
cmp_ok(scalar @fatal, '<=', 1, 'at most one failed connection in 12 s');
my @waiting = ($log =~ /waiting for database "app" to exist/g);
is(scalar @waiting, 1, 'the worker said once that it waits for the database');
$db->safe_psql('postgres', 'CREATE DATABASE app');
$db->safe_psql('app', 'CREATE EXTENSION pg_eventbus');
$db->safe_psql('app', q{
SELECT eventbus.put_rule('r', '{"source": ["test.db"]}');
SELECT eventbus.put_target('r', 't', '} . $sink->url('/db') . q{');
SELECT eventbus.put_event('test.db', 'Test', '{}');
});
is($sink->wait_count('/db', 1, 30), 1, 'delivered once the database exists');
$db->stop;

$sink->stop;
done_testing();
