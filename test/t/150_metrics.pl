# eventbus.metrics() is valid Prometheus text exposition, and Debian's
# prometheus-postgres-exporter, run with contrib/prometheus/queries.yaml
# against this cluster as a pg_monitor role, serves the bus's metrics.
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use EventbusTest;

my $exporter_bin = '/usr/bin/prometheus-postgres-exporter';
my $queries = abs_path(dirname(__FILE__) . '/../../contrib/prometheus/queries.yaml');

my $sink = start_sink();
my $node = new_node('metrics');

$node->safe_psql(
	'postgres', qq{
SELECT eventbus.create_event_bus('orders/eu');
SELECT eventbus.put_rule('m', '{"source": ["test.metrics"]}', bus => 'orders/eu');
SELECT eventbus.put_target('m', 'ok', '@{[ $sink->url('/ok') ]}', bus => 'orders/eu');
SELECT eventbus.put_target('m', 'down', '@{[ $sink->url('/status/500') ]}', bus => 'orders/eu',
						   max_retry_attempts => 1);
SELECT eventbus.put_event('test.metrics', 'Test Event', jsonb_build_object('i', g), bus => 'orders/eu')
FROM generate_series(1, 4) g;
});
ok(wait_for_value($node, 'SELECT count(*) FROM eventbus.deliveries', '0'), 'deliveries settled');

# --- the text of eventbus.metrics() ------------------------------------------
my $text = $node->safe_psql('postgres', 'SELECT eventbus.metrics()');
my (%type, %help, @errors, %samples);
my $label_re = qr/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"/;
my $value_re = qr/[+-]?(?:\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|NaN|[+-]?Inf)/;
for my $line (split /\n/, $text)
{
	if ($line =~ /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S/)
	{
		push @errors, "second HELP for $1" if $help{$1}++;
	}
	elsif ($line =~ /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/)
	{
		push @errors, "TYPE of $1 after its samples" if grep { /^\Q$1\E(_bucket|_sum|_count)?$/ } keys %samples;
		$type{$1} = $2;
	}
	elsif ($line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{($label_re(?:,$label_re)*)\})? ($value_re)$/)
	{
		push @{ $samples{$1} }, [ $2 // '', $3 ];
	}
	else
	{
		push @errors, "not exposition format: $line";
	}
}
is_deeply(\@errors, [], 'every line of metrics() is a HELP, a TYPE or a sample');

# every sample belongs to a family with HELP and TYPE
for my $name (sort keys %samples)
{
	my $family = $name;
	$family =~ s/_(bucket|sum|count)$// if !exists $type{$name};
	ok(exists $type{$family} && exists $help{$family}, "$name: its family has HELP and TYPE")
	  or diag("no TYPE/HELP for $family");
	like($family, qr/_total$/, "$family: a counter ends in _total")
	  if ($type{$family} // '') eq 'counter';
}

# histograms: cumulative buckets ending with le="+Inf", which equals _count
for my $family (grep { $type{$_} eq 'histogram' } sort keys %type)
{
	my %series;
	for my $s (@{ $samples{"${family}_bucket"} // [] })
	{
		my ($labels, $value) = @$s;
		my ($le) = $labels =~ /(?:^|,)le="([^"]*)"/;
		(my $rest = $labels) =~ s/(?:^|,)le="[^"]*"$//;
		push @{ $series{$rest} }, [ $le, $value ];
	}
	my %count = map { $_->[0] => $_->[1] } @{ $samples{"${family}_count"} // [] };
	ok(%series, "$family: has bucket series");
	for my $rest (sort keys %series)
	{
		my @b = @{ $series{$rest} };
		my $ok = $b[-1][0] eq '+Inf';
		for my $i (1 .. $#b)
		{
			$ok = 0 if $b[$i][1] < $b[ $i - 1 ][1];
			$ok = 0 if $b[$i][0] ne '+Inf' && $b[$i][0] <= $b[ $i - 1 ][0];
		}
		ok($ok, "$family\{$rest\}: buckets cumulative, le increasing, ending with +Inf");
		is($b[-1][1], $count{$rest}, "$family\{$rest\}: le=\"+Inf\" equals _count");
	}
}

# the values, labels escaped
my $t = 'bus="orders/eu",rule="m",target="down"';
is_deeply($samples{eventbus_invocation_attempts_total},
	[ [ 'bus="orders/eu",rule="m",target="down"', 8 ], [ 'bus="orders/eu",rule="m",target="ok"', 4 ] ],
	'eventbus_invocation_attempts_total per target');
is($node->safe_psql('postgres', q{SELECT eventbus.metrics_label(E'a"b\\\\c\\nd')}), 'a\\"b\\\\c\\nd',
	'label values: quote, backslash and newline escaped');
is((grep { $_->[0] eq $t } @{ $samples{eventbus_dead_letter_invocations_total} })[0][1], 4,
	'eventbus_dead_letter_invocations_total of down');
is((grep { $_->[0] eq 'bus="orders/eu"' } @{ $samples{eventbus_put_events_total} })[0][1], 4,
	'eventbus_put_events_total of the bus');

# --- the exporter --------------------------------------------------------------
SKIP:
{
	skip "$exporter_bin is not installed (scripts/setup.sh installs it)", 6
	  unless -x $exporter_bin;

	$node->safe_psql('postgres', 'CREATE ROLE monitor LOGIN IN ROLE pg_monitor');
	my $sock = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1:0') or die;
	my $port = $sock->sockport;
	close($sock);

	my $log = PostgreSQL::Test::Utils::tempdir() . '/exporter.log';
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDOUT, '>', $log);
		open(STDERR, '>&', \*STDOUT);
		$ENV{DATA_SOURCE_NAME} = sprintf('host=%s port=%d user=monitor dbname=postgres sslmode=disable',
			$node->host, $node->port);
		exec($exporter_bin, "--web.listen-address=127.0.0.1:$port",
			"--extend.query-path=$queries", '--disable-default-metrics',
			'--disable-settings-metrics')
		  or die "exec: $!";
	}

	# scrape over HTTP until the bus's metrics are there
	my $scraped = '';
	for (1 .. 100)
	{
		my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 5);
		if ($c)
		{
			print $c "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
			local $/;
			$scraped = <$c> // '';
			close($c);
			last if $scraped =~ /^eventbus_target_invocations\{/m;
		}
		usleep(100_000);
	}
	kill 'TERM', $pid;
	waitpid($pid, 0);

	like($scraped, qr/^HTTP\/1\.[01] 200/, 'the exporter answers 200');
	like($scraped, qr/^pg_exporter_user_queries_load_error\{[^}]*\} 0$/m, 'the exporter loaded queries.yaml');
	like($scraped, qr/^pg_exporter_last_scrape_error 0$/m, 'the exporter scraped without error');
	like($scraped,
		qr/^eventbus_target_invocation_attempts\{(?=[^}]*bus="orders\/eu")(?=[^}]*target="down")[^}]*\} 8$/m,
		'the exporter serves eventbus_target_invocation_attempts of down');
	like($scraped,
		qr/^eventbus_target_success_latency_seconds_count\{(?=[^}]*target="ok")[^}]*\} 4$/m,
		'the exporter serves the success latency histogram');
	like($scraped, qr/^eventbus_status_dead_letters\{[^}]*\} 4$/m,
		'the exporter serves the dead letters');
	diag(substr($scraped, 0, 2000)) unless $scraped =~ /eventbus_status_dead_letters/;
}

# a role without pg_monitor sees nothing
$node->safe_psql('postgres', 'CREATE ROLE nobody LOGIN');
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT eventbus.metrics()', extra_params => [ '-U', 'nobody' ]);
like($err, qr/permission denied/, 'metrics() is not for PUBLIC');

$node->stop;
$sink->stop;
done_testing();
