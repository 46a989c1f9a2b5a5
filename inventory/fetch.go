package inventory

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bitmesh/bitmesh/antispam"
)

// retryInterval is how often a fetch with no usable source asks the
// connected peers again.
const retryInterval = 5 * time.Second

// Fetch fetches object id from the peers that announce it or, failing
// them, any connected peer, and returns once it is here whole and
// verified, the fetch failed, or ctx ended (the fetch goes on).
func (x *Inventory) Fetch(ctx context.Context, id ID) error {
	f, err := x.startFetch(id)
	if err != nil || f == nil {
		return err
	}
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startFetch starts fetching id unless it is here or being fetched; it
// returns the fetch, or nil for an object already complete.
func (x *Inventory) startFetch(id ID) (*fetch, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.running {
		return nil, ErrClosed
	}
	if f, ok := x.downloads[id]; ok {
		return f, nil
	}
	if x.store.Complete(id) {
		return nil, nil
	}
	have := x.store.Have(id) // nil before the manifest is here: the run fills it
	f := &fetch{core: newDownload(have), done: make(chan struct{}), staged: make(chan struct{}, 1)}
	anns, _ := x.announced.Get(id)
	for _, p := range anns {
		f.core.addPeer(p, true)
	}
	for _, p := range x.connectedPeers() {
		f.core.addPeer(p, false)
	}
	x.downloads[id] = f
	x.h.Go(func(ctx context.Context) { x.run(ctx, id, f) })
	return f, nil
}

// run drives one fetch: manifest, leaves, then chunks from up to Parallel
// sources at once, until the object is complete.
func (x *Inventory) run(ctx context.Context, id ID, f *fetch) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-x.stopped:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := x.runFetch(ctx, id, f)
	x.mu.Lock()
	delete(x.downloads, id)
	f.err = err
	close(f.done)
	x.mu.Unlock()
	if err == nil {
		x.completed(id)
	} else if ctx.Err() == nil {
		x.h.Logger().Warn("object fetch failed", "id", id, "err", err)
	}
}

func (x *Inventory) runFetch(ctx context.Context, id ID, f *fetch) error {
	m, err := x.ensureManifest(ctx, id, f)
	if err != nil {
		return err
	}
	if err := x.ensureLeaves(ctx, id, m, f); err != nil {
		return err
	}
	x.mu.Lock()
	if len(f.core.have) == 0 {
		peers := f.core.peers
		f.core = newDownload(x.store.Have(id))
		f.core.peers = peers
	}
	x.mu.Unlock()
	failed := make(chan error, 1)
	cctx, stopCommits := context.WithCancel(ctx)
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		x.commitLoop(cctx, id, f, failed)
	}()
	defer func() { // no commit outlives the fetch
		stopCommits()
		<-committed
	}()
	for {
		x.mu.Lock()
		if f.core.complete() {
			x.mu.Unlock()
			return nil
		}
		stalled, recheck := f.core.tailStalls(time.Now())
		for _, p := range stalled {
			f.core.drop(p, false)
			x.counts.TailStalls++
		}
		for _, p := range f.core.idle(x.cfg.Parallel, x.cfg.RequestsPerPeer) {
			// The worker runs under the node's ctx, not the fetch's: a
			// request silent past StallTimeout is scored even if the
			// fetch completed meanwhile (see getData).
			x.h.Go(func(ctx context.Context) {
				if err := x.work(ctx, id, m, f, p); err != nil {
					select {
					case failed <- err:
					default:
					}
				}
			})
		}
		changed := f.core.changed
		starved := f.core.usable() == 0
		x.mu.Unlock()
		for _, p := range stalled {
			x.h.Logger().Info("object source too slow at the tail: its chunks go to another", "id", id, "peer", p)
		}
		var retry, tail <-chan time.Time
		if starved {
			retry = time.After(retryInterval)
		}
		if !recheck.IsZero() {
			tail = time.After(time.Until(recheck))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-failed:
			return err
		case <-changed:
		case <-tail:
		case <-retry:
			x.readdPeers(f)
		}
	}
}

// readdPeers makes the connected peers that have not failed this fetch its
// sources again.
func (x *Inventory) readdPeers(f *fetch) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, p := range x.connectedPeers() {
		f.core.addPeer(p, false)
	}
}

// sources lists f's usable sources, announcers first.
func (x *Inventory) sources(f *fetch) []peer.ID {
	x.mu.Lock()
	defer x.mu.Unlock()
	var ann, other []peer.ID
	for p, s := range f.core.peers {
		switch {
		case s.dropped:
		case s.announced:
			ann = append(ann, p)
		default:
			other = append(other, p)
		}
	}
	return append(ann, other...)
}

// firstSource asks f's sources in turn with ask until one succeeds; a
// source that fails is dropped from f. With none left it waits for new
// sources.
func (x *Inventory) firstSource(ctx context.Context, f *fetch, ask func(p peer.ID, announced bool) error) error {
	for {
		for _, p := range x.sources(f) {
			x.mu.Lock()
			announced := f.core.announced(p)
			x.mu.Unlock()
			err := ask(p, announced)
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, errFatal) {
				return err
			}
			x.mu.Lock()
			f.core.drop(p, isFault(err, announced))
			x.mu.Unlock()
		}
		x.mu.Lock()
		changed := f.core.changed
		x.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-time.After(retryInterval):
			x.readdPeers(f)
		}
	}
}

// errFatal marks an error that ends a fetch rather than a source.
var errFatal = errors.New("inventory: fetch cannot go on")

func (x *Inventory) ensureManifest(ctx context.Context, id ID, f *fetch) (*Manifest, error) {
	if m, _, err := x.store.Manifest(id); err == nil {
		return m, nil
	}
	err := x.firstSource(ctx, f, func(p peer.ID, announced bool) error {
		_, raw, err := x.getManifest(ctx, p, id, announced)
		if err != nil {
			return err
		}
		if _, _, err := x.store.Create(raw); err != nil {
			x.refused(id, err)
			return fmt.Errorf("%w: %w", errFatal, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m, _, err := x.store.Manifest(id)
	return m, err
}

func (x *Inventory) ensureLeaves(ctx context.Context, id ID, m *Manifest, f *fetch) error {
	if x.store.Leaves(id) != nil {
		return nil
	}
	return x.firstSource(ctx, f, func(p peer.ID, announced bool) error {
		leaves, err := x.getLeaves(ctx, p, m, id, announced)
		if err != nil {
			return err
		}
		return x.store.SetLeaves(id, leaves)
	})
}

// request opens a stream to p, writes req and returns the stream for the
// answer, with its read deadline set to timeout from now. The stream is
// reset when ctx ends (a node closing does not wait out a deadline);
// closing it through the returned stream's Close also releases that.
func (x *Inventory) request(ctx context.Context, p peer.ID, req Request, timeout time.Duration) (network.Stream, error) {
	b, err := req.Encode()
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	s, err := x.h.Libp2p().NewStream(network.WithNoDial(sctx, "fetch"), p, ProtocolID)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	_ = s.SetDeadline(time.Now().Add(timeout))
	if _, err := s.Write(b); err != nil {
		stop()
		_ = s.Reset()
		return nil, err
	}
	_ = s.CloseWrite()
	return &ctxStream{Stream: s, stop: stop}, nil
}

// ctxStream is a stream whose reset on its context's end is undone when
// it is closed or reset first.
type ctxStream struct {
	network.Stream
	stop func() bool
}

func (c *ctxStream) Close() error {
	c.stop()
	return c.Stream.Close()
}

func (c *ctxStream) Reset() error {
	c.stop()
	return c.Stream.Reset()
}

// blame scores p for err, an answer that failed, and says so: bad bytes
// ban (BadChunk), silence past the deadline is stalling, notfound from a
// peer that announced the object is an empty announcement. A broken
// connection scores nothing.
func (x *Inventory) blame(p peer.ID, err error, announced bool) {
	switch {
	case errors.Is(err, ErrBadChunk), errors.Is(err, ErrBadSignature), errors.Is(err, ErrWrongNetwork):
		x.penalise(p, antispam.BadChunk)
	case errors.Is(err, os.ErrDeadlineExceeded):
		x.penalise(p, antispam.Stalling)
	case errors.Is(err, ErrNotFound):
		if announced {
			x.count(func(c *Counters) { c.NotFound++ })
			x.penalise(p, antispam.InventoryFlood)
		}
	case errors.Is(err, ErrMalformed) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isStreamError(err):
		x.penalise(p, antispam.Malformed)
	}
}

// isFault reports whether err, from a source that announced the object
// or not, is the source's fault: it is then never asked again for this
// object. A source that lacked the object may be asked once it has it.
func isFault(err error, announced bool) bool {
	switch {
	case errors.Is(err, ErrBadChunk), errors.Is(err, ErrBadSignature), errors.Is(err, ErrWrongNetwork),
		errors.Is(err, os.ErrDeadlineExceeded):
		return true
	case errors.Is(err, ErrNotFound):
		return announced
	}
	return false
}

// isStreamError reports a transport failure (reset, closed connection)
// rather than bytes the peer chose.
func isStreamError(err error) bool {
	var se *network.StreamError
	return errors.As(err, &se) || errors.Is(err, network.ErrReset)
}

// getManifest asks p for id's manifest.
func (x *Inventory) getManifest(ctx context.Context, p peer.ID, id ID, announced bool) (*Manifest, []byte, error) {
	s, err := x.request(ctx, p, Request{Kind: KindGetManifest, IDs: []ID{id}}, requestTimeout)
	if err != nil {
		return nil, nil, err
	}
	defer s.Close()
	m, raw, err := ReadManifestAnswer(bufio.NewReader(io.LimitReader(s, 1+2+MaxManifestSize)), id, x.h.NetworkName())
	if err != nil {
		x.blame(p, err, announced)
		_ = s.Reset()
		return nil, nil, err
	}
	return m, raw, nil
}

// getLeaves asks p for m's leaf hashes.
func (x *Inventory) getLeaves(ctx context.Context, p peer.ID, m *Manifest, id ID, announced bool) ([][32]byte, error) {
	s, err := x.request(ctx, p, Request{Kind: KindGetLeaves, IDs: []ID{id}}, x.cfg.StallTimeout+requestTimeout)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	leaves, err := ReadLeavesAnswer(bufio.NewReader(io.LimitReader(s, 1+4+32*int64(m.Chunks()))), m)
	if err != nil {
		x.blame(p, err, announced)
		_ = s.Reset()
		return nil, err
	}
	return leaves, nil
}

// work fetches chunks of id from p until none is left for it or p fails.
// Only a failure that ends the whole fetch is returned.
func (x *Inventory) work(ctx context.Context, id ID, m *Manifest, f *fetch, p peer.ID) error {
	defer func() {
		x.mu.Lock()
		f.core.stopped(p)
		x.mu.Unlock()
	}()
	h := NewLeafHasher()
	buf := make([]byte, m.ChunkSize) // one chunk: each is staged as it arrives
	for {
		if isDone(f) {
			return nil
		}
		x.mu.Lock()
		first, count := f.core.next(p, x.cfg.ChunksPerRequest, time.Now())
		changed, complete := f.core.changed, f.core.complete()
		announced := f.core.announced(p)
		x.mu.Unlock()
		if complete {
			return nil
		}
		if count == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-f.done:
				return nil
			case <-changed:
				continue
			}
		}
		err := x.getData(ctx, h, buf, id, m, p, first, count, f)
		x.mu.Lock()
		f.core.release(p, first, count)
		// Another request to p may have failed first: p is scored once.
		firstFault := err != nil && f.core.fail(p, isFault(err, announced))
		x.mu.Unlock()
		if err != nil {
			if errors.Is(err, errFatal) {
				return err
			}
			if firstFault {
				x.blame(p, err, announced)
			}
			return nil
		}
	}
}

// getData asks p for count chunks from first, verifies and stages each as
// it arrives, and hands those that verified to the fetch's committer, even
// when a later one fails.
func (x *Inventory) getData(ctx context.Context, h *LeafHasher, buf []byte, id ID, m *Manifest, p peer.ID, first uint32, count int, f *fetch) error {
	s, err := x.request(ctx, p, Request{Kind: KindGetData, IDs: []ID{id}, First: first, Count: uint16(count)}, x.cfg.StallTimeout)
	if err != nil {
		return err
	}
	defer s.Close()
	var readErr error
	for i := first; i < first+uint32(count); i++ {
		if i > first && isDone(f) {
			// The fetch ended (another source delivered the rest): stop
			// after the chunk that was arriving, which is also what
			// judges a source silent past StallTimeout.
			_ = s.Reset()
			return nil
		}
		c := buf[:m.ChunkLen(int(i))]
		if readErr = ReadChunk(s, c); readErr != nil { // unbuffered: straight into buf
			break
		}
		v, err := x.store.VerifyChunk(h, id, i, c)
		if err != nil {
			readErr = err
			break
		}
		if v, err = x.store.Stage(id, v); err != nil {
			return fmt.Errorf("%w: %w", errFatal, err)
		}
		x.mu.Lock()
		f.core.stage(i)
		f.pending = append(f.pending, v)
		x.mu.Unlock()
		select {
		case f.staged <- struct{}{}:
		default:
		}
		// A stall is silence: each chunk that arrives earns the peer
		// another StallTimeout.
		_ = s.SetReadDeadline(time.Now().Add(x.cfg.StallTimeout))
	}
	if readErr != nil {
		_ = s.Reset()
	}
	if readErr != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return readErr
}

// commitLoop commits f's staged chunks in groups until ctx ends: each
// group is every chunk staged while the previous one synced, so one data
// sync and one have-log sync acknowledge them all, and no worker waits for
// the disk before its next request. A failed commit (a disk that fails a
// write or a sync) ends the fetch; it resumes from what was acknowledged
// when the node restarts.
func (x *Inventory) commitLoop(ctx context.Context, id ID, f *fetch, failed chan<- error) {
	for {
		select {
		case <-ctx.Done():
			// Chunks staged but not yet synced are acknowledged now if the
			// store is still open; otherwise they are fetched again.
			x.commitStaged(id, f)
			return
		case <-f.staged:
		}
		if err := x.commitStaged(id, f); err != nil {
			select {
			case failed <- fmt.Errorf("%w: %w", errFatal, err):
			default:
			}
			return
		}
	}
}

// commitStaged commits the chunks staged so far and marks them done.
func (x *Inventory) commitStaged(id ID, f *fetch) error {
	x.mu.Lock()
	batch := f.pending
	f.pending = nil
	x.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if _, err := x.store.Commit(id, batch); err != nil {
		return err
	}
	x.mu.Lock()
	n := 0 // a chunk two sources both delivered counts once
	for _, v := range batch {
		if !f.core.have[v.index] {
			n++
		}
		f.core.done(v.index)
	}
	x.counts.FetchedChunks += uint64(n)
	x.mu.Unlock()
	x.store.countFetched(id, n)
	return nil
}

// isDone reports whether fetch f has ended.
func isDone(f *fetch) bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// completed runs once an object is here whole: it retires the version the
// object supersedes and announces it.
func (x *Inventory) completed(id ID) {
	m, _, err := x.store.Manifest(id)
	if err != nil {
		return
	}
	if old, ok, err := x.store.Supersede(m); err != nil {
		x.h.Logger().Warn("removing a superseded object", "id", old, "err", err)
	} else if ok {
		x.count(func(c *Counters) { c.Superseded++ })
		x.h.Logger().Info("superseded object removed", "id", old, "by", id)
	}
	x.h.Logger().Info("object complete", "id", id, "type", m.Type, "name", m.Name, "size", m.Size)
	x.announce(id)
}
