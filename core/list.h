/* SPDX-License-Identifier: MIT */
/*
 * Intrusive doubly linked lists in the kernel's style (include/linux/list.h). Nodes are removed
 * with urp__list_del_init() so their owner can later tell, under the lock, whether someone
 * else already took them off the list.
 */
#ifndef URP_CORE_LIST_H
#define URP_CORE_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct urp__list_head {
	struct urp__list_head *next, *prev;
};

#define urp__container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline void urp__list_init(struct urp__list_head *h)
{
	h->next = h;
	h->prev = h;
}

static inline bool urp__list_empty(const struct urp__list_head *h)
{
	return h->next == h;
}

static inline void urp__list_add_tail(struct urp__list_head *n, struct urp__list_head *h)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

static inline void urp__list_del_init(struct urp__list_head *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	urp__list_init(n);
}

#define urp__list_for_each(pos, head) for (pos = (head)->next; pos != (head); pos = pos->next)

#define urp__list_for_each_safe(pos, tmp, head)                                                    \
	for (pos = (head)->next, tmp = pos->next; pos != (head); pos = tmp, tmp = pos->next)

#endif /* URP_CORE_LIST_H */
