//go:build race

package websocket

const raceEnabled = 1
