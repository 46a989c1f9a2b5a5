package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/node/control"
)

// The client side of the log extension's endpoints (anchor/meshlog
// routes.go), for `bitmesh log`, through control.Client.Do: the control
// package knows no extension. It reads the answers as the node sent them.

// logInfo is one log of GET /v1/logs (meshlog.LogInfo on the node): the
// fields `bitmesh log show` prints. MarshalJSON gives back the whole
// object as the node sent it, fields this type does not name included.
type logInfo struct {
	Topic      string   `json:"topic"`
	Origin     string   `json:"origin"`
	Size       uint64   `json:"size"`
	Checkpoint uint64   `json:"checkpoint_size"` // size of the newest signed checkpoint
	Cosigners  []string `json:"cosigners"`       // witnesses of the newest checkpoint

	raw json.RawMessage // as received; nil for a logInfo built in code
}

// logInfoFields is logInfo without its methods, to decode and encode the
// named fields without recursing.
type logInfoFields logInfo

// UnmarshalJSON keeps data for MarshalJSON.
func (l *logInfo) UnmarshalJSON(data []byte) error {
	var f logInfoFields
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	*l = logInfo(f)
	l.raw = append(json.RawMessage(nil), data...)
	return nil
}

// MarshalJSON returns the object as received, else the named fields.
func (l logInfo) MarshalJSON() ([]byte, error) {
	if l.raw != nil {
		return l.raw, nil
	}
	return json.Marshal(logInfoFields(l))
}

// listLogs lists the node's logs.
func listLogs(ctx context.Context, c *control.Client) ([]logInfo, error) {
	resp, err := c.Do(ctx, http.MethodGet, "/v1/logs", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []logInfo
	return out, json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out)
}

// signCheckpoint signs (if the log grew) and returns topic's newest
// checkpoint.
func signCheckpoint(ctx context.Context, c *control.Client, topic string) (string, error) {
	req := struct {
		Topic string `json:"topic"`
	}{topic}
	resp, err := c.Do(ctx, http.MethodPost, "/v1/logs/checkpoint", req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Checkpoint string `json:"checkpoint"`
	}
	return out.Checkpoint, json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&out)
}

// fetchReceipt returns the canonical receipt of the entry with envelope ID
// id (hex) or, if id is empty, of the entry at index.
func fetchReceipt(ctx context.Context, c *control.Client, topic, id string, index uint64) ([]byte, error) {
	q := url.Values{"topic": {topic}}
	if id != "" {
		q.Set("id", id)
	} else {
		q.Set("index", strconv.FormatUint(index, 10))
	}
	resp, err := c.Do(ctx, http.MethodGet, "/v1/logs/receipt?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, anchor.MaxReceiptSize+1))
}
