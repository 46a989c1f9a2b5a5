package lightning

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"
)

// LndConfig says how to reach an lnd node's REST API.
type LndConfig struct {
	// Host is lnd's REST listener, host:port (lnd's --restlisten;
	// 127.0.0.1:8080 by default).
	Host string
	// TLSCertPath is lnd's tls.cert, trusted as the only root.
	TLSCertPath string
	// MacaroonPath is a macaroon with the rights used: invoices:write
	// and offchain:read/write (lnd's invoice.macaroon cannot pay; its
	// admin.macaroon can do both).
	MacaroonPath string
	// PayTimeout bounds one payment attempt; 0 means 60 s.
	PayTimeout time.Duration
}

// Lnd is a Backend that drives lnd over its REST API. bitmesh talks to lnd
// over REST rather than importing lnd's module for its gRPC client: the
// module's dependency graph (btcwallet, neutrino, etcd, a protobuf fork
// through replace directives that do not apply to importers) would enter
// every bitmesh binary, and on a board binary size is memory. BOLT11 is
// decoded by lnd itself (DecodePayReq, lnd's zpay32), never here.
type Lnd struct {
	base     string
	macaroon string // hex
	client   *http.Client
	timeout  time.Duration
}

// maxLndResponse bounds what is read of one lnd answer (a payment's line
// with its HTLC attempts included).
const maxLndResponse = 4 << 20

// NewLnd reads the certificate and macaroon and returns the backend.
func NewLnd(cfg LndConfig) (*Lnd, error) {
	pem, err := os.ReadFile(cfg.TLSCertPath)
	if err != nil {
		return nil, fmt.Errorf("lightning: lnd TLS certificate: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("lightning: no certificate in %s", cfg.TLSCertPath)
	}
	mac, err := os.ReadFile(cfg.MacaroonPath)
	if err != nil {
		return nil, fmt.Errorf("lightning: lnd macaroon: %w", err)
	}
	timeout := cfg.PayTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	return &Lnd{
		base:     "https://" + cfg.Host,
		macaroon: hex.EncodeToString(mac),
		client: &http.Client{Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 4,
		}},
		timeout: timeout,
	}, nil
}

// call sends one request and decodes a single JSON answer into out.
func (l *Lnd) call(ctx context.Context, method, path string, in, out any) error {
	resp, err := l.do(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(io.LimitReader(resp.Body, maxLndResponse)).Decode(out)
}

func (l *Lnd) do(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, l.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Grpc-Metadata-macaroon", l.macaroon)
	resp, err := l.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("lightning: lnd %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("lightning: lnd %s: %s: %s", path, resp.Status, bytes.TrimSpace(msg))
	}
	return resp, nil
}

func (l *Lnd) AddInvoice(ctx context.Context, amountMsat uint64, memo string, ttl time.Duration) (Invoice, error) {
	var out struct {
		RHash          []byte `json:"r_hash"`
		PaymentRequest string `json:"payment_request"`
	}
	in := map[string]string{
		"memo":       memo,
		"value_msat": strconv.FormatUint(amountMsat, 10),
		"expiry":     strconv.FormatInt(int64(ttl/time.Second), 10),
	}
	if err := l.call(ctx, http.MethodPost, "/v1/invoices", in, &out); err != nil {
		return Invoice{}, err
	}
	if len(out.RHash) != 32 || out.PaymentRequest == "" {
		return Invoice{}, fmt.Errorf("lightning: lnd answered an invoice without a 32-byte hash")
	}
	// Decode what lnd made rather than trust our request's echo.
	return l.DecodeInvoice(ctx, out.PaymentRequest)
}

func (l *Lnd) DecodeInvoice(ctx context.Context, req string) (Invoice, error) {
	var out struct {
		PaymentHash string `json:"payment_hash"`
		Timestamp   string `json:"timestamp"`
		Expiry      string `json:"expiry"`
		NumMsat     string `json:"num_msat"`
	}
	if err := l.call(ctx, http.MethodGet, "/v1/payreq/"+url.PathEscape(req), nil, &out); err != nil {
		return Invoice{}, err
	}
	h, err := hex.DecodeString(out.PaymentHash)
	ts, err2 := strconv.ParseInt(out.Timestamp, 10, 64)
	exp, err3 := strconv.ParseInt(out.Expiry, 10, 64)
	msat, err4 := strconv.ParseUint(out.NumMsat, 10, 64)
	if err := errors.Join(err, err2, err3, err4); err != nil || len(h) != 32 {
		return Invoice{}, fmt.Errorf("lightning: lnd decoded %+v: %v", out, err)
	}
	inv := Invoice{PaymentRequest: req, AmountMsat: msat, Expiry: time.Unix(ts+exp, 0)}
	copy(inv.PaymentHash[:], h)
	return inv, nil
}

// Pay sends the payment with lnd's router (SendPaymentV2) and reads its
// stream of updates until the payment succeeds or fails.
func (l *Lnd) Pay(ctx context.Context, req string, maxFeeMsat uint64) ([32]byte, error) {
	in := map[string]any{
		"payment_request":     req,
		"timeout_seconds":     int(l.timeout / time.Second),
		"fee_limit_msat":      strconv.FormatUint(maxFeeMsat, 10),
		"no_inflight_updates": true,
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout+10*time.Second)
	defer cancel()
	resp, err := l.do(ctx, http.MethodPost, "/v2/router/send", in)
	if err != nil {
		return [32]byte{}, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, maxLndResponse))
	sc.Buffer(make([]byte, 0, 64<<10), maxLndResponse)
	for sc.Scan() {
		var line struct {
			Result *struct {
				Status          string `json:"status"`
				PaymentPreimage string `json:"payment_preimage"`
				FailureReason   string `json:"failure_reason"`
			} `json:"result"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return [32]byte{}, fmt.Errorf("lightning: lnd payment update: %w", err)
		}
		switch {
		case line.Error != nil:
			return [32]byte{}, fmt.Errorf("%w: lnd: %s", ErrPaymentFailed, line.Error.Message)
		case line.Result == nil:
			continue
		case line.Result.Status == "SUCCEEDED":
			pre, err := hex.DecodeString(line.Result.PaymentPreimage)
			if err != nil || len(pre) != 32 {
				return [32]byte{}, fmt.Errorf("lightning: lnd returned preimage %q", line.Result.PaymentPreimage)
			}
			return [32]byte(pre), nil
		case line.Result.Status == "FAILED":
			return [32]byte{}, fmt.Errorf("%w: lnd: %s", ErrPaymentFailed, line.Result.FailureReason)
		}
	}
	if err := sc.Err(); err != nil {
		return [32]byte{}, fmt.Errorf("lightning: lnd payment updates: %w", err)
	}
	return [32]byte{}, fmt.Errorf("%w: lnd ended the payment's updates without a result", ErrPaymentFailed)
}

var _ Backend = (*Lnd)(nil)
