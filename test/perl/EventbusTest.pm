# EventbusTest: shared helpers of the pg_eventbus TAP tests.
#
# start_sink() runs test/sink/sink.py on 127.0.0.1 (ephemeral port) and
# returns an object to build its URLs and read what it received;
# new_node() returns a started cluster with pg_eventbus preloaded, the
# worker pointed at database "postgres" and fast retry settings.
package EventbusTest;

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

our @EXPORT = qw(start_sink new_node add_target publish wait_for_value
  worker_pid dead_letters);

my $sink_dir = abs_path(dirname(__FILE__) . '/../sink');

# Starts the HTTP sink; fast => 1 answers 204 and records nothing; raw => 1
# also records each body's bytes (body_base64);
# script => 'hostile.py' starts test/sink/hostile.py instead.
sub start_sink
{
	my (%opts) = @_;
	my $sink_script = "$sink_dir/" . ($opts{script} // 'sink.py');
	my $dir = PostgreSQL::Test::Utils::tempdir();
	my $self = bless {
		dir => $dir,
		port_file => "$dir/port",
		log => "$dir/received.jsonl",
	}, 'EventbusTest::Sink';

	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDOUT, '>', "$dir/sink.out");
		open(STDERR, '>&', \*STDOUT);
		exec('python3', $sink_script, '--port-file', $self->{port_file},
			'--log', $self->{log}, ($opts{fast} ? ('--fast') : ()),
			($opts{raw} ? ('--raw') : ()))
		  or die "exec: $!";
	}
	$self->{pid} = $pid;
	for (1 .. 200)
	{
		last if -s $self->{port_file};
		usleep(50_000);
	}
	open(my $fh, '<', $self->{port_file}) or die "sink did not start";
	chomp($self->{port} = <$fh>);
	close($fh);
	return $self;
}

# A started node with pg_eventbus preloaded and CREATE EXTENSION run
# (unless no_extension => 1); conf => extra postgresql.conf lines.
sub new_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'pg_eventbus'
eventbus.database = 'postgres'
eventbus.retry_base_delay = '20ms'
eventbus.retry_max_delay = '200ms'
eventbus.poll_interval = '500ms'
max_connections = 20
} . ($opts{conf} // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION pg_eventbus')
	  unless $opts{no_extension};
	return $node;
}

# A rule matching source $source with one target; %opts are put_target's
# named arguments (max_retry_attempts => 2, timeout => '1s', ...).
sub add_target
{
	my ($node, $rule, $source, $target_id, $endpoint, %opts) = @_;
	my $args = join('', map { ", $_ => '$opts{$_}'" } sort keys %opts);
	$node->safe_psql(
		'postgres', qq{
SELECT eventbus.put_rule('$rule', '{"source": ["$source"]}');
SELECT eventbus.put_target('$rule', '$target_id', '$endpoint'$args);
});
}

# Publishes $n events from $source in one transaction; returns their ids.
sub publish
{
	my ($node, $source, $n, %opts) = @_;
	my $pad = $opts{pad} ? ", 'pad', repeat('x', $opts{pad})" : '';
	my $out = $node->safe_psql('postgres',
		"SELECT eventbus.put_event('$source', 'Test Event', jsonb_build_object('i', g$pad))"
		  . " FROM generate_series(1, $n) g");
	return [ split /\n/, $out ];
}

# Polls $sql until it returns $expected (default timeout 60 s).
sub wait_for_value
{
	my ($node, $sql, $expected, $timeout) = @_;
	my $deadline = time() + ($timeout // 60);
	my $got;
	while (time() < $deadline)
	{
		$got = $node->safe_psql('postgres', $sql);
		return 1 if $got eq $expected;
		usleep(100_000);
	}
	diag("waited for '$sql' to return '$expected'; last got '$got'");
	return 0;
}

# PID of a running delivery worker, or '' when none.
sub worker_pid
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_eventbus delivery worker' ORDER BY pid LIMIT 1"
	);
}

# The dead letters as array of hashes.
sub dead_letters
{
	my ($node, $where) = @_;
	$where //= 'true';
	my $json = $node->safe_psql('postgres',
		"SELECT coalesce(json_agg(d ORDER BY id), '[]') FROM eventbus.dead_letters d WHERE $where"
	);
	return decode_json($json);
}

package EventbusTest::Sink;

use JSON::PP;

# URL of a path on the sink.
sub url
{
	my ($self, $path) = @_;
	return "http://127.0.0.1:$self->{port}$path";
}

# Every request received so far, as hashes (method, path, headers, body).
sub received
{
	my ($self, $path_prefix) = @_;
	my @out;
	open(my $fh, '<', $self->{log}) or return [];
	while (my $line = <$fh>)
	{
		next unless $line =~ /\n\z/;
		my $rec = decode_json($line);
		next if defined $path_prefix && index($rec->{path}, $path_prefix) != 0;
		push @out, $rec;
	}
	close($fh);
	return \@out;
}

# Number of requests received on paths starting with $path_prefix.
sub count
{
	my ($self, $path_prefix) = @_;
	return scalar @{ $self->received($path_prefix) };
}

# Waits until at least $n requests arrived on $path_prefix; returns the count.
sub wait_count
{
	my ($self, $path_prefix, $n, $timeout) = @_;
	my $deadline = time() + ($timeout // 60);
	my $got = 0;
	while (time() < $deadline)
	{
		$got = $self->count($path_prefix);
		return $got if $got >= $n;
		Time::HiRes::usleep(100_000);
	}
	return $got;
}

sub stop
{
	my ($self) = @_;
	return unless $self->{pid};
	local $?;	# keep the test's exit status
	kill 'TERM', $self->{pid};
	waitpid($self->{pid}, 0);
	delete $self->{pid};
}

sub DESTROY
{
	my ($self) = @_;
	$self->stop;
}

1;
