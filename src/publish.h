/*-------------------------------------------------------------------------
 *
 * publish.h
 *	  Publishing one event: the checks every publish path shares, and the
 *	  insert into eventbus.events.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_PUBLISH_H
#define EB_PUBLISH_H

#include "datatype/timestamp.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

/* An event to publish; a NULL pointer is a missing (SQL NULL) argument. */
typedef struct EbEvent
{
	text	   *source;
	text	   *detail_type;
	Jsonb	   *detail;
	ArrayType  *resources;		/* NULL: no resources */
	const char *bus;
	bool		time_given;		/* otherwise the event's time is now */
	TimestampTz time;
} EbEvent;

/*
 * Why an event was refused, in PostgreSQL's words (for put_event's ERROR)
 * and in AWS's (for a PutEvents entry).  detail and hint may be NULL.
 */
typedef struct EbPublishError
{
	int			sqlerrcode;
	char	   *message;
	char	   *detail;
	char	   *hint;
	const char *aws_code;
	char	   *aws_message;
} EbPublishError;

extern bool eb_publish(const EbEvent *ev, pg_uuid_t *id, EbPublishError *err);
extern void eb_size_error(EbPublishError *err, const char *what, int64 size);
extern const char *eb_jsonb_root_type(Jsonb *jb);
extern void eb_raise_publish_error(const EbPublishError *err) pg_attribute_noreturn();

#endif							/* EB_PUBLISH_H */
