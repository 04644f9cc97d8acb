/* SPDX-License-Identifier: MIT */
/*
 * The debug build's set of live entries (core/debug.h): an open-addressing hash table keyed by
 * address, under one mutex. Only URP_DEBUG builds compile it; speed is no concern there.
 */
#ifdef URP_DEBUG
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "debug.h"

enum slot_state { SLOT_EMPTY, SLOT_ALIVE, SLOT_GIVEN_UP, SLOT_DEAD };

struct slot {
	const struct urp_io *io;
	enum slot_state state;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot *slots;
static size_t nslots, used; /* used counts every non-empty slot, dead ones too */

void urp__debug_fail(const char *call, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "urpoll: %s: ", call);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static size_t hash(const struct urp_io *io)
{
	uint64_t h = (uint64_t)(uintptr_t)io * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 17);
}

/* The slot of io, or the empty slot where it would go. */
static struct slot *find(const struct urp_io *io)
{
	size_t i = hash(io) & (nslots - 1);

	while (slots[i].state != SLOT_EMPTY && slots[i].io != io)
		i = (i + 1) & (nslots - 1);
	return &slots[i];
}

/* Keep the table at most half full; dead slots of reused addresses are recycled by find(). */
static void grow(void)
{
	struct slot *old = slots;
	size_t n = nslots;

	nslots = nslots ? nslots * 2 : 1024;
	slots = calloc(nslots, sizeof(*slots));
	if (!slots)
		urp__debug_fail("urp__debug_io_born", "out of memory for the debug entry table");
	used = 0;
	for (size_t i = 0; i < n; i++) {
		if (old[i].state == SLOT_ALIVE || old[i].state == SLOT_GIVEN_UP) {
			*find(old[i].io) = old[i];
			used++;
		}
	}
	free(old);
}

void urp__debug_io_born(const struct urp_io *io)
{
	struct slot *s;

	pthread_mutex_lock(&lock);
	if (2 * (used + 1) > nslots)
		grow();
	s = find(io);
	if (s->state == SLOT_EMPTY)
		used++;
	s->io = io;
	s->state = SLOT_ALIVE;
	pthread_mutex_unlock(&lock);
}

static enum slot_state state_of(const struct urp_io *io)
{
	enum slot_state state;

	pthread_mutex_lock(&lock);
	state = nslots ? find(io)->state : SLOT_EMPTY;
	pthread_mutex_unlock(&lock);
	return state;
}

static void fail_unusable(const struct urp_io *io, const char *call, enum slot_state state)
{
	if (state == SLOT_GIVEN_UP)
		urp__debug_fail(call,
				"entry %p was already given up (urp_deregister() or urp_io_free()): "
				"an entry is released once, and not used after",
				(const void *)io);
	urp__debug_fail(call,
			"entry %p is not alive (freed after urp_deregister() or by "
			"urp_driver_free(), or never registered): cancel futures and clear "
			"slots before the entry goes",
			(const void *)io);
}

void urp__debug_io_usable(const struct urp_io *io, const char *call)
{
	enum slot_state state = state_of(io);

	if (state != SLOT_ALIVE)
		fail_unusable(io, call, state);
}

void urp__debug_io_given_up(const struct urp_io *io, const char *call)
{
	struct slot *s;

	pthread_mutex_lock(&lock);
	s = nslots ? find(io) : NULL;
	if (!s || s->state != SLOT_ALIVE) {
		enum slot_state state = s ? s->state : SLOT_EMPTY;

		pthread_mutex_unlock(&lock);
		fail_unusable(io, call, state);
	}
	s->state = SLOT_GIVEN_UP;
	pthread_mutex_unlock(&lock);
}

void urp__debug_io_died(const struct urp_io *io)
{
	pthread_mutex_lock(&lock);
	if (nslots)
		find(io)->state = SLOT_DEAD;
	pthread_mutex_unlock(&lock);
}
#else
/* ISO C wants a translation unit to declare something. */
typedef int urp__debug_unused;
#endif /* URP_DEBUG */
