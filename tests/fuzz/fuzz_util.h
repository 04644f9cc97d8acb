/* SPDX-License-Identifier: MIT */
/*
 * Shared by the libFuzzer targets in tests/fuzz/: a cursor over the input bytes (reads past
 * the end give 0, so every input decodes to some op sequence), the failure macro that turns a
 * broken property into a libFuzzer crash, and the reference model of the readiness word
 * (docs/design.md, "The readiness word": new entry, Set, Clear, Shutdown) that the targets compare the library's word with.
 */
#ifndef URP_TESTS_FUZZ_UTIL_H
#define URP_TESTS_FUZZ_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <urpoll.h>

struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline bool fuzz_more(const struct fuzz_in *in)
{
	return in->n > 0;
}

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static inline uint16_t fuzz_u16(struct fuzz_in *in)
{
	return (uint16_t)(fuzz_u8(in) | fuzz_u8(in) << 8);
}

static inline uint32_t fuzz_u32(struct fuzz_in *in)
{
	return (uint32_t)fuzz_u16(in) | (uint32_t)fuzz_u16(in) << 16;
}

/* A property failed: print it and abort, which libFuzzer reports as a crash with the input. */
#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: property failed: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* The reference word: the spec's rules written as plainly as possible, fields kept apart. */
struct ref_word {
	unsigned ready;
	unsigned tick;
	bool shutdown;
};

static inline uint32_t ref_pack(const struct ref_word *w)
{
	return (uint32_t)w->shutdown << 31 | (uint32_t)w->tick << 16 | w->ready;
}

/* Rule 1: OR the bits in, advance the tick (mod 2^15) even when the bits are empty. */
static inline void ref_set(struct ref_word *w, unsigned ready)
{
	w->ready |= ready & URP_READY_ALL;
	w->tick = (w->tick + 1) % (URP_TICK_MAX + 1);
}

/* Rule 2: remove the event's bits but never the closed ones, only if all 15 tick bits match.
 * Returns what urp_io_clear_readiness() must return. */
static inline int ref_clear(struct ref_word *w, const struct urp_event *ev)
{
	if (ev->tick > URP_TICK_MAX)
		return -EINVAL;
	if (ev->tick != w->tick)
		return -ESTALE;
	w->ready &= ~(ev->ready & ~(URP_READ_CLOSED | URP_WRITE_CLOSED));
	return 0;
}

/* What an interest sees (from_interest), from the spec's table. */
static inline unsigned ref_from_interest(unsigned interest)
{
	unsigned mask = 0;

	if (interest & URP_READABLE)
		mask |= URP_READABLE | URP_READ_CLOSED;
	if (interest & URP_WRITABLE)
		mask |= URP_WRITABLE | URP_WRITE_CLOSED;
	if (interest & URP_PRIORITY)
		mask |= URP_PRIORITY | URP_READ_CLOSED;
	if (interest & URP_ERROR)
		mask |= URP_ERROR;
	return mask;
}

/* Check the library's word against the reference, field by field. */
#define FUZZ_CHECK_WORD(word, ref)                                                                 \
	FUZZ_CHECK((word) == ref_pack(ref), "word %#x, expected ready %#x tick %u shutdown %d",   \
		   (unsigned)(word), (ref)->ready, (ref)->tick, (ref)->shutdown)

/* The descriptors this process has open (the fd-leak check at the end of an input), or -1. */
static inline int fuzz_open_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *d;
	int n = 0;

	if (!dir)
		return -1;
	while ((d = readdir(dir)))
		n += d->d_name[0] != '.';
	closedir(dir);
	return n;
}

#endif /* URP_TESTS_FUZZ_UTIL_H */
