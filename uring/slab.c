/* SPDX-License-Identifier: MIT */
/* The driver's allocator of registrations (uring/driver.h, struct urp__slab). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"

#define SLAB_CHUNK (64u * 1024u)

void urp__slab_init(struct urp__slab *slab, size_t slot)
{
	memset(slab, 0, sizeof(*slab));
	slab->slot = slot;
}

int urp__slab_alloc(struct urp__slab *slab, void **out)
{
	char *chunk, *slot;

	urp__lock(&slab->lock);
	if (slab->free) {
		slot = (char *)slab->free;
		slab->free = slab->free->next;
	} else {
		/* Room measured by subtraction: bump + slot on the first call (bump NULL) or
		 * past a chunk's end is undefined behaviour (UBSan's pointer-overflow). */
		if (!slab->bump || (size_t)(slab->bump_end - slab->bump) < slab->slot) {
			/* Pages of a new chunk are touched only as its slots are first used. */
			chunk = aligned_alloc(URP__CACHE_PAIR, SLAB_CHUNK);
			if (!chunk) {
				urp__unlock(&slab->lock);
				return -ENOMEM;
			}
			((struct urp__snode *)chunk)->next = slab->chunks;
			slab->chunks = (struct urp__snode *)chunk;
			slab->bump = chunk + slab->slot;
			slab->bump_end = chunk + SLAB_CHUNK;
		}
		slot = slab->bump;
		slab->bump += slab->slot;
	}
	urp__unlock(&slab->lock);
	memset(slot, 0, slab->slot);
	*out = slot;
	return 0;
}

/* The slot's first bytes hold the free list's link: a late CQE that names a freed
 * registration reads its magic, zeroed by the caller, further in. */
void urp__slab_free(struct urp__slab *slab, void *slot)
{
	struct urp__snode *node = slot;

	urp__lock(&slab->lock);
	node->next = slab->free;
	slab->free = node;
	urp__unlock(&slab->lock);
}

void urp__slab_destroy(struct urp__slab *slab)
{
	while (slab->chunks) {
		struct urp__snode *chunk = slab->chunks;

		slab->chunks = chunk->next;
		free(chunk);
	}
	slab->free = NULL;
	slab->bump = slab->bump_end = NULL;
}
