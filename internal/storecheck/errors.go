package storecheck

import (
	"errors"
	"fmt"
	"path/filepath"
)

// ErrDamaged is wrapped by every refusal of a store file: the file exists
// but is not a bbolt file bbolt can open without crashing or losing
// committed data. The error is a *DamageError naming the file and the repair
// command.
var ErrDamaged = errors.New("storecheck: damaged store file")

// RepairCommand is the command printed with every refusal; DIR is the
// directory that holds the damaged file.
const RepairCommand = "bitmesh repair --data"

// DamageError says which file is damaged and how. It wraps ErrDamaged.
type DamageError struct {
	Path   string // the store file as passed to Open or Inspect
	Reason string // what is wrong with it, for the operator
}

func (e *DamageError) Error() string {
	return fmt.Sprintf("%v %s: %s; run %q to set it aside and keep what is readable",
		ErrDamaged, e.Path, e.Reason, RepairCommand+" "+filepath.Dir(e.Path))
}

// Unwrap returns ErrDamaged.
func (e *DamageError) Unwrap() error { return ErrDamaged }

// Damaged returns a *DamageError for path; other packages use it for damage
// they find themselves (a log whose hashes do not match), so every report
// reads the same.
func Damaged(path, format string, args ...any) error {
	return &DamageError{Path: path, Reason: fmt.Sprintf(format, args...)}
}
