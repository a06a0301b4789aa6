/*-------------------------------------------------------------------------
 *
 * envelope.h
 *	  The body and the webhook-id of a delivery, built in C.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_ENVELOPE_H
#define EB_ENVELOPE_H

#include "utils/uuid.h"

/* The columns of eventbus.events that eb_envelope_text() reads. */
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

/* "msg_", 32 hex digits and the terminating zero */
#define EB_WEBHOOK_ID_LEN 37

extern char *eb_envelope_text(const Datum *values, const bool *isnull, int *len);
extern void eb_webhook_id(char *out, const pg_uuid_t *event_id, const char *bus,
						  const char *rule, const char *target_id);

#endif							/* EB_ENVELOPE_H */
