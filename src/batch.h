/*-------------------------------------------------------------------------
 *
 * batch.h
 *	  Batch targets: several claimed rows of one target in one request (a
 *	  JSON array), and the answer's batchItemFailures.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EB_BATCH_H
#define EB_BATCH_H

#include "request.h"

/*
 * Most rows of batch targets one claim takes (two batches of the largest
 * batch_size put_target allows): what a claim holds in memory.
 */
#define EB_BATCH_CLAIM_ROWS 1000

extern void eb_batch_sort(EbClaimedRow *rows, int n);
extern int	eb_batch_group_end(const EbClaimedRow *rows, int n, int start);
extern EbDelivery *eb_batch_build(const EbClaimedRow *rows, int n,
								  EbDelivery ***unsent_tail);
extern void eb_batch_discard(EbDelivery *leader);
extern void eb_batch_started(EbDelivery *leader);
extern EbDelivery *eb_batch_spread(EbDelivery *finished);
extern TimestampTz eb_batch_next_window(void);

#endif							/* EB_BATCH_H */
