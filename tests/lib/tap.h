/* Minimal TAP-style assertions: every check prints ok/not ok; tap_done() prints "N passed, N failed". */
#ifndef HYP_TAP_H
#define HYP_TAP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int tap_passed, tap_failed, tap_skipped;

/* cond is evaluated once: a check may call the code under test (a second call would be a second act). */
#define TAP_CHECK(cond, ...) do {                                                        \
		int tap_ok_ = !!(cond);                                                      \
		if (tap_ok_) { tap_passed++; printf("ok %d - ", tap_passed + tap_failed); }  \
		else { tap_failed++; printf("not ok %d - ", tap_passed + tap_failed); }      \
		printf(__VA_ARGS__);                                                         \
		if (!tap_ok_) printf("  [%s:%d: %s]", __FILE__, __LINE__, #cond);            \
		printf("\n"); fflush(stdout);                                                \
	} while (0)

#define TAP_EQ(a, b, ...) do {                                                           \
		long long _a = (long long)(a), _b = (long long)(b);                         \
		TAP_CHECK(_a == _b, __VA_ARGS__);                                            \
		if (_a != _b) printf("#   got %lld, want %lld\n", _a, _b);                  \
	} while (0)

#define TAP_SKIP(...) do { tap_skipped++; printf("ok - # SKIP "); printf(__VA_ARGS__);   \
		printf("\n"); } while (0)

/* Prints the closing line and returns the process exit status. */
int tap_done(void);

#endif
