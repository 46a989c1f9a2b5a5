// Package atomicfile writes whole files so that a crash or a power cut at
// any moment leaves either the old file or the new one, never a part.
//
// The data goes to a temporary file in the target's directory, which is
// synced and closed, then renamed over the target (Replace) or hard-linked
// to it (Create, which fails if the target exists); finally the directory
// is synced so that the new name itself survives a power cut. Every file
// a node writes whole (its key, its anchors, its control endpoint) and
// every file the CLI writes for a user goes through here; the stores
// (bbolt) and logs do their own syncing.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Replace writes data to path with mode perm, replacing any file there.
func Replace(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, os.Rename)
}

// Create writes data to path with mode perm; it fails, leaving the
// existing file untouched, if path exists.
func Create(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, os.Link)
}

func write(path string, data []byte, perm os.FileMode, place func(oldpath, newpath string) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a rename, nothing is left to remove
	err = tmp.Chmod(perm)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := place(tmp.Name(), path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes a rename, link or removal in dir durable, for callers that
// rename or remove whole directories themselves.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
