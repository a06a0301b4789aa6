/*-------------------------------------------------------------------------
 *
 * slots.h
 *	  How a worker shares its request slots (eventbus.max_concurrent_requests)
 *	  among targets, so that stuck targets cannot take them all.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_SLOTS_H
#define EB_SLOTS_H

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"

extern void eb_slots_init(void);
extern bool eb_slots_take(const char *target_key);
extern void eb_slots_return(const char *target_key, bool answered);
extern int	eb_slots_default_room(void);
extern bool eb_slots_claim_state(StringInfo buf, TimestampTz *earliest_unpause);
extern void eb_slots_set_low(const char *target_key, TimestampTz low);
extern void eb_slots_forget_low(const char *target_key);

#endif							/* EB_SLOTS_H */
