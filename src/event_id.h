/*-------------------------------------------------------------------------
 *
 * event_id.h
 *	  Event ids: time-ordered UUIDs (version 7, RFC 9562).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_EVENT_ID_H
#define EB_EVENT_ID_H

#include "utils/uuid.h"

extern void eb_new_event_id(pg_uuid_t *id);

#endif							/* EB_EVENT_ID_H */
