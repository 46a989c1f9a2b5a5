// Command fleet-update rolls firmware out to a fleet: a vendor node
// shares a firmware image as a signed object (package inventory), the
// devices — which fetch objects of type "firmware" signed by the vendor's
// key, and nothing else — get it from whichever neighbour has it,
// "install" it (write it out after checking its content hash) and report
// the installed version on the topic fleet/installed. Then the vendor
// ships version 2, which supersedes version 1: every device installs it
// and removes version 1.
//
// All nodes run in this one process on loopback, connected in a line
// (vendor — device 1 — device 2 — …), so each device but the first gets
// the firmware from another device, not from the vendor:
//
//	go run ./examples/fleet-update -devices 5
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/inventory"
	"github.com/bitmesh/bitmesh/node"
)

// reportTopic is where devices report what they installed.
const reportTopic = "fleet/installed"

func main() {
	devices := flag.Int("devices", 5, "how many devices the fleet has")
	size := flag.Int("size", 4<<20, "firmware image size in bytes")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *devices, *size, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// fleetNode is a node with its inventory extension.
type fleetNode struct {
	n   *node.Node
	inv *inventory.Inventory
}

func start(ctx context.Context, dir string, ic inventory.Config) (fleetNode, error) {
	inv, err := inventory.New(ic)
	if err != nil {
		return fleetNode{}, err
	}
	cfg := node.LocalConfig()
	cfg.DataDir = dir
	n, err := node.New(cfg, node.WithExtension(inv))
	if err != nil {
		return fleetNode{}, err
	}
	return fleetNode{n, inv}, n.Start(ctx)
}

// run rolls two firmware versions out to a fleet of devices and returns
// once every device has reported version 2.
func run(ctx context.Context, devices, size int, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tmp, err := os.MkdirTemp("", "fleet-update-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	vc := inventory.DefaultConfig()
	vc.TrickleInterval = 100 * time.Millisecond
	vendor, err := start(ctx, filepath.Join(tmp, "vendor"), vc)
	if err != nil {
		return err
	}
	defer vendor.n.Close()
	reports, err := vendor.n.Subscribe(reportTopic)
	if err != nil {
		return err
	}
	defer reports.Cancel()

	// Devices want firmware, from the vendor's key only.
	dc := vc
	dc.Types = []string{"firmware"}
	dc.Publishers = []identity.DeviceID{vendor.n.DeviceID()}
	prev := vendor
	var fleet []fleetNode
	for i := range devices {
		d, err := start(ctx, filepath.Join(tmp, fmt.Sprintf("device-%d", i+1)), dc)
		if err != nil {
			return err
		}
		defer d.n.Close()
		fleet = append(fleet, d)
		if err := d.n.Host().Connect(ctx, peer.AddrInfo{ID: prev.n.PeerID(), Addrs: prev.n.Host().Addrs()}); err != nil {
			return err
		}
		// Subscribing makes each device relay the reports of the devices
		// behind it (GossipSub forwards only on topics a node subscribes to).
		sub, err := d.n.Subscribe(reportTopic)
		if err != nil {
			return err
		}
		defer sub.Cancel()
		go func() {
			for {
				if _, err := sub.Next(ctx); err != nil {
					return
				}
			}
		}()
		go installer(ctx, d, filepath.Join(tmp, fmt.Sprintf("installed-%d.bin", i+1)))
		prev = d
	}

	var v1 inventory.ID
	for version := 1; version <= 2; version++ {
		image := filepath.Join(tmp, fmt.Sprintf("fw-%d.bin", version))
		if err := writeImage(image, size); err != nil {
			return err
		}
		name := fmt.Sprintf("sensor-fw-%d.0", version)
		info, err := vendor.inv.Share(ctx, image, inventory.ShareOptions{Type: "firmware", Name: name, Supersedes: v1})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "vendor shared %s (%d bytes, %d chunks)\n", name, info.Size, info.Chunks)
		installed := map[identity.DeviceID]bool{}
		for len(installed) < devices {
			m, err := reports.Next(ctx)
			if err != nil {
				return fmt.Errorf("waiting for %d devices to install %s (%d did): %w", devices, name, len(installed), err)
			}
			if strings.HasPrefix(string(m.Payload), name+" ") && !installed[m.From] {
				installed[m.From] = true
				fmt.Fprintf(out, "device %d of %d installed %s\n", len(installed), devices, name)
			}
		}
		if !v1.IsZero() {
			for i, d := range fleet {
				if _, err := d.inv.Info(v1); err == nil {
					return fmt.Errorf("device %d still holds sensor-fw-1.0, which 2.0 supersedes", i+1)
				}
			}
			fmt.Fprintln(out, "every device removed sensor-fw-1.0")
		}
		v1 = info.ID
	}
	fmt.Fprintln(out, "rollout complete: every device runs sensor-fw-2.0")
	return nil
}

// installer installs every complete firmware object once: it checks the
// bytes against the manifest's content hash, writes them to path, and
// reports the version.
func installer(ctx context.Context, d fleetNode, path string) {
	done := map[inventory.ID]bool{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, o := range d.inv.Objects() {
			if !o.Complete || o.Type != "firmware" || done[o.ID] {
				continue
			}
			if err := install(d.inv, o, path); err != nil {
				log.Printf("device %s: installing %s: %v", d.n.DeviceID(), o.Name, err)
				continue
			}
			done[o.ID] = true
			report := fmt.Sprintf("%s %s", o.Name, o.ID)
			for {
				if _, err := d.n.Publish(ctx, reportTopic, []byte(report)); err == nil || ctx.Err() != nil {
					break
				}
				time.Sleep(200 * time.Millisecond) // not yet in a mesh for the topic
			}
		}
	}
}

func install(inv *inventory.Inventory, o inventory.ObjectInfo, path string) error {
	r, err := inv.Content(o.ID)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), r); err != nil {
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != o.Content {
		return fmt.Errorf("content hash mismatch")
	}
	return f.Sync()
}

func writeImage(path string, size int) error {
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
