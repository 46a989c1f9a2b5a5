package control

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/bitmesh/bitmesh/anchor"
)

// The client side of the log extension's endpoints (anchor/meshlog
// routes.go), for `bitmesh log`. It reads the answers as the node sent
// them, without importing the extension that owns their schema.

// LogInfo is one log of GET /v1/logs (meshlog.LogInfo on the node): the
// fields `bitmesh log show` prints. MarshalJSON gives back the whole
// object as the node sent it, fields this type does not name included.
type LogInfo struct {
	Topic      string   `json:"topic"`
	Origin     string   `json:"origin"`
	Size       uint64   `json:"size"`
	Checkpoint uint64   `json:"checkpoint_size"` // size of the newest signed checkpoint
	Cosigners  []string `json:"cosigners"`       // witnesses of the newest checkpoint

	raw json.RawMessage // as received; nil for a LogInfo built in code
}

// logInfoFields is LogInfo without its methods, to decode and encode the
// named fields without recursing.
type logInfoFields LogInfo

// UnmarshalJSON keeps data for MarshalJSON.
func (l *LogInfo) UnmarshalJSON(data []byte) error {
	var f logInfoFields
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	*l = LogInfo(f)
	l.raw = append(json.RawMessage(nil), data...)
	return nil
}

// MarshalJSON returns the object as received, else the named fields.
func (l LogInfo) MarshalJSON() ([]byte, error) {
	if l.raw != nil {
		return l.raw, nil
	}
	return json.Marshal(logInfoFields(l))
}

// Do sends an authenticated request for path, with body (nil, or a value
// sent as JSON), and returns the response if its status is 200 OK; the
// caller closes its body. Another status becomes an error with the API's
// error text. Extensions' endpoints (ext.Routes) are reached through it.
func (c *Client) Do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	return c.do(ctx, method, path, body)
}

// Logs lists the node's logs.
func (c *Client) Logs(ctx context.Context) ([]LogInfo, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/logs", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []LogInfo
	return out, json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out)
}

// Checkpoint signs (if the log grew) and returns topic's newest checkpoint.
func (c *Client) Checkpoint(ctx context.Context, topic string) (string, error) {
	req := struct {
		Topic string `json:"topic"`
	}{topic}
	resp, err := c.do(ctx, http.MethodPost, "/v1/logs/checkpoint", req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Checkpoint string `json:"checkpoint"`
	}
	return out.Checkpoint, json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&out)
}

// Receipt returns the canonical receipt of the entry with envelope ID id
// (hex) or, if id is empty, of the entry at index.
func (c *Client) Receipt(ctx context.Context, topic, id string, index uint64) ([]byte, error) {
	q := url.Values{"topic": {topic}}
	if id != "" {
		q.Set("id", id)
	} else {
		q.Set("index", strconv.FormatUint(index, 10))
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/logs/receipt?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, anchor.MaxReceiptSize+1))
}
