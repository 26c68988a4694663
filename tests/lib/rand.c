/* Generators and dumps behind rand.h. */
#include <stdio.h>
#include "rand.h"

uint64_t rand_state;
uint32_t rand32_state;

uint64_t rand_next(void)
{
	rand_state ^= rand_state >> 12;
	rand_state ^= rand_state << 25;
	rand_state ^= rand_state >> 27;
	return rand_state * 0x2545F4914F6CDD1DULL;
}

uint32_t rand_below(uint32_t n)
{
	return n ? (uint32_t)(rand_next() % n) : 0;
}

bool rand_chance(unsigned pct)
{
	return rand_below(100) < pct;
}

uint32_t rand32(void)
{
	rand32_state ^= rand32_state << 13;
	rand32_state ^= rand32_state >> 17;
	rand32_state ^= rand32_state << 5;
	return rand32_state;
}

void hexdump(const char *what, const void *p, size_t len)
{
	const uint8_t *b = p;

	printf("#   %s (%zu bytes): ", what, len);
	for (size_t i = 0; i < len; i++)
		printf("%02x", b[i]);
	printf("\n");
}
