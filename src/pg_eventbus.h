/*-------------------------------------------------------------------------
 *
 * pg_eventbus.h
 *	  What the publishing modules share: the settings and saved plans.
 *
 * Only a short-hand for the two headers that own them; it declares nothing
 * of its own.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_PG_EVENTBUS_H
#define EB_PG_EVENTBUS_H

#include "saved_plan.h"
#include "settings.h"

#endif							/* EB_PG_EVENTBUS_H */
