package lightning

import (
	"context"
	"errors"
	"fmt"

	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
)

// CertifyServiceName is the service Config.Certify sells.
const CertifyServiceName = "certify"

// CertifyConfig sells certification of the buyer's own messages: the
// request is an envelope the buyer signed (its canonical encoding), on a
// topic this node keeps a Merkle log of. The node takes it through its
// whole receive path (signature, freshness, work, bans, rate, the log's
// quotas: ext.Host.Admit, scored against the buyer like any forwarder)
// into the log, and answers with Receipt's bytes: the receipt that
// verifies offline. One unit is one envelope.
type CertifyConfig struct {
	PriceMsat uint64
	// Receipt returns the receipt of envelope id in topic's log,
	// signing a checkpoint that covers it if none does yet (with
	// anchor/meshlog: MeshLog.Checkpoint, MeshLog.Receipt and
	// anchor.MarshalReceipt).
	Receipt func(ctx context.Context, topic string, id gossip.ID) ([]byte, error)
}

// errNotBuyers: a buyer may have only its own envelopes certified.
var errNotBuyers = errors.New("lightning: certify: the envelope is not signed by the buyer")

func (l *Lightning) certifyService(c CertifyConfig) Service {
	return Service{
		Name: CertifyServiceName, PriceMsat: c.PriceMsat, Unit: "message",
		Description: "log your signed envelope in this node's Merkle log and return its receipt; request: the envelope",
		Serve: func(ctx context.Context, buyer identity.DeviceID, units uint64, request []byte) ([]byte, error) {
			if units != 1 {
				return nil, fmt.Errorf("lightning: certify: one envelope per request, %d units asked", units)
			}
			env, err := gossip.Decode(request)
			if err != nil {
				return nil, fmt.Errorf("lightning: certify: %w", err)
			}
			if env.Sender != buyer {
				return nil, fmt.Errorf("%w: signed by %s", errNotBuyers, env.Sender)
			}
			h, _, err := l.running()
			if err != nil {
				return nil, err
			}
			from, err := buyer.PeerID()
			if err != nil {
				return nil, err
			}
			if _, err := h.Admit(from, env.Topic, request, h.Now()); err != nil {
				return nil, fmt.Errorf("lightning: certify: not admitted: %w", err)
			}
			return c.Receipt(ctx, env.Topic, gossip.MessageID(request))
		},
	}
}
