/* SPDX-License-Identifier: MIT */
/* Ready and interest bits, and the poll(2) mask mapping: the exported forms of core/ready.h, and
 * the mapping's table. */
#include "ready.h"

/* Index i stands for the mask with i's low five bits and, for bit 5, POLLRDHUP. */
#define MASK_OF(i) (((i) & 0x1fu) | (((i) & 0x20u) << 8))
#define ROW(i)                                                                                     \
	URP__READY_FROM_POLL(MASK_OF(i)), URP__READY_FROM_POLL(MASK_OF((i) + 1)),                  \
		URP__READY_FROM_POLL(MASK_OF((i) + 2)), URP__READY_FROM_POLL(MASK_OF((i) + 3)),    \
		URP__READY_FROM_POLL(MASK_OF((i) + 4)), URP__READY_FROM_POLL(MASK_OF((i) + 5)),    \
		URP__READY_FROM_POLL(MASK_OF((i) + 6)), URP__READY_FROM_POLL(MASK_OF((i) + 7))

const uint8_t urp__poll_ready[64] = { ROW(0),  ROW(8),	ROW(16), ROW(24),
				      ROW(32), ROW(40), ROW(48), ROW(56) };

unsigned urp_ready_from_poll(unsigned poll_mask)
{
	return urp__ready_from_poll(poll_mask);
}

unsigned urp_ready_from_interest(unsigned interest)
{
	return urp__ready_from_interest(interest);
}
