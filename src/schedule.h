/*-------------------------------------------------------------------------
 *
 * schedule.h
 *	  Scheduled rules: EventBridge's rate() and cron() expressions, the
 *	  next time a schedule fires in its time zone, and the publishing of
 *	  a rule's Scheduled Event.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_SCHEDULE_H
#define EB_SCHEDULE_H

/*
 * While a Scheduled Event is being published, the rule it is for (else
 * NULL): the match trigger sends that event to this rule's targets only.
 */
extern const char *eb_schedule_publishing_rule(void);

#endif							/* EB_SCHEDULE_H */
