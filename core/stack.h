/* SPDX-License-Identifier: MIT */
/*
 * A multi-producer, single-consumer intrusive stack (Treiber): any thread pushes, one consumer
 * takes everything at once and gets it back oldest first. Taking the whole stack with one
 * exchange leaves no ABA window. Used for commands to the driver and for wakes of loop tasks
 * from other threads.
 */
#ifndef URP_CORE_STACK_H
#define URP_CORE_STACK_H

#include "atomic.h"

struct urp__snode {
	struct urp__snode *next;
};

static inline void urp__stack_push(void **head, struct urp__snode *node)
{
	void *old = urp__ptr_load_acquire(head);

	do {
		node->next = old;
	} while (!urp__ptr_cas_release(head, &old, node));
}

/* Every node pushed so far, oldest first (NULL when empty, without a write). */
static inline struct urp__snode *urp__stack_take_fifo(void **head)
{
	struct urp__snode *node, *next, *fifo = NULL;

	/* Pairs with the release CAS in urp__stack_push(). */
	if (!urp__ptr_load_acquire(head))
		return NULL;
	node = urp__ptr_xchg_acquire(head, NULL);
	while (node) {
		next = node->next;
		node->next = fifo;
		fifo = node;
		node = next;
	}
	return fifo;
}

#endif /* URP_CORE_STACK_H */
