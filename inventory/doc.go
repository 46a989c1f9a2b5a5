// Package inventory is the node extension that moves large objects —
// firmware images, configuration bundles, deployment manifests — through
// the mesh the way Bitcoin moves blocks: a node announces an object by its
// ID to each peer (inv), and a peer that wants it asks for it (getdata),
// once per link, from several announcers at once, checking every chunk on
// arrival.
//
// Embedding it is one option to node.New:
//
//	cfg := inventory.DefaultConfig()
//	cfg.Types = []string{"firmware"}          // fetch these on announcement
//	cfg.Publishers = []identity.DeviceID{vendor} // only if the vendor signed them
//	objects, err := inventory.New(cfg)
//	if err != nil {
//		return err
//	}
//	n, err := node.New(node.DefaultConfig(), node.WithExtension(objects))
//	...
//	info, err := objects.Share(ctx, "/srv/fw-2.1.bin", inventory.ShareOptions{Type: "firmware"})
//	err = objects.Fetch(ctx, id)            // elsewhere: blocks until verified
//	r, err := objects.Content(id)           // the object's bytes
//
// # What the caller must do
//
//  1. Start the node: the extension opens its store (DataDir/objects, or
//     memory without a data directory) when the node starts, and refuses
//     to start on a damaged store file, naming it (ErrCorruptStore).
//  2. Choose Types and Publishers with care: an automatic fetch costs the
//     object's bytes against its type's quota, and anyone can publish.
//  3. Check an object's content hash (ObjectInfo.Content) where it leaves
//     the node, as `bitmesh fetch` does: the store checks every chunk
//     against the signed root, which binds every byte, but not the whole
//     file again.
//
// # What it does
//
//   - Manifests (manifest.go, tree.go): an object is a manifest signed by
//     its publisher — size, chunk size, RFC 9162 root over the chunks,
//     SHA-256 of the content, type, name, and the ID of the version it
//     supersedes — and its chunks. The object ID is the tagged hash of the
//     unsigned manifest.
//   - Protocol (wire.go, serve.go, fetch.go): /bitmesh/inv/1.0.0, one
//     request per stream: inv, getmanifest, getleaves, getdata, each
//     bounded before anything is allocated; notfound for what a node does
//     not hold whole.
//   - Scheduling (download.go): a pure core assigns runs of missing chunks
//     to sources; a stalled or faulty source's chunks go to another.
//   - Announcements (inventory.go): trickled in Poisson-delayed batches,
//     never twice to a peer that knows the ID (a known-inventory set per
//     peer), within a per-peer budget; announced objects of wanted types
//     are probed (their manifest fetched) a few at a time.
//   - Misbehaviour: a bad chunk bans its sender at once, a stall and an
//     empty or over-budget announcement score it (antispam.BadChunk,
//     Stalling, InventoryFlood); everything refused is counted (Counters).
//   - Store (store.go, blob.go): one directory per object, written
//     atomically or append-only with fsync; a restarted node resumes its
//     fetches and never fetches an acknowledged chunk again. Per-type
//     quotas; an object's completion removes the version it supersedes.
//   - Control API (routes.go): the object routes under RoutePrefix, which
//     `bitmesh share`, `fetch` and `objects` call.
//
// The wire format and bounds are specified in docs/PROTOCOL.md §20; the
// threat model in SECURITY.md.
package inventory
