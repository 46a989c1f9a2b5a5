package mqtt

import (
	"sort"
	"sync/atomic"
)

// counters are the gateway's counts by name: what went through, and
// every refusal by reason.
type counters struct {
	m map[string]*atomic.Uint64 // fixed at creation
}

const (
	countReceived        = "received"
	countBatches         = "batches"
	countBatchedMsgs     = "batched_messages"
	countAcked           = "acked"
	countDelivered       = "delivered"
	countForwarded       = "forwarded_envelopes"
	countRepublished     = "republished"
	countRepublishFailed = "republish_failed"
	countRetryAcked      = "retry_acked"
	countRetryHeld       = "retry_held"
	countPublishWait     = "publish_waits"
	countReceiptsSent    = "receipts_published"
	countReceiptsDropped = "receipts_dropped"
	countJournalBad      = "journal_bad_records"
	countUncertified     = "uncertified_batches"
	// Refusals.
	countAuthAnonymous = "refused_anonymous_remote"
	countAuthUnknown   = "refused_unknown_user"
	countAuthPassword  = "refused_bad_password"
	countACLPublish    = "refused_acl_publish"
	countACLSubscribe  = "refused_acl_subscribe"
	countOversize      = "refused_oversize"
	countMalformed     = "refused_malformed"
	countMeshRefused   = "refused_by_mesh"
	countEcho          = "dropped_echo"
	countUnmapped      = "not_mapped"
	countBadBatch      = "dropped_bad_batch"
	countSlowSub       = "dropped_slow_subscriber"
	// countSubInflight is read from the broker (Stats): messages for a
	// QoS 1 or 2 subscriber that already had MaxQueued unacknowledged.
	countSubInflight = "dropped_subscriber_inflight"
	countMeshTopics  = "refused_mesh_topic_limit"
	// countSubscriptionLimit: clients cut off at MaxSubscriptions.
	countSubscriptionLimit = "refused_subscription_limit"
	// countRetainedLimit: retained messages on new topics beyond
	// MaxRetained, delivered but not kept.
	countRetainedLimit = "dropped_retained_limit"
	// countWillsEarly: delayed wills published at once, MaxClients
	// being already waiting.
	countWillsEarly = "wills_published_early"
	// countBridgeDropped: mesh messages paho would not take for the
	// bridged broker (no packet ID free, or its queue full for 30 s).
	countBridgeDropped = "dropped_bridge_publish"
	// Connections closed before their CONNECT: silent past ConnectTimeout,
	// or beyond MaxClients waiting at once.
	countConnectTimeout = "refused_connect_timeout"
	countConnectingFull = "refused_connecting_full"
	// Sessions the broker ended: beyond MaxClients, or past SessionExpiry.
	countSessionsEvicted = "sessions_evicted"
	countSessionsExpired = "sessions_expired"
)

func newCounters() *counters {
	c := &counters{m: map[string]*atomic.Uint64{}}
	for _, k := range []string{countReceived, countBatches, countBatchedMsgs, countAcked, countDelivered, countForwarded,
		countRepublished, countRepublishFailed, countRetryAcked, countRetryHeld, countPublishWait, countReceiptsSent,
		countReceiptsDropped, countJournalBad, countUncertified, countAuthAnonymous, countAuthUnknown, countAuthPassword,
		countACLPublish, countACLSubscribe, countOversize, countMalformed, countMeshRefused, countEcho, countUnmapped,
		countBadBatch, countSlowSub, countMeshTopics, countSessionsEvicted, countSessionsExpired, countSubscriptionLimit, countRetainedLimit, countWillsEarly, countBridgeDropped, countConnectTimeout, countConnectingFull} {
		c.m[k] = new(atomic.Uint64)
	}
	return c
}

func (c *counters) add(k string) { c.addN(k, 1) }

func (c *counters) addN(k string, n uint64) {
	v, ok := c.m[k]
	if !ok {
		panic("mqtt: unknown counter " + k)
	}
	v.Add(n)
}

func (c *counters) snapshot() map[string]uint64 {
	out := make(map[string]uint64, len(c.m))
	keys := make([]string, 0, len(c.m))
	for k := range c.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out[k] = c.m[k].Load()
	}
	return out
}
