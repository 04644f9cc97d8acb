/* SPDX-License-Identifier: MIT */
/*
 * svg: the plot of urpoll-bench, one self-contained SVG file (no scripts, fonts, styles or
 * images from elsewhere), readable without the table.
 *
 * One panel per workload (per workload and metric, should a workload report two), stacked
 * top to bottom, each with its own linear y axis from 0. Inside a panel, one group of bars per
 * parameter value, one bar per backend in a fixed colour (the legend at the top), the bar at the
 * median, a whisker from min to max, and the ratio against epoll above it. Backends that ran
 * the panel's workload but have no cell for a parameter get "n/a" at the baseline. Hovering a
 * bar shows its numbers (an SVG <title>).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define WIDTH	      960
#define MARGIN_LEFT   86
#define MARGIN_RIGHT  20
#define HEADER_H      78  /* title, legend, how to read */
#define PANEL_H	      300 /* one panel: title, plot, parameter labels */
#define PANEL_TITLE_H 30
#define PLOT_H	      210
#define Y_TICKS	      5
#define BAR_MAX_W     64
#define TIMES	      "\xc3\x97" /* U+00D7 MULTIPLICATION SIGN, in UTF-8 */
#define FONT	      "font-family=\"DejaVu Sans,Verdana,Arial,sans-serif\""

/* Okabe-Ito colours: distinguishable with the common colour-vision deficiencies. */
static const char *const be_colour[BE_COUNT] = {
	[BE_URPOLL] = "#D55E00",
	[BE_URPOLL_RING] = "#000000",
	[BE_EPOLL] = "#0072B2",
	[BE_LIBEV] = "#009E73",
	[BE_LIBEVENT] = "#E69F00",
	[BE_LIBUV] = "#CC79A7",
};

static const char *const be_label[BE_COUNT] = {
	[BE_URPOLL] = "urpoll",
	[BE_URPOLL_RING] = "urpoll-ring",
	[BE_EPOLL] = "epoll",
	[BE_LIBEV] = "libev",
	[BE_LIBEVENT] = "libevent",
	[BE_LIBUV] = "libuv",
};

/* The points of one panel: same workload and metric. */
struct panel {
	const struct plot_point *first;
	unsigned *params; /* distinct parameter values, in the order they first appear */
	unsigned nparams;
	bool backends[BE_COUNT];
	unsigned nbackends;
	double ymax;
};

static bool same_panel(const struct plot_point *a, const struct plot_point *b)
{
	return !strcmp(a->workload, b->workload) && !strcmp(a->metric, b->metric);
}

static void put_escaped(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&':
			fputs("&amp;", f);
			break;
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		default:
			fputc(*s, f);
		}
	}
}

/* 1234567 -> "1.23M": tick labels stay short at every scale. */
static void fmt_si(char *buf, size_t len, double v)
{
	static const char *const suffix[] = { "", "k", "M", "G", "T" };
	unsigned i = 0;

	while (fabs(v) >= 1000 && i < 4) {
		v /= 1000;
		i++;
	}
	snprintf(buf, len, "%.3g%s", v, suffix[i]);
}

/* The smallest 1, 2 or 5 times a power of ten that is >= x. */
static double nice_step(double x)
{
	double p = pow(10, floor(log10(x))), m = x / p;

	if (m <= 1)
		return p;
	if (m <= 2)
		return 2 * p;
	if (m <= 5)
		return 5 * p;
	return 10 * p;
}

static bool finite_point(const struct plot_point *p)
{
	return isfinite(p->median) && p->median >= 0;
}

static double point_top(const struct plot_point *p)
{
	double top = p->median;

	if (isfinite(p->hi) && p->hi > top)
		top = p->hi;
	return top;
}

static const struct plot_point *find_point(const struct plot_point *pts, unsigned n,
					   const struct panel *pn, unsigned param, enum backend be)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (same_panel(&pts[i], pn->first) && pts[i].param == param && pts[i].be == be)
			return &pts[i];
	return NULL;
}

/* Group the points into panels, in the order their workloads first appear. */
static int panels_build(const struct plot_point *pts, unsigned n, struct panel **out,
			unsigned *count)
{
	struct panel *panels = calloc(n ? n : 1, sizeof(*panels));
	unsigned np = 0, i, j, k;

	if (!panels)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		struct panel *pn = NULL;

		if (pts[i].be >= BE_COUNT)
			continue;
		for (j = 0; j < np && !pn; j++)
			if (same_panel(panels[j].first, &pts[i]))
				pn = &panels[j];
		if (!pn) {
			pn = &panels[np++];
			pn->first = &pts[i];
			pn->params = calloc(n, sizeof(*pn->params));
			if (!pn->params)
				goto out_free_panels;
		}
		for (k = 0; k < pn->nparams && pn->params[k] != pts[i].param; k++)
			;
		if (k == pn->nparams)
			pn->params[pn->nparams++] = pts[i].param;
		if (!pn->backends[pts[i].be]) {
			pn->backends[pts[i].be] = true;
			pn->nbackends++;
		}
		if (finite_point(&pts[i]) && point_top(&pts[i]) > pn->ymax)
			pn->ymax = point_top(&pts[i]);
	}
	*out = panels;
	*count = np;
	return 0;

out_free_panels:
	for (j = 0; j < np; j++)
		free(panels[j].params);
	free(panels);
	return -ENOMEM;
}

static void header_write(FILE *f, const char *title, const bool *present, double height)
{
	unsigned be, x = MARGIN_LEFT;

	fprintf(f,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%.0f\" "
		"viewBox=\"0 0 %d %.0f\" " FONT ">\n"
		"<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n"
		"<text x=\"%d\" y=\"24\" font-size=\"18\" font-weight=\"bold\" "
		"text-anchor=\"middle\">",
		WIDTH, height, WIDTH, height, WIDTH / 2);
	put_escaped(f, title ? title : "urpoll-bench");
	fputs("</text>\n", f);
	for (be = 0; be < BE_COUNT; be++) {
		if (!present[be])
			continue;
		fprintf(f,
			"<rect x=\"%u\" y=\"38\" width=\"14\" height=\"14\" fill=\"%s\"/>"
			"<text x=\"%u\" y=\"50\" font-size=\"13\">%s</text>\n",
			x, be_colour[be], x + 19, be_label[be]);
		x += 19 + 9 * (unsigned)strlen(be_label[be]) + 24;
	}
	fprintf(f,
		"<text x=\"%d\" y=\"70\" font-size=\"11\" fill=\"#444444\">bar: median of the runs;"
		" whisker: min to max; above the bar: median against epoll's (1.00" TIMES " = as epoll),"
		" or the median itself where epoll has no cell."
		"</text>\n",
		MARGIN_LEFT);
}

static void axis_write(FILE *f, const struct panel *pn, double top, double plot_w, double step)
{
	const struct plot_point *p = pn->first;
	double y, v, base = top + PLOT_H, mid = top + PLOT_H / 2.0;
	char label[32];

	fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"14\" font-weight=\"bold\">", MARGIN_LEFT,
		top - 12);
	put_escaped(f, p->workload);
	fputs("</text>\n", f);
	for (v = 0; v <= pn->ymax + step / 1000; v += step) {
		y = base - v / pn->ymax * PLOT_H;
		fmt_si(label, sizeof(label), v);
		fprintf(f,
			"<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
			"stroke-width=\"1\"/>\n"
			"<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%s</text>\n",
			MARGIN_LEFT, y, MARGIN_LEFT + plot_w, y, v == 0 ? "#000000" : "#dddddd",
			MARGIN_LEFT - 6, y + 4, label);
	}
	fprintf(f,
		"<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#000000\"/>\n"
		"<text transform=\"translate(%d,%.1f) rotate(-90)\" font-size=\"12\" "
		"text-anchor=\"middle\">",
		MARGIN_LEFT, top, MARGIN_LEFT, base, 18, mid);
	put_escaped(f, p->metric);
	fprintf(f, " (%s is better)</text>\n", p->higher_better ? "higher" : "lower");
}

static void bar_write(FILE *f, const struct plot_point *p, const struct panel *pn, double x,
		      double bar_w, double base)
{
	double cx = x + bar_w / 2, scale = PLOT_H / pn->ymax, y = base - p->median * scale;
	double label_y = base - point_top(p) * scale - 5;
	char label[32];

	fprintf(f, "<g><title>%s, ", be_label[p->be]);
	put_escaped(f, p->param_name ? p->param_name : "");
	fprintf(f, "=%u: median %.4g ", p->param, p->median);
	put_escaped(f, p->metric);
	fprintf(f, " (min %.4g, max %.4g)", p->lo, p->hi);
	if (isfinite(p->ratio))
		fprintf(f, ", %.2f" TIMES " epoll", p->ratio);
	fprintf(f,
		"</title>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
		"fill=\"%s\"/>\n",
		x, y, bar_w, base - y, be_colour[p->be]);
	if (isfinite(p->lo) && isfinite(p->hi) && p->lo <= p->hi) {
		double ylo = base - p->lo * scale, yhi = base - p->hi * scale;
		double cap = bar_w / 4 < 5 ? bar_w / 4 : 5;

		fprintf(f,
			"<path d=\"M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f %.1fH%.1f\" "
			"stroke=\"#000000\" stroke-width=\"1.2\" fill=\"none\"/>\n",
			cx, ylo, yhi, cx - cap, ylo, cx + cap, cx - cap, yhi, cx + cap);
	}
	/* Without an epoll cell to compare with, the label gives the median itself. */
	if (isfinite(p->ratio))
		snprintf(label, sizeof(label), "%.2f" TIMES, p->ratio);
	else
		fmt_si(label, sizeof(label), p->median);
	/* Too narrow for the label across: stand it up. */
	if (bar_w < 30)
		fprintf(f,
			"<text transform=\"translate(%.1f,%.1f) rotate(-90)\" font-size=\"10\" "
			"dy=\"3.5\">%s</text>\n",
			cx, label_y, label);
	else
		fprintf(f,
			"<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">"
			"%s</text>\n",
			cx, label_y, label);
	fputs("</g>\n", f);
}

static void panel_write(FILE *f, const struct plot_point *pts, unsigned n, struct panel *pn,
			double top)
{
	double plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, group_w, bar_w, step, x, base;
	const struct plot_point *p;
	unsigned i, be, slot;

	/* Room above the tallest whisker for its ratio label. */
	if (pn->ymax <= 0)
		pn->ymax = 1;
	step = nice_step(pn->ymax * 1.25 / Y_TICKS);
	pn->ymax = ceil(pn->ymax * 1.25 / step) * step;
	axis_write(f, pn, top, plot_w, step);

	base = top + PLOT_H;
	group_w = plot_w / pn->nparams;
	bar_w = group_w * 0.8 / pn->nbackends;
	if (bar_w > BAR_MAX_W)
		bar_w = BAR_MAX_W;
	for (i = 0; i < pn->nparams; i++) {
		x = MARGIN_LEFT + (i + 0.5) * group_w - pn->nbackends * bar_w / 2;
		for (be = 0, slot = 0; be < BE_COUNT; be++) {
			if (!pn->backends[be])
				continue;
			p = find_point(pts, n, pn, pn->params[i], be);
			if (p && finite_point(p))
				bar_write(f, p, pn, x + slot * bar_w, bar_w, base);
			else
				fprintf(f,
					"<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" "
					"text-anchor=\"middle\" fill=\"#777777\">n/a</text>\n",
					x + (slot + 0.5) * bar_w, base - 3);
			slot++;
		}
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\">",
			MARGIN_LEFT + (i + 0.5) * group_w, base + 18);
		if (pn->first->param_name && *pn->first->param_name) {
			put_escaped(f, pn->first->param_name);
			fputc('=', f);
		}
		/* A workload without a parameter has one group and needs no label. */
		if (pn->nparams > 1 || (pn->first->param_name && *pn->first->param_name))
			fprintf(f, "%u", pn->params[i]);
		fputs("</text>\n", f);
	}
}

int svg_write(FILE *f, const struct plot_point *pts, unsigned n, const char *title)
{
	bool present[BE_COUNT] = { false };
	struct panel *panels;
	unsigned np, i;
	int ret;

	if (!f || (n && !pts))
		return -EINVAL;
	ret = panels_build(pts, n, &panels, &np);
	if (ret < 0)
		return ret;
	for (i = 0; i < n; i++)
		if (pts[i].be < BE_COUNT)
			present[pts[i].be] = true;
	header_write(f, title, present, HEADER_H + np * PANEL_H + 10.0);
	for (i = 0; i < np; i++)
		panel_write(f, pts, n, &panels[i], HEADER_H + i * PANEL_H + PANEL_TITLE_H + 10.0);
	if (!np)
		fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"13\">no results</text>\n",
			MARGIN_LEFT, HEADER_H + 20);
	fputs("</svg>\n", f);
	ret = fflush(f) || ferror(f) ? -EIO : 0;

	for (i = 0; i < np; i++)
		free(panels[i].params);
	free(panels);
	return ret;
}
