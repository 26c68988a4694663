/* Names for reasons, event kinds and conntrack states: one table each, shared by metrics, Lua and logs. */
#include <errno.h>
#include <string.h>
#include "maps.h"

/* Indexed by enum hyp_reason; these strings are metric labels, so they never change once released. */
static const char *const reason_names[HYP_R_MAX] = {
	[HYP_R_PASS_FLOW] = "pass_flow",
	[HYP_R_PASS_NEW] = "pass_new",
	[HYP_R_PASS_ALLOW] = "pass_allow",
	[HYP_R_PASS_NONIP] = "pass_nonip",
	[HYP_R_PASS_OTHER] = "pass_other",
	[HYP_R_PASS_FRAG] = "pass_frag",
	[HYP_R_PASS_ICMP] = "pass_icmp",
	[HYP_R_PASS_ALERT] = "pass_alert",
	[HYP_R_PASS_EGRESS] = "pass_egress",
	[HYP_R_DROP_BANNED] = "drop_banned",
	[HYP_R_DROP_MALFORMED_L2] = "drop_malformed_l2",
	[HYP_R_DROP_VLAN_DEPTH] = "drop_vlan_depth",
	[HYP_R_DROP_MALFORMED_L3] = "drop_malformed_l3",
	[HYP_R_DROP_EXT_CHAIN] = "drop_ext_chain",
	[HYP_R_DROP_MALFORMED_L4] = "drop_malformed_l4",
	[HYP_R_DROP_FRAG] = "drop_frag",
	[HYP_R_DROP_INVALID] = "drop_invalid",
	[HYP_R_DROP_PORT] = "drop_port",
	[HYP_R_DROP_RATE_SYN] = "drop_rate_syn",
	[HYP_R_DROP_RATE_PPS] = "drop_rate_pps",
	[HYP_R_DROP_SIG] = "drop_sig",
	[HYP_R_ABORTED] = "aborted",
	[HYP_R_TX_SYNCOOKIE] = "tx_syncookie",
};

/* Indexed by enum hyp_event_kind (0 is not a kind); these are the names Lua's hx.on() accepts. */
static const char *const event_kind_names[HYP_EV_KIND_MAX] = {
	[HYP_EV_MATCH] = "match",
	[HYP_EV_BLOCK] = "block",
	[HYP_EV_INVALID] = "invalid",
	[HYP_EV_RATELIMIT] = "ratelimit",
	[HYP_EV_FLOW_NEW] = "flow_new",
	[HYP_EV_FLOW_END] = "flow_end",
	[HYP_EV_POLICY] = "policy",
};

/* Indexed by enum hyp_ct_state. */
static const char *const ct_state_names[HYP_CT_STATE_MAX] = {
	[HYP_CT_NONE] = "none",
	[HYP_CT_SYN_SENT] = "syn_sent",
	[HYP_CT_SYN_RECV] = "syn_recv",
	[HYP_CT_ESTABLISHED] = "established",
	[HYP_CT_FIN_WAIT] = "fin_wait",
	[HYP_CT_CLOSE_WAIT] = "close_wait",
	[HYP_CT_TIME_WAIT] = "time_wait",
	[HYP_CT_CLOSED] = "closed",
	[HYP_CT_UDP] = "udp",
	[HYP_CT_UDP_REPLIED] = "udp_replied",
	[HYP_CT_ICMP] = "icmp",
};

/* Indexed by enum hyp_counter: the names `hyperionctl stats` and hx.stats().counters use. Slots up to
 * HYP_C_MAX without a counter stay NULL. */
static const char *const counter_names[HYP_C_MAX] = {
	[HYP_C_SEEN] = "seen",
	[HYP_C_EGRESS_SEEN] = "egress_seen",
	[HYP_C_EV_SUBMITTED] = "events_submitted",
	[HYP_C_EV_LOST] = "events_lost",
	[HYP_C_EV_SAMPLED] = "events_sampled",
	[HYP_C_CT_NEW_INSERT] = "ct_new_insert",
	[HYP_C_CT_NEW_DELETE] = "ct_new_delete",
	[HYP_C_CT_EST_INSERT] = "ct_est_insert",
	[HYP_C_CT_EST_DELETE] = "ct_est_delete",
	[HYP_C_CT_PICKUP] = "ct_pickup",
	[HYP_C_CT_EXPIRED] = "ct_expired",
	[HYP_C_SCAN_BYTES] = "scan_bytes",
	[HYP_C_SCAN_SKIPPED] = "scan_skipped",
	[HYP_C_GEN_MISMATCH] = "gen_mismatch",
	[HYP_C_VCACHE_HIT] = "vcache_hits",
	[HYP_C_COOKIE_SENT] = "syncookies_sent",
	[HYP_C_COOKIE_VALID] = "syncookies_valid",
	[HYP_C_COOKIE_INVALID] = "syncookies_invalid",
	[HYP_C_COOKIE_FALLBACK] = "syncookies_fallback",
	[HYP_C_COOKIE_ASSIGNED] = "syncookies_assigned",
	[HYP_C_COOKIE_NO_LISTENER] = "syncookies_no_listener",
	[HYP_C_COOKIE_ASSIGN_FAIL] = "syncookies_assign_failed",
	[HYP_C_COOKIE_TIME_WAIT] = "syncookies_time_wait",
	[HYP_C_VCACHE_EXPRESS] = "vcache_express",
};

/* Out-of-range values get "unknown" rather than NULL so callers can print any value a newer
 * datapath sends without a check. */
const char *reason_name(unsigned r)
{
	return r < HYP_R_MAX && reason_names[r] ? reason_names[r] : "unknown";
}

const char *event_kind_name(unsigned k)
{
	return k < HYP_EV_KIND_MAX && event_kind_names[k] ? event_kind_names[k] : "unknown";
}

int event_kind_parse(const char *name)
{
	if (!name)
		return -EINVAL;
	for (unsigned k = 0; k < HYP_EV_KIND_MAX; k++)
		if (event_kind_names[k] && !strcmp(event_kind_names[k], name))
			return (int)k;
	return -EINVAL;
}

const char *ct_state_name(unsigned s)
{
	return s < HYP_CT_STATE_MAX && ct_state_names[s] ? ct_state_names[s] : "unknown";
}

const char *counter_name(unsigned c)
{
	return c < HYP_C_MAX ? counter_names[c] : NULL;
}

/* Slots below HYP_STATS_MONITOR are real verdicts (pass reasons first, then drops and aborted, then
 * what the datapath answered itself); the second half counts what monitor mode let through. */
const char *stats_verdict_name(unsigned i)
{
	if (i >= HYP_STATS_MONITOR)
		return "monitor";
	if (i == HYP_R_TX_SYNCOOKIE)
		return "tx";
	return i < HYP_R_DROP_BANNED ? "pass" : "drop";
}
