#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang -fsanitize=fuzzer,address,undefined) into build/fuzz/.
# Usage: tests/fuzz/build.sh [BUILD_DIR]; then e.g. build/fuzz/fuzz_cidr -max_total_time=600 corpus/
set -eu
cd "$(dirname "$0")/../.."
out=${1:-build}/fuzz
mkdir -p "$out"
flags="-g -O1 -Wall -Wextra -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer \
       -Ilib -Iruntime $(pkg-config --cflags libbpf libevent)"
# Only the parsers' own files: no libhyperion.a, so a half-built tree does not stop the fuzzers.
clang $flags -o "$out/fuzz_cidr" tests/fuzz/fuzz_cidr.c runtime/cidr.c
clang $flags -o "$out/fuzz_ctl_line" tests/fuzz/fuzz_ctl_line.c runtime/ctl_proto.c runtime/cidr.c \
	runtime/names.c $(pkg-config --libs libevent)
clang $flags -o "$out/fuzz_sigset" tests/fuzz/fuzz_sigset.c runtime/sigcompile.c
echo "built: $out/fuzz_cidr $out/fuzz_ctl_line $out/fuzz_sigset"
