/* SPDX-License-Identifier: MIT */
/* Built by tests/package/install-test.sh against an installed urpoll, through pkg-config only.
 * Prints "ready=0x1 tick=1 version=MAJOR.MINOR.PATCH" (the library's version, which the test
 * compares with urpoll.pc's) and exits 0, or 1 when the core misbehaves or the library's
 * version is not the installed header's. */
#include <stdio.h>
#include <urpoll.h>

int main(void)
{
	struct urp_event ev;
	struct urp_io *io;

	if (urp_version_major() != URPOLL_VERSION_MAJOR ||
	    urp_version_minor() != URPOLL_VERSION_MINOR ||
	    urp_version_patch() != URPOLL_VERSION_PATCH) {
		fprintf(stderr, "hello: library %d.%d.%d, header %d.%d.%d\n", urp_version_major(),
			urp_version_minor(), urp_version_patch(), URPOLL_VERSION_MAJOR,
			URPOLL_VERSION_MINOR, URPOLL_VERSION_PATCH);
		return 1;
	}
	if (urp_io_new(&io) < 0)
		return 1;
	urp_io_set_readiness(io, URP_READABLE);
	urp_io_ready_event(io, URP_READABLE, &ev);
	printf("ready=%#x tick=%u version=%d.%d.%d\n", ev.ready, ev.tick, urp_version_major(),
	       urp_version_minor(), urp_version_patch());
	urp_io_free(io);
	return ev.ready == URP_READABLE && ev.tick == 1 ? 0 : 1;
}
