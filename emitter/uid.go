package emitter

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/snowflake"
)

// The snowflake layout of the original event-emitter (not Twitter's):
// (ms since 2015-01-01T00:00:00Z) << 22 | datacenterId << 20 | keycloakId << 15 | sequence.
const (
	uidEpochMillis  = 1420070400000 // 2015-01-01T00:00:00Z
	uidKeycloakBits = 5
	uidDCBits       = 2
	uidSequenceBits = 15
	uidTimeShift    = uidDCBits + uidKeycloakBits + uidSequenceBits

	// MaxKeycloakID is the largest keycloakId (5 bits).
	MaxKeycloakID = 1<<uidKeycloakBits - 1
	// MaxDatacenterID is the largest datacenterId (2 bits).
	MaxDatacenterID = 1<<uidDCBits - 1
)

// snowflakeMu guards the package globals of github.com/bwmarrin/snowflake
// (Epoch, NodeBits, StepBits), which snowflake.NewNode reads: this is the
// only place that sets them, always to the layout above, under the lock.
// Nothing else in the process may use snowflake with another layout.
var snowflakeMu sync.Mutex

// UIDGenerator issues the snowflake uids the emitter stamps on each event.
// It is safe for concurrent use and never issues the same uid twice, nor a
// uid at or below one it was told of (Resume): when Keycloak produces more
// than 32,768 events in a millisecond it waits for the next one.
//
// Its clock is the process's monotonic clock, which a wall-clock step back
// does not move backwards. Across restarts, Resume with the last uid issued
// before (the checkpoint keeps it) makes a clock that stepped back wait
// until it passes that uid's time, as the original refused to issue ids
// until the clock caught up.
type UIDGenerator struct {
	node  *snowflake.Node
	floor atomic.Int64 // the largest uid given to Resume
}

// NewUIDGenerator returns a generator for the node keycloakID (0..31) of the
// datacenter datacenterID (0..3); an id out of range is an error naming the
// parameter and its value.
func NewUIDGenerator(keycloakID, datacenterID int64) (*UIDGenerator, error) {
	if keycloakID < 0 || keycloakID > MaxKeycloakID {
		return nil, fmt.Errorf("keycloakId %d out of range 0..%d", keycloakID, MaxKeycloakID)
	}
	if datacenterID < 0 || datacenterID > MaxDatacenterID {
		return nil, fmt.Errorf("datacenterId %d out of range 0..%d", datacenterID, MaxDatacenterID)
	}
	snowflakeMu.Lock()
	snowflake.Epoch = uidEpochMillis
	snowflake.NodeBits = uidDCBits + uidKeycloakBits
	snowflake.StepBits = uidSequenceBits
	node, err := snowflake.NewNode(datacenterID<<uidKeycloakBits | keycloakID)
	snowflakeMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("snowflake node %d/%d: %w", datacenterID, keycloakID, err)
	}
	return &UIDGenerator{node: node}, nil
}

// Next returns a new uid, larger than every uid g issued before and than
// the bound of every Resume that returned before Next was called.
//
// snowflake.Node.Generate reads the monotonic clock under its own lock, so
// its uids only grow within a process; the bound of Resume covers what came
// before the process (see UIDGenerator).
func (g *UIDGenerator) Next() int64 {
	for {
		id := g.node.Generate().Int64()
		floor := g.floor.Load()
		if id > floor {
			return id
		}
		// A uid from a clock ahead of ours: wait until ours passes it. (In
		// its own millisecond the next Generate comes closer without waiting.)
		if ahead := UIDTime(floor) - UIDTime(id); ahead > 0 {
			time.Sleep(time.Duration(ahead) * time.Millisecond)
		}
	}
}

// Resume makes every later Next return a uid larger than uid, e.g. the last
// uid issued before a restart. It never lowers that bound.
func (g *UIDGenerator) Resume(uid int64) {
	for {
		floor := g.floor.Load()
		if uid <= floor || g.floor.CompareAndSwap(floor, uid) {
			return
		}
	}
}

// UIDTime returns the time encoded in uid, in milliseconds since the Unix
// epoch.
func UIDTime(uid int64) int64 {
	return uid>>uidTimeShift + uidEpochMillis
}

// UIDNode returns the keycloakId and datacenterId encoded in uid.
func UIDNode(uid int64) (keycloakID, datacenterID int64) {
	return uid >> uidSequenceBits & MaxKeycloakID, uid >> (uidSequenceBits + uidKeycloakBits) & MaxDatacenterID
}
