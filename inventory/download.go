package inventory

import (
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Tail stalls (Bitcoin Core's block-download stalling rule, applied to
// chunks): once every missing chunk is asked for and a source sits idle, a
// source that has held a chunk for the stall window is dropped from the
// download and its chunks go to the others. The window starts at
// tailWindowMin and doubles at each drop, up to tailWindowMax, so that
// when every link is slow the download does not keep dropping them; like
// Core's, it shrinks by tailWindowDecay at each chunk committed, so that
// a string of slow sources cannot each hold the tail for longer.
const (
	tailWindowMin   = 2 * time.Second
	tailWindowMax   = 64 * time.Second
	tailWindowDecay = 0.85
)

// download is the pure scheduling core of one object's transfer: which
// chunks are missing, which are in flight from which peer, and which peers
// still serve. It does no IO and reads no clock: the caller gives the
// time, bounds each request with a deadline and reports the outcome
// (stage, done, release, drop). Not safe for concurrent use; the caller
// locks.
type download struct {
	have       []bool
	missing    int
	inflight   []peer.ID   // per chunk: who was asked for it; "" when no one; stagedMark once written
	asked      []time.Time // per chunk in flight: when it was asked for
	unassigned int         // missing chunks no one is asked for
	peers      map[peer.ID]*source
	window     time.Duration // the tail stall window
	changed    chan struct{} // closed and replaced on every change workers wait for
}

// source is one peer serving the download.
type source struct {
	announced bool // it told us it has the object: a notfound from it is scored
	dropped   bool // not asked now
	faulty    bool // dropped for a fault (bad bytes, a stall): never used again; otherwise it lacked the object or was slow, and may be asked again once it announces it
	failed    bool // a request to it failed (see fail)
	working   int  // workers running for it
	held      int  // chunks in flight from it
}

// stagedMark is the inflight mark of a chunk whose bytes are written and
// whose commit is pending: no one is asked for it, and dropping the peer
// that sent it does not give it back.
const stagedMark peer.ID = "\x00staged"

func newDownload(have []bool) *download {
	d := &download{have: slices.Clone(have), inflight: make([]peer.ID, len(have)), asked: make([]time.Time, len(have)),
		peers: make(map[peer.ID]*source), window: tailWindowMin, changed: make(chan struct{})}
	for _, h := range have {
		if !h {
			d.missing++
		}
	}
	d.unassigned = d.missing
	return d
}

func (d *download) signal() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// mark sets chunk i's inflight mark to v, keeping the counts true.
func (d *download) mark(i int, v peer.ID) {
	old := d.inflight[i]
	if old == v {
		return
	}
	switch old {
	case "":
		if !d.have[i] {
			d.unassigned--
		}
	case stagedMark:
	default:
		d.peers[old].held--
	}
	switch v {
	case "":
		if !d.have[i] {
			d.unassigned++
		}
	case stagedMark:
	default:
		d.peers[v].held++
	}
	d.inflight[i] = v
}

// addPeer adds p as a source; announced says it announced the object. A
// source dropped because it lacked the object or was slow is taken back
// (it may have it now); one dropped for a fault is not. It reports
// whether p is newly usable.
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
		s.dropped, s.failed = false, false
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

// next assigns p, at now, the first run of at most max missing chunks that
// no one is asked for, and returns it; count 0 when there is none now.
func (d *download) next(p peer.ID, max int, now time.Time) (first uint32, count int) {
	if s, ok := d.peers[p]; !ok || s.dropped || d.unassigned == 0 {
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
		d.mark(i, p)
		d.asked[i] = now
		count++
	}
	return uint32(start), count
}

// stage records chunk i as verified and written, its commit pending.
func (d *download) stage(i uint32) {
	if !d.have[i] {
		d.mark(int(i), stagedMark)
	}
}

// done records chunk i as committed.
func (d *download) done(i uint32) {
	if !d.have[i] {
		d.mark(int(i), stagedMark)
		d.have[i] = true
		d.missing--
		d.window = max(tailWindowMin, time.Duration(float64(d.window)*tailWindowDecay))
	}
	d.inflight[i] = ""
	d.signal()
}

// release gives back the chunks of one request, first to first+count,
// that p did not deliver; p's other requests keep theirs.
func (d *download) release(p peer.ID, first uint32, count int) {
	for i := int(first); i < int(first)+count && i < len(d.inflight); i++ {
		if d.inflight[i] == p {
			d.mark(i, "")
		}
	}
	d.signal()
}

// releaseAll gives back every chunk assigned to p.
func (d *download) releaseAll(p peer.ID) {
	for i, q := range d.inflight {
		if q == p {
			d.mark(i, "")
		}
	}
	d.signal()
}

// drop stops using p for this download and gives its chunks to others;
// faulty says p misbehaved, rather than lacked the object or was slow.
func (d *download) drop(p peer.ID, faulty bool) {
	if s, ok := d.peers[p]; ok {
		s.dropped = true
		s.faulty = s.faulty || faulty
	}
	d.releaseAll(p)
}

// fail drops p after a request to it failed, faulty as for drop, and
// reports whether this is its first failure in the download: a source is
// scored once, even when it was dropped before (at the tail) or several
// of its requests fail.
func (d *download) fail(p peer.ID, faulty bool) (first bool) {
	if s, ok := d.peers[p]; ok {
		first = !s.failed
		s.failed = true
	}
	d.drop(p, faulty)
	return first
}

// tailStalls applies the tail stall rule at now: when no missing chunk is
// left to ask for and a usable source holds none, it returns the sources
// that have held a chunk for the window, and doubles the window if there
// are any. It also returns when to look again (zero: on the next change).
func (d *download) tailStalls(now time.Time) (stalled []peer.ID, recheck time.Time) {
	if d.unassigned > 0 {
		return nil, time.Time{}
	}
	idle := false
	for _, s := range d.peers {
		if !s.dropped && s.held == 0 {
			idle = true
			break
		}
	}
	if !idle {
		return nil, time.Time{}
	}
	for i, p := range d.inflight {
		if p == "" || p == stagedMark || slices.Contains(stalled, p) {
			continue
		}
		due := d.asked[i].Add(d.window)
		if !now.Before(due) {
			stalled = append(stalled, p)
		} else if recheck.IsZero() || due.Before(recheck) {
			recheck = due
		}
	}
	if len(stalled) > 0 {
		d.window = min(2*d.window, tailWindowMax)
		recheck = time.Time{}
	}
	return stalled, recheck
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
