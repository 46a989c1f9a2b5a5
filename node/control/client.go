package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"
)

// Client talks to a running node's control API.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// Dial returns a client for the node running on dataDir.
func Dial(dataDir string) (*Client, error) {
	e, err := ReadEndpoint(dataDir)
	if err != nil {
		return nil, err
	}
	return NewClient(e), nil
}

// NewClient returns a client for endpoint e.
func NewClient(e Endpoint) *Client {
	return &Client{base: "http://" + e.Addr, token: e.Token, http: &http.Client{Transport: &http.Transport{}}}
}

// Close releases the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

func (c *Client) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("control: node not reachable at %s (is it running?): %w", c.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, statusError(method, path, resp)
	}
	return resp, nil
}

// statusError reads a refusal: the node's message, and for 429 when to
// retry.
func statusError(method, path string, resp *http.Response) *StatusError {
	e := &StatusError{Code: resp.StatusCode}
	var body errorResponse
	if json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body) == nil && body.Error != "" {
		e.Message = body.Error
	} else {
		e.Message = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// Do sends an authenticated request for path, with body (nil, or a value
// sent as JSON), and returns the response if its status is 200 OK; the
// caller closes its body. Another status becomes an error with the API's
// error text. Extensions' endpoints (ext.Routes) are reached through it.
func (c *Client) Do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	return c.do(ctx, method, path, body)
}

// Info returns the node's identity and addresses.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var info Info
	resp, err := c.do(ctx, http.MethodGet, "/v1/info", nil)
	if err != nil {
		return info, err
	}
	defer resp.Body.Close()
	return info, json.NewDecoder(resp.Body).Decode(&info)
}

// Publish publishes payload on topic, first waiting (bounded by ctx) for
// minPeers subscribers. It returns the envelope ID in hex.
func (c *Client) Publish(ctx context.Context, topic string, payload []byte, minPeers int) (string, error) {
	req := PublishRequest{Topic: topic, MinPeers: minPeers}
	if utf8.Valid(payload) {
		req.Data = string(payload)
	} else {
		req.DataB64 = base64.StdEncoding.EncodeToString(payload)
	}
	resp, err := c.do(ctx, http.MethodPost, "/v1/publish", req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out PublishResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", fmt.Errorf("control: bad publish response: %w", err)
	}
	return out.ID, nil
}

// Subscribe streams topic's messages to f until ctx ends, f returns an
// error (returned as is; return ErrStop to end cleanly) or the node goes
// away. ready, if not nil, is called once the subscription is in place.
func (c *Client) Subscribe(ctx context.Context, topic string, ready func(), f func(Message) error) error {
	resp, err := c.do(ctx, http.MethodGet, "/v1/subscribe?topic="+url.QueryEscape(topic), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if ready != nil {
		ready()
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxRequestBody*2)
	for sc.Scan() {
		var m Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("control: bad message line: %w", err)
		}
		if err := f(m); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("control: subscription: %w", err)
	}
	return errors.New("control: the node closed the subscription")
}

// Peers lists connected peers and the subjects the ledger scores or bans.
func (c *Client) Peers(ctx context.Context) ([]PeerInfo, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/peers", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []PeerInfo
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// Stats returns the node's counters.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/stats", nil)
	if err != nil {
		return Stats{}, err
	}
	defer resp.Body.Close()
	var out Stats
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// Ban bans a subject (see BanRequest) for d (0: the node's default).
func (c *Client) Ban(ctx context.Context, subject string, d time.Duration, reason string) error {
	req := BanRequest{Subject: subject, Reason: reason}
	if d > 0 {
		req.Duration = d.String()
	}
	resp, err := c.do(ctx, http.MethodPost, "/v1/ban", req)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Unban lifts a subject's ban.
func (c *Client) Unban(ctx context.Context, subject string) error {
	resp, err := c.do(ctx, http.MethodPost, "/v1/unban", BanRequest{Subject: subject})
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Announce gossips an encoded certificate or revocation through the node.
func (c *Client) Announce(ctx context.Context, record []byte) error {
	resp, err := c.do(ctx, http.MethodPost, "/v1/announce", AnnounceRequest{RecordB64: base64.StdEncoding.EncodeToString(record)})
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// ErrStop, returned by a Subscribe callback, ends the subscription cleanly.
var ErrStop = errors.New("control: stop")
