package antispam

import (
	"net"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// GossipSub peer scoring for a bitmesh mesh. The parameters follow Protocol
// Labs' gossipsub-hardening evaluation, adjusted for IoT traffic: topics are
// quiet (a reading a minute is common), so nothing may punish a peer merely
// for delivering little, and the misbehaviour ledger is the authority on
// what a peer did wrong (P5). GossipSub's own invalid-message counter (P4)
// is off: the ledger already scores every rejected message by its cause, so
// P4 would count each one twice, and its quadratic growth would graylist a
// peer (GossipSub then ignores its messages, so the ledger sees no more of
// them) before the ledger could ban and disconnect it.
//
// Score budget, in GossipSub units:
//
//	+10   at most from topics (TopicScoreCap): time in mesh and first deliveries
//	 -1   per ledger point (P5, AppSpecificWeight 1): at -10 a peer gets no
//	      gossip from us, at -50 none of our own messages; at 100 the ledger
//	      bans and disconnects it, so P5 alone never reaches the graylist
//	-10·(k−3)² for k peers behind one IP beyond 3 (P6, sybils on one host)
//	-10·(b−6)² for b GossipSub protocol violations beyond 6 (P7)
const (
	// GossipThreshold: below it a peer gets no gossip (IHAVE/IWANT) from us.
	GossipThreshold = -10
	// PublishThreshold: below it we do not flood our own messages to it.
	PublishThreshold = -50
	// GraylistThreshold: below it we ignore the peer's RPCs altogether. It
	// lies beyond the ledger's ban threshold, so only P6 and P7 on top of a
	// bad ledger score graylist; the ledger's verdict is a ban.
	GraylistThreshold = -110
	// AcceptPXThreshold: peer exchange is accepted only from peers above it,
	// which takes about an hour of good behaviour in a mesh.
	AcceptPXThreshold = 5
	// OpportunisticGraftThreshold: the median mesh score below which
	// GossipSub grafts better-scoring peers.
	OpportunisticGraftThreshold = 2
)

// PeerScoreThresholds returns the thresholds above as GossipSub's type.
func PeerScoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             GossipThreshold,
		PublishThreshold:            PublishThreshold,
		GraylistThreshold:           GraylistThreshold,
		AcceptPXThreshold:           AcceptPXThreshold,
		OpportunisticGraftThreshold: OpportunisticGraftThreshold,
	}
}

// PeerScoreParams returns the mesh-wide score parameters. appScore is P5:
// the node passes minus the peer's ledger score. colocationWhitelist lists
// networks exempt from the IP colocation penalty (P6): loopback in tests and
// simulations, where every peer shares one address.
func PeerScoreParams(appScore func(peer.ID) float64, colocationWhitelist []*net.IPNet) *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		Topics:                      map[string]*pubsub.TopicScoreParams{},
		TopicScoreCap:               10,
		AppSpecificScore:            appScore,
		AppSpecificWeight:           1,
		IPColocationFactorWeight:    -10,
		IPColocationFactorThreshold: 3,
		IPColocationFactorWhitelist: colocationWhitelist,
		BehaviourPenaltyWeight:      -10,
		BehaviourPenaltyThreshold:   6,
		BehaviourPenaltyDecay:       pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:               pubsub.DefaultDecayInterval,
		DecayToZero:                 pubsub.DefaultDecayToZero,
		// Remember a misbehaving peer's score for an hour after it leaves,
		// so reconnecting does not wash it clean.
		RetainScore: time.Hour,
	}
}

// TopicScoreParams returns the parameters every bitmesh topic uses.
//
// P3 (mesh message delivery deficit) and P3b are off: on a quiet IoT topic
// an honest mesh peer often has nothing to deliver, and P3 would prune it.
// Censorship by mesh peers is countered instead by flood publishing, gossip
// and P2 rewarding first deliveries.
func TopicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight: 1,
		// P1: up to +3.6 after an hour in the mesh.
		TimeInMeshWeight:  0.001,
		TimeInMeshQuantum: time.Second,
		TimeInMeshCap:     3600,
		// P2: +1 per first delivery, at most +5, halving every ~10 minutes.
		FirstMessageDeliveriesWeight: 1,
		FirstMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(15 * time.Minute),
		FirstMessageDeliveriesCap:    5,
		// P4 off (see the comment at the top of this file); the
		// decay must still be valid for GossipSub's parameter check.
		InvalidMessageDeliveriesWeight: 0,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
	}
}
