/*-------------------------------------------------------------------------
 *
 * pg_eventbus.h
 *	  Settings and functions shared by the extension's modules.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_EVENTBUS_H
#define PG_EVENTBUS_H

extern char *eventbus_account;
extern char *eventbus_region;
extern int	eventbus_max_event_size;

#endif							/* PG_EVENTBUS_H */
