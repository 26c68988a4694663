/* Benchmark receivers (xdprx, hyprx): run until SIGTERM/SIGINT, printing their books on SIGUSR1 and at the end.
 * Header-only because every bench .c file is its own program (see Makefile). */
#ifndef HYP_BENCH_RX_H
#define HYP_BENCH_RX_H

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#define RX_POLL_US 20000

static volatile sig_atomic_t rx_stop, rx_report;

/* SIGTERM/SIGINT: print and exit; SIGUSR1: print the books so far (a snapshot between phases of a run). */
static void rx_on_signal(int sig)
{
	if (sig == SIGUSR1)
		rx_report = 1;
	else
		rx_stop = 1;
}

/* Installs the handlers, creates ready_path (when given: the harness waits for it), then polls until stopped,
 * calling print(ctx) for every SIGUSR1 and once at the end. */
static void rx_run(const char *ready_path, void (*print)(void *ctx), void *ctx)
{
	signal(SIGTERM, rx_on_signal);
	signal(SIGINT, rx_on_signal);
	signal(SIGUSR1, rx_on_signal);
	if (ready_path) {
		FILE *f = fopen(ready_path, "w");

		if (f)
			fclose(f);
	}
	/* polling, not pause(): a signal landing between the test and pause() would hang */
	while (!rx_stop) {
		usleep(RX_POLL_US);
		if (rx_report) {
			rx_report = 0;
			print(ctx);
		}
	}
	print(ctx);
}

#endif
