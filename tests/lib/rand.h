/* Deterministic pseudo-random numbers and frame dumps for the randomised suites: one seed, one sequence. */
#ifndef HYP_TEST_RAND_H
#define HYP_TEST_RAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* xorshift64*: tiny, fast, and the same sequence everywhere for one seed (seed with a non-zero value). */
extern uint64_t rand_state;
uint64_t rand_next(void);
uint32_t rand_below(uint32_t n);        /* uniform enough in [0, n); 0 when n is 0 */
bool rand_chance(unsigned pct);         /* true pct times in 100 */

/* xorshift32: the smaller generator the signature suites' fixed seeds were chosen with. */
extern uint32_t rand32_state;
uint32_t rand32(void);

/* "#   what (N bytes): 0a1b..." so a failing input reproduces without the generator. */
void hexdump(const char *what, const void *p, size_t len);

#endif
