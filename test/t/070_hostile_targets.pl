# Hostile HTTP targets and header values: what crosses the wire.
#
# A raw TCP server (test/sink/hostile.py) answers with HTTP/0.9, garbage,
# bad status lines, cut or endless answers, resets, silence and odd
# Retry-After values.  Every malformed answer must be a retryable target
# fault (never an instant dead letter, never a hang past the timeout), no
# Retry-After may shorten the backoff, an attempt sends a bounded number of
# requests and reads a bounded answer, and header values with control
# characters are refused by put_target and never sent by the worker.
# Healthy deliveries on the same bus go on meanwhile.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use EventbusTest;

my $sink = start_sink();
my $evil = start_sink(script => 'hostile.py');

# a backoff long enough to tell from no backoff: attempt 1 waits
# 300-600 ms, attempt 2 500-1000 ms, later ones 500-1000 ms
my $node = new_node('hostile', conf => qq{
eventbus.retry_base_delay = '300ms'
eventbus.retry_max_delay = '1s'
});

# Waits until target $t has nothing queued; returns its one dead letter.
sub dead_letter_of
{
	my ($t) = @_;
	ok( wait_for_value(
			$node,
			"SELECT count(*) FROM eventbus.deliveries WHERE target_id = '$t'",
			'0', 90),
		"$t: settled");
	my $dl = dead_letters($node, "target_id = '$t'");
	is(scalar @$dl, 1, "$t: one dead letter");
	return $dl->[0] // {};
}

# Times (seconds) at which the hostile server read requests on $path.
sub request_times
{
	my ($server, $path) = @_;
	return [ sort { $a <=> $b } map { $_->{time} }
		  grep { $_->{path} eq $path } @{ $server->received($path) } ];
}

# Bytes the hostile server streamed on $path before the client went away.
sub bytes_sent
{
	my ($path) = @_;
	my $deadline = time() + 30;
	while (time() < $deadline)
	{
		my ($rec) = grep { $_->{path} eq "!sent $path" } @{ $evil->received("!sent $path") };
		return $rec->{bytes} if $rec;
		usleep(100_000);
	}
	return -1;
}

# healthy traffic on the same bus, before and during the hostile part
add_target($node, 'healthy', 'test.healthy', 'healthy', $sink->url('/healthy'));
publish($node, 'test.healthy', 20);
is($sink->wait_count('/healthy', 20), 20, 'healthy: first 20 delivered');

############################################################################
# Malformed answers: retried (2 attempts here), ERROR_FROM_TARGET, one
# request per attempt, the backoff respected between them.
############################################################################
my @malformed = qw(/http09 /huge-status /status/600 /status/100 /no-status
  /garbage /truncated-headers /short-body /bad-chunked /cut-chunked
  /endless-headers /endless-100);
my %tid;
my $i = 0;
for my $path (@malformed)
{
	$i++;
	$tid{$path} = "malformed$i";
	add_target($node, "malformed$i", "test.malformed$i", "malformed$i",
		$evil->url($path), max_retry_attempts => 1, timeout => '5s');
}
publish($node, "test.malformed$_", 1) for 1 .. $i;

# while those are being retried, healthy deliveries go on undisturbed
my $t0 = time();
publish($node, 'test.healthy', 20);
is($sink->wait_count('/healthy', 40), 40, 'healthy: 20 more delivered amid hostile answers');
cmp_ok(time() - $t0, '<', 5, 'healthy: delivered promptly');

for my $path (@malformed)
{
	my $t = $tid{$path};
	my $dl = dead_letter_of($t);
	is( "$dl->{error_code} $dl->{exhausted_condition} $dl->{attempts}",
		'ERROR_FROM_TARGET MaximumRetryAttempts 2',
		"$path: retried as a target fault, not dead-lettered at once");
	note("$path: $dl->{error_message}");
	ok(!defined $dl->{http_status}, "$path: no http_status");
	like($dl->{error_message}, qr/malformed answer: \S/, "$path: message says why")
	  or diag($dl->{error_message});
	my $times = request_times($evil, $path);
	is(scalar @$times, 2, "$path: one request per attempt");
	cmp_ok($times->[1] - $times->[0], '>=', 0.29, "$path: backoff kept between attempts")
	  if @$times == 2;
}
like(dead_letters($node, "target_id = '$tid{'/status/600'}'")->[0]{error_message},
	qr/status 600 is not a final HTTP status/, '/status/600: the status is named');
like(dead_letters($node, "target_id = '$tid{'/endless-headers'}'")->[0]{error_message},
	qr/header section is longer than 65536 bytes/, '/endless-headers: the bound is named');
for my $path ('/endless-headers', '/endless-100')
{
	my $sent = bytes_sent($path);
	cmp_ok($sent, '<', 32 * 1024 * 1024, "$path: reading stopped ($sent bytes sent in all)");
}
my $sent;

############################################################################
# Bounded reads: a huge body is not read to its end; the status decides.
############################################################################
add_target($node, 'bigok', 'test.bigok', 'bigok', $evil->url('/huge-body'), timeout => '10s');
add_target($node, 'big500', 'test.big500', 'big500', $evil->url('/huge-body-500'),
	timeout => '10s', max_retry_attempts => 0);
$t0 = time();
publish($node, 'test.bigok', 1);
publish($node, 'test.big500', 1);
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.deliveries WHERE target_id = 'bigok'", '0'),
	'huge body with 200: settled');
cmp_ok(time() - $t0, '<', 8, 'huge body: settled well before the timeout');
is($node->safe_psql('postgres', "SELECT count(*) FROM eventbus.dead_letters WHERE target_id = 'bigok'"),
	'0', 'huge body with 200: delivered');
is(scalar @{ request_times($evil, '/huge-body') }, 1, 'huge body with 200: one request');
$sent = bytes_sent('/huge-body');
cmp_ok($sent, '<', 32 * 1024 * 1024, "huge body: reading stopped ($sent bytes sent in all)");
my $dl = dead_letter_of('big500');
is("$dl->{error_code} $dl->{http_status}", 'ERROR_FROM_TARGET 500', 'huge body with 500: the status decides');
$sent = bytes_sent('/huge-body-500');
cmp_ok($sent, '<', 32 * 1024 * 1024, "huge body with 500: reading stopped ($sent bytes)");

# a body longer than its Content-Length: the declared answer counts, the
# excess is dropped with the connection and never read as the next answer
add_target($node, 'longbody', 'test.longbody', 'longbody', $evil->url('/long-body'));
add_target($node, 'after', 'test.after', 'after', $evil->url('/ok'));
publish($node, 'test.longbody', 1);
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.deliveries WHERE target_id = 'longbody'", '0'),
	'long body: settled');
publish($node, 'test.after', 3);
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.deliveries WHERE target_id = 'after'", '0'),
	'after long body: settled');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM eventbus.dead_letters WHERE target_id IN ('longbody', 'after')"),
	'0', 'long body: delivered, and the next requests to the host too');
is($evil->count('/long-body') . ' ' . $evil->count('/ok'), '1 3', 'long body: one request each');

############################################################################
# Silence and trickles end at the target's timeout.
############################################################################
for my $path ('/silent', '/trickle')
{
	(my $t = $path) =~ s{/}{};
	add_target($node, $t, "test.$t", $t, $evil->url($path),
		timeout => '1s', max_retry_attempts => 0);
	publish($node, "test.$t", 1);
}
for my $t ('silent', 'trickle')
{
	$dl = dead_letter_of($t);
	is("$dl->{error_code} $dl->{attempts}", 'TIMEOUT 1', "$t: TIMEOUT");
	my $took = $node->safe_psql('postgres',
		"SELECT extract(epoch FROM failed_at - first_attempt_at) FROM eventbus.dead_letters WHERE target_id = '$t'"
	);
	cmp_ok($took, '<', 3, "$t: ended at the timeout ($took s)");
}

############################################################################
# A target that resets every connection after reading the request: libcurl
# resends on another connection when a reused one dies, but at most
# EB_HTTP_MAX_REQUESTS_PER_ATTEMPT (2) requests go out per attempt.
############################################################################
# open several kept-alive connections to the server first
add_target($node, 'warm', 'test.warm', 'warm', $evil->url('/slow-ok'));
publish($node, 'test.warm', 8);
ok(wait_for_value($node, "SELECT count(*) FROM eventbus.deliveries WHERE target_id = 'warm'", '0'),
	'warm-up: delivered');
my %conns = map { $_->{conn} => 1 } @{ $evil->received('/slow-ok') };
cmp_ok(scalar keys %conns, '>=', 3, 'warm-up: several connections kept alive');
add_target($node, 'reset', 'test.reset', 'reset', $evil->url('/reset'), max_retry_attempts => 1);
publish($node, 'test.reset', 1);
$dl = dead_letter_of('reset');
is("$dl->{error_code} $dl->{exhausted_condition} $dl->{attempts}",
	'CONNECTION_FAILURE MaximumRetryAttempts 2', 'reset: retried, CONNECTION_FAILURE');
note("reset: $dl->{error_message}");
my $resets = $evil->count('/reset');
ok($resets >= 2 && $resets <= 4, "reset: at most 2 requests per attempt ($resets for 2 attempts)");

############################################################################
# Retry-After never shortens the backoff, and is capped by retry_max_delay.
############################################################################
my %ra = (
	zero => '0',
	negative => '-5',
	past => 'Sun,%2006%20Nov%201994%2008:49:37%20GMT',
	garbage => 'soon',
	huge => '99999999999');
for my $name (sort keys %ra)
{
	add_target($node, "ra-$name", "test.ra-$name", "ra-$name",
		$evil->url("/retry-after/$ra{$name}"), max_retry_attempts => 2);
	publish($node, "test.ra-$name", 1);
}
for my $name (sort keys %ra)
{
	$dl = dead_letter_of("ra-$name");
	is("$dl->{error_code} $dl->{http_status} $dl->{attempts}", 'ERROR_FROM_TARGET 503 3',
		"Retry-After $name: three attempts");
	my $times = request_times($evil, "/retry-after/$ra{$name}");
	is(scalar @$times, 3, "Retry-After $name: one request per attempt");
	next unless @$times == 3;
	my ($g1, $g2) = ($times->[1] - $times->[0], $times->[2] - $times->[1]);
	cmp_ok($g1, '>=', 0.29, "Retry-After $name: first backoff kept ($g1 s)");
	cmp_ok($g2, '>=', 0.49, "Retry-After $name: second backoff kept ($g2 s)");
	if ($name eq 'huge')
	{
		cmp_ok($g1, '<', 2.5, "Retry-After huge: capped by retry_max_delay ($g1 s)");
		cmp_ok($g2, '<', 2.5, "Retry-After huge: capped by retry_max_delay ($g2 s)");
	}
}

############################################################################
# Header values: put_target refuses control characters (but tab), names
# that are not tokens, and the worker's own headers, naming the header.
############################################################################
add_target($node, 'hdr', 'test.hdr', 'hdr', $sink->url('/hdr'));
my ($rc, $out, $err);
my %bad = (
	'vertical tab' => [ 'X-Vt', 'a\u000bb', qr/control character 0x0B at byte 2/ ],
	'DEL' => [ 'X-Del', 'ab\u007f', qr/control character 0x7F at byte 3/ ],
	'CR' => [ 'X-Cr', 'a\rInjected: 1', qr/control character 0x0D at byte 2/ ],
	'LF' => [ 'X-Lf', 'a\nInjected: 1', qr/control character 0x0A at byte 2/ ],
	'ESC' => [ 'X-Esc', '\u001b[31m', qr/control character 0x1B at byte 1/ ],
	'space in name' => [ 'X Y', 'v', qr/character 0x20 at byte 2/ ],
	'colon in name' => [ 'X:Y', 'v', qr/character 0x3A at byte 2/ ],
	'Host' => [ 'host', 'evil.example', qr/the worker sets this header itself/ ],
	'number' => [ 'X-Num', 1, qr/Its value is a number, not a string/ ]);
for my $case (sort keys %bad)
{
	my ($name, $value, $detail) = @{ $bad{$case} };
	my $json = ref(\$value) eq 'SCALAR' && $value =~ /^\d+$/ ? $value : qq{"$value"};
	($rc, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT eventbus.put_target('hdr', 'hdr', '"
		  . $sink->url('/hdr')
		  . "', headers => '{\"$name\": $json, \"X-Ok\": \"fine\"}')");
	like($err, qr/ERROR:  22023: invalid header "\Q$name\E" for target "hdr"/,
		"put_target refuses a header with $case: 22023 naming it");
	like($err, $detail, "put_target refuses a header with $case: the detail says why");
	like($err, qr/HINT:  \S/, "put_target refuses a header with $case: a hint");
	unlike($err, qr/Injected|evil\.example/, "put_target refuses a header with $case: value not echoed");
}
# size bounds: 8192 bytes for one header, 16384 for all of a target's
($rc, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT eventbus.put_target('hdr', 'hdr', '"
	  . $sink->url('/hdr')
	  . "', headers => jsonb_build_object('X-Big', repeat('a', 9000)))");
like($err, qr/ERROR:  54000: invalid header "X-Big" for target "hdr"/, 'put_target: a header over 8192 bytes, 54000');
like($err, qr/its name and value are 9005 bytes, more than 8192/, 'put_target: a header over 8192 bytes, the detail');
($rc, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT eventbus.put_target('hdr', 'hdr', '"
	  . $sink->url('/hdr')
	  . "', headers => jsonb_build_object('X-A', repeat('a', 6000), 'X-B', repeat('b', 6000), 'X-C', repeat('c', 6000)))");
like($err, qr/ERROR:  54000: headers of target "hdr" are too large/, 'put_target: headers over 16384 bytes in all, 54000');
like($err, qr/take 18009 bytes, more than 16384/, 'put_target: headers over 16384 bytes in all, the detail');

$node->safe_psql('postgres',
	"SELECT eventbus.put_target('hdr', 'hdr', '"
	  . $sink->url('/hdr')
	  . "', headers => '{\"X-Tab\": \"a\\tb\", \"X-Utf8\": \"caf\\u00e9\", \"X-Empty\": \"\"}')");
publish($node, 'test.hdr', 1);
is($sink->wait_count('/hdr', 1), 1, 'tab, UTF-8 and empty values: accepted and sent');
my $hdr = $sink->received('/hdr')->[0]{headers};
is($hdr->{'x-tab'}, "a\tb", 'a tab inside a value is sent as it is');

# a target stored with a control character (before put_target checked,
# or written into the table directly) is never sent: its deliveries are
# dead-lettered at once as INVALID_PARAMETER, with the header named and
# the value left out; put_target with fixed headers and a redrive mend it
add_target($node, 'stored', 'test.stored', 'stored', $sink->url('/stored'));
$node->safe_psql('postgres', q{
UPDATE eventbus.targets SET headers = '{"X-Good": "ok", "X-Bad": "s3cret\u000b"}'
WHERE target_id = 'stored'});
publish($node, 'test.stored', 1);
$dl = dead_letter_of('stored');
is("$dl->{error_code} $dl->{exhausted_condition} $dl->{attempts}",
	'INVALID_PARAMETER NonRetryable 1', 'stored bad header: dead-lettered at once');
like($dl->{error_message}, qr/header "X-Bad" of the target was not sent: the value has the control character 0x0B at byte 7/,
	'stored bad header: the message names the header and the character');
unlike($dl->{error_message}, qr/s3cret/, 'stored bad header: the value is not in the message');
is($sink->count('/stored'), 0, 'stored bad header: nothing sent');
$node->safe_psql('postgres',
	"SELECT eventbus.put_target('stored', 'stored', '" . $sink->url('/stored') . "', headers => '{\"X-Bad\": \"s3cret\"}')");
is($node->safe_psql('postgres', "SELECT eventbus.redrive_dead_letters(target_id => 'stored')"),
	'1', 'stored bad header: redriven once fixed');
is($sink->wait_count('/stored', 1), 1, 'stored bad header: delivered once fixed');

# after all this, healthy deliveries still flow, each sent once
publish($node, 'test.healthy', 20);
is($sink->wait_count('/healthy', 60), 60, 'healthy: all 60 delivered');
is($sink->count('/healthy'), 60, 'healthy: each sent once');
is($node->safe_psql('postgres', "SELECT count(*) FROM eventbus.dead_letters WHERE target_id = 'healthy'"),
	'0', 'healthy: no dead letter');

$node->stop;
$sink->stop;
$evil->stop;
done_testing();
