//go:build race

package poll

// raceEnabled: the race detector is on (Desc.now).
const raceEnabled = true
