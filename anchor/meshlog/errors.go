package meshlog

import "errors"

// Sentinels. Errors returned by this package wrap one of them.
var (
	// ErrUnknownTopic: the topic is not logged by this node.
	ErrUnknownTopic = errors.New("meshlog: topic not logged")
	// ErrNotLogged: no envelope with that ID is in the topic's log.
	ErrNotLogged = errors.New("meshlog: envelope not in the log")
	// ErrNoCheckpoint: no signed checkpoint covers the leaf yet; call
	// Checkpoint or wait for the next one.
	ErrNoCheckpoint = errors.New("meshlog: no checkpoint covers the entry yet")
	// ErrMalformed: a log-topic message or stream frame does not parse.
	ErrMalformed = errors.New("meshlog: malformed message")
	// ErrWrongLog: a message names a log that is not its sender's, or of
	// another network.
	ErrWrongLog = errors.New("meshlog: message for another log")
	// ErrInconsistent: a log's new checkpoint is not consistent with one
	// seen before.
	ErrInconsistent = errors.New("meshlog: inconsistent checkpoints")
	// ErrClosed: the extension was used after Close or before Start.
	ErrClosed = errors.New("meshlog: not running")
	// ErrBudget: a stranger log or a cosignature beyond the node's budget
	// (Config.StrangerRate, Config.CosignRate).
	ErrBudget = errors.New("meshlog: over budget")
	// ErrQuota: an envelope beyond a logged topic's quota (Config.
	// DeviceQuota, Config.TopicQuota).
	ErrQuota = errors.New("meshlog: over the topic's quota")
	// ErrLogFull: the log holds Config.MaxLogBytes; it takes no more
	// entries until an operator makes room.
	ErrLogFull = errors.New("meshlog: log full")
	// ErrRemote: a peer answered a stream request with an error.
	ErrRemote = errors.New("meshlog: peer refused the request")
	// ErrLogBehind: Start found a log that no longer holds a tree this
	// node signed a checkpoint of (entries lost or replaced in a damaged
	// or rolled-back store). Signing on would be equivocation, for which
	// the mesh bans the device, so the node does not start; the error
	// names the store file. Restore the log from a peer or a backup.
	ErrLogBehind = errors.New("meshlog: log lost entries it had signed")
	// ErrCheckpointRecord: a stored own checkpoint does not decode or is
	// not this log's; Start skips it.
	ErrCheckpointRecord = errors.New("meshlog: bad stored checkpoint")
)
