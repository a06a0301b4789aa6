/*-------------------------------------------------------------------------
 *
 * slots.h
 *	  How a worker shares its request slots (eventbus.max_concurrent_requests)
 *	  among targets, so that stuck targets cannot take them all.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTBUS_SLOTS_H
#define EVENTBUS_SLOTS_H

extern void eb_slots_init(void);
extern bool eb_slots_take(const char *target_key);
extern void eb_slots_return(const char *target_key, bool answered);
extern char **eb_slots_full_targets(int *count);

#endif							/* EVENTBUS_SLOTS_H */
