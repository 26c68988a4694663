/* Counters behind tap.h. */
#include "tap.h"

int tap_passed, tap_failed, tap_skipped;

int tap_done(void)
{
	if (tap_skipped)
		printf("%d passed, %d failed, %d skipped\n", tap_passed, tap_failed, tap_skipped);
	else
		printf("%d passed, %d failed\n", tap_passed, tap_failed);
	return tap_failed ? 1 : 0;
}
