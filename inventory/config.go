package inventory

import (
	"errors"
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"

	"github.com/bitmesh/bitmesh/identity"
)

// Config configures the inventory extension.
type Config struct {
	// Dir is where objects are kept. Empty: DataDir/objects of the node,
	// or memory for a node without a data directory (simulations).
	Dir string
	// Types are the object types this node fetches on its own as soon as
	// a peer announces one (a device wants "firmware"). Other objects are
	// fetched only when asked (Fetch). Each automatic fetch costs a
	// manifest request, then the object's bytes against its type's quota.
	Types []string
	// Publishers, if set, limits automatic fetches to objects these
	// devices signed: a fleet takes firmware from its vendor's key only.
	// Empty: any publisher, which lets anyone fill a wanted type's quota.
	Publishers []identity.DeviceID
	// Quota bounds the bytes of each type's objects, fetched or shared;
	// TypeQuotas overrides it per type. An object beyond is refused with
	// ErrQuota. Superseded versions are removed when their successor is
	// complete, which frees their share.
	Quota      uint64
	TypeQuotas map[string]uint64
	// ChunkSize is what Share cuts objects into. Larger chunks cost fewer
	// requests and leaf hashes; smaller ones lose less to a stall or a bad
	// peer and spread sooner.
	ChunkSize uint32
	// TrickleInterval is the mean delay before announcements go out, in
	// batches, each delay drawn from an exponential distribution (as
	// Bitcoin Core trickles): batching saves streams, and the random delay
	// hides which neighbour first had an object. Shorter spreads objects
	// sooner.
	TrickleInterval time.Duration
	// Parallel is how many peers one download fetches from at once.
	Parallel int
	// RequestsPerPeer is how many getdata requests a download keeps in
	// flight to each of them: more than one hides the round trip and the
	// stream set-up between requests. Peers serve at most four streams of
	// one peer at once (one is left for announcements).
	RequestsPerPeer int
	// ChunksPerRequest is how many chunks one getdata asks a peer for
	// (at most MaxChunksPerRequest). More keeps a fast link busy; fewer
	// lose less when the peer stalls.
	ChunksPerRequest int
	// StallTimeout is how long a peer may go without sending any of what
	// it was asked for. Beyond it the peer is scored for stalling and its
	// chunks go to another. Too short penalises slow links.
	StallTimeout time.Duration
	// InvRate and InvBurst are each peer's budget of announced IDs per
	// second. IDs beyond it are dropped and score inventory-flood.
	InvRate  rate.Limit
	InvBurst int
	// ServeRate bounds the bytes per second this node serves to all
	// peers together, so a rollout does not take a board's whole uplink.
	// 0: no bound.
	ServeRate int
}

// Defaults.
const (
	defaultQuota = 1 << 30
	// maxKnownInventory is each peer's known-inventory set, as btcd's.
	maxKnownInventory = 1000
	// maxTracked bounds the objects whose announcers a node remembers
	// without fetching them; maxAnnouncers the announcers of each.
	maxTracked    = 4096
	maxAnnouncers = 16
	// maxProbes bounds manifest requests in flight for announced objects
	// the node might want: a flood of announcements costs at most this
	// many streams at once.
	maxProbes = 4
	// requestTimeout bounds a request that carries no chunks (inv,
	// manifest, leaves).
	requestTimeout = 10 * time.Second
)

// DefaultConfig fetches nothing automatically; 1 GiB per type; chunks of
// 256 KiB; announcements trickled every second on average; four peers per
// download, three requests of 16 chunks in flight to each; a 10 s stall
// timeout; 10 announced IDs a second per peer, bursts of 1000.
func DefaultConfig() Config {
	return Config{
		Quota: defaultQuota, ChunkSize: DefaultChunkSize, TrickleInterval: time.Second,
		Parallel: 4, RequestsPerPeer: 3, ChunksPerRequest: 16, StallTimeout: 10 * time.Second,
		InvRate: 10, InvBurst: MaxInvPerMsg,
	}
}

// Validate reports the first bad field.
func (c Config) Validate() error {
	for _, t := range c.Types {
		if !validType(t) {
			return fmt.Errorf("inventory: type %q: 1..%d of a-z, 0-9, '-'", t, MaxTypeLen)
		}
	}
	for t := range c.TypeQuotas {
		if !validType(t) {
			return fmt.Errorf("inventory: quota of type %q: 1..%d of a-z, 0-9, '-'", t, MaxTypeLen)
		}
	}
	switch {
	case c.ChunkSize < MinChunkSize || c.ChunkSize > MaxChunkSize:
		return fmt.Errorf("inventory: ChunkSize %d outside %d..%d", c.ChunkSize, MinChunkSize, MaxChunkSize)
	case c.TrickleInterval <= 0 || c.StallTimeout <= 0:
		return errors.New("inventory: TrickleInterval and StallTimeout must be positive")
	case c.Parallel <= 0 || c.ChunksPerRequest <= 0 || c.ChunksPerRequest > MaxChunksPerRequest:
		return fmt.Errorf("inventory: Parallel must be positive, ChunksPerRequest 1..%d", MaxChunksPerRequest)
	case c.RequestsPerPeer <= 0 || c.RequestsPerPeer >= streamLimits.PerPeer:
		return fmt.Errorf("inventory: RequestsPerPeer must be 1..%d", streamLimits.PerPeer-1)
	case c.InvRate <= 0 || c.InvBurst < MaxInvPerMsg:
		return fmt.Errorf("inventory: InvRate must be positive and InvBurst at least %d (one full inv)", MaxInvPerMsg)
	case c.ServeRate < 0:
		return errors.New("inventory: ServeRate must not be negative")
	}
	return nil
}

func (c Config) quota(typ string) uint64 {
	if q, ok := c.TypeQuotas[typ]; ok {
		return q
	}
	return c.Quota
}

// PoissonDelay turns u, uniform in [0, 1), into an exponentially
// distributed delay of the given mean (the gaps of a Poisson process),
// capped at ten means.
func PoissonDelay(mean time.Duration, u float64) time.Duration {
	d := -math.Log1p(-u) * float64(mean)
	return time.Duration(min(d, 10*float64(mean)))
}
