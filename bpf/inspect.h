/* Payload inspection: step the signature automaton over the payload (STUB until the scanner lands). */
#ifndef HYP_INSPECT_H
#define HYP_INSPECT_H

struct hyp_match {
	__u32 sig;
	__u8 action;    /* enum hyp_sig_action */
};

/*
 * Scan the L4 payload [pay_off, pay_off + pay_len) of an ingress packet.
 *  proto, dport: the packet's protocol and destination port (host order) for signature scope.
 *  flow: the flow entry (NULL for packets without one); dir: the packet's direction index in it;
 *  tcp_seq: the segment's sequence number (host order, TCP only) for the in-order check.
 *  The function owns flow->dfa_state/next_seq/scanned/dfa_gen and the SCAN_DONE flags.
 * Returns 1 and fills m when a signature in scope matched, 0 otherwise.
 */
static __always_inline int inspect_payload(struct xdp_md *ctx, __u32 pay_off, __u32 pay_len, __u8 proto,
					   __u16 dport, struct hyp_flow *flow, __u32 dir, __u32 tcp_seq,
					   const struct hyp_config *cfg, __u32 gen, struct hyp_match *m)
{
	return 0;
}

#endif
