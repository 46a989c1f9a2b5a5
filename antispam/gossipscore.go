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
// what a peer did wrong (P5), with GossipSub's own invalid-message counter
// (P4) as a fast local reaction.
//
// Score budget, in GossipSub units:
//
//	+10   at most from topics (TopicScoreCap): time in mesh and first deliveries
//	 -1   per ledger point (P5, AppSpecificWeight 1): a peer the ledger
//	      scores 80 is graylisted, at 100 it is banned and disconnected
//	-10·n² for n invalid messages in a topic (P4), decaying over minutes
//	-10·(k−3)² for k peers behind one IP beyond 3 (P6, sybils on one host)
//	-10·(b−6)² for b GossipSub protocol violations beyond 6 (P7)
const (
	// GossipThreshold: below it a peer gets no gossip (IHAVE/IWANT) from us.
	GossipThreshold = -10
	// PublishThreshold: below it we do not flood our own messages to it.
	PublishThreshold = -50
	// GraylistThreshold: below it we ignore the peer's RPCs altogether.
	GraylistThreshold = -80
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
		// P4: -10·n² for n invalid messages: one makes a peer lose gossip,
		// three graylist it. Decays over about an hour.
		InvalidMessageDeliveriesWeight: -10,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
	}
}
