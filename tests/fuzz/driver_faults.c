/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target "driver_faults": driver_ops's op sequences on the public API (driver_model.c),
 * interleaved with faults injected through the injectable ring (uring/fault.c, URP_FAULT
 * build): io_uring_enter failing with EINTR, EBUSY or EAGAIN; no SQE (SQ full) for whatever
 * the driver arms next (a registration, a re-arm, a removal, the unpark poll), the submit that
 * should free room failing too; the CQ held back (late CQEs); a poll's CQEs duplicated; a
 * poll ended by the kernel (final CQE without F_MORE carrying a mask, -ECANCELED, or a
 * negative res); CQEs the kernel never posted for live entries (spurious masks, negative res
 * with F_MORE) and for unknown tokens; the CQ overflow flag; and an unpark followed by a
 * blocking turn.
 *
 * The documented outcomes (docs/reliability.md), checked as the model predicts them:
 *   - errors only where documented: no turn returns an error (EINTR is retried, EBUSY and
 *     EAGAIN are a turn of 0), registration and deregistration succeed, and an entry whose
 *     poll the driver gave up on is ERROR and shut down (try_io -ESHUTDOWN without calling
 *     the op), never shut down silently;
 *   - no lost readiness and no lost wakeup: at every settle, once the faults stop, every
 *     entry with a live poll shows what the kernel holds and every waiter on a ready entry
 *     was woken (driver_model.c's settle properties);
 *   - no hang: a blocking turn after an unpark returns, whatever SQE could not be had;
 *   - the counters match the injections: unknown_tokens counts each CQE injected for an
 *     unknown token, plus at most one per duplicated or injected CQE of an entry; poll_errors
 *     is at least the entries seen failed and at most the negative ends plus one per four
 *     SQEs refused; rearms at most the polls ended; cq_overflows exactly the flags raised;
 *     extra_enters exactly the SQEs refused plus the overflow flushes;
 *   - at the end of each input: live 0, no fd leaked, no ring left open once a loop is
 *     freed; ASan and UBSan see every access.
 */
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "../lib/fault.h"
#include "driver_model.h"

/* The blocking turn after an unpark: a hang is a lost unpark, not slowness. */
#define UNPARK_HANG_SECONDS 10

enum fault_op {
	F_ENTER = OP_COUNT,
	F_SQE,
	F_HOLD,
	F_DUP,
	F_POLL_END,
	F_CQE_ENTRY,
	F_CQE_UNKNOWN,
	F_OVERFLOW,
	F_UNPARK_WAIT,
	F_COUNT,
};

/* What this input injected: the bounds the counters must keep. */
struct injected {
	unsigned unknown; /* CQEs for tokens that are no entry of this driver's */
	unsigned entry_cqes; /* CQEs the kernel never posted, for live entries */
	unsigned dups;	     /* CQEs asked to be doubled */
	unsigned ends;	     /* polls ended */
	unsigned neg_ends;   /* of which with a negative res other than -ECANCELED */
	unsigned overflows;  /* overflow flags raised */
};

static struct injected inj;
/* Aligned memory that is no entry: a CQE naming it must not write it. */
static _Alignas(256) unsigned char not_an_entry[512];

static uint64_t token(const struct entry *e)
{
	return (uint64_t)(uintptr_t)e->io;
}

/* The faults that persist until lifted; the one-shot ones (CQEs added, duplicated, polls
 * ended, overflow flags) are used up by the turns that follow. */
static void stop_faults(void)
{
	urp__fault_cq_hold(false);
	urp__fault_fail(URP__FAULT_ENTER, 0, 0, 0);
	urp__fault_fail(URP__FAULT_SQE, 0, 0, 0);
	urp__fault_fail(URP__FAULT_SUBMIT, 0, 0, 0);
	urp__fault_fail(URP__FAULT_GET_EVENTS, 0, 0, 0);
}

static void on_hang(int sig)
{
	(void)sig;
	FUZZ_CHECK(false, "a blocking turn after an unpark did not return in %d s",
		   UNPARK_HANG_SECONDS);
}

static void unpark_wait(void)
{
	FUZZ_CHECK(urp_driver_unpark(model.drv) == 0, "unpark failed");
	signal(SIGALRM, on_hang);
	alarm(UNPARK_HANG_SECONDS);
	drv_model_turn(-1);
	alarm(0);
}

static void fault_op(enum fault_op op, struct entry *e, struct fuzz_in *in)
{
	static const int enter_errs[] = { -EINTR, -EBUSY, -EAGAIN };
	static const int end_res[] = { POLLIN, POLLOUT, POLLIN | POLLRDHUP, POLLHUP, 0,
				       -ECANCELED, -ENOMEM, -EIO };
	uint8_t a = fuzz_u8(in), b = fuzz_u8(in);
	uint64_t tok;
	int res;

	switch (op) {
	case F_ENTER:
		urp__fault_fail(URP__FAULT_ENTER, a % 4, 1 + b % 8, enter_errs[a / 4 % 3]);
		break;
	case F_SQE:
		/* Four refusals in a row make get_sqe() give up: the arm, removal or unpark
		 * poll it was for fails. */
		urp__fault_fail(URP__FAULT_SQE, a % 8, 1 + b % 12, -EBUSY);
		if (a & 0x80)
			urp__fault_fail(URP__FAULT_SUBMIT, 0, 1 + b % 4, -EBUSY);
		break;
	case F_HOLD:
		urp__fault_cq_hold(a & 1);
		break;
	case F_DUP:
		if (!e->live)
			break;
		urp__fault_cqe_dup(token(e), 1 + a % 3);
		inj.dups += 1 + a % 3;
		break;
	case F_POLL_END:
		if (!e->live)
			break;
		res = end_res[a % (sizeof(end_res) / sizeof(end_res[0]))];
		urp__fault_poll_end(token(e), res);
		inj.ends++;
		inj.neg_ends += res < 0 && res != -ECANCELED;
		break;
	case F_CQE_ENTRY:
		if (!e->live)
			break;
		/* A spurious wake-up (any mask), or a negative res with F_MORE (ignored). */
		res = a & 1 ? -(int)(1 + b % 125) : (int)(b | (unsigned)a << 7);
		urp__fault_cqe_add(token(e), res, IORING_CQE_F_MORE);
		inj.entry_cqes++;
		break;
	case F_CQE_UNKNOWN:
		switch (a % 6) {
		case 0:
			tok = 0;
			break;
		case 1:
			tok = 3;
			break;
		case 2:
			tok = 4095;
			break;
		case 3:
			tok = LIBURING_UDATA_TIMEOUT;
			break;
		case 4:
			tok = (uint64_t)(uintptr_t)not_an_entry;
			break;
		default:
			/* Inside a live entry: not aligned, so not read. */
			tok = e->live ? token(e) + 8 * (1 + b % 15) : 0;
			break;
		}
		urp__fault_cqe_add(tok, b & 1 ? POLLIN : -EIO, b & 2 ? IORING_CQE_F_MORE : 0);
		inj.unknown++;
		break;
	case F_OVERFLOW:
		/* The flag stays up for the next 1-3 checks, then a turn flushes it: each raise
		 * is one flush, one extra enter (a failed flush included). */
		urp__fault_overflow(1 + a % 3);
		if (b & 1)
			urp__fault_fail(URP__FAULT_GET_EVENTS, 0, 1, -EINTR);
		inj.overflows += 1 + a % 3;
		drv_model_turn(0);
		break;
	case F_UNPARK_WAIT:
		unpark_wait();
		break;
	default:
		break;
	}
}

static void check_counters(const struct urp_stats *st0, const struct urp_stats *st,
			   unsigned sqe_failed)
{
	int64_t unknown = (int64_t)(st->unknown_tokens - st0->unknown_tokens);
	int64_t errors = (int64_t)(st->poll_errors - st0->poll_errors);
	int64_t rearms = (int64_t)(st->rearms - st0->rearms);
	int64_t overflows = (int64_t)(st->cq_overflows - st0->cq_overflows);
	int64_t extra = (int64_t)(st->extra_enters - st0->extra_enters);
	unsigned i;

	FUZZ_CHECK(unknown >= inj.unknown && unknown <= inj.unknown + inj.dups + inj.entry_cqes,
		   "unknown_tokens +%lld: %u unknown, %u duplicates, %u entry CQEs injected",
		   (long long)unknown, inj.unknown, inj.dups, inj.entry_cqes);
	FUZZ_CHECK(errors >= model.failed_seen && errors <= inj.neg_ends + sqe_failed / 4,
		   "poll_errors +%lld: %u entries seen failed, %u negative ends, %u SQEs refused",
		   (long long)errors, model.failed_seen, inj.neg_ends, sqe_failed);
	FUZZ_CHECK(rearms <= inj.ends, "rearms +%lld: %u polls ended", (long long)rearms,
		   inj.ends);
	FUZZ_CHECK(overflows == inj.overflows, "cq_overflows +%lld: %u raised",
		   (long long)overflows, inj.overflows);
	FUZZ_CHECK(extra == sqe_failed + overflows,
		   "extra_enters +%lld: %u SQEs refused, %lld overflow flushes", (long long)extra,
		   sqe_failed, (long long)overflows);
	for (i = 0; i < sizeof(not_an_entry); i++)
		FUZZ_CHECK(!not_an_entry[i], "byte %u of memory that is no entry written", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A SQ that the injections, not the ops, fill: ops and re-arms stay far below 256. */
	struct urp_driver_opts opts = { .sq_entries = 256, .cq_entries = 512 };
	struct fuzz_in in = { data, size };
	struct urp_stats st0, st;
	unsigned ops, op, sqe_failed;
	struct entry *e;

	drv_model_begin(&opts);
	model.polls_may_fail = true;
	memset(&inj, 0, sizeof(inj));
	urp__fault_reset();
	FUZZ_CHECK(urp_driver_stats(model.drv, &st0) == 0, "no stats");
	for (ops = 0; ops < DRV_MODEL_MAX_OPS && fuzz_more(&in); ops++) {
		op = fuzz_u8(&in) % F_COUNT;
		e = &model.ents[fuzz_u8(&in) % DRV_MODEL_ENTRIES];
		/* Readiness is owed once the faults stop. */
		if (op == OP_SETTLE)
			stop_faults();
		if (op < OP_COUNT)
			drv_model_op((enum drv_model_op)op, e, &in);
		else
			fault_op((enum fault_op)op, e, &in);
	}
	stop_faults();
	drv_model_settle();
	sqe_failed = urp__fault_failed(URP__FAULT_SQE);
	st = drv_model_finish();
	check_counters(&st0, &st, sqe_failed);
	if (!model.loop)
		FUZZ_CHECK(urp__fault_rings_open() == 0, "%d rings open after the loop was freed",
			   urp__fault_rings_open());
	urp__fault_reset();
	return 0;
}
