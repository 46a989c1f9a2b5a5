package sim

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bitmesh/bitmesh/inventory"
)

// badChunks poses as a source of the rollout's object: as soon as it is
// shared, each attacker announces it to its targets and answers their
// manifest and leaf requests truthfully (both are public and signed), but
// serves every chunk as random bytes of the right length. Honest nodes
// must ban it at its first chunk and still complete the rollout.
type badChunks struct{}

func (badChunks) Run(ctx context.Context, env AttackEnv) error {
	obj, ok := env.Object(ctx)
	if !ok {
		return nil
	}
	for _, a := range env.Attackers {
		a.Host.SetStreamHandler(inventory.ProtocolID, func(s network.Stream) { serveBadChunks(s, obj, env) })
	}
	b, err := inventory.Request{Kind: inventory.KindInv, IDs: []inventory.ID{obj.ID}}.Encode()
	if err != nil {
		return err
	}
	for _, a := range env.Attackers {
		for _, p := range a.Host.Network().Peers() {
			sendRaw(ctx, a.Host, p, b)
		}
	}
	<-ctx.Done()
	return nil
}

func serveBadChunks(s network.Stream, obj *ObjectFacts, env AttackEnv) {
	defer s.Close()
	req, err := inventory.ReadRequest(bufio.NewReader(s))
	if err != nil || req.IDs[0] != obj.ID {
		_ = s.Reset()
		return
	}
	w := bufio.NewWriter(s)
	defer w.Flush()
	switch req.Kind {
	case inventory.KindGetManifest:
		w.Write(inventory.AppendManifestAnswer(nil, obj.Manifest))
	case inventory.KindGetLeaves:
		w.Write(inventory.AppendLeavesAnswer(nil, obj.Leaves))
	case inventory.KindGetData:
		chunks := (obj.Size + obj.Chunk - 1) / obj.Chunk
		for i := int(req.First); i < int(req.First)+int(req.Count) && i < chunks; i++ {
			n := min(obj.Chunk, obj.Size-i*obj.Chunk)
			// Stream handlers run concurrently: env.Rand is not for them.
			junk := make([]byte, n)
			crand.Read(junk)
			if _, err := w.Write(append(inventory.AppendChunkHeader(nil, n), junk...)); err != nil {
				return
			}
		}
	}
}

// invFlood announces made-up objects: every attacker sends its targets
// Rate full invs (inventory.MaxInvPerMsg random IDs each) a second. Honest
// nodes must drop what is over each peer's announcement budget, score it,
// ban the flooders, and still complete their rollout.
type invFlood struct{}

func (invFlood) Run(ctx context.Context, env AttackEnv) error {
	rate := env.Spec.Rate
	if rate <= 0 {
		rate = 1
	}
	// One sender per attacker and neighbour, so that each neighbour gets
	// Rate announcements a second whatever the link latency.
	var wg sync.WaitGroup
	for ai, a := range env.Attackers {
		for pi, p := range a.Host.Network().Peers() {
			rng := rand.New(rand.NewPCG(env.Rand.Uint64(), uint64(ai)<<32|uint64(pi)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				floodPeer(ctx, a.Host, p, rate, rng)
			}()
		}
	}
	wg.Wait()
	return nil
}

// floodPeer sends p rate full invs of random IDs a second until ctx ends.
func floodPeer(ctx context.Context, h host.Host, p peer.ID, rate float64, rng *rand.Rand) {
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	ids := make([]inventory.ID, inventory.MaxInvPerMsg)
	for {
		for i := range ids {
			for j := 0; j < 32; j += 8 {
				v := rng.Uint64()
				for k := range 8 {
					ids[i][j+k] = byte(v >> (8 * k))
				}
			}
		}
		b, err := inventory.Request{Kind: inventory.KindInv, IDs: ids}.Encode()
		if err != nil {
			return
		}
		sendRaw(ctx, h, p, b)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sendRaw writes b on a new inventory stream to p and closes it.
func sendRaw(ctx context.Context, h host.Host, p peer.ID, b []byte) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, p, inventory.ProtocolID)
	if err != nil {
		return
	}
	if _, err := s.Write(b); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}
