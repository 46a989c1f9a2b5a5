// Package storecheck refuses damaged bbolt files before bbolt can crash on
// them, and turns what bbolt still raises into errors.
//
// bbolt trusts its file: a file cut short makes it read past the end of its
// memory map (SIGBUS, which no recover() catches), a bad freelist page makes
// it panic, and an empty file is silently initialised as a new, empty
// database. Open is bbolt.Open with three guards around it:
//
//  1. Inspect reads the two meta pages with plain file reads and refuses a
//     file that is empty, shorter than four pages, not a whole number of
//     pages, shorter than its high-water mark, or whose meta or freelist
//     pages are invalid. A missing file is new and is created as usual.
//  2. bolt.Open runs with SetPanicOnFault and recover(), so what the checks
//     missed becomes an error, not a crash.
//  3. Verify reads every bucket, key and value once (touching every page the
//     tree references, again under SetPanicOnFault) and then runs bbolt's
//     own tx.Check.
//
// Usage, by a package that keeps a bbolt file:
//
//	db, err := storecheck.Open(path, 0o600, &opts)
//	if errors.Is(err, storecheck.ErrDamaged) {
//		// err names the file and says: run "bitmesh repair --data DIR".
//	}
//
// Caller's duties:
//
//  1. Use Open instead of bolt.Open; errors that are not damage (a lock
//     timeout, a permission error) come back from bbolt unchanged.
//  2. Do not retry on ErrDamaged: the file stays as it was. Moving it aside
//     and copying what is readable is the job of `bitmesh repair`.
package storecheck
