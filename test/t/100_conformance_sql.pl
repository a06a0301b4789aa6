# Runs every case of the EventBridge conformance corpus (read in place from
# ../shared/conformance, or $EVENTBUS_CONFORMANCE_DIR) through
# eventbus.test_event_pattern and eventbus.validate_event_pattern: the SQL
# path, where patterns and events arrive as jsonb.
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $dir = $ENV{EVENTBUS_CONFORMANCE_DIR}
  // dirname(abs_path(__FILE__)) . '/../../../shared/conformance';
my $corpus = "$dir/patterns.jsonl";
plan skip_all => "no conformance corpus at $corpus" unless -r $corpus;

# Cases whose SQL verdict differs from the corpus, and why (README,
# "Deliberate differences").  The test asserts the SQL verdict given here.
my %sql_differs = (
	'w-lenient-trailing-garbage' => [ 'invalid',
		'the pattern is jsonb in SQL, and jsonb input rejects text after the closing brace' ],
	'er-JsonRuleCompilerTest-testWithRuleOverride-ebd8bd0f' => [ 'nomatch',
		'jsonb does not keep key order: event-ruler lets the later of two conditions on one field win, and jsonb puts "$or" before "name"' ],
);

my $node = PostgreSQL::Test::Cluster->new('conformance');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_eventbus');

# Load the corpus lines verbatim (CSV with quote and delimiter characters
# that never occur in it), then judge every case in one server-side pass.
$node->safe_psql('postgres', qq{
	CREATE TABLE cases (n serial, line text);
	COPY cases (line) FROM '$corpus' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02');
	CREATE FUNCTION judge(line text) RETURNS text LANGUAGE plpgsql AS \$\$
	DECLARE
		c jsonb := line::jsonb;
		pattern jsonb;
		event jsonb;
	BEGIN
		BEGIN
			pattern := coalesce(nullif(c -> 'pattern', 'null'), (c ->> 'pattern_text')::jsonb);
			PERFORM eventbus.validate_event_pattern(pattern);
		EXCEPTION WHEN others THEN
			RETURN 'invalid';
		END;
		IF NOT (c ? 'event' OR c ? 'event_text') THEN
			RETURN 'valid';
		END IF;
		event := coalesce(nullif(c -> 'event', 'null'), (c ->> 'event_text')::jsonb);
		RETURN CASE WHEN eventbus.test_event_pattern(pattern, event) THEN 'match' ELSE 'nomatch' END;
	END \$\$;
});

my $out = $node->safe_psql('postgres', q{
	SELECT line::jsonb ->> 'id',
		   CASE WHEN (line::jsonb ->> 'invalid')::boolean THEN 'invalid'
				WHEN line::jsonb ? 'match' THEN
					CASE WHEN (line::jsonb ->> 'match')::boolean THEN 'match' ELSE 'nomatch' END
				ELSE 'valid' END,
		   judge(line)
	FROM cases ORDER BY n});

my @rows = split /\n/, $out;
cmp_ok(scalar(@rows), '>=', 1000, 'the corpus has its cases (' . scalar(@rows) . ')');
my %seen_differs;
foreach my $row (@rows)
{
	my ($id, $expected, $got) = split /\|/, $row;
	if (my $d = $sql_differs{$id})
	{
		$seen_differs{$id} = 1;
		is($got, $d->[0], "$id: $d->[1]");
		next;
	}
	is($got, $expected, "$id");
}
is_deeply([ sort keys %seen_differs ], [ sort keys %sql_differs ],
	'every listed difference is still in the corpus');

$node->stop;
done_testing();
