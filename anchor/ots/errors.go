package ots

import "errors"

// Errors of this package. Besides them, a proof or .ots file that does not
// parse or does not lead to its digest's block fails with an error
// wrapping anchor.ErrAnchorInvalid, and one still waiting on its calendars
// with anchor.ErrAnchorPending, as every anchor kind's do; tell the cases
// apart with errors.Is.
var (
	// ErrConfig: NewAnchorer refused its Config (no calendars, a calendar
	// that is not an http(s) URL, MinResponses above the number of
	// calendars).
	ErrConfig = errors.New("ots: invalid config")
	// ErrCalendar: a calendar could not be reached, answered with an HTTP
	// error (other than 404, which means pending) or sent more than a
	// calendar answer's bound. Anchor fails with it when fewer than
	// Config.MinResponses calendars accepted the digest.
	ErrCalendar = errors.New("ots: calendar failed")
)
