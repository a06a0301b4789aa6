/*-------------------------------------------------------------------------
 *
 * envelope.h
 *	  The EventBridge envelope of an event, in one place: the JSON text a
 *	  target receives, the matcher's input, eventbus.envelope() in SQL, and
 *	  the range of times an envelope can spell.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_ENVELOPE_H
#define EB_ENVELOPE_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "utils/uuid.h"

#include "ebm.h"

/* The columns of eventbus.events the envelope is made of, in this order. */
typedef enum EbEventColumn
{
	EB_EV_ID,
	EB_EV_DETAIL_TYPE,
	EB_EV_SOURCE,
	EB_EV_ACCOUNT,
	EB_EV_TIME,
	EB_EV_REGION,
	EB_EV_RESOURCES,
	EB_EV_DETAIL,
	EB_EV_REPLAY_NAME,
	EB_EV_NCOLUMNS
} EbEventColumn;

/* Their names in eventbus.events, indexed by EbEventColumn. */
extern const char *const eb_event_column_names[EB_EV_NCOLUMNS];

/* "YYYY-MM-DDTHH:MM:SSZ" and the terminating zero */
#define EB_TIME_TEXT_LEN 21

/* "msg_", 32 hex digits and the terminating zero */
#define EB_WEBHOOK_ID_LEN 37

extern bool eb_envelope_time_text(TimestampTz time, char *out);
extern bool eb_event_columns(HeapTuple tuple, TupleDesc desc, Datum *values,
							 bool *isnull);
extern char *eb_envelope_text(const Datum *values, const bool *isnull, int *len);
extern void eb_envelope_feed(ebm_builder *b, const Datum *values,
							 const bool *isnull);
extern void eb_rule_arn(StringInfo buf, const char *region, const char *account,
						const char *bus, const char *rule);
extern void eb_webhook_id(char *out, const pg_uuid_t *event_id, const char *bus,
						  const char *rule, const char *target_id);

#endif							/* EB_ENVELOPE_H */
