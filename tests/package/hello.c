/* Built by tests/package/install-test.sh against an installed urpoll, through pkg-config only. */
#include <stdio.h>
#include <urpoll.h>

int main(void)
{
	struct urp_event ev;
	struct urp_io *io;

	if (urp_io_new(&io) < 0)
		return 1;
	urp_io_set_readiness(io, URP_READABLE);
	urp_io_ready_event(io, URP_READABLE, &ev);
	printf("ready=%#x tick=%u\n", ev.ready, ev.tick);
	urp_io_free(io);
	return ev.ready == URP_READABLE && ev.tick == 1 ? 0 : 1;
}
