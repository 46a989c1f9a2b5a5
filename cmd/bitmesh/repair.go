package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/internal/atomicfile"
	"github.com/bitmesh/bitmesh/internal/storecheck"
	"github.com/bitmesh/bitmesh/node"
)

// anchorStoreFileName is the Merkle log store's name in the data directory
// (anchor/meshlog opens it there).
const anchorStoreFileName = "anchor.db"

// quarantineDir holds, inside the data directory, the leaves repair could
// read but not put back in their log (they follow a damaged one).
const quarantineDir = "quarantine"

// maxListed bounds the quarantined files repair lists one by one.
const maxListed = 10

// errNotRecovered is returned when repair found damage it could not undo:
// the message says what was lost. It makes the command exit 1.
var errNotRecovered = errors.New("damage not fully recovered")

func runRepair(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("repair", "repair [--data DIR] [--dry-run]", stderr)
	dir := fs.String("data", node.DefaultConfig().DataDir, "data directory holding anchor.db and bans.db")
	dryRun := fs.Bool("dry-run", false, "only report what is damaged and what would be kept")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	r := &repairer{dir: *dir, dryRun: *dryRun, out: stdout, now: time.Now()}
	lost, err := r.run()
	if err != nil {
		return err
	}
	if len(lost) > 0 {
		return fmt.Errorf("%w: %s", errNotRecovered, strings.Join(lost, "; "))
	}
	return nil
}

// repairer checks and repairs the store files of one data directory.
type repairer struct {
	dir    string
	dryRun bool
	out    io.Writer
	now    time.Time // names the damaged copies and decides which bans expired
}

// run checks each store and repairs the damaged ones. lost lists what could
// not be recovered; err is a failure to check or repair at all (a running
// node holding a file, an IO error).
func (r *repairer) run() (lost []string, err error) {
	for _, st := range []struct {
		name    string
		check   func(path string) (summary string, err error)
		salvage func(damaged, fresh string) (lost []string, err error)
	}{
		{anchorStoreFileName, checkAnchorStore, r.salvageAnchor},
		{node.BanStoreFileName, checkBanStore, r.salvageBans},
	} {
		path := filepath.Join(r.dir, st.name)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			r.say("%s: absent (a node creates it)", st.name)
			continue
		}
		summary, err := st.check(path)
		if err == nil {
			r.say("%s: ok (%s)", st.name, summary)
			continue
		}
		if errors.Is(err, anchor.ErrStoreLocked) || errors.Is(err, antispam.ErrStoreLocked) {
			return lost, fmt.Errorf("%s is in use: stop the node first: %w", path, err)
		}
		if !errors.Is(err, storecheck.ErrDamaged) {
			return lost, err
		}
		r.say("%s: damaged: %s", st.name, reason(err))
		l, err := r.repair(path, st.name, st.salvage)
		lost = append(lost, l...)
		if err != nil {
			return lost, err
		}
	}
	if len(lost) == 0 {
		r.say("data directory %s is clean", r.dir)
	}
	return lost, nil
}

// repair sets the damaged file aside and salvages it into a fresh one, or in
// a dry run salvages it read-only into a scratch file, to report.
func (r *repairer) repair(path, name string, salvage func(damaged, fresh string) ([]string, error)) ([]string, error) {
	var lost []string
	if h, err := storecheck.Inspect(path); err == nil || h.PageSize != 0 {
		for i, m := range h.Metas {
			if !m.Valid() && h.Metas[1-i].Valid() {
				lost = append(lost, fmt.Sprintf("%s: meta page %d was invalid: any commit after txid %d may be lost", name, i, h.Metas[1-i].TxID))
			}
		}
	}
	if r.dryRun {
		scratch, err := os.MkdirTemp("", "bitmesh-repair")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(scratch)
		l, err := salvage(path, filepath.Join(scratch, name))
		return append(lost, l...), err
	}
	damaged := fmt.Sprintf("%s.damaged-%d", path, r.now.Unix())
	if err := os.Rename(path, damaged); err != nil {
		return nil, err
	}
	r.say("%s: moved aside to %s", name, filepath.Base(damaged))
	fresh := path + ".repairing"
	_ = os.Remove(fresh) // left over from an interrupted repair
	l, err := salvage(damaged, fresh)
	lost = append(lost, l...)
	if err != nil {
		return lost, err
	}
	if err := os.Rename(fresh, path); err != nil {
		return lost, err
	}
	r.say("%s: rebuilt from what was readable", name)
	return lost, nil
}

// checkAnchorStore opens the store (file checks) and verifies every log.
func checkAnchorStore(path string) (string, error) {
	s, err := anchor.OpenBoltStore(path)
	if err != nil {
		return "", err
	}
	defer s.Close()
	if err := s.CheckLogs(); err != nil {
		return "", err
	}
	names, err := s.Names()
	if err != nil {
		return "", err
	}
	var leaves uint64
	for _, n := range names {
		size, err := s.Size(n)
		if err != nil {
			return "", err
		}
		leaves += size
	}
	return fmt.Sprintf("%d logs, %d leaves, every hash verified", len(names), leaves), nil
}

// checkBanStore opens the store (file checks) and decodes every ban.
func checkBanStore(path string) (string, error) {
	s, err := antispam.OpenBoltStore(path)
	if err != nil {
		return "", err
	}
	defer s.Close()
	bans, err := s.Load()
	if errors.Is(err, antispam.ErrCorruptBan) {
		return "", storecheck.Damaged(path, "%v", err)
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d bans", len(bans)), nil
}

// salvageAnchor copies into fresh, for each log of damaged, the longest
// prefix of leaves whose hashes match their stored leaf hashes (rebuilding
// the tree with Log.Append), and writes the readable leaves after it to the
// quarantine directory.
func (r *repairer) salvageAnchor(damaged, fresh string) ([]string, error) {
	out, err := anchor.OpenBoltStore(fresh)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	var (
		cur         *anchor.Log
		batch       [][]byte
		quarantined = map[string][]string{}
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := cur.Append(batch)
		batch = batch[:0]
		return err
	}
	logs, err := anchor.SalvageBoltStore(damaged, func(l anchor.SalvagedLeaf) error {
		if cur == nil || cur.Name() != l.Log {
			if cur != nil {
				if err := flush(); err != nil {
					return err
				}
				cur.Close()
			}
			var err error
			if cur, err = anchor.OpenLog(out, l.Log); err != nil {
				return err
			}
		}
		if l.Intact {
			batch = append(batch, append([]byte(nil), l.Data...))
			if len(batch) == anchor.MaxBatchLeaves {
				return flush()
			}
			return nil
		}
		file := filepath.Join(quarantineDir, fmt.Sprintf("%s-%d.bin", url.PathEscape(l.Log), l.Index))
		quarantined[l.Log] = append(quarantined[l.Log], file)
		if r.dryRun {
			return nil
		}
		if err := os.MkdirAll(filepath.Join(r.dir, quarantineDir), 0o700); err != nil {
			return err
		}
		return atomicfile.Replace(filepath.Join(r.dir, file), l.Data, 0o600)
	})
	if cur != nil {
		if ferr := flush(); err == nil {
			err = ferr
		}
		cur.Close()
	}
	if err != nil && len(logs) == 0 {
		r.say("%s: nothing readable: %v", anchorStoreFileName, err)
		return []string{fmt.Sprintf("%s: every log entry (unreadable: %v)", anchorStoreFileName, err)}, nil
	}
	if err != nil {
		return nil, err
	}
	verb := map[bool]string{false: "", true: "would be "}[r.dryRun]
	var lost []string
	for _, l := range logs {
		// The log's signed checkpoints go along: without them a node that
		// lost signed entries would sign a conflicting tree and be banned
		// for equivocation; with them it refuses to start (ErrLogBehind).
		for k, v := range l.Meta {
			if err := out.PutMeta(l.Name, k, v); err != nil {
				return nil, err
			}
		}
		if len(l.Meta) > 0 {
			r.say("%s: log %q: %d signed checkpoint records %skept", anchorStoreFileName, l.Name, len(l.Meta), verb)
		}
		r.say("%s: log %q: %d of %d leaves %skept, hashes verified", anchorStoreFileName, l.Name, l.Intact, l.Size, verb)
		q := quarantined[l.Name]
		for i, f := range q {
			if i == maxListed {
				r.say("%s: log %q: ... and %d more in %s", anchorStoreFileName, l.Name, len(q)-maxListed, quarantineDir)
				break
			}
			r.say("%s: log %q: leaf %s %squarantined to %s", anchorStoreFileName, l.Name, strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), url.PathEscape(l.Name)+"-"), ".bin"), verb, f)
		}
		if l.Err == nil {
			continue
		}
		msg := fmt.Sprintf("log %q: leaves from %d on are out of the log (%v)", l.Name, l.Intact, l.Err)
		if len(q) > 0 {
			msg += fmt.Sprintf("; %d readable ones %sin %s", len(q), verb, quarantineDir)
		}
		if l.Size > l.Read {
			msg += fmt.Sprintf("; %d unreadable ones lost", l.Size-l.Read)
		}
		if len(l.Meta) > 0 {
			msg += "; this node signed checkpoints over entries that are gone, so it will refuse to start until the log is restored from a peer's or a backup copy"
		}
		lost = append(lost, msg)
	}
	return lost, nil
}

// salvageBans copies the readable, unexpired bans of damaged into fresh.
func (r *repairer) salvageBans(damaged, fresh string) ([]string, error) {
	bans, serr := antispam.SalvageBoltStore(damaged)
	var keep []antispam.Ban
	for _, b := range bans {
		if b.Active(r.now) {
			keep = append(keep, b)
		}
	}
	out, err := antispam.OpenBoltStore(fresh)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	if err := out.Apply(keep, nil); err != nil {
		return nil, err
	}
	verb := map[bool]string{false: "", true: "would be "}[r.dryRun]
	if serr != nil && len(bans) == 0 {
		r.say("%s: nothing readable: %v", node.BanStoreFileName, serr)
		return []string{fmt.Sprintf("%s: every ban (unreadable: %v)", node.BanStoreFileName, serr)}, nil
	}
	r.say("%s: %d unexpired bans %skept, %d expired dropped", node.BanStoreFileName, len(keep), verb, len(bans)-len(keep))
	if serr != nil {
		r.say("%s: unreadable: %v", node.BanStoreFileName, serr)
		return []string{fmt.Sprintf("%s: bans that could not be read (%v)", node.BanStoreFileName, serr)}, nil
	}
	return nil, nil
}

func (r *repairer) say(format string, args ...any) {
	fmt.Fprintf(r.out, format+"\n", args...)
}

// reason returns a damage error's reason, and what wraps it (such as
// CheckLogs' first bad leaf), without the repair advice the operator is
// already following.
func reason(err error) string {
	var de *storecheck.DamageError
	if !errors.As(err, &de) {
		return err.Error()
	}
	full, inner := err.Error(), de.Error()
	if i := strings.Index(full, inner); i >= 0 {
		return de.Reason + full[i+len(inner):]
	}
	return de.Reason
}
