# Hyperion build. `make` builds everything into build/; `make test`, `make demo`, `make bench` as in README.
.DELETE_ON_ERROR:
.SUFFIXES:
.SECONDARY:

BUILD     ?= build
PREFIX    ?= /usr/local
DESTDIR   ?=
CC        ?= gcc
CLANG     ?= clang
BPFTOOL   ?= bpftool
ARCH      := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
V         ?= 0
ifeq ($(V),1)
Q :=
msg =
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

PKGS      := libbpf luajit libevent zlib libelf
CFLAGS    ?= -O2 -g
CFLAGS    += -Wall -Wextra -std=gnu11 -D_GNU_SOURCE -Ilib -I$(BUILD) -Iruntime \
             -DHYP_DEFAULT_LIBDIR='"$(PREFIX)/share/hyperion/lib"'
CFLAGS    += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS    += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -levent_pthreads -lpthread -lm
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Wno-unused-function \
              -I$(BUILD) -Ilib -Ibpf

# The datapath: one entry file, headers per concern.
BPF_SRC   := bpf/hyperion.bpf.c
BPF_HDRS  := $(wildcard bpf/*.h) lib/hyperion_abi.h
BPF_OBJ   := $(BUILD)/hyperion.bpf.o
SKEL      := $(BUILD)/hyperion.skel.h

# Runtime library: every runtime/*.c except the programs' mains.
MAINS     := runtime/hyperiond.c runtime/hyperionctl.c
LIB_SRC   := $(filter-out $(MAINS),$(wildcard runtime/*.c))
LIB_OBJ   := $(patsubst runtime/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
LIBHYP    := $(BUILD)/libhyperion.a
HDRS      := $(wildcard runtime/*.h) lib/hyperion_abi.h $(SKEL)

TESTLIB_SRC := $(wildcard tests/lib/*.c)
TESTLIB_OBJ := $(patsubst tests/lib/%.c,$(BUILD)/obj/tests/lib/%.o,$(TESTLIB_SRC))
TEST_SRC  := $(wildcard tests/bpf/test_*.c tests/runtime/test_*.c)
TEST_BIN  := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

PROGS     := $(BUILD)/hyperiond $(BUILD)/hyperionctl

.PHONY: all deps test demo bench install clean check-deps FORCE
all: $(PROGS) $(TEST_BIN) $(BENCH_BIN)

# --- dependencies ----------------------------------------------------------------------------------
# Debian packages the build, tests, demo and benchmarks need; `make deps` installs the missing ones.
DEB_PKGS := build-essential pkg-config clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev \
            libluajit-5.1-dev luajit libevent-dev iproute2 iptables nftables curl nmap hping3 \
            python3 python3-scapy gnuplot-nox ncat procps psmisc kmod iputils-ping util-linux ipset conntrack
deps:
	$(Q)missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
	    grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "  DEPS     installing:" $$missing; \
	    [ "$$(id -u)" = 0 ] || { echo "make deps: need root to install: $$missing" >&2; exit 1; }; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	$(Q)mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true

# --- datapath --------------------------------------------------------------------------------------
$(BUILD)/vmlinux.h: | $(BUILD)
	$(call msg,GEN,$@)
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@

$(BPF_OBJ): $(BPF_SRC) $(BPF_HDRS) $(BUILD)/vmlinux.h
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(SKEL): $(BPF_OBJ)
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name hyperion_bpf > $@

# --- runtime ---------------------------------------------------------------------------------------
$(BUILD)/obj/%.o: runtime/%.c $(HDRS) | $(BUILD)/obj
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# The installed library path is compiled in (HYP_DEFAULT_LIBDIR): rebuild what uses it when PREFIX changes.
PREFIX_STAMP := $(BUILD)/prefix.stamp
$(PREFIX_STAMP): FORCE | $(BUILD)
	$(Q)echo '$(PREFIX)' | cmp -s - $@ || echo '$(PREFIX)' > $@
FORCE:
$(BUILD)/obj/lua_vm.o: $(PREFIX_STAMP)

$(LIBHYP): $(LIB_OBJ)
	$(call msg,AR,$@)
	$(Q)rm -f $@.tmp && ar rcs $@.tmp $^ && mv -f $@.tmp $@

$(BUILD)/hyperiond: $(BUILD)/obj/hyperiond.o $(LIBHYP)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -Wl,-E

$(BUILD)/hyperionctl: $(BUILD)/obj/hyperionctl.o $(LIBHYP)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# --- tests and benchmarks --------------------------------------------------------------------------
$(BUILD)/obj/tests/lib/%.o: tests/lib/%.c $(HDRS) $(wildcard tests/lib/*.h) | $(BUILD)/obj/tests/lib
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/lib -c $< -o $@

$(BUILD)/tests/%: tests/%.c $(TESTLIB_OBJ) $(LIBHYP) $(HDRS) $(wildcard tests/lib/*.h)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -Itests/lib -o $@ $< $(TESTLIB_OBJ) $(LIBHYP) $(LDLIBS) -Wl,-E

$(BUILD)/bench/%: bench/%.c $(TESTLIB_OBJ) $(LIBHYP) $(HDRS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -Itests/lib -o $@ $< $(TESTLIB_OBJ) $(LIBHYP) $(LDLIBS)

$(BUILD) $(BUILD)/obj $(BUILD)/obj/tests/lib:
	$(Q)mkdir -p $@

# --- top-level commands ----------------------------------------------------------------------------
test: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tests/run.sh

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)bench/run.sh $(if $(QUICK),--quick)

install: $(PROGS)
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/hyperion/lib/hyperion \
	    $(DESTDIR)$(PREFIX)/share/hyperion/scripts $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 0755 $(BUILD)/hyperiond $(BUILD)/hyperionctl $(DESTDIR)$(PREFIX)/sbin/
	install -m 0644 lib/hyperion_abi.h $(wildcard lib/*.lua) $(DESTDIR)$(PREFIX)/share/hyperion/lib/
	install -m 0644 $(wildcard lib/hyperion/*.lua) $(DESTDIR)$(PREFIX)/share/hyperion/lib/hyperion/
	install -d $(DESTDIR)$(PREFIX)/share/hyperion/lib/hyperion/reactions
	install -m 0644 $(wildcard lib/hyperion/reactions/*.lua) $(DESTDIR)$(PREFIX)/share/hyperion/lib/hyperion/reactions/
	install -m 0644 $(wildcard scripts/*.lua scripts/*.rules) $(DESTDIR)$(PREFIX)/share/hyperion/scripts/
	sed 's|@PREFIX@|$(PREFIX)|g' runtime/hyperiond.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/hyperiond.service

clean:
	rm -rf $(BUILD)

# --- bench ---
# Owned by the benchmarks (bench/). The bench programs' own XDP object (generator transmit step, receiver
# baselines) and its skeleton; trafficgen and xdprx need only libbpf, so they get explicit rules and
# build even while libhyperion.a is mid-work. `make bench` also installs ipset (iptables ban sets) and
# conntrack (flushing state between systems).
BENCH_BPF_OBJ := $(BUILD)/bench/benchxdp.bpf.o
BENCH_SKEL    := $(BUILD)/bench/benchxdp.skel.h
BENCH_LIBBPF  := $(shell pkg-config --libs libbpf libelf zlib 2>/dev/null)

$(BENCH_BPF_OBJ): bench/bpf/benchxdp.bpf.c bench/rx_ban.h $(BUILD)/vmlinux.h
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -Ibench -c $< -o $@

$(BENCH_SKEL): $(BENCH_BPF_OBJ)
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name benchxdp > $@

$(BUILD)/bench/trafficgen $(BUILD)/bench/xdprx $(BUILD)/bench/reactlat: $(BUILD)/bench/%: bench/%.c bench/frame.h bench/rx.h bench/rx_ban.h lib/hyperion_abi.h $(BENCH_SKEL)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(BENCH_LIBBPF)

$(BUILD)/bench/micro $(BUILD)/bench/hyprx: $(BENCH_SKEL)
$(BUILD)/bench/micro: bench/rx_ban.h
$(BUILD)/bench/hyprx: bench/rx.h

.PHONY: bench-deps bench-tools
BENCH_DEB := ipset conntrack
bench-deps:
	$(Q)missing=$$(for p in $(BENCH_DEB); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
	    grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "  DEPS     installing:" $$missing; \
	    [ "$$(id -u)" = 0 ] || { echo "make bench-deps: need root to install: $$missing" >&2; exit 1; }; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
bench-tools: $(BUILD)/bench/trafficgen $(BUILD)/bench/xdprx $(BUILD)/bench/reactlat
bench: bench-deps
