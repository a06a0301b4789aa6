# The attempt log: one row of eventbus.delivery_attempts per HTTP attempt,
# as eventbus.attempt_log says; daily partitions kept and dropped by
# eventbus.maintain_attempt_log(), never DELETE.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use EventbusTest;

my $sink = start_sink();
my $node = new_node('attempts', conf => "eventbus.attempt_log = 'all'\n");

sub sq { return $node->safe_psql('postgres', $_[0]); }

my $today = sq("SELECT 'delivery_attempts_p' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')");
my $tomorrow = sq("SELECT 'delivery_attempts_p' || to_char(now() AT TIME ZONE 'UTC' + interval '1 day', 'YYYYMMDD')");
my $partitions = "SELECT string_agg(c.relname, ' ' ORDER BY c.relname) FROM pg_inherits i"
  . " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'eventbus.delivery_attempts'::regclass";

is(sq("SELECT boot_val FROM pg_settings WHERE name = 'eventbus.attempt_log'"), 'failures',
	'attempt_log defaults to failures');
is(sq("SHOW eventbus.attempt_retention"), '7d', 'attempt_retention defaults to 7 days');

# the worker keeps the partitions when it starts: today and the two days after
ok(wait_for_value($node, "SELECT count(*) FROM ($partitions) p WHERE string_agg LIKE '%$today%'", '1'),
	'the worker created the partition of today');
is(sq("SELECT count(*) FROM pg_inherits WHERE inhparent = 'eventbus.delivery_attempts'::regclass"),
	'4', 'three daily partitions and the default one');

# waits until every delivery of rule $r has settled
sub settled
{
	my ($r) = @_;
	return wait_for_value($node,
		"SELECT count(*) FROM eventbus.deliveries WHERE rule = '$r'", '0');
}

# 500, 500, 200: three rows with the statuses, attempt numbers and durations
add_target($node, 'flaky', 'test.flaky', 'flaky',
	$sink->url('/status/500-then-500-then-200?body=nope'));
my $flaky_id = publish($node, 'test.flaky', 1)->[0];
ok(settled('flaky'), 'flaky: settled');
is( sq(  "SELECT string_agg(concat_ws(',', attempt, http_status, coalesce(error_code, '-'),"
		  . " coalesce(response_excerpt, '-'), duration > '0', event_id = '$flaky_id',"
		  . " bus, rule, target_id), ' ' ORDER BY attempt) FROM eventbus.delivery_attempts"
		  . " WHERE rule = 'flaky'"),
	'1,500,ERROR_FROM_TARGET,nope,t,t,default,flaky,flaky '
	  . '2,500,ERROR_FROM_TARGET,nope,t,t,default,flaky,flaky '
	  . '3,200,-,nope,t,t,default,flaky,flaky',
	'flaky: three attempts logged with their statuses, numbers and durations');
is( sq(  "SELECT bool_and(started_at > prev) FROM (SELECT started_at,"
		  . " lag(started_at) OVER (ORDER BY attempt) AS prev FROM eventbus.delivery_attempts"
		  . " WHERE rule = 'flaky') s WHERE prev IS NOT NULL"),
	't', 'flaky: each attempt started after the one before');
is(sq("SELECT count(*) FROM eventbus.delivery_attempts WHERE started_at > now()"
		  . " OR started_at < now() - interval '1 minute'"),
	'0', 'started_at is when the attempt started');

# the excerpt: the first 1,024 bytes, cut at a character boundary
add_target($node, 'long', 'test.long', 'long',
	$sink->url('/status/500?body=' . ('a' x 1023) . '%C3%A9tail'), max_retry_attempts => 0);
publish($node, 'test.long', 1);
ok(settled('long'), 'long: settled');
is(sq("SELECT octet_length(response_excerpt) || ' ' || (response_excerpt = repeat('a', 1023))"
		  . " FROM eventbus.delivery_attempts WHERE rule = 'long'"),
	'1023 true', 'long: excerpt cut before the character the 1,024th byte splits');

# bytes that are not text (here NUL, a kilobyte of them) are replaced
my $evil = start_sink(script => 'hostile.py');
add_target($node, 'zeros', 'test.zeros', 'zeros', $evil->url('/huge-body-500'),
	max_retry_attempts => 0);
publish($node, 'test.zeros', 1);
ok(settled('zeros'), 'zeros: settled');
is(sq("SELECT http_status || ' ' || (response_excerpt = repeat(U&'\\FFFD', 1024))"
		  . " FROM eventbus.delivery_attempts WHERE rule = 'zeros'"),
	'500 true', 'zeros: each of the 1,024 bytes is replaced by U+FFFD');
is(sq("SELECT d.response_excerpt = a.response_excerpt FROM eventbus.dead_letters d"
		  . " JOIN eventbus.delivery_attempts a USING (event_id) WHERE d.rule = 'zeros'"),
	't', 'zeros: the dead letter keeps the same excerpt (one definition)');
$evil->stop;

# a transport error: no status, the error code
add_target($node, 'closed', 'test.closed', 'closed', $sink->url('/close'),
	max_retry_attempts => 0);
publish($node, 'test.closed', 1);
ok(settled('closed'), 'closed: settled');
is(sq("SELECT concat_ws(',', coalesce(http_status::text, 'null'), error_code,"
		  . " coalesce(response_excerpt, 'null')) FROM eventbus.delivery_attempts"
		  . " WHERE rule = 'closed'"),
	'null,CONNECTION_FAILURE,null', 'closed: no status, error code, no excerpt');

# the insert touches only the partition it writes to: it goes through while
# the other partitions are locked
my $locker = $node->background_psql('postgres');
$locker->query_safe("BEGIN; LOCK TABLE eventbus.$tomorrow, eventbus.delivery_attempts_default"
	  . " IN ACCESS EXCLUSIVE MODE;");
add_target($node, 'plain', 'test.plain', 'plain', $sink->url('/ok'));
publish($node, 'test.plain', 1);
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.$today WHERE rule = 'plain'", '1', 30),
	'the insert runs while the other partitions are locked');
$locker->query_safe('COMMIT');
$locker->quit;

# sets eventbus.attempt_log and waits until the worker has it
sub set_mode
{
	my ($mode) = @_;
	my $offset = -s $node->logfile;
	sq("ALTER SYSTEM SET eventbus.attempt_log = '$mode'; SELECT pg_reload_conf()");
	$node->wait_for_log(qr/reloaded its settings/, $offset);
}

# failures: only attempts that did not deliver
set_mode('failures');
add_target($node, 'flaky2', 'test.flaky2', 'flaky2', $sink->url('/status/503-then-200'));
add_target($node, 'fine', 'test.fine', 'fine', $sink->url('/ok'));
publish($node, 'test.flaky2', 1);
publish($node, 'test.fine', 2);
ok(settled('flaky2') && settled('fine'), 'failures: settled');
is($sink->count('/status/503-then-200'), 2, 'failures: two requests to flaky2');
is(sq("SELECT string_agg(attempt || ':' || http_status, ' ') FROM eventbus.delivery_attempts"
		  . " WHERE rule IN ('flaky2', 'fine')"),
	'1:503', 'failures: only the failed attempt is logged');

# off: nothing
set_mode('off');
add_target($node, 'down', 'test.down', 'down', $sink->url('/status/500?down=1'),
	max_retry_attempts => 1);
publish($node, 'test.down', 1);
ok(settled('down'), 'off: settled');
is($sink->count('/status/500?down'), 2, 'off: the attempts were made');
is(sq("SELECT count(*) FROM eventbus.delivery_attempts WHERE rule = 'down'"), '0',
	'off: nothing logged');

# maintenance lagging: no partition for now; the row goes to the default
# partition, the settle goes through, and maintenance moves it
set_mode('all');
sq("DROP TABLE eventbus.$today");
my $before = sq("SELECT count(*) FROM eventbus.delivery_attempts");
is($before, '0', 'the rows of today went with their partition');
publish($node, 'test.fine', 3);
ok(settled('fine'), 'lagging: settled without a partition for now');
is(sq("SELECT count(*) FROM eventbus.delivery_attempts_default"), '3',
	'lagging: the rows are in the default partition');
is(sq("SELECT string_agg(action || ' ' || partition_name || ' ' || coalesce(moved_rows::text, '-'), ', ')"
		  . " FROM eventbus.maintain_attempt_log()"),
	"created $today -, drained delivery_attempts_default 3",
	'lagging: maintenance creates the partition and drains the default one');
is(sq("SELECT count(*) FROM eventbus.delivery_attempts_default") . ' '
	  . sq("SELECT count(*) FROM eventbus.$today WHERE rule = 'fine'"),
	'0 3', 'lagging: the rows moved to their partition');
is(sq("SELECT count(*) FROM eventbus.maintain_attempt_log()"), '0',
	'maintenance with nothing to do does nothing');

# retention: whole days dropped, no DELETE
my $dropped = sq("SELECT string_agg(action || ' ' || partition_name, ', ' ORDER BY action, partition_name)"
	  . " FROM eventbus.maintain_attempt_log(now() + eventbus.attempt_retention() + interval '1 day')");
like($dropped, qr/^(created \w+, ){3}dropped $today$/,
	'retention: the partitions of the new days are created and that of today is dropped');
is(sq("SELECT count(*) FROM eventbus.delivery_attempts"), '0', 'retention: the log is empty');
is(sq("SELECT count(*) FROM pg_inherits WHERE inhparent = 'eventbus.delivery_attempts'::regclass"),
	'6', 'retention: the partitions still in the window and the default one are left');
sq("SELECT pg_stat_force_next_flush()");
is(sq("SELECT coalesce(sum(n_tup_del), 0) FROM pg_stat_user_tables"
		  . " WHERE schemaname = 'eventbus' AND relname LIKE 'delivery_attempts%'"),
	'0', 'retention: no row was deleted');

# bad input
my ($rc, $out, $err) = $node->psql('postgres', "SELECT eventbus.maintain_attempt_log('infinity')");
like($err, qr/invalid as_of "infinity"/, 'maintain_attempt_log refuses an infinite time');

# privileges: operators only
sq("CREATE ROLE nobody LOGIN; GRANT USAGE ON SCHEMA eventbus TO nobody");
($rc, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM eventbus.delivery_attempts',
	extra_params => [ '-U', 'nobody' ]);
like($err, qr/permission denied/, 'a role without grants cannot read the log');
($rc, $out, $err) = $node->psql('postgres', 'SELECT eventbus.maintain_attempt_log()',
	extra_params => [ '-U', 'nobody' ]);
like($err, qr/permission denied/, 'a role without grants cannot keep the log');

$sink->stop;
$node->stop;
done_testing();
