/* TEMPORARY STUB (replaced by the datapath work): defines the maps and two programs so the skeleton builds. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "hyperion_abi.h"
#include "maps.h"

SEC("xdp")
int hyp_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("tc")
int hyp_tc_egress(struct __sk_buff *skb)
{
	return 0; /* TC_ACT_OK */
}

char LICENSE[] SEC("license") = "GPL";
