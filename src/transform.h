/*-------------------------------------------------------------------------
 *
 * transform.h
 *	  What a target receives instead of the envelope: a constant (input),
 *	  a part of the envelope (input_path) or a template filled from it
 *	  (input_transformer), as EventBridge's Input, InputPath and
 *	  InputTransformer.  Pure functions over the envelope; the checks that
 *	  put_target runs when the target is saved.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_TRANSFORM_H
#define EB_TRANSFORM_H

#include "datatype/timestamp.h"

/* EventBridge's bounds */
#define EB_TRANSFORM_MAX_PATHS 100
#define EB_TRANSFORM_MAX_TEMPLATE 8192
#define EB_TRANSFORM_MAX_PATH_LEN 256
#define EB_TRANSFORM_MAX_NAME_LEN 256

/* The output is at most this many times eventbus.max_event_size. */
#define EB_TRANSFORM_OUTPUT_FACTOR 4

extern char *eb_transform_delivery(Datum spec, char *envelope_text,
								   const char *bus, const char *rule,
								   TimestampTz published_at, int *len,
								   bool *plain_text, char *err, size_t errlen);

#endif							/* EB_TRANSFORM_H */
