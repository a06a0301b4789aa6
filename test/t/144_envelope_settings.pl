# eventbus.account and eventbus.region go into every envelope, so only a
# superuser may set them, and only to well-formed values: 12 digits for the
# account, 1 to 64 of a-z, 0-9 and '-' for the region.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('envelope_settings');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_eventbus'\n");
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_eventbus;
CREATE ROLE app LOGIN;
GRANT USAGE ON SCHEMA eventbus TO app;
GRANT EXECUTE ON FUNCTION eventbus.put_event(text, text, jsonb, text[], text, timestamptz) TO app;
});

# a publisher cannot forge the envelope's account or region
for my $setting (qw(account region))
{
	my ($ret, $out, $err) = $node->psql('postgres',
		"SET eventbus.$setting = '111111111111'", extra_params => [ '-U', 'app' ]);
	like($err, qr/permission denied to set parameter "eventbus\.$setting"/,
		"a publisher cannot set eventbus.$setting");
}

my @bad = (
	[ account => 'abc', qr/must be 12 digits/ ],
	[ account => '1234567890123', qr/must be 12 digits/ ],
	[ account => '', qr/must be 12 digits/ ],
	[ region => 'EU-WEST-1', qr/must be 1 to 64 characters of a-z, 0-9 and '-'/ ],
	[ region => 'a' x 65, qr/must be 1 to 64 characters/ ],
	[ region => '', qr/must be 1 to 64 characters/ ],
	[ region => 'x' x 100_000, qr/must be 1 to 64 characters/ ],
);
for my $case (@bad)
{
	my ($setting, $value, $re) = @$case;
	my ($ret, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\nSET eventbus.$setting = '$value'");
	like($err, qr/ERROR:  22023: invalid value for parameter "eventbus\.$setting"/,
		"eventbus.$setting rejects a value of " . length($value) . ' characters (22023)');
	like($err, qr/DETAIL:  eventbus\.$setting $re/, "  ... and says why");
	like($err, qr/HINT:  Set it to a value such as/, '  ... and how to fix it');
}

is($node->safe_psql('postgres', q{
SET eventbus.account = '123456789012';
SET eventbus.region = 'eu-west-1';
SET ROLE app;
SELECT eventbus.put_event('com.example', 'Test', '{}') IS NOT NULL;
RESET ROLE;
SELECT account || ' ' || region FROM eventbus.events;
}), "t\n123456789012 eu-west-1", 'a superuser sets them; the envelope carries them');

$node->stop;
done_testing();
