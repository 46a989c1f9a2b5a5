package control

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ParseSubject reads a ban subject: a device ID (bmdev1…), a peer ID, or
// either with its "device:" or "peer:" prefix as the ledger prints them.
func ParseSubject(s string) (antispam.Subject, error) {
	kind, id, prefixed := strings.Cut(s, ":")
	if !prefixed {
		id = s
	}
	if (!prefixed || kind == "device") && strings.HasPrefix(id, identity.DeviceIDPrefix+"1") {
		d, err := identity.ParseDeviceID(id)
		if err != nil {
			return antispam.Subject{}, err
		}
		return antispam.DeviceSubject(d), nil
	}
	if prefixed && kind != "peer" {
		return antispam.Subject{}, fmt.Errorf("control: subject %q: want a device ID or a peer ID", s)
	}
	p, err := peer.Decode(id)
	if err != nil {
		return antispam.Subject{}, fmt.Errorf("control: subject %q is neither a device ID nor a peer ID: %w", s, err)
	}
	return antispam.PeerSubject(p), nil
}

func (s *server) peers(w http.ResponseWriter, _ *http.Request) {
	scores, err := s.n.Scores()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	bans, err := s.n.Bans()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	bySubject := map[antispam.Subject]*PeerInfo{}
	info := func(sub antispam.Subject) *PeerInfo {
		if pi, ok := bySubject[sub]; ok {
			return pi
		}
		pi := &PeerInfo{Subject: sub.String()}
		if sub.Kind == antispam.SubjectPeer {
			if p, err := peer.Decode(sub.ID); err == nil {
				if d, err := identity.DeviceIDFromPeerID(p); err == nil {
					pi.DeviceID = d.String()
				}
			}
		}
		bySubject[sub] = pi
		return pi
	}
	for _, p := range s.n.Peers() {
		info(antispam.PeerSubject(p)).Connected = true
	}
	for _, sc := range scores {
		info(sc.Subject).Score = sc.Score
	}
	for _, b := range bans {
		pi := info(b.Subject)
		until := b.Until.UTC()
		pi.BanUntil, pi.BanReason = &until, b.Reason
	}
	out := make([]PeerInfo, 0, len(bySubject))
	for _, pi := range bySubject {
		out = append(out, *pi)
	}
	slices.SortFunc(out, func(a, b PeerInfo) int {
		return cmp.Or(-cmp.Compare(a.Score, b.Score), strings.Compare(a.Subject, b.Subject))
	})
	writeJSON(w, http.StatusOK, out)
}

func decodeBanRequest(w http.ResponseWriter, r *http.Request) (BanRequest, antispam.Subject, bool) {
	var req BanRequest
	if !readRequest(w, r, 1<<16, strings.TrimPrefix(r.URL.Path, "/v1/"), &req) {
		return req, antispam.Subject{}, false
	}
	sub, err := ParseSubject(req.Subject)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return req, antispam.Subject{}, false
	}
	return req, sub, true
}

func (s *server) ban(w http.ResponseWriter, r *http.Request) {
	req, sub, ok := decodeBanRequest(w, r)
	if !ok {
		return
	}
	var d time.Duration
	if req.Duration != "" {
		var err error
		if d, err = time.ParseDuration(req.Duration); err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("bad duration %q: want a positive Go duration such as 24h", req.Duration))
			return
		}
	}
	reason := req.Reason
	if reason == "" {
		reason = "banned by operator"
	}
	if err := s.n.Ban(sub, d, reason); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"banned": sub.String()})
}

func (s *server) unban(w http.ResponseWriter, r *http.Request) {
	_, sub, ok := decodeBanRequest(w, r)
	if !ok {
		return
	}
	if err := s.n.Unban(sub); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"unbanned": sub.String()})
}
