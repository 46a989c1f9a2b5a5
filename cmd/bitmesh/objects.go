package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/inventory"
	"github.com/bitmesh/bitmesh/node/control"
)

// objectsConfig turns `bitmesh node`'s object flags into the inventory
// extension's configuration.
func objectsConfig(types, publishers []string, serveRate int) (inventory.Config, error) {
	c := inventory.DefaultConfig()
	c.Types = types
	for _, p := range publishers {
		id, err := identity.ParseDeviceID(p)
		if err != nil {
			return c, fmt.Errorf("--object-publisher %q: %v", p, err)
		}
		c.Publishers = append(c.Publishers, id)
	}
	c.ServeRate = serveRate
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("object flags: %v", err)
	}
	return c, nil
}

// objectID is what `bitmesh share --json` prints.
type objectID struct {
	ID string `json:"id"`
}

func runShare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newNodeCommand("share", "share [--data DIR] [--type T] [--name N] [--supersedes ID] [--certify TOPIC] [--json] FILE", stderr)
	fs := cmd.fs
	typ := fs.String("type", "file", "object `type`: nodes started with --object-type T fetch it as soon as it is announced")
	name := fs.String("name", "", "object `name` shown to others (default: the file's base name)")
	supersedes := fs.String("supersedes", "", "`ID` of the earlier version this object replaces: nodes remove it once they hold this one")
	certify := fs.String("certify", "", "also publish the signed manifest on this `topic`: a node logging it (--log-topic) gives a receipt")
	asJSON := fs.Bool("json", false, `print {"id": ID} instead of the bare ID`)
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	c, pos, err := cmd.open(args, 1, 1)
	if err != nil {
		return err
	}
	defer c.Close()
	path, err := filepath.Abs(pos[0])
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req := inventory.ShareRequest{Path: path, Type: *typ, Name: *name, Supersedes: *supersedes, Certify: *certify}
	var info inventory.ObjectInfo
	if err := callJSON(ctx, c, http.MethodPost, inventory.RoutePrefix+"/share", req, &info); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "shared %s: %s, %d bytes in %d chunks\n", info.ID, info.Name, info.Size, info.Chunks)
	if info.Certified != "" {
		fmt.Fprintf(stderr, "manifest published on %s as envelope %s (bitmesh log receipt %s %s)\n", *certify, info.Certified, *certify, info.Certified)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(objectID{ID: info.ID.String()})
	}
	_, err = fmt.Fprintln(stdout, info.ID)
	return err
}

func runFetch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newNodeCommand("fetch", "fetch [--data DIR] --out FILE [--timeout D] ID", stderr)
	fs := cmd.fs
	out := fs.String("out", "", "write the verified object to this `file` (required)")
	timeout := fs.Duration("timeout", time.Hour, "give up after this long (the node keeps fetching)")
	c, pos, err := cmd.open(args, 1, 1)
	if err != nil {
		return err
	}
	defer c.Close()
	if *out == "" {
		return usagef(fs, "--out FILE is required")
	}
	id, err := inventory.ParseID(pos[0])
	if err != nil {
		return usagef(fs, "%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var info inventory.ObjectInfo
	if err := callJSON(ctx, c, http.MethodPost, inventory.RoutePrefix+"/fetch", inventory.FetchRequest{ID: id.String()}, &info); err != nil {
		return err
	}
	if info, err = waitComplete(ctx, c, id, info, stderr); err != nil {
		return err
	}
	if err := writeObject(ctx, c, info, *out); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s: %d bytes, SHA-256 %s\n", *out, info.Size, info.Content)
	return nil
}

// waitComplete polls the node until the object is complete, printing
// progress to stderr when it changes.
func waitComplete(ctx context.Context, c *control.Client, id inventory.ID, info inventory.ObjectInfo, stderr io.Writer) (inventory.ObjectInfo, error) {
	last := -1
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	if !info.Complete && info.Chunks == 0 {
		fmt.Fprintf(stderr, "fetching %s: asking peers for its manifest\n", id)
	}
	for !info.Complete {
		if info.Chunks > 0 && info.Have != last {
			fmt.Fprintf(stderr, "fetching %s: %d/%d chunks (%d%%) from %d peers\n", id, info.Have, info.Chunks, 100*info.Have/info.Chunks, info.Sources)
			last = info.Have
		}
		select {
		case <-ctx.Done():
			return info, fmt.Errorf("fetching %s: %w (the node keeps fetching)", id, ctx.Err())
		case <-tick.C:
		}
		if err := callJSON(ctx, c, http.MethodGet, inventory.RoutePrefix+"/"+id.String(), nil, &info); err != nil {
			return info, err
		}
	}
	return info, nil
}

// writeObject downloads the object's bytes from the node into a temporary
// file beside out, checks them against the manifest's content hash, syncs
// and renames it to out: out is the whole verified object or untouched.
func writeObject(ctx context.Context, c *control.Client, info inventory.ObjectInfo, out string) error {
	resp, err := c.Do(ctx, http.MethodGet, inventory.RoutePrefix+"/"+info.ID.String()+"/content", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, int64(info.Size)+1))
	if err != nil {
		return err
	}
	if uint64(n) != info.Size || hex.EncodeToString(h.Sum(nil)) != info.Content {
		return fmt.Errorf("object %s: the node sent %d bytes that do not match the manifest (%d bytes, SHA-256 %s)", info.ID, n, info.Size, info.Content)
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

func runObjects(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newNodeCommand("objects", "objects [--data DIR] [--json] [--counters]", stderr)
	asJSON := cmd.fs.Bool("json", false, "print a JSON array")
	counters := cmd.fs.Bool("counters", false, "print what the node refused or dropped of the object protocol, by reason, as JSON")
	c, _, err := cmd.open(args, 0, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	if *counters {
		var out inventory.Counters
		if err := callJSON(ctx, c, http.MethodGet, inventory.RoutePrefix+"/counters", nil, &out); err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(out)
	}
	var list []inventory.ObjectInfo
	if err := callJSON(ctx, c, http.MethodGet, inventory.RoutePrefix, nil, &list); err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(list)
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTYPE\tNAME\tSIZE\tCHUNKS\tSTATE")
	for _, o := range list {
		state := "complete"
		if !o.Complete {
			state = fmt.Sprintf("fetching %d%%", 100*o.Have/max(1, o.Chunks))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\n", o.ID, o.Type, o.Name, o.Size, o.Chunks, state)
	}
	return w.Flush()
}

// callJSON sends body (nil for none) and decodes the answer, at most
// 16 MiB, into out.
func callJSON(ctx context.Context, c *control.Client, method, path string, body, out any) error {
	resp, err := c.Do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}
