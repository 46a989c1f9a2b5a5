package ots

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/bitmesh/bitmesh/anchor"
)

// Config configures an Anchorer.
type Config struct {
	// Calendars are the calendar servers' base URLs. Upgrade asks only
	// these, never a URL read from a proof, as the reference client does.
	Calendars []string
	// MinResponses is how many calendars must accept a digest for Anchor
	// to succeed. More calendars, less trust in each.
	MinResponses int
	// HTTPClient makes the calls; nil means a client without a timeout of
	// its own (every call is bounded by its context).
	HTTPClient *http.Client
	// Rand supplies the nonce hiding the digest from calendars; nil means
	// crypto/rand.
	Rand io.Reader
}

// Anchorer timestamps checkpoints with OpenTimestamps calendars and
// writes standard .ots proofs. Safe for concurrent access.
type Anchorer struct{ cfg Config }

var _ anchor.Anchorer = (*Anchorer)(nil)

const (
	otsAccept = "application/vnd.opentimestamps.v1"
	// maxCalendarResponse bounds what a calendar may send back.
	maxCalendarResponse = 10 << 10
)

// NewAnchorer checks cfg.
func NewAnchorer(cfg Config) (*Anchorer, error) {
	if len(cfg.Calendars) == 0 {
		return nil, fmt.Errorf("%w: no calendars", ErrConfig)
	}
	for i, c := range cfg.Calendars {
		if !strings.HasPrefix(c, "https://") && !strings.HasPrefix(c, "http://") {
			return nil, fmt.Errorf("%w: calendar %q is not an http(s) URL", ErrConfig, c)
		}
		cfg.Calendars[i] = strings.TrimRight(c, "/")
	}
	if cfg.MinResponses <= 0 {
		cfg.MinResponses = 1
	}
	if cfg.MinResponses > len(cfg.Calendars) {
		return nil, fmt.Errorf("%w: MinResponses %d exceeds %d calendars", ErrConfig, cfg.MinResponses, len(cfg.Calendars))
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &Anchorer{cfg: cfg}, nil
}

// Kind implements anchor.Anchorer.
func (o *Anchorer) Kind() string { return anchor.KindOpenTimestamps }

// Anchor submits sha256(digest ‖ 16-byte nonce) to every calendar, as the
// reference client does, and returns a pending proof: the .ots file with
// the calendars' answers merged.
func (o *Anchorer) Anchor(ctx context.Context, c anchor.Checkpoint) (anchor.AnchorProof, error) {
	digest := anchor.AnchorDigest(c)
	nonce := make([]byte, 16)
	if _, err := io.ReadFull(o.cfg.Rand, nonce); err != nil {
		return anchor.AnchorProof{}, err
	}
	commitment := sha256.Sum256(append(digest[:], nonce...))
	tip := &Timestamp{}
	var errs []error
	ok := 0
	for _, cal := range o.cfg.Calendars {
		b, err := o.do(ctx, http.MethodPost, cal+"/digest", commitment[:])
		if err == nil {
			var t *Timestamp
			if t, err = ParseTimestamp(b); err == nil {
				tip.Merge(t)
				ok++
				continue
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", cal, err))
	}
	if ok < o.cfg.MinResponses {
		return anchor.AnchorProof{}, fmt.Errorf("%w: %d of %d calendars answered, want %d: %w", ErrCalendar, ok, len(o.cfg.Calendars), o.cfg.MinResponses, errors.Join(errs...))
	}
	f := File{Digest: digest, Timestamp: &Timestamp{Ops: []Branch{{
		Op: Op{Tag: OpAppend, Arg: nonce},
		Stamp: &Timestamp{Ops: []Branch{{
			Op:    Op{Tag: OpSHA256},
			Stamp: tip,
		}}},
	}}}}
	b, err := f.Marshal()
	if err != nil {
		return anchor.AnchorProof{}, err
	}
	p := anchor.AnchorProof{Kind: anchor.KindOpenTimestamps, Digest: digest, Proof: b}
	// A calendar may answer with a complete path already (one that has
	// batched and confirmed before answering, or a test calendar).
	_, err = anchor.VerifyAnchor(p)
	p.Pending = errors.Is(err, anchor.ErrAnchorPending)
	if err != nil && !p.Pending {
		return anchor.AnchorProof{}, err
	}
	return p, nil
}

// Upgrade asks the configured calendars for the Bitcoin path of each
// pending commitment and merges what they return. The proof stays Pending
// (with an error wrapping anchor.ErrAnchorPending) until a Bitcoin
// attestation is in it.
func (o *Anchorer) Upgrade(ctx context.Context, p anchor.AnchorProof) (anchor.AnchorProof, error) {
	f, err := ParseFile(p.Proof)
	if err != nil {
		return p, err
	}
	var errs []error
	// Merging adds ops below t, which visit then walks too: an upgrade
	// that itself ends in a pending attestation is followed in one call.
	err = f.Timestamp.visit(f.Digest[:], func(t *Timestamp, msg []byte) error {
		for _, a := range slices.Clone(t.Attestations) {
			if a.Tag != PendingTag {
				continue
			}
			uri, err := a.pendingURI()
			if err != nil {
				return err
			}
			if !slices.Contains(o.cfg.Calendars, strings.TrimRight(uri, "/")) {
				continue // not a calendar we trust to talk to
			}
			b, err := o.do(ctx, http.MethodGet, strings.TrimRight(uri, "/")+"/timestamp/"+hex.EncodeToString(msg), nil)
			if err == nil {
				var up *Timestamp
				if up, err = ParseTimestamp(b); err == nil {
					t.Merge(up)
					continue
				}
			}
			errs = append(errs, err)
		}
		return nil
	})
	if err != nil {
		return p, err
	}
	b, err := f.Marshal()
	if err != nil {
		return p, err
	}
	up := anchor.AnchorProof{Kind: anchor.KindOpenTimestamps, Digest: p.Digest, Proof: b}
	if _, err := anchor.VerifyAnchor(up); err != nil {
		up.Pending = true
		return up, fmt.Errorf("%w (calendar errors: %v)", err, errors.Join(errs...))
	}
	return up, nil
}

func (o *Anchorer) do(ctx context.Context, method, url string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", otsAccept)
	req.Header.Set("User-Agent", "bitmesh")
	resp, err := o.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCalendar, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCalendarResponse+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCalendar, url, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%w: %s: %s", anchor.ErrAnchorPending, url, bytes.TrimSpace(b[:min(len(b), 200)]))
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w: %s: %s", ErrCalendar, url, resp.Status)
	case len(b) > maxCalendarResponse:
		return nil, fmt.Errorf("%w: %s: answer over %d bytes", ErrCalendar, url, maxCalendarResponse)
	}
	return b, nil
}
