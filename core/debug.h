/* SPDX-License-Identifier: MIT */
/*
 * Debug-build checks (-DURP_DEBUG, on in the sanitizer builds of `make check`): the contracts of
 * urpoll.h that a release build cannot afford to check, or cannot check at all without knowing
 * which entries are alive. A broken rule prints one line naming the call and the rule, then
 * aborts, as libuv does with the impossible. In release builds every check compiles to nothing.
 *
 * An entry is tracked from its allocation to its free, and marked once its owner gave it up
 * (urp_deregister(), urp_io_free()): a call that passes it after that is a use after free in
 * waiting, whether or not the memory is gone yet. The set lives outside the entries, so a
 * check never reads freed memory.
 */
#ifndef URP_CORE_DEBUG_H
#define URP_CORE_DEBUG_H

#include <stdbool.h>

struct urp_io;

#ifdef URP_DEBUG

__attribute__((noreturn, format(printf, 2, 3))) void urp__debug_fail(const char *call,
								      const char *fmt, ...);
/* Entry lifetimes: allocated, given up by its owner, freed. */
void urp__debug_io_born(const struct urp_io *io);
void urp__debug_io_given_up(const struct urp_io *io, const char *call);
void urp__debug_io_died(const struct urp_io *io);
/* Abort unless io is allocated and its owner has not given it up. */
void urp__debug_io_usable(const struct urp_io *io, const char *call);

#define urp__debug_assert(cond, call, ...)                                                         \
	do {                                                                                       \
		if (!(cond))                                                                       \
			urp__debug_fail(call, __VA_ARGS__);                                        \
	} while (0)

#else

#define urp__debug_io_born(io)		   ((void)(io))
#define urp__debug_io_given_up(io, call)   ((void)(io))
#define urp__debug_io_died(io)		   ((void)(io))
#define urp__debug_io_usable(io, call)	   ((void)(io))
#define urp__debug_assert(cond, call, ...) ((void)0)

#endif /* URP_DEBUG */

#endif /* URP_CORE_DEBUG_H */
