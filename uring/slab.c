/* SPDX-License-Identifier: MIT */
/* The driver's allocator of registrations (uring/driver.h, struct urp__slab). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"

#define SLAB_CHUNK (64u * 1024u)

_Static_assert(SLAB_CHUNK % sizeof(struct urp__reg) == 0, "chunks are whole slots");

int urp__slab_alloc(struct urp__slab *slab, struct urp__reg **out)
{
	struct urp__reg *reg;
	char *chunk;

	urp__lock(&slab->lock);
	if (slab->free) {
		reg = urp__container_of(slab->free, struct urp__reg, cmd_link);
		slab->free = slab->free->next;
	} else {
		if (slab->bump == slab->bump_end) {
			/* Pages of a new chunk are touched only as its slots are first used. */
			chunk = aligned_alloc(URP__CACHE_PAIR, SLAB_CHUNK);
			if (!chunk) {
				urp__unlock(&slab->lock);
				return -ENOMEM;
			}
			((struct urp__snode *)chunk)->next = slab->chunks;
			slab->chunks = (struct urp__snode *)chunk;
			slab->bump = chunk + sizeof(struct urp__reg);
			slab->bump_end = chunk + SLAB_CHUNK;
		}
		reg = (struct urp__reg *)slab->bump;
		slab->bump += sizeof(struct urp__reg);
	}
	urp__unlock(&slab->lock);
	memset(reg, 0, sizeof(*reg));
	*out = reg;
	return 0;
}

void urp__slab_free(struct urp__slab *slab, struct urp__reg *reg)
{
	reg->magic = 0;
	urp__lock(&slab->lock);
	reg->cmd_link.next = slab->free;
	slab->free = &reg->cmd_link;
	urp__unlock(&slab->lock);
}

void urp__slab_destroy(struct urp__slab *slab)
{
	while (slab->chunks) {
		struct urp__snode *chunk = slab->chunks;

		slab->chunks = chunk->next;
		free(chunk);
	}
	memset(slab, 0, sizeof(*slab));
}
