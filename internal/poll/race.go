//go:build race

package poll

// raceEnabled: the race detector is on (ReadNow).
const raceEnabled = true
