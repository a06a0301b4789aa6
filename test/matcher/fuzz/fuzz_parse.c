/*
 * fuzz_parse.c
 *	  libFuzzer harness: JSON text -> jansson -> builder -> pattern parser.
 *	  Inputs jansson rejects are skipped.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ebm.h"
#include "jsonfeed.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static ebm_builder *b;
	ebm_pattern *p = NULL;
	ebm_error	err;

	if (b == NULL)
		b = ebm_builder_new();
	if (jf_feed_text(b, (const char *) data, size) != EBM_OK)
		return 0;
	if (ebm_pattern_parse(b, &p, &err) == EBM_OK)
		ebm_pattern_free(p);
	else if (memchr(err.message, '\0', sizeof(err.message)) == NULL ||
			 memchr(err.path, '\0', sizeof(err.path)) == NULL ||
			 memchr(err.op, '\0', sizeof(err.op)) == NULL)
		abort();				/* error strings must be terminated */
	return 0;
}
