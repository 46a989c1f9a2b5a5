package sim

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"errors"
	"io"
	"math/rand/v2"
	"os"
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
	return poseAsSource(ctx, env, func(obj *ObjectFacts) chunkServer {
		return func(_ int, buf []byte) bool {
			// Stream handlers run concurrently: env.Rand is not for them.
			crand.Read(buf)
			return true
		}
	})
}

// dripChunks poses as a source of the rollout's object as badChunks does,
// but serves every chunk intact, slowly: each request gets one chunk per
// 1/Rate seconds (a scenario sets it just inside the fetchers' 10 s stall
// timeout), so it is never silent long enough to be scored. Honest nodes
// must not wait for it at the tail of their downloads: the tail stall
// rule (PROTOCOL.md §20.3) hands its chunks to a source that sits idle.
type dripChunks struct{}

func (dripChunks) Run(ctx context.Context, env AttackEnv) error {
	delay := time.Duration(float64(time.Second) / env.Spec.Rate)
	return poseAsSource(ctx, env, func(obj *ObjectFacts) chunkServer {
		f, err := os.Open(obj.Path)
		if err != nil {
			return nil
		}
		context.AfterFunc(ctx, func() { f.Close() })
		return func(i int, buf []byte) bool {
			select {
			case <-ctx.Done():
				return false
			case <-time.After(delay):
			}
			_, err := f.ReadAt(buf, int64(i)*int64(obj.Chunk))
			return err == nil || errors.Is(err, io.EOF)
		}
	})
}

// A chunkServer fills buf with chunk i as a hostile source serves it; false
// ends the answer.
type chunkServer func(i int, buf []byte) bool

// poseAsSource waits for the rollout's object, has every attacker answer
// its requests (manifest and leaves truthfully, chunks as the server that
// serve makes for it fills them) and announce it to its neighbours, and
// waits for ctx to end.
func poseAsSource(ctx context.Context, env AttackEnv, serve func(*ObjectFacts) chunkServer) error {
	obj, ok := env.Object(ctx)
	if !ok {
		return nil
	}
	chunk := serve(obj)
	if chunk == nil {
		return errors.New("sim: the rollout object's bytes are not readable")
	}
	for _, a := range env.Attackers {
		a.Host.SetStreamHandler(inventory.ProtocolID, func(s network.Stream) { serveObject(s, obj, chunk) })
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

// serveObject answers one request of the object protocol for obj, its
// chunks as chunk fills them.
func serveObject(s network.Stream, obj *ObjectFacts, chunk chunkServer) {
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
			buf := make([]byte, n)
			if !chunk(i, buf) {
				return
			}
			if _, err := w.Write(append(inventory.AppendChunkHeader(nil, n), buf...)); err != nil {
				return
			}
			if err := w.Flush(); err != nil { // each chunk as it is ready
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
