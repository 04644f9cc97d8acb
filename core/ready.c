/* SPDX-License-Identifier: MIT */
/* Ready and interest bits, and the poll(2) mask mapping: the exported forms of core/ready.h. */
#include "ready.h"

unsigned urp_ready_from_poll(unsigned poll_mask)
{
	return urp__ready_from_poll(poll_mask);
}

unsigned urp_ready_from_interest(unsigned interest)
{
	return urp__ready_from_interest(interest);
}
