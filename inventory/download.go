package inventory

import (
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
)

// download is the pure scheduling core of one object's transfer: which
// chunks are missing, which are in flight from which peer, and which peers
// still serve. It does no IO and keeps no time: the caller bounds each
// request with a deadline and reports the outcome (Done, Release, Drop).
// Not safe for concurrent use; the caller locks.
type download struct {
	have     []bool
	missing  int
	inflight []peer.ID // per chunk: who was asked for it; "" when no one
	peers    map[peer.ID]*source
	changed  chan struct{} // closed and replaced on every change workers wait for
}

// source is one peer serving the download.
type source struct {
	announced bool // it told us it has the object: a notfound from it is scored
	dropped   bool // not asked now
	faulty    bool // dropped for a fault (bad bytes, a stall): never used again; otherwise it lacked the object and may be asked again once it announces it
	working   int  // workers running for it
}

func newDownload(have []bool) *download {
	d := &download{have: slices.Clone(have), inflight: make([]peer.ID, len(have)),
		peers: make(map[peer.ID]*source), changed: make(chan struct{})}
	for _, h := range have {
		if !h {
			d.missing++
		}
	}
	return d
}

func (d *download) signal() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// addPeer adds p as a source; announced says it announced the object. A
// source dropped because it lacked the object is taken back (it may have
// it now); one dropped for a fault is not. It reports whether p is newly
// usable.
func (d *download) addPeer(p peer.ID, announced bool) bool {
	s, ok := d.peers[p]
	if !ok {
		d.peers[p] = &source{announced: announced}
		d.signal()
		return true
	}
	if announced {
		s.announced = true
	}
	if s.dropped && !s.faulty {
		s.dropped = false
		d.signal()
		return true
	}
	return false
}

// idle returns worker slots to start: up to perPeer workers for each
// usable source, announcers first, and no more than n sources with
// workers in all. A peer appears once per slot.
func (d *download) idle(n, perPeer int) []peer.ID {
	var busy int
	var ann, other []peer.ID
	for p, s := range d.peers {
		switch {
		case s.dropped:
		case s.announced:
			ann = append(ann, p)
		default:
			other = append(other, p)
		}
		if !s.dropped && s.working > 0 {
			busy++
		}
	}
	var out []peer.ID
	for _, p := range append(ann, other...) {
		s := d.peers[p]
		if s.working == 0 {
			if busy >= n {
				continue
			}
			busy++
		}
		for s.working < perPeer {
			s.working++
			out = append(out, p)
		}
	}
	return out
}

// stopped tells the core p's worker has ended.
func (d *download) stopped(p peer.ID) {
	if s, ok := d.peers[p]; ok && s.working > 0 {
		s.working--
	}
	d.signal()
}

// next assigns p the first run of at most max missing chunks that no one
// is asked for, and returns it; count 0 when there is none now.
func (d *download) next(p peer.ID, max int) (first uint32, count int) {
	if s, ok := d.peers[p]; !ok || s.dropped {
		return 0, 0
	}
	start := -1
	for i := range d.have {
		if !d.have[i] && d.inflight[i] == "" {
			start = i
			break
		}
	}
	if start < 0 {
		return 0, 0
	}
	for i := start; i < len(d.have) && i-start < max && !d.have[i] && d.inflight[i] == ""; i++ {
		d.inflight[i] = p
		count++
	}
	return uint32(start), count
}

// done records chunk i as committed.
func (d *download) done(i uint32) {
	if !d.have[i] {
		d.have[i] = true
		d.missing--
	}
	d.inflight[i] = ""
	d.signal()
}

// release gives back the chunks of one request, first to first+count,
// that p did not deliver; p's other requests keep theirs.
func (d *download) release(p peer.ID, first uint32, count int) {
	for i := int(first); i < int(first)+count && i < len(d.inflight); i++ {
		if d.inflight[i] == p {
			d.inflight[i] = ""
		}
	}
	d.signal()
}

// releaseAll gives back every chunk assigned to p.
func (d *download) releaseAll(p peer.ID) {
	for i, q := range d.inflight {
		if q == p {
			d.inflight[i] = ""
		}
	}
	d.signal()
}

// drop stops using p for this download and gives its chunks to others;
// faulty says p misbehaved, rather than lacked the object.
func (d *download) drop(p peer.ID, faulty bool) {
	if s, ok := d.peers[p]; ok {
		s.dropped = true
		s.faulty = s.faulty || faulty
	}
	d.releaseAll(p)
}

// announced reports whether p announced the object.
func (d *download) announced(p peer.ID) bool {
	s, ok := d.peers[p]
	return ok && s.announced
}

func (d *download) complete() bool { return d.missing == 0 }

// usable counts the sources not dropped.
func (d *download) usable() int {
	n := 0
	for _, s := range d.peers {
		if !s.dropped {
			n++
		}
	}
	return n
}
