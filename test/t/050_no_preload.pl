# Without shared_preload_libraries: publishing works and deliveries queue;
# once the library is preloaded, the worker sends what queued meanwhile.
# Also: a worker stopped with SIGTERM comes back and carries on.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use EventbusTest;

my $sink = start_sink();
my $node = PostgreSQL::Test::Cluster->new('no_preload');
$node->init;
$node->append_conf('postgresql.conf', "eventbus.retry_base_delay = '20ms'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_eventbus');

add_target($node, 'queued', 'test.queued', 'queued', $sink->url('/queued'));
my $ids = publish($node, 'test.queued', 10);
is(scalar @$ids, 10, 'publishing works without the worker');
is($node->safe_psql('postgres', 'SELECT count(*) FROM eventbus.deliveries'),
	'10', 'deliveries queue up');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE '%eventbus%'"),
	'0', 'no worker running');
sleep 1;
is($sink->count('/queued'), 0, 'nothing sent');

# preload the library: the backlog is delivered
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_eventbus'\n");
$node->restart;
is($sink->wait_count('/queued', 10), 10, 'backlog delivered once the worker runs');
ok(wait_for_value($node, 'SELECT count(*) FROM eventbus.deliveries', '0'), 'queue empty');

# SIGTERM: the worker stops at once and the postmaster starts another
my $pid = worker_pid($node);
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_eventbus delivery worker' AND pid <> $pid"),
	'worker restarted after SIGTERM');
publish($node, 'test.queued', 1);
is($sink->wait_count('/queued', 11), 11, 'new worker delivers');

$node->stop;
done_testing();
