# pg_eventbus: an EventBridge-style event bus inside PostgreSQL.
#
# Builds with PGXS:  make && make install  (PG_CONFIG=... to pick a server)
# make installcheck  pg_regress + isolation tests against a running server
# make prove_installcheck  TAP tests (test/t/*.pl), as a non-root user
# make check-matcher  unit, conformance and valgrind runs of the matcher
# make check-policy  unit tests of the retry policy
# make bench-match | bench-publish | bench-dispatch | bench-steady | bench-ratelimit  benchmarks (bench/)

EXTENSION = pg_eventbus
MODULE_big = pg_eventbus
DATA = $(wildcard pg_eventbus--*.sql)

OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c) $(wildcard src/matcher/*.c)))

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --load-extension=pg_eventbus --inputdir=.
ISOLATION = $(patsubst test/specs/%.spec,%,$(sort $(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --load-extension=pg_eventbus --inputdir=test --outputdir=test/output_iso
PROVE_TESTS = $(sort $(wildcard test/t/*.pl))

PG_CPPFLAGS = -I$(srcdir)/src -I$(srcdir)/src/matcher
PG_CFLAGS = -std=gnu99 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers $(EXTRA_CFLAGS)
SHLIB_LINK = -lcurl -lm

EXTRA_CLEAN = test/output_iso

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# after PGXS, which resets it
PROVE_FLAGS = -I test/perl

.PHONY: prove_installcheck check-policy check-matcher fuzz-matcher bench-match bench-publish bench-dispatch bench-steady bench-ratelimit

# TAP tests against the installed extension (PGXS defines the recipe only)
prove_installcheck:
	$(prove_installcheck)

check-policy:
	$(MAKE) -C test/policy check

check-matcher:
	$(MAKE) -C test/matcher check valgrind

fuzz-matcher:
	$(MAKE) -C test/matcher fuzz

bench-match:
	$(MAKE) -C bench/match

bench-publish:
	bash bench/publish/run.sh

bench-dispatch:
	bash bench/dispatch/run.sh

# how closely rate_limit holds at 50/s and 2,000/s, with 1 and 2 workers
bench-ratelimit:
	bash bench/ratelimit/run.sh

# PG_BIN picks the PostgreSQL to build against and run (default the system's 15)
bench-steady:
	bash bench/steady/run.sh
