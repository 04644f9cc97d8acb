/* SPDX-License-Identifier: MIT */
/* The library's version at run time, as liburing's io_uring_major_version() and friends: the
 * URPOLL_VERSION_* macros say which header a program was built against, these which library
 * it runs with. */
#include "urpoll.h"

/* The Makefile's VERSION_* name the library (its soname, urpoll.pc, `make dist`), urpoll.h's
 * macros the header: the Makefile passes its own here as URP_VERSION_*, and the two must agree.
 * (Builds that compile the sources directly, such as the fuzz targets, pass none.) */
#ifdef URP_VERSION_MAJOR
_Static_assert(URP_VERSION_MAJOR == URPOLL_VERSION_MAJOR,
	       "the Makefile's VERSION_MAJOR is not urpoll.h's URPOLL_VERSION_MAJOR");
_Static_assert(URP_VERSION_MINOR == URPOLL_VERSION_MINOR,
	       "the Makefile's VERSION_MINOR is not urpoll.h's URPOLL_VERSION_MINOR");
_Static_assert(URP_VERSION_PATCH == URPOLL_VERSION_PATCH,
	       "the Makefile's VERSION_PATCH is not urpoll.h's URPOLL_VERSION_PATCH");
#endif

int urp_version_major(void)
{
	return URPOLL_VERSION_MAJOR;
}

int urp_version_minor(void)
{
	return URPOLL_VERSION_MINOR;
}

int urp_version_patch(void)
{
	return URPOLL_VERSION_PATCH;
}
